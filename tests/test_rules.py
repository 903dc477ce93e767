"""Rule files: loading, every validation error with its file:line:col, warnings, matching."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watcher.domain import Article
from watcher.errors import RuleError
from watcher.rules import DeliverSpec, Rule, RuleFileError, RuleSet, load_ruleset

REPO_RULES = Path(__file__).resolve().parents[1] / "rules"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(directory: Path) -> RuleFileError:
    with pytest.raises(RuleFileError) as caught:
        load_ruleset(directory)
    return caught.value


def position(path: Path, line_no: int, needle: str) -> tuple[int, int]:
    """1-based (line, col) of `needle` on 1-based line `line_no` of the file."""
    line = path.read_text(encoding="utf-8").splitlines()[line_no - 1]
    assert needle in line, (needle, line)
    return line_no, line.index(needle) + 1


def only_error(directory: Path):
    errors = [p for p in load_error(directory).problems if p.severity == "error"]
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def article(title: str, text: str = "", lang: str | None = None) -> Article:
    return Article(url="https://news.example/a", title=title, text=text, lang=lang)


# -- loading -------------------------------------------------------------------------------------


def test_one_rule_per_file_with_defaults(tmp_path: Path) -> None:
    write(tmp_path, "pact.yaml", "id: pact\nquery: GSOMIA OR 지소미아\n")
    ruleset = load_ruleset(tmp_path)
    (rule,) = ruleset.rules
    assert rule.id == "pact" and rule.title == "pact"
    assert rule.deliver.digest == "daily" and rule.deliver.immediate is False
    assert rule.deliver.destinations is None and rule.priority == "normal"
    assert rule.enabled and rule.on_update == "ignore"
    assert rule.origin == f"{tmp_path / 'pact.yaml'}:1"
    assert ruleset.warnings == []


def test_list_file_rules_key_file_and_documents(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "- {id: one, query: alpha}\n- {id: two, query: beta}\n")
    write(tmp_path, "b.yml", "rules:\n  - id: three\n    query: gamma\n")
    write(tmp_path, "c.yaml", "id: four\nquery: delta\n---\nid: five\nquery: epsilon\n")
    write(tmp_path, "README.md", "not a rule file")
    write(tmp_path, ".hidden.yaml", "this: [is not read")
    ids = [rule.id for rule in load_ruleset(tmp_path).rules]
    assert ids == ["one", "two", "three", "four", "five"]


def test_yaml_1_2_keeps_off_and_no_as_strings(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.yaml",
        """
        id: norway
        query: fjord
        languages: [no, en]
        deliver: {digest: off, immediate: true, destinations: [team-email]}
        """,
    )
    (rule,) = load_ruleset(tmp_path).rules
    assert rule.languages == ["no", "en"]
    assert rule.deliver.digest == "off" and rule.deliver.destinations == ["team-email"]


def test_version_is_a_stable_hash_of_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nquery: alpha\n")
    first, again = load_ruleset(tmp_path), load_ruleset(tmp_path)
    assert first.version == again.version and len(first.version) == 16
    path.write_text("id: r\nquery: beta\n", encoding="utf-8")
    assert load_ruleset(tmp_path).version != first.version


def test_missing_directory_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="rules directory not found"):
        load_ruleset(tmp_path / "absent")


def test_empty_file_is_a_warning_not_an_error(tmp_path: Path) -> None:
    write(tmp_path, "empty.yaml", "# nothing yet\n")
    write(tmp_path, "r.yaml", "id: r\nquery: alpha\n")
    ruleset = load_ruleset(tmp_path)
    assert [r.id for r in ruleset.rules] == ["r"]
    assert any("empty.yaml:1:1: empty rule file" in w for w in ruleset.warnings)


# -- errors, each with its position --------------------------------------------------------------


def test_unknown_key_points_at_the_key_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nqeury: alpha\nquery: beta\n")
    error = only_error(tmp_path)
    assert (error.file, error.line, error.col) == (str(path), 2, 1)
    assert "unknown key 'qeury'" in error.message and "did you mean 'query'" in error.message
    assert error.render().splitlines()[1:] == ["    qeury: alpha", "    ^~~~~"]


def test_unknown_nested_key_in_deliver(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nquery: a\ndeliver:\n  digets: daily\n")
    error = only_error(tmp_path)
    assert (error.line, error.col) == position(path, 4, "digets")
    assert "deliver.digets" in error.message and "'digest'" in error.message


@pytest.mark.parametrize(
    ("line", "needle", "message"),
    [
        ("enabled: 'yes'", "'yes'", "enabled: Input should be a valid boolean"),
        ("languages: en", "en", "languages: Input should be a valid list"),
        ("priority: urgent", "urgent", "priority: Input should be 'high', 'normal' or 'low'"),
        ("languages: [en, Korean]", "Korean", "languages[1]: 'Korean' is not an ISO 639-1"),
        ("fields: [title, body]", "body", "fields[1]: 'body' is not a query field"),
        ("tags: [ok, 3]", "3", "tags[1]: Input should be a valid string"),
        ("on_update: always", "always", "on_update: Input should be 'ignore' or 'alert'"),
        ("deliver: {digest: monthly}", "monthly", "deliver.digest: Input should be 'daily'"),
        ("deliver: {immediate: 1}", "1", "deliver.immediate: Input should be a valid boolean"),
        ("deliver: {destinations: []}", "[]", "deliver.destinations: [] delivers nowhere"),
    ],
)
def test_wrong_types_point_at_the_value(
    tmp_path: Path, line: str, needle: str, message: str
) -> None:
    path = write(tmp_path, "r.yaml", f"id: r\nquery: alpha\n{line}\n")
    error = only_error(tmp_path)
    assert message in error.message
    assert (error.line, error.col) == position(path, 3, needle)


def test_bad_id_and_missing_query(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "- id: Bad Id\n  query: a\n- id: fine\n  name: no query\n")
    problems = [str(p) for p in load_error(tmp_path).problems]
    assert problems == [
        f"{path}:1:7: id: 'Bad Id' is not a valid rule id: use lowercase letters and digits "
        "joined by single hyphens or underscores (e.g. dokdo-takeshima), at most 64 characters",
        f"{path}:3:3: missing required key 'query'",
    ]


def test_duplicate_id_across_two_files_names_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", "id: gsomia\nquery: GSOMIA\n")
    second = write(tmp_path, "b.yaml", "# copy\nid: gsomia\nquery: 지소미아\n")
    error = only_error(tmp_path)
    assert str(error) == (f"{second}:2:5: duplicate rule id 'gsomia' (also at {first}:1:5)")


def test_duplicate_key_in_one_rule(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nquery: alpha\nquery: beta\n")
    error = only_error(tmp_path)
    assert (error.line, error.col, error.file) == (3, 1, str(path))
    assert "duplicate key 'query' (first on line 2)" in error.message


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nquery: [alpha, beta\nname: x\n")
    error = only_error(tmp_path)
    assert error.file == str(path) and error.line == 3
    assert error.message.startswith("YAML syntax error:")
    assert error.source_line == "name: x"


def test_a_rule_that_is_not_a_mapping(tmp_path: Path) -> None:
    write(tmp_path, "r.yaml", "- just a string\n")
    assert "a rule must be a mapping" in only_error(tmp_path).message


def test_every_error_in_every_file_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: a\nquery: alpha\nprority: high\nenabled: maybe\n")
    write(tmp_path, "b.yaml", "id: b\nquery: '(beta'\n")
    write(tmp_path, "c.yaml", "id: [c\n")
    write(tmp_path, "d.yaml", "id: d\nquery: delta\n")
    error = load_error(tmp_path)
    assert len(error.errors) == 4
    assert {Path(p.file).name for p in error.problems} == {"a.yaml", "b.yaml", "c.yaml"}
    assert "4 errors in 3 rule files" in error.message
    assert all(text.count("\n") == 2 for text in error.errors)  # message, source line, caret


# -- query syntax errors mapped into the YAML scalar --------------------------------------------

BLOCK = """\
id: broken
name: Broken
query: |
  GSOMIA OR 지소미아
  OR ("Acquisition and Cross-Servicing
  AND Korea
"""


def test_query_error_in_literal_block_scalar(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", BLOCK)
    error = only_error(tmp_path)
    assert (error.line, error.col) == position(path, 5, '"Acquisition')
    assert error.message.startswith("query: unterminated phrase")
    assert error.render().splitlines()[1] == '      OR ("Acquisition and Cross-Servicing'


def test_query_error_in_literal_block_after_blank_line_and_comment(tmp_path: Path) -> None:
    text = "id: r\nquery: |  # the pact\n  GSOMIA\n\n  OR titel:pact\n"
    path = write(tmp_path, "r.yaml", text)
    error = only_error(tmp_path)
    assert (error.line, error.col) == position(path, 5, "titel")
    assert "unknown field 'titel'" in error.message


def test_query_error_in_folded_block_scalar(tmp_path: Path) -> None:
    text = 'id: r\nexclude: >\n  sports OR\n    weather OR "open\nquery: alpha\n'
    path = write(tmp_path, "r.yaml", text)
    error = only_error(tmp_path)
    assert (error.line, error.col) == position(path, 4, '"open')
    assert error.message.startswith("exclude: unterminated phrase")


def test_query_error_in_plain_scalar(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nquery: GSOMIA OR titel:pact\n")
    error = only_error(tmp_path)
    assert (error.line, error.col) == position(path, 2, "titel")


def test_query_error_in_quoted_scalar_with_escapes(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", 'id: r\nquery: "\\"Dokdo\\" OR 독도 OR titel:x"\n')
    error = only_error(tmp_path)
    assert (error.line, error.col) == position(path, 2, "titel")


def test_caret_lines_up_under_wide_characters(tmp_path: Path) -> None:
    write(tmp_path, "r.yaml", "id: r\nquery: 竹島 OR titel:x\n")
    caret = only_error(tmp_path).render().splitlines()[2]
    # "query: " is 7 columns, 竹島 is 4 terminal columns, " OR " 4 more
    assert caret == "    " + " " * 15 + "^~~~~"


# -- warnings ------------------------------------------------------------------------------------


def test_and_or_mix_warning_points_into_the_query(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nquery: |\n  Dokdo\n  AND Takeshima OR 竹島\n")
    ruleset = load_ruleset(tmp_path)
    (warning,) = ruleset.problems
    assert warning.severity == "warning" and warning.file == str(path)
    assert warning.line in (3, 4) and warning.message.startswith("query: ")
    assert ruleset.warnings == [str(warning)]


def test_disabled_rule_warns_and_never_matches(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: off-rule\nquery: Dokdo\nenabled: false\n")
    write(tmp_path, "b.yaml", "id: on-rule\nquery: Dokdo\n")
    ruleset = load_ruleset(tmp_path)
    assert any("a.yaml:3:1: rule 'off-rule' is disabled" in w for w in ruleset.warnings)
    assert [m.rule_id for m in ruleset.match(article("Dokdo islets"))] == ["on-rule"]


def test_warnings_are_kept_when_there_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "id: a\nquery: x\nenabled: false\n")
    write(tmp_path, "b.yaml", "id: b\nquery: (y\n")
    error = load_error(tmp_path)
    assert [p.severity for p in error.problems].count("warning") == 1
    assert len(error.errors) == 1


# -- matching ------------------------------------------------------------------------------------


def test_match_uses_query_exclude_and_languages(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.yaml",
        """
        id: acsa
        query: ACSA NEAR/10 Korea
        exclude: '"Airports Company"'
        languages: [en]
        """,
    )
    ruleset = load_ruleset(tmp_path)
    assert [m.rule_id for m in ruleset.match(article("Korea and Japan discuss ACSA"))] == ["acsa"]
    assert ruleset.match(article("ACSA, Airports Company South Africa, flies to Korea")) == []
    assert ruleset.match(article("Korea and Japan discuss ACSA", lang="ko")) == []


def test_ruleset_built_from_rules_in_code() -> None:
    rules = (Rule(id="a", query="alpha"), Rule(id="b", query="beta", enabled=False))
    ruleset = RuleSet(rules=rules)
    assert [m.rule_id for m in ruleset.match(article("alpha beta"))] == ["a"]
    assert RuleSet().match(article("alpha")) == []


def test_unknown_destinations_are_left_to_the_caller(tmp_path: Path) -> None:
    write(tmp_path, "r.yaml", "id: r\nquery: a\ndeliver: {destinations: [team, chat]}\n")
    ruleset = load_ruleset(tmp_path)
    assert ruleset.unknown_destinations(["team"]) == {"r": ["chat"]}


def test_seeded_rules_load_cleanly() -> None:
    ruleset = load_ruleset(REPO_RULES)
    ids = {rule.id for rule in ruleset.rules}
    assert {"gsomia", "acsa", "dokdo-takeshima", "trilateral-summit"} <= ids
    assert ruleset.warnings == []
    assert all(rule.name and rule.deliver.digest == "daily" for rule in ruleset.rules)


def test_query_error_at_the_start_of_a_block_scalar_line(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "id: r\nquery: |\n  Dokdo OR\n  titel:x\n")
    error = only_error(tmp_path)
    assert (error.line, error.col) == position(path, 4, "titel")


def test_merge_keys_share_a_deliver_block(tmp_path: Path) -> None:
    write(
        tmp_path,
        "r.yaml",
        """
        - &base
          id: first
          query: alpha
          deliver: {digest: weekly, immediate: true}
          priority: high
        - <<: *base
          id: second
          query: beta
          priority: low
        """,
    )
    first, second = load_ruleset(tmp_path).rules
    assert second.deliver == first.deliver and second.deliver.digest == "weekly"
    assert (second.id, second.query, second.priority) == ("second", "beta", "low")


def test_every_rule_key_is_documented() -> None:
    readme = REPO_RULES / "README.md"
    if not readme.is_file():
        pytest.skip("rules/README.md not written yet")
    section = readme.read_text(encoding="utf-8").split("## Rule files", 1)[-1]
    keys = [k for k in Rule.model_fields if k != "deliver"]
    keys += [f"deliver.{k}" for k in DeliverSpec.model_fields]
    assert [key for key in keys if f"`{key}`" not in section] == []


def _many_rules(count: int, broken_at: int | None = None) -> str:
    lines = ["rules:"]
    for n in range(count):
        query = f'"topic number {n}" AND (alpha{n} OR beta{n}*) NOT gamma{n}'
        if n == broken_at:
            query = f"(topic{n} AND"
        lines += [f"  - id: generated-{n}", f"    query: '{query}'", "    tags: [bench, generated]"]
    return "\n".join(lines) + "\n"


def test_a_large_rule_set_is_read_in_a_child_process_with_the_same_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Above ISOLATED_RULES_BYTES the daemon reads rules in a child (memory); same rules, same
    matches, same version as reading them here."""
    from watcher.daemon import ISOLATED_RULES_BYTES, load_rules

    write(tmp_path, "many.yaml", _many_rules(3000))
    assert (tmp_path / "many.yaml").stat().st_size > ISOLATED_RULES_BYTES
    here, there = load_ruleset(tmp_path), load_rules(tmp_path)
    assert not [r for r in caplog.records if r.name == "watcher.cpu"], "it ran in the child"
    assert there.version == here.version and len(there.rules) == len(here.rules) == 3000
    article = Article(url="https://example.com/a", title="topic number 42", text="alpha42 and more")
    assert [m.rule_id for m in there.match(article)] == ["generated-42"]
    assert [m.rule_id for m in here.match(article)] == ["generated-42"]


def test_an_invalid_large_rule_set_fails_in_the_child_as_it_would_here(tmp_path: Path) -> None:
    from watcher.daemon import load_rules

    path = write(tmp_path, "many.yaml", _many_rules(3000, broken_at=2500))
    with pytest.raises(RuleFileError) as there:
        load_rules(tmp_path)
    expected = load_error(tmp_path)
    assert there.value.errors == expected.errors
    assert there.value.errors[0].startswith(f"{path}:")
    assert [p.line for p in there.value.problems] == [p.line for p in expected.problems]
