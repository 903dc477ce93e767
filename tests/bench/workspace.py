"""A bench workspace: rules/ (the seeded rules, optionally thousands of generated ones, and a feed
list of the bench feeds), data/, a watcher.toml, and helpers to run our side in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.feedsite import opml

REPO = Path(__file__).resolve().parents[2]
SEEDED_RULES = REPO / "rules"


@dataclass
class BenchWorkspace:
    root: Path

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'watcher.db'}"

    @classmethod
    def create(cls, root: Path, feed_urls: list[str], generated_rules: int = 0) -> BenchWorkspace:
        shutil.rmtree(root, ignore_errors=True)
        space = cls(root)
        space.rules_dir.mkdir(parents=True)
        space.data_dir.mkdir(parents=True)
        for path in sorted(SEEDED_RULES.glob("*.yaml")):  # the project's own seeded rules
            shutil.copy(path, space.rules_dir / path.name)
        feeds = {f"Bench outlet {i}": url for i, url in enumerate(feed_urls)}
        (space.rules_dir / "feeds.opml").write_text(opml(feeds), encoding="utf-8")
        if generated_rules:
            (space.rules_dir / "zz-generated.yaml").write_text(
                generated_rule_file(generated_rules), encoding="utf-8"
            )
        return space

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Defaults, except that article links on loopback addresses may be fetched."""
        values: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "rules_dir": str(self.rules_dir),
            "fetch": {"allow_private_addresses": True},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = {**values[key], **value}
            else:
                values[key] = value
        return values

    def write_config(self, settings: dict[str, Any]) -> Path:
        import tomli_w

        path = self.root / "watcher.toml"
        path.write_text(tomli_w.dumps(settings), encoding="utf-8")
        return path


def generated_rule_file(count: int, seed: int = 7) -> str:
    """`count` analyst-style rules (tests/bench/_rulegen) as one `rules:` file."""
    from tests.bench._rulegen import BenchWorld, analyst_rules

    queries = analyst_rules(BenchWorld(seed), count, seed=seed + 4)
    lines = ["rules:"]
    for number, query in enumerate(queries):
        lines.append(f"  - id: bench-{number}")
        lines.append(f"    query: {json.dumps(query, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def bench_env() -> dict[str, str]:
    """The environment for child processes: no WATCHER_* leaking in, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_json(module: str, payload: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """`python -m module '<json>'` in a fresh process; its last JSON line, or an error naming it."""
    done = subprocess.run(
        [sys.executable, "-m", module, json.dumps(payload)],
        cwd=REPO,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{module} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1])
