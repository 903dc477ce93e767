"""The benchmark harness works (tiny sizes, no timing assertion: figures are the harness's output).

The bench feed server serves what it promises (RSS and Atom, conditional GET, gzip, publishing,
article pages); our passes run in a fresh process and count what they should; the entry point
writes results.json and the README table; the memory scenario's daemon starts, polls and stops.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.bench.feedserver import FeedServer
from tests.bench.report import markdown, update_readme
from tests.bench.scenarios import TINY, Row
from tests.bench.workspace import REPO, BenchWorkspace, bench_env, generated_rule_file, run_json
from watcher.parse import parse_feed
from watcher.rules import load_ruleset


@pytest.fixture(scope="module")
def server():
    with FeedServer(6, hosts=3) as running:
        yield running


def test_feed_server_serves_rss_and_atom_with_topics_and_conditional_get(server):
    rss_url, atom_url = server.feed_urls(2)
    assert rss_url.split("/")[2].split(":")[0] != atom_url.split("/")[2].split(":")[0]
    with httpx.Client(trust_env=False) as client:
        rss = client.get(rss_url)
        atom = client.get(atom_url, headers={"Accept-Encoding": "identity"})
        assert rss.headers["content-encoding"] == "gzip" and "content-encoding" not in atom.headers
        feeds = [parse_feed(r.content, url=str(r.url)) for r in (rss, atom)]
        assert [f.format for f in feeds] == ["rss20", "atom10"]
        assert all(len(f.entries) == 20 for f in feeds)
        assert all(max(len(e.summary), len(e.content)) > 1000 for f in feeds for e in f.entries)
        every_text = " ".join(e.title + e.summary + e.content for f in feeds for e in f.entries)
        assert any(topic in every_text for topic in ("GSOMIA", "Dokdo", "독도", "竹島", "summit"))

        etag, modified = rss.headers["etag"], rss.headers["last-modified"]
        assert client.get(rss_url, headers={"If-None-Match": etag}).status_code == 304
        assert client.get(rss_url, headers={"If-Modified-Since": modified}).status_code == 304

        assert server.publish(count=1, feeds=1) == 1
        fresh = client.get(rss_url, headers={"If-None-Match": etag})
        assert fresh.status_code == 200 and fresh.headers["etag"] != etag
        newest = parse_feed(fresh.content, url=rss_url).entries[0]
        assert newest.guid == "outlet-0-item-20"
        page = client.get(newest.link)
        assert page.status_code == 200 and len(page.content) > 10_000
    stats = server.stats()
    assert stats["feed200"] >= 3 and stats["feed304"] == 2 and stats["page"] == 1


def test_gzip_bodies_are_the_plain_bodies(server):
    url = server.feed_urls(3)[2]
    with httpx.Client(trust_env=False) as client:
        plain = client.get(url, headers={"Accept-Encoding": "identity"}).content
        raw = client.build_request("GET", url, headers={"Accept-Encoding": "gzip"})
        zipped = client.send(raw, stream=True)
        body = b"".join(zipped.iter_raw())
    assert gzip.decompress(body) == plain


def test_our_passes_count_what_was_served(tmp_path: Path):
    with FeedServer(5, hosts=2) as running:
        space = BenchWorkspace.create(tmp_path / "ws", running.feed_urls())
        plan = {
            "port": running.port,
            "settings": space.settings(),
            "steps": [
                {"kind": "poll", "name": "cold", "extract": False},
                {"kind": "poll", "name": "warm"},
                {"kind": "publish", "params": {"count": 1}},
                {"kind": "e2e", "name": "e2e", "extract": True},
            ],
        }
        steps = run_json("tests.bench.passes", plan)["steps"]
    cold, warm, published, e2e = steps
    assert cold["summary"]["new_articles"] == 100 and cold["summary"]["errors"] == 0
    assert warm["summary"]["not_modified"] == 5
    assert published["published"] == 5
    assert e2e["summary"]["new_articles"] == 5 and e2e["summary"]["errors"] == 0
    assert e2e["summary"]["matches"] >= 1, "feed 4's new item (seq 20) is about a topic"
    assert e2e["outbox_files"] >= 1, "a digest reached the outbox folder"
    for step in (cold, warm, e2e):
        assert step["wall_s"] > 0 and step["peak_main_mb"] > 0


def test_generated_rules_load_as_a_rule_set(tmp_path: Path):
    (tmp_path / "bench.yaml").write_text(generated_rule_file(30), encoding="utf-8")
    ruleset = load_ruleset(tmp_path)
    assert len(ruleset.rules) == 30


def test_the_entry_point_writes_results_and_the_readme_table(tmp_path: Path):
    out = tmp_path / "results.json"
    command = [
        sys.executable, "-m", "tests.bench", "--tiny", "--only", "warm", "--only", "matching",
        "--no-rss2email", "--out", str(out), "--no-readme",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=bench_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert {row["scenario"] for row in results["rows"]} == {"warm", "matching"}
    assert results["machine"]["cores"] >= 1 and results["machine"]["python"]
    warm = next(r for r in results["rows"] if "httpx" in r["title"])
    assert warm["figures"]["summary"]["not_modified"] == TINY.feeds
    assert "warm pass" in done.stdout  # the Rich table


def test_readme_table_is_replaced_between_its_markers_only(tmp_path: Path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n## Performance\nintro\n<!-- bench:table -->\nold\n<!-- /bench:table -->\nafter\n"
    )
    row = Row("warm", "warm pass", "0.10 s", "0.50 s", "5.0×", "≤ 0.3 s", True)
    info = {"cores": 2, "cpu_model": "cpu", "python": "3.11", "packages": {}, "commit": "abc",
            "load_average": [1.0, 1.0, 1.0]}  # fmt: skip
    assert update_readme([row], info, "python -m tests.bench", readme)
    text = readme.read_text()
    assert "old" not in text and "| warm pass | 0.10 s |" in text
    assert text.startswith("# x\n## Performance\nintro\n") and text.endswith("after\n")
    assert markdown([row], info, "cmd").count("\n|") == 2


def test_memory_scenario_daemon_starts_polls_and_stops(tmp_path: Path):
    from tests.bench.memory import run_memory

    with FeedServer(3, per_feed=2, hosts=2) as running:
        space = BenchWorkspace.create(tmp_path / "mem", running.feed_urls(), generated_rules=20)
        value = run_memory(space, running.port, 3)
    assert value["exit_code"] == 0
    assert value["pass_feeds"] == 3 and value["pass_new_articles"] == 3
    assert value["pass_peak_main_mb"] > 0 and value["idle_after_main_mb"] > 0
