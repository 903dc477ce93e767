"""The digest as the analyst reads it: grouped by rule and story, escaped, linked safely, in the
user's time zone, mail-client-safe HTML — and `watcher digest preview` records nothing."""

from __future__ import annotations

import shutil
import subprocess
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.deliverkit import NOW, Corpus, deliveries, open_engine, rule, ruleset, settings_for
from watcher.db.engine import session_scope
from watcher.db.models import Feed
from watcher.deliver.service import preview
from watcher.digest import highlight_html, highlight_text, safe_link
from watcher.timeutil import utcnow

RULES = ruleset(
    rule("gsomia", "GSOMIA", priority="normal"),
    rule("dokdo", "Dokdo/Takeshima", priority="high"),
    rule("acsa", "ACSA", priority="low"),
    rule("burden", "Burden sharing", priority="normal"),
)


@pytest.fixture
def corpus(tmp_path: Path):
    settings = settings_for(tmp_path, timezone="Asia/Seoul")
    engine = open_engine(settings)
    yield settings, engine, Corpus(engine)
    engine.dispose()


def render(settings, engine, rules=RULES, **kw: Any) -> dict[str, Any]:
    return preview(engine, settings, rules, "outbox", since=NOW - timedelta(days=1), now=NOW, **kw)


def seed(corpus: Corpus) -> None:
    corpus.story(
        "GSOMIA <script>alert('x')</script> stays in force",
        ["Yonhap", "Kyodo", "NHK", "Kyodo"],
        ["gsomia"],
        term="GSOMIA",
        snippet="Seoul said the GSOMIA pact with Tokyo stays, <img src=x onerror=alert(1)> & more.",
    )
    corpus.story("독도 순찰 Dokdo patrol", ["KBS"], ["dokdo"], term="Dokdo")
    corpus.story(
        "竹島の日 Takeshima Day",
        ["Asahi"],
        ["dokdo"],
        term="Takeshima",
        url="javascript:alert(document.cookie)",
    )
    corpus.story("ACSA talks", ["Reuters"], ["acsa"], term="ACSA")
    corpus.story("Burden sharing deal", ["AP"], ["burden"], term="Burden")


