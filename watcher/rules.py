"""Rule files (`rules/*.yaml`) → a validated, compiled RuleSet.

Analysts edit these files by hand while the daemon runs, so a bad edit must be reported completely
(every problem at once, each as `file:line:col` with the offending line) and must never half-apply:
`load_ruleset` either returns a whole new RuleSet or raises RuleError, and the daemon keeps the last
good one. YAML is read as YAML 1.2 (ruamel.yaml), so `digest: off` stays the string "off" and the
language code `no` is not a boolean.

A file holds one rule (a mapping), a list of rules, or a mapping whose only key is `rules:`
(a list); several `---` documents are allowed. Destination names in `deliver.destinations` are
not checked here — only the caller knows the configured destinations (`unknown_destinations`).
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from watcher.domain import Article, RuleMatch
from watcher.errors import RuleError
from watcher.query import CompiledRule, Engine, QuerySyntaxError, QueryWarning, parse_with_warnings

RULE_SUFFIXES = (".yaml", ".yml")
Severity = Literal["error", "warning"]
QUERY_FIELDS = ("title", "text", "source", "url", "lang", "author")
_SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
_LANG = re.compile(r"^[a-z]{2}$")


@lru_cache(maxsize=2048)
def _parse(text: str) -> tuple[Any, tuple[QueryWarning, ...]]:
    """Parse once per distinct query text: a reload after one edit re-parses one rule."""
    node, warnings = parse_with_warnings(text)
    return node, tuple(warnings)


# -- the schema --------------------------------------------------------------------------------


def _slug(value: str) -> str:
    if not _SLUG.fullmatch(value) or len(value) > 64:
        raise ValueError(
            f"{value!r} is not a valid rule id: use lowercase letters and digits joined by single "
            "hyphens or underscores (e.g. dokdo-takeshima), at most 64 characters"
        )
    return value


def _lang(value: str) -> str:
    if not _LANG.fullmatch(value):
        raise ValueError(f"{value!r} is not an ISO 639-1 language code (two lowercase letters: en)")
    return value


def _field(value: str) -> str:
    if value not in QUERY_FIELDS:
        raise ValueError(f"{value!r} is not a query field (one of: {', '.join(QUERY_FIELDS)})")
    return value


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


RuleId = Annotated[str, AfterValidator(_slug)]
LangCode = Annotated[str, AfterValidator(_lang)]
FieldName = Annotated[str, AfterValidator(_field)]
NonEmpty = Annotated[str, AfterValidator(_text)]


class DeliverSpec(BaseModel):
    """Where and how a rule's matches go; destinations=None means every configured destination."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    destinations: list[NonEmpty] | None = None
    digest: Literal["daily", "hourly", "weekly", "off"] = "daily"
    immediate: bool = False

    @field_validator("destinations")
    @classmethod
    def _some(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("[] delivers nowhere; omit it to deliver to every destination")
        return value


class Rule(BaseModel):
    """One watched topic. Strict: a quoted "true" is not a boolean, a bare string is not a list."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: RuleId
    name: str = ""  # empty: the id is shown
    query: NonEmpty
    exclude: NonEmpty | None = None
    languages: list[LangCode] | None = None
    fields: list[FieldName] | None = None
    deliver: DeliverSpec = DeliverSpec()
    priority: Literal["high", "normal", "low"] = "normal"
    enabled: bool = True
    tags: list[NonEmpty] = []
    on_update: Literal["ignore", "alert"] = "ignore"

    _origin: str = PrivateAttr("")

    @property
    def title(self) -> str:
        return self.name or self.id

    @property
    def origin(self) -> str:
        """`file:line` of the rule's definition ('' for rules built in code)."""
        return self._origin

    def compiled(self) -> CompiledRule:
        """The query engine's form of this rule; raises QuerySyntaxError on a bad query."""
        return CompiledRule(
            rule_id=self.id,
            query=_parse(self.query)[0],
            exclude=_parse(self.exclude)[0] if self.exclude else None,
            languages=tuple(self.languages) if self.languages else None,
            fields=tuple(self.fields) if self.fields else None,
        )


# -- problems (errors and warnings) with positions ------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One error or warning in a rule file; `line`/`col` are 1-based, `col` counts characters."""

    file: str
    line: int
    col: int
    message: str
    source_line: str = ""
    length: int = 1
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def render(self) -> str:
        """Three lines: the located message, the source line, a caret under the culprit."""
        if not self.source_line:
            return str(self)
        return f"{self}\n    {self.source_line}\n    {self.caret()}"

    def caret(self) -> str:
        prefix = self.source_line[: max(self.col - 1, 0)]
        pad = "".join(_blank(ch) for ch in prefix)
        rest = len(self.source_line) - len(prefix)
        return pad + "^" + "~" * max(min(self.length, rest) - 1, 0)


def _blank(ch: str) -> str:
    """Whitespace as wide as `ch` in a terminal, so carets line up under Korean and Japanese."""
    if ch == "\t":
        return "\t"
    return "  " if unicodedata.east_asian_width(ch) in ("W", "F") else " "


class RuleFileError(RuleError):
    """RuleError with structured problems (errors and warnings) so the CLI can colour them.

    `errors` (rendered, three lines each) lists only the errors; `problems` holds both.
    """

    def __init__(self, message: str, problems: list[RuleProblem], *, hint: str | None = None):
        errors = [p.render() for p in problems if p.severity == "error"]
        super().__init__(message, errors=errors, hint=hint)
        self.problems = problems


class _Source:
    """One rule file's text, turning YAML node marks and query offsets into RuleProblems."""

    def __init__(self, path: Path, text: str) -> None:
        self.name = str(path)
        self.text = text
        self.lines = text.splitlines()

    def at(
        self, index: int, message: str, length: int = 1, severity: Severity = "error"
    ) -> RuleProblem:
        index = max(0, min(index, len(self.text)))
        line = self.text.count("\n", 0, index)
        col = index - (self.text.rfind("\n", 0, index) + 1)
        return self.at_line(line, col, message, length, severity)

    def at_line(
        self, line: int, col: int, message: str, length: int = 1, severity: Severity = "error"
    ) -> RuleProblem:
        if line >= len(self.lines) and self.lines:  # "unexpected end of file": show the last line
            line, col = len(self.lines) - 1, len(self.lines[-1])
        source = self.lines[line] if 0 <= line < len(self.lines) else ""
        return RuleProblem(self.name, line + 1, col + 1, message, source, length, severity)

    def node(self, node: Node, message: str, severity: Severity = "error") -> RuleProblem:
        mark = node.start_mark
        length = len(node.value) if isinstance(node, ScalarNode) and node.style is None else 1
        return self.at_line(mark.line, mark.column, message, max(length, 1), severity)

    def in_scalar(
        self,
        node: ScalarNode,
        offset: int,
        message: str,
        length: int = 1,
        severity: Severity = "error",
    ) -> RuleProblem:
        return self.at(_scalar_index(self.text, node, offset), message, length, severity)


def _scalar_index(text: str, node: ScalarNode, offset: int) -> int:
    """Index into the file text of character `offset` of a scalar's value.

    Walks the value and the source side by side: equal characters advance both; source whitespace
    that the value lacks (indentation, folded line breaks) is skipped; a value space or newline the
    source lacks (a fold) is skipped; other source characters are escapes (`\\"`, `''`) and skipped.
    Exact for plain, literal (`|`) and folded (`>`) scalars; close enough for quoted ones.
    """
    pos = node.start_mark.index
    if node.style in ("|", ">"):
        newline = text.find("\n", pos)
        pos = len(text) if newline < 0 else newline + 1
    elif node.style in ('"', "'"):
        pos += 1
    value, i = node.value, 0
    offset = max(0, min(offset, len(value)))
    while i < offset and pos < len(text):
        v, s = value[i], text[pos]
        if v == s:
            i, pos = i + 1, pos + 1
        elif s in " \t\r\n":
            pos += 1
        elif v in " \n":
            i += 1
        else:
            pos += 1
    if offset < len(value) and not value[offset].isspace():
        while pos < len(text) and text[pos] in " \t\r\n":  # the next line's indentation
            pos += 1
    return pos


# -- reading YAML into rule candidates ----------------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    """A rule mapping as read from YAML, still to be validated."""

    source: _Source
    node: Node  # a mapping, unless the file holds something else where a rule should be
    data: Any


def _read_file(path: Path, problems: list[RuleProblem]) -> tuple[bytes, list[_Candidate]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:  # removed since listed (an editor's save-by-rename): not a rule file
        return b"", []
    except OSError as exc:
        problems.append(RuleProblem(str(path), 1, 1, f"cannot read: {exc.strerror}"))
        return b"", []
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.append(RuleProblem(str(path), 1, 1, f"not UTF-8 text (byte {exc.start})"))
        return raw, []
    source = _Source(path, text)
    try:
        documents = list(YAML(typ="safe", pure=True).compose_all(text))
    except MarkedYAMLError as exc:
        problems.append(_yaml_problem(source, exc))
        return raw, []
    except ReaderError as exc:  # a control character: YAML allows none, even in quotes
        message = f"YAML does not allow the character #x{exc.character:04x}"
        problems.append(source.at(exc.position, message))
        return raw, []
    except RecursionError:
        problems.append(source.at_line(0, 0, "YAML nested too deeply to be a rule file"))
        return raw, []
    candidates: list[_Candidate] = []
    for document in documents:
        for node in _rule_nodes(source, document, problems):
            try:
                if _expanded_size(node, {}) > MAX_YAML_VALUES:
                    problems.append(source.node(node, _TOO_MANY_VALUES))
                    continue
                data = _to_python(source, node, problems)
            except RecursionError:
                problems.append(source.node(node, _SELF_REFERENCE))
                continue
            candidates.append(_Candidate(source, node, data))
    if not documents or all(document is None for document in documents):
        problems.append(source.at_line(0, 0, "empty rule file: it defines no rule", 1, "warning"))
    return raw, candidates


# A rule file holds hundreds of values; aliases (*name) that multiply each other ("billion laughs")
# would expand to billions, so the expanded size is computed, without expanding, before converting.
MAX_YAML_VALUES = 100_000
_TOO_MANY_VALUES = f"this rule expands to more than {MAX_YAML_VALUES:,} values through YAML aliases"
_SELF_REFERENCE = "this rule nests too deeply, or a YAML alias (*name) refers to what contains it"


def _expanded_size(node: Node, memo: dict[int, int]) -> int:
    """Values `node` becomes once aliases are expanded; a cyclic alias raises RecursionError."""
    known = memo.get(id(node))
    if known is not None:
        return known
    children: list[Node] = []
    if isinstance(node, SequenceNode):
        children = node.value
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    size = memo[id(node)] = 1 + sum(_expanded_size(child, memo) for child in children)
    return size


def _yaml_problem(source: _Source, exc: MarkedYAMLError) -> RuleProblem:
    mark = exc.problem_mark or exc.context_mark
    message = f"YAML syntax error: {exc.problem or exc.context}"
    if exc.context and exc.problem:
        message += f" ({exc.context})"
    if mark is None:
        return RuleProblem(source.name, 1, 1, message)
    return source.at_line(mark.line, mark.column, message)


def _rule_nodes(source: _Source, document: Node | None, problems: list[RuleProblem]) -> list[Node]:
    if document is None:
        return []
    if isinstance(document, SequenceNode):
        return list(document.value)
    if isinstance(document, MappingNode):
        keys = [key.value for key, _ in document.value]
        if "rules" in keys:
            if keys != ["rules"]:
                problems.append(
                    source.node(document, "a file with a `rules:` list may have no other top keys")
                )
                return []
            items = document.value[0][1]
            if isinstance(items, SequenceNode):
                return list(items.value)
            problems.append(source.node(items, "`rules:` must be a list of rules"))
            return []
        return [document]
    problems.append(
        source.node(document, "a rule file holds a rule (a mapping) or a list of rules")
    )
    return []


def _to_python(source: _Source, node: Node, problems: list[RuleProblem]) -> Any:
    """Plain data from a node, reporting duplicate mapping keys (YAML loaders keep the last one).

    `<<: *defaults` merge keys are honoured, so rules can share a `deliver:` block.
    """
    if isinstance(node, SequenceNode):
        return [_to_python(source, item, problems) for item in node.value]
    if not isinstance(node, MappingNode):
        return _scalar(node)
    data: dict[Any, Any] = {}
    merged: dict[Any, Any] = {}
    first: dict[Any, Node] = {}
    for key_node, value_node in node.value:
        if str(key_node.tag).endswith(":merge"):
            _merge(source, value_node, merged, problems)
            continue
        key = _to_python(source, key_node, problems)
        if not isinstance(key, str | int | float | bool | None):
            problems.append(source.node(key_node, "a key must be a plain word"))
        elif key in first:
            line = first[key].start_mark.line + 1
            problems.append(source.node(key_node, f"duplicate key {key!r} (first on line {line})"))
        else:
            first[key] = key_node
            data[key] = _to_python(source, value_node, problems)
    return {**merged, **data}


def _merge(source: _Source, node: Node, into: dict[Any, Any], problems: list[RuleProblem]) -> None:
    for item in node.value if isinstance(node, SequenceNode) else [node]:
        if not isinstance(item, MappingNode):
            problems.append(source.node(item, "`<<:` merges a mapping, e.g. <<: *defaults"))
            continue
        for key, value in _to_python(source, item, problems).items():
            into.setdefault(key, value)


def _scalar(node: ScalarNode) -> Any:
    """The YAML 1.2 core value of a scalar; dates and other tags stay the text as written."""
    kind, value = str(node.tag).rsplit(":", 1)[-1], node.value
    try:
        if kind == "null":
            return None
        if kind == "bool":
            return value.lower() == "true"
        if kind == "int":
            return int(value.replace("_", ""), 10 if value.lstrip("+-").isdigit() else 0)
        if kind == "float":
            return float(value.replace(".inf", "inf").replace(".nan", "nan").replace(".Inf", "inf"))
    except ValueError:
        pass
    return value


# -- validation -----------------------------------------------------------------------------------


def _locate(node: Node, loc: Iterable[Any], *, key: bool = False) -> Node:
    """The node at a pydantic error location (the key node for unknown keys)."""
    found = node
    parts = list(loc)
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if isinstance(found, MappingNode):
            pair = next((p for p in found.value if p[0].value == part), None)
            if pair is None:
                break
            found = pair[0] if (last and key) else pair[1]
        elif isinstance(found, SequenceNode) and isinstance(part, int) and part < len(found.value):
            found = found.value[part]
        else:
            break
    return found


def _validate(candidate: _Candidate, problems: list[RuleProblem]) -> Rule | None:
    if not isinstance(candidate.data, dict):
        problems.append(
            candidate.source.node(candidate.node, "a rule must be a mapping (id: …, query: …)")
        )
        return None
    try:
        rule = Rule.model_validate(candidate.data)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(_pydantic_problem(candidate, error))
        return None
    mark = candidate.node.start_mark
    rule._origin = f"{candidate.source.name}:{mark.line + 1}"
    return rule


def _pydantic_problem(candidate: _Candidate, error: Any) -> RuleProblem:
    loc = tuple(part for part in error["loc"] if not str(part).startswith("function-"))
    where = _dotted(loc)
    kind = error["type"]
    if kind == "extra_forbidden":
        node = _locate(candidate.node, loc, key=True)
        allowed = (
            list(DeliverSpec.model_fields) if loc[:1] == ("deliver",) else list(Rule.model_fields)
        )
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        tip = f"did you mean {guess[0]!r}?" if guess else f"allowed: {', '.join(allowed)}"
        return candidate.source.node(node, f"unknown key {where!r} ({tip})")
    if kind == "missing":
        node = _locate(candidate.node, loc[:-1])
        return candidate.source.node(node, f"missing required key {where!r}")
    node = _locate(candidate.node, loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in ("bool_type", "string_type", "list_type", "literal_error", "dict_type"):
        message += f", got {error['input']!r}"
    return candidate.source.node(node, f"{where}: {message}" if where else message)


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _check_ids(candidates: list[_Candidate], problems: list[RuleProblem]) -> None:
    """Duplicate ids across all files, including rules that have other errors."""
    seen: dict[str, _Candidate] = {}
    for candidate in candidates:
        rule_id = candidate.data.get("id") if isinstance(candidate.data, dict) else None
        if not isinstance(rule_id, str):
            continue
        first = seen.setdefault(rule_id, candidate)
        if first is candidate:
            continue
        mark = _locate(first.node, ("id",)).start_mark
        where = f"{first.source.name}:{mark.line + 1}:{mark.column + 1}"
        node = _locate(candidate.node, ("id",))
        problems.append(
            candidate.source.node(node, f"duplicate rule id {rule_id!r} (also at {where})")
        )


def _check_queries(candidate: _Candidate, problems: list[RuleProblem]) -> None:
    """Parse `query` and `exclude`, placing syntax errors and warnings inside the YAML scalar."""
    if not isinstance(candidate.data, dict):
        return
    for key in ("query", "exclude"):
        text = candidate.data.get(key)
        if not isinstance(text, str) or not text.strip():
            continue  # the schema reports it
        node = _locate(candidate.node, (key,))
        scalar = node if isinstance(node, ScalarNode) else None
        try:
            _, warnings = _parse(text)
        except QuerySyntaxError as exc:
            problems.append(_in_query(candidate, scalar, key, exc.offset, exc.message, exc.length))
            continue
        for warning in warnings:
            problems.append(
                _in_query(candidate, scalar, key, warning.offset, warning.message, 1, "warning")
            )


def _in_query(
    candidate: _Candidate,
    scalar: ScalarNode | None,
    key: str,
    offset: int,
    message: str,
    length: int = 1,
    severity: Severity = "error",
) -> RuleProblem:
    text = f"{key}: {message}"
    if scalar is None:
        return candidate.source.node(candidate.node, text, severity)
    return candidate.source.in_scalar(scalar, offset, text, max(length, 1), severity)


# -- the rule set -------------------------------------------------------------------------------


@dataclass
class RuleSet:
    """The active rules; `match` is a pure function of (RuleSet, Article).

    Built by `load_ruleset`, or directly from Rule objects (tests, tools): the engine is compiled
    from the enabled rules either way.
    """

    rules: tuple[Rule, ...] = ()
    warnings: list[str] = field(default_factory=list)
    version: str = ""
    problems: list[RuleProblem] = field(default_factory=list)  # the warnings, with positions
    engine: Engine = field(init=False, repr=False)

    def __post_init__(self) -> None:
        compiled = []
        for rule in self.rules:
            if not rule.enabled:
                continue
            try:
                compiled.append(rule.compiled())
            except QuerySyntaxError as exc:
                raise RuleError(f"rule {rule.id!r}: invalid query: {exc.message}") from None
        self.engine = Engine(compiled)

    def get(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)

    def match(self, article: Article, *, details: bool = True) -> list[RuleMatch]:
        return self.engine.match(article, details=details)

    def unknown_destinations(self, configured: Iterable[str]) -> dict[str, list[str]]:
        """Rule id → destination names it asks for that are not configured (the caller warns)."""
        known = set(configured)
        return {
            rule.id: missing
            for rule in self.rules
            if (missing := [d for d in rule.deliver.destinations or () if d not in known])
        }


def rule_files(rules_dir: Path) -> list[Path]:
    """The rule files in `rules_dir`, sorted; editor backups and hidden files are skipped."""
    return sorted(
        path
        for path in rules_dir.iterdir()
        if path.suffix in RULE_SUFFIXES and not path.name.startswith((".", "~")) and path.is_file()
    )


def load_ruleset(rules_dir: Path) -> RuleSet:
    """Read, validate and compile every rule file; raise RuleFileError listing every problem."""
    if not rules_dir.is_dir():
        raise RuleError(
            f"{rules_dir}: rules directory not found", hint="create it or set rules_dir"
        )
    problems: list[RuleProblem] = []
    digest = hashlib.sha256()
    candidates: list[_Candidate] = []
    for path in rule_files(rules_dir):
        raw, found = _read_file(path, problems)
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        candidates.extend(found)
    validated = [(rule, c) for c in candidates if (rule := _validate(c, problems)) is not None]
    _check_ids(candidates, problems)
    for candidate in candidates:
        _check_queries(candidate, problems)
    for rule, candidate in validated:
        if not rule.enabled:
            node = _locate(candidate.node, ("enabled",), key=True)
            problems.append(candidate.source.node(node, f"rule {rule.id!r} is disabled", "warning"))
    problems.sort(key=lambda p: (p.file, p.line, p.col))
    if any(p.severity == "error" for p in problems):
        raise _summary(rules_dir, problems)
    ruleset = RuleSet(rules=tuple(rule for rule, _ in validated), version=digest.hexdigest()[:16])
    problems.extend(_unanchored(ruleset, validated))
    if not validated:
        problems.append(RuleProblem(str(rules_dir), 1, 1, "no rules defined", severity="warning"))
    ruleset.problems = [p for p in problems if p.severity == "warning"]
    ruleset.warnings = [str(p) for p in ruleset.problems]
    return ruleset


def _unanchored(ruleset: RuleSet, validated: list[tuple[Rule, _Candidate]]) -> list[RuleProblem]:
    by_id = {rule.id: candidate for rule, candidate in validated}
    return [
        by_id[rule_id].source.node(
            _locate(by_id[rule_id].node, ("query",)),
            f"rule {rule_id!r} has no anchor term (only NOT/field/wildcard terms), so it is "
            "evaluated against every article; add a plain word or phrase",
            "warning",
        )
        for rule_id in ruleset.engine.unanchored
        if rule_id in by_id
    ]


def _summary(rules_dir: Path, problems: list[RuleProblem]) -> RuleFileError:
    errors = [p for p in problems if p.severity == "error"]
    files = len({p.file for p in errors})
    count = f"{len(errors)} error{'s' if len(errors) > 1 else ''}"
    where = f"{files} rule file{'s' if files > 1 else ''}"
    return RuleFileError(
        f"{count} in {where} under {rules_dir}; first: {errors[0]}",
        problems,
        hint="run `watcher rules check` to see them all",
    )
