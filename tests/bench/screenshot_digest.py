"""Render a realistic digest and alert and screenshot them in headless Chromium, for a person to
look at (mail clients are not testable in CI; a real browser engine is the closest check).

    .venv/bin/python tests/bench/screenshot_digest.py [--out DIR]

Builds a throw-away workspace (rules, SQLite with articles from several outlets sharing stories,
a failing feed), runs the real `watcher digest preview --out digest.html`, renders the stored alert
of `watcher digest send --now`, and writes PNGs: desktop width, phone width, and with Chromium's
forced dark mode (what auto-darkening mail apps do). Needs `chromium` (apt-get install chromium;
fonts-noto-cjk for Korean/Japanese titles). The PNGs are not committed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.deliverkit import Corpus, open_engine, settings_for  # noqa: E402
from watcher.db.engine import session_scope  # noqa: E402
from watcher.db.models import Feed  # noqa: E402
from watcher.timeutil import utcnow  # noqa: E402

RULES = {
    "gsomia.yaml": "id: gsomia\nname: Korea–Japan GSOMIA\nquery: GSOMIA OR 지소미아\n"
    "priority: high\ndeliver: {digest: daily, immediate: true}\n",
    "dokdo.yaml": "id: dokdo-takeshima\nname: Dokdo/Takeshima\nquery: Dokdo OR Takeshima OR 독도\n",
    "acsa.yaml": "id: acsa\nname: ACSA\nquery: ACSA\npriority: low\n",
}
SHOTS = {
    "desktop": ["--window-size=900,2200"],
    "phone": ["--window-size=390,2600"],
    "forced-dark": ["--window-size=900,2200", "--blink-settings=forceDarkModeEnabled=true"],
}


def seed(engine) -> None:
    corpus = Corpus(engine, now=utcnow())
    corpus.story(
        "South Korea says GSOMIA intelligence pact with Japan will stay in force",
        ["Yonhap", "Kyodo", "NHK World", "The Korea Herald"],
        ["gsomia"],
        term="GSOMIA",
        snippet="Seoul said on Friday that the GSOMIA military intelligence-sharing pact with "
        "Tokyo would remain in force, ending months of uncertainty after the export dispute.",
    )
    corpus.story(
        '지소미아 종료 유예 결정… 정부 "조건부 연장"',
        ["연합뉴스", "KBS"],
        ["gsomia"],
        term="지소미아",
        snippet="정부는 22일 지소미아 종료 통보의 효력을 정지하기로 했다고 밝혔다.",
    )
    corpus.story(
        "竹島の日式典、政府が政務官を派遣 <em>韓国は抗議</em>",
        ["朝日新聞", "毎日新聞"],
        ["dokdo-takeshima"],
        term="竹島",
        snippet="島根県は22日、「竹島の日」記念式典を開いた。",
    )
    corpus.story(
        "Dokdo defence drills begin amid protest from Tokyo",
        ["Reuters"],
        ["dokdo-takeshima"],
        term="Dokdo",
        snippet="South Korea began its biannual Dokdo defence drills on Thursday.",
        url="javascript:alert('not a link')",
    )
    (first,) = corpus.story(
        "ACSA talks resume in Tokyo",
        ["Japan Times"],
        ["acsa"],
        term="ACSA",
        snippet="Officials met to discuss an ACSA logistics agreement.",
    )
    corpus.revise(first, "title: 'resume' → 'resume after two-year pause'")
    with session_scope(engine) as session:
        session.add(
            Feed(
                opml_url="https://broken.example/rss",
                url="https://broken.example/rss",
                title="Example Daily",
                health_notice="failing for 2 days: HTTP 503",
                health_since=utcnow() - timedelta(days=2),
            )
        )


def watcher(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-c",
        "from watcher.cli import main; main()",
        "--config",
        str(config),
        *args,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO)


def screenshot(browser: str, page: Path, png: Path, flags: list[str]) -> None:
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
            *flags,
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "nw-digest")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("chromium not found: apt-get install chromium", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "rules").mkdir()
        for name, text in RULES.items():
            (root / "rules" / name).write_text(text, encoding="utf-8")
        config = root / "watcher.toml"
        config.write_text(
            f'data_dir = "{root / "data"}"\nrules_dir = "{root / "rules"}"\n'
            'timezone = "Asia/Seoul"\n',
            encoding="utf-8",
        )
        engine = open_engine(settings_for(root))
        seed(engine)
        pages = {"digest": args.out / "digest.html"}
        watcher(config, "digest", "preview", "--out", str(pages["digest"]))
        watcher(config, "digest", "send", "--now")
        alerts = sorted((root / "data" / "outbox").glob("*-alert-*.html"))
        if alerts:
            pages["alert"] = args.out / "alert.html"
            shutil.copy(alerts[0], pages["alert"])
        engine.dispose()
    for kind, page in pages.items():
        for shot, flags in SHOTS.items():
            png = args.out / f"{kind}-{shot}.png"
            screenshot(browser, page, png, flags)
            print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