class Elements(HTMLParser):
    """Every start tag with its attributes (to check styles, links and scripts)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    parser = Elements()
    parser.feed(html)
    return parser.tags


def test_grouped_by_rule_priority_then_name_and_by_story(corpus):
    settings, engine, data = corpus
    seed(data)
    text = render(settings, engine)["text"]
    order = [text.index(f"== {name}") for name in ("Dokdo/Takeshima", "Burden", "GSOMIA", "ACSA")]
    assert order == sorted(order)  # high, then normal by name, then low
    assert text.count("GSOMIA <script>") == 1  # one story, four articles
    assert "Yonhap · 21 Nov 07:10 KST · also in: Kyodo, NHK" in text  # first outlet leads
    assert "4 articles in 1 story" in text


def test_subject_and_summary_count_articles_per_rule(corpus):
    settings, engine, data = corpus
    seed(data)
    message = render(settings, engine)
    assert message["subject"].startswith(
        "news-watcher: 8 new — Dokdo/Takeshima 2 · Burden sharing 1 · GSOMIA 4 · ACSA 1 ("
    )
    summary = message["text"].splitlines()[1]
    assert summary == "8 new — Dokdo/Takeshima 2 · Burden sharing 1 · GSOMIA 4 · ACSA 1"


def test_feed_text_is_escaped_and_only_http_links_are_links(corpus):
    settings, engine, data = corpus
    seed(data)
    html = render(settings, engine)["html"]
    tags = elements(html)
    assert not [t for t, _ in tags if t in ("script", "img", "iframe", "style", "link")]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; more." in html
    hrefs = [a["href"] for t, a in tags if t == "a"]
    assert hrefs and all(h.startswith(("https://", "http://", "#rule-")) for h in hrefs)
    assert "javascript:alert(document.cookie)" in html  # shown as text, not linked
    assert not [a for t, a in tags if "javascript" in a.get("href", "")]


def test_highlights_are_marked_in_html_and_starred_in_text(corpus):
    settings, engine, data = corpus
    seed(data)
    message = render(settings, engine)
    assert ">GSOMIA</strong></mark> pact" in message["html"]
    assert "the *GSOMIA* pact" in message["text"]
    assert '<mark style="background-color:#ffe58f;color:#1f2933;' in message["html"]


def test_highlighting_escapes_around_marks_and_tolerates_bad_spans():
    text = "a <b>GSOMIA</b> & GSOMIA"
    first, second = text.index("GSOMIA"), text.rindex("GSOMIA")
    spans = [[first, first + 6], [second, second + 6], [second + 1, second + 3], [30, 40], [5, 3]]
    html = highlight_html(text, spans)
    assert html.count("<mark") == 2 and "&lt;b&gt;" in html and "&amp;" in html
    assert ">GSOMIA</strong></mark>&lt;/b&gt;" in html
    assert highlight_text("x\nGSOMIA\ty", [[2, 8]]) == "x *GSOMIA* y"


def test_safe_link_accepts_only_absolute_http_urls():
    assert safe_link("https://example.org/a?b=c") == "https://example.org/a?b=c"
    for bad in (
        "javascript:alert(1)",
        " JAVASCRIPT:x",
        "data:text/html,x",
        "/relative",
        "https://",
        "http://exa\nmple.org",
        "mailto:a@b.c",
    ):
        assert safe_link(bad) is None, bad


def test_html_is_mail_client_safe_and_dark_mode_safe(corpus):
    settings, engine, data = corpus
    seed(data)
    html = render(settings, engine)["html"]
    tags = elements(html)
    metas = {a.get("name"): a.get("content") for t, a in tags if t == "meta"}
    assert metas["color-scheme"] == "light" and metas["supported-color-schemes"] == "light"
    styled = ("body", "td", "div", "a", "span", "mark", "strong", "code")
    for tag, attrs in tags:
        if tag in styled:
            style = attrs.get("style", "")
            assert "color:" in style and "background-color:" in style, (tag, style)
    assert "<style" not in html and "class=" not in html  # inline CSS only
    assert any(t == "table" and a.get("role") == "presentation" for t, a in tags)


def test_times_are_in_the_configured_zone(corpus, tmp_path: Path):
    settings, engine, data = corpus
    data.story("GSOMIA", ["Yonhap"], ["gsomia"])
    assert "21 Nov 07:10 KST" in render(settings, engine)["text"]
    utc = settings.model_copy(update={"timezone": "UTC"})
    assert "20 Nov 22:10 UTC" in render(utc, engine)["text"]


def test_updates_show_what_changed(corpus):
    settings, engine, data = corpus
    (first,) = data.story("GSOMIA stays", ["Yonhap"], ["gsomia"])
    data.revise(first, "title changed: 'stays' → 'stays in force'", matched_at=NOW)
    message = render(settings, engine)
    assert "updated: title changed: 'stays' → 'stays in force'" in message["text"]
    assert "1 article in 1 story" in message["text"]  # two versions of one article
    assert "updated: title changed: &#39;stays&#39; → &#39;stays in force&#39;" in message["html"]


def test_long_rules_are_cut_at_max_items_and_counted(corpus):
    settings, engine, data = corpus
    for n in range(5):
        data.story(f"GSOMIA item {n}", ["Yonhap"], ["gsomia"])
    small = settings.model_copy(
        update={"digest": settings.digest.model_copy(update={"max_items_per_rule": 2})}
    )
    message = render(small, engine)
    assert message["text"].count("\n* ") == 2
    assert "… and 3 more stories not listed" in message["text"]
    assert "5 articles in 5 stories" in message["text"]


def test_sources_needing_attention_are_listed(corpus):
    settings, engine, data = corpus
    data.story("GSOMIA", ["Yonhap"], ["gsomia"])
    with session_scope(engine) as session:
        session.add(
            Feed(
                opml_url="https://broken.example/rss",
                url="https://broken.example/rss",
                title="Broken <Daily>",
                health_notice="failing for 2 days: HTTP 500",
                health_since=NOW - timedelta(days=2),
            )
        )
    message = render(settings, engine)
    assert "== Sources needing attention ==" in message["text"]
    assert "* Broken <Daily>: failing for 2 days: HTTP 500" in message["text"]
    assert "Broken &lt;Daily&gt;" in message["html"]


# -- the CLI -------------------------------------------------------------------------------------


def write_config(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "gsomia.yaml").write_text(
        "id: gsomia\nname: GSOMIA\nquery: GSOMIA\npriority: high\n"
        "deliver: {digest: daily, immediate: false}\n",
        encoding="utf-8",
    )
    (rules / "feeds.opml").write_text(
        '<?xml version="1.0"?><opml version="2.0"><head/><body/></opml>', encoding="utf-8"
    )
    config = tmp_path / "watcher.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\nrules_dir = "{rules}"\ntimezone = "Asia/Seoul"\n',
        encoding="utf-8",
    )
    return config


def test_preview_renders_without_recording_and_send_now_delivers(tmp_path: Path):
    from watcher.cli import app

    config = write_config(tmp_path)
    settings = settings_for(tmp_path, timezone="Asia/Seoul")
    engine = open_engine(settings)
    Corpus(engine, now=utcnow()).story("GSOMIA <i>stays</i>", ["Yonhap", "Kyodo"], ["gsomia"])
    runner = CliRunner()
    out = tmp_path / "preview.html"
    result = runner.invoke(app, ["--config", str(config), "digest", "preview", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "&lt;i&gt;stays&lt;/i&gt;" in out.read_text(encoding="utf-8")
    text = runner.invoke(app, ["--config", str(config), "digest", "preview", "--since", "2h"])
    assert "also in: Kyodo" in text.stdout and "(times in Asia/Seoul)" in text.stdout
    assert deliveries(engine) == [] and not settings.outbox_dir.exists()

    sent = runner.invoke(app, ["--config", str(config), "digest", "send", "--now"])
    assert sent.exit_code == 0, sent.output
    (delivery,) = deliveries(engine)
    assert delivery.status == "sent" and delivery.period_key.startswith("now:")
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    again = runner.invoke(app, ["--config", str(config), "digest", "send", "--now"])
    assert "nothing to send" in again.stdout

    listed = runner.invoke(app, ["--config", str(config), "deliveries", "--json"])
    assert '"status": "sent"' in listed.stdout and '"matches": 2' in listed.stdout
    retry = runner.invoke(app, ["--config", str(config), "deliveries", "retry", str(delivery.id)])
    assert retry.exit_code == 1 and "is sent; it was accepted" in str(retry.exception)


# -- how it looks ------------------------------------------------------------------------------


def test_the_rendered_digest_screenshots_in_headless_chromium(tmp_path: Path, corpus):
    """A smoke test that the HTML renders in a real browser engine; the bench script
    (tests/bench/screenshot_digest.py) makes the picture a person looks at."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium not installed (apt-get install chromium)")
    settings, engine, data = corpus
    seed(data)
    page = tmp_path / "digest.html"
    page.write_text(render(settings, engine)["html"], encoding="utf-8")
    shot = tmp_path / "digest.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=800,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
