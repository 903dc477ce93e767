"""Settings: defaults, file + environment precedence, errors naming key and file, secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from watcher.config import Settings, load_settings, redacted
from watcher.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WATCHER_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        key = field.alias if field.alias and field.alias != name else name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _keys(annotation, f"{prefix}{key}.")
        else:
            keys.append(prefix + key)
    return keys


def test_defaults_need_no_file() -> None:
    settings = load_settings()
    assert settings.data_dir == Path("storage")
    assert settings.rules_dir == Path("rules")
    assert settings.db_url == "sqlite:///storage/watcher.db"
    assert list(settings.effective_destinations()) == ["outbox"]


def test_file_then_environment_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "watcher.toml").write_text(
        'data_dir = "/srv/data"\ntimezone = "Asia/Seoul"\n[fetch]\nconcurrency = 7\n'
    )
    monkeypatch.setenv("WATCHER_FETCH__CONCURRENCY", "9")
    settings = load_settings()
    assert settings.timezone == "Asia/Seoul"
    assert settings.fetch.concurrency == 9  # environment wins
    assert settings.db_url == "sqlite:////srv/data/watcher.db"


def test_config_file_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("backfill = true\n")
    monkeypatch.setenv("WATCHER_CONFIG", str(path))
    assert load_settings().backfill is True


def test_invalid_value_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text("[fetch]\nread_timeout = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert "fetch.read_timeout" in message and str(path) in message
    assert caught.value.exit_code == 2


def test_invalid_environment_value_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match=r"WATCHER_TIMEZONE.*unknown IANA time zone"):
        load_settings()


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text("[digest]\natt = '07:00'\n")
    with pytest.raises(ConfigError, match=r"digest\.att .*unknown setting"):
        load_settings(path)


def test_bad_toml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text("[fetch\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[smtp]\npassword = "hunter2"\n', "smtp.password"),
        (
            '[destinations.hook]\ntype = "webhook"\nurl = "http://x"\nsecret = "s3"\n',
            "destinations.hook.secret",
        ),
        ('database_url = "postgresql://u:pw@db/x"\n', "database_url"),
    ],
)
def test_secrets_in_the_file_are_refused(tmp_path: Path, toml: str, key: str) -> None:
    path = tmp_path / "watcher.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert key in str(caught.value)
    assert "hunter2" not in str(caught.value) and "s3" not in str(caught.value).split("secret")[-1]


def test_secrets_from_environment_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_SMTP__HOST", "mail.example.org")
    monkeypatch.setenv("WATCHER_SMTP__PASSWORD", "hunter2-secret")
    monkeypatch.setenv("WATCHER_DATABASE_URL", "postgresql://bob:pg-secret@db.example/x")
    settings = load_settings()
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "hunter2-secret"
    shown = str(redacted(settings))
    assert "hunter2-secret" not in shown and "pg-secret" not in shown
    assert "postgresql://bob:***@db.example/x" in shown
    assert "hunter2-secret" not in repr(settings)


def test_smtp_host_makes_email_the_default_destination(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_SMTP__HOST", "mail.example.org")
    assert list(load_settings().effective_destinations()) == ["email"]


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", text, flags=re.MULTILINE))
    missing = [key for key in _keys(Settings) if key not in documented]
    assert not missing, f"settings missing from the README's Configuration table: {missing}"
