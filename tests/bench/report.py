"""The results: a Rich table on the terminal, results.json, and the README's Performance section."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tests.bench.scenarios import Row

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results.json"
README = REPO / "README.md"
MARKER = "<!-- sections below are added per module -->"
PACKAGES = (
    "feedparser", "trafilatura", "httpx", "httpcore", "SQLAlchemy", "sqlmodel", "lxml",
    "datasketch", "pyahocorasick", "ahocorasick-rs", "psutil",
)  # fmt: skip


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
        "commit": commit or None,
    }


def table(rows: list[Row], title: str) -> Table:
    out = Table(title=title, show_lines=True)
    for column in ("scenario", "ours", "baseline (same run)", "ratio", "target", "met"):
        out.add_column(column, overflow="fold")
    for row in rows:
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "—"}[row.met]
        title_text = row.title + (f"\n[dim]{row.note}[/dim]" if row.note else "")
        out.add_row(title_text, row.ours, row.baseline, row.ratio, row.target, met)
    return out


def print_table(rows: list[Row], facts: dict[str, Any], info: dict[str, Any]) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=180)  # piped to a file: do not wrap at 80 columns
    title = f"news-watcher benchmarks — {info['cores']} cores, {info['cpu_model']}"
    console.print(table(rows, title))
    server = facts.get("server")
    if server:
        console.print(
            f"bench server: {server['concurrent_200_requests_per_s']:,} feeds/s "
            f"({server['concurrent_200_mb_per_s']} MB/s gzip) fetched 32 at a time with the "
            f"server busy {server['server_busy_share']:.0%} of that time, "
            f"{server['sequential_304_requests_per_s']:,} conditional GETs/s one at a time; "
            f"feeds {server['feed_kb_mean']} KB each",
            highlight=False,
        )
    console.print(f"load average at the end: {info['load_average']}", highlight=False)


def write_results(
    rows: list[Row], facts: dict[str, Any], info: dict[str, Any], command: str, path: Path = RESULTS
) -> None:
    data = {
        "command": command,
        "machine": info,
        "rows": [
            {
                "scenario": row.scenario,
                "title": row.title,
                "ours": row.ours,
                "baseline": row.baseline,
                "ratio": row.ratio,
                "target": row.target,
                "met": row.met,
                "note": row.note,
                "figures": row.figures,
            }
            for row in rows
        ],
        "facts": facts,
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def markdown(rows: list[Row], info: dict[str, Any], command: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = [
        "| scenario | ours | baseline (same run) | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "—"}[row.met]
        title = row.title + (f" ({row.note})" if row.note else "")
        cells = (title, row.ours, row.baseline, row.ratio, row.target, met)
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    lines += [
        "",
        f"Measured with `{command}` at commit {info['commit']} on {info['cores']} cores "
        f"({info['cpu_model']}), Python {info['python']}; {packages}. Load average at the end "
        f"of the run: {', '.join(map(str, info['load_average']))}.",
    ]
    return "\n".join(lines)


_TABLE_START = "<!-- bench:table -->"
_TABLE_END = "<!-- /bench:table -->"


def update_readme(rows: list[Row], info: dict[str, Any], command: str, path: Path = README) -> bool:
    """Replace the table between the bench markers of `## Performance` (targeted: the rest of
    the shared README is left as it is). False when the section is not there yet."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(_TABLE_START) + r".*?" + re.escape(_TABLE_END), re.DOTALL)
    if not pattern.search(text):
        return False
    block = f"{_TABLE_START}\n{markdown(rows, info, command)}\n{_TABLE_END}"
    path.write_text(pattern.sub(lambda _: block, text, count=1), encoding="utf-8")
    return True
