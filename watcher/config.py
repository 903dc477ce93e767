"""Settings: the only module that reads `watcher.toml` and the environment.

Precedence, highest first: values passed by the CLI, `WATCHER_*` environment variables (nested keys
joined with `__`, e.g. `WATCHER_SMTP__HOST`), the TOML file, the defaults below. With no file at all
the daemon runs on embedded defaults (SQLite in `storage/`, rules in `rules/`, digests to a folder).

Secrets (passwords, webhook secrets, a database password) are accepted only from the environment so
they never sit in a file that gets committed or copied; they are `SecretStr` and print as `***`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watcher.errors import ConfigError

ENV_PREFIX = "WATCHER_"
DEFAULT_CONFIG_FILE = Path("watcher.toml")


class Section(BaseModel):
    """A settings section: unknown keys are errors, so a typo never silently does nothing."""

    model_config = ConfigDict(extra="forbid")


class FetchSettings(Section):
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")
    read_timeout: float = Field(20.0, gt=0, description="seconds to wait for the next bytes")
    total_timeout: float = Field(60.0, gt=0, description="seconds for a whole response")
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="larger bodies are refused")
    max_redirects: int = Field(5, ge=0, description="redirect hops before giving up")
    user_agent: str = "news-watcher/0.1 (+https://github.com/news-watcher/news-watcher)"
    concurrency: int = Field(32, ge=1, description="feeds fetched at once")
    per_host_concurrency: int = Field(2, ge=1, description="requests at once to one host")
    per_host_delay: float = Field(0.0, ge=0, description="seconds between requests to one host")
    default_interval: int = Field(900, ge=30, description="seconds between polls of a feed")
    jitter: float = Field(0.1, ge=0, le=0.5, description="± fraction added to each interval")
    max_backoff: int = Field(86400, ge=60, description="cap on the error back-off, seconds")
    allow_private_addresses: bool = Field(
        False, description="fetch article links that resolve to private/loopback addresses"
    )


class ExtractSettings(Section):
    enabled: bool = Field(True, description="fetch article pages and extract their full text")
    workers: int = Field(0, ge=0, description="extraction processes; 0 = number of CPU cores")
    concurrency: int = Field(8, ge=1, description="article pages fetched at once")
    min_text_chars: int = Field(200, ge=0, description="shorter extractions fall back to feed text")


class DatabaseSettings(Section):
    auto_upgrade: bool | None = Field(
        None, description="apply migrations at start; default: yes on SQLite, no on PostgreSQL"
    )
    pool_size: int = Field(5, ge=1, description="connections kept open (PostgreSQL)")
    max_overflow: int = Field(5, ge=0, description="extra connections under load (PostgreSQL)")
    busy_timeout: float = Field(30.0, gt=0, description="seconds SQLite waits for a lock")
    lease_seconds: int = Field(300, ge=10, description="how long a claimed feed/delivery is held")
    heartbeat_seconds: int = Field(30, ge=5, description="worker heartbeat interval")


class DigestSettings(Section):
    at: str = Field("07:30", description="local time (HH:MM) daily/weekly digests go out")
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    send_empty: bool = Field(False, description="send a digest even when nothing matched")
    max_items_per_rule: int = Field(50, ge=1, description="further matches are counted, not listed")

    @field_validator("at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        hour, _, minute = value.partition(":")
        if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
            raise ValueError('expected a local time as HH:MM, e.g. "07:30"')
        return f"{int(hour):02d}:{int(minute):02d}"


class AlertSettings(Section):
    quiet_hours: str | None = Field(
        None, description='local "HH:MM-HH:MM" when immediate alerts wait (e.g. "22:00-07:00")'
    )


class DeliverySettings(Section):
    tick_seconds: int = Field(15, ge=1, description="how often pending deliveries are sent")
    max_age_hours: float = Field(48.0, gt=0, description="retrying deliveries go dead after this")
    initial_backoff: float = Field(30.0, gt=0, description="first retry delay, seconds")
    max_backoff: float = Field(3600.0, gt=0, description="longest retry delay, seconds")


class SmtpSettings(Section):
    """The default mail server; with `host` set and no destinations, digests go by email."""

    host: str | None = None
    port: int | None = Field(None, description="default 465 for tls, 587 for starttls, else 25")
    security: Literal["none", "starttls", "tls"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = 30.0
    sender: str = Field("news-watcher <news-watcher@localhost>", alias="from")
    to: list[str] = []
    cc: list[str] = []
    bcc: list[str] = []
    verify_tls: bool = Field(True, description="check the server certificate")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EmailDestination(SmtpSettings):
    type: Literal["email"]


class WebhookDestination(Section):
    type: Literal["webhook"]
    url: str
    secret: SecretStr | None = None
    headers: dict[str, str] = {}
    timeout: float = 10.0


class ChatDestination(Section):
    type: Literal["chat"]
    urls: list[SecretStr] = Field(description="Apprise URLs (they often embed tokens)")


class FolderDestination(Section):
    type: Literal["folder"]
    path: Path


Destination = Annotated[
    EmailDestination | WebhookDestination | ChatDestination | FolderDestination,
    Field(discriminator="type"),
]


class StoriesSettings(Section):
    window_days: float = Field(
        7.0, gt=0, description="how far back a new article looks for its story"
    )
    threshold: float = Field(
        0.6, gt=0, le=1, description="share of the shorter article's shingles found in the other"
    )


class HealthSettings(Section):
    failing_after_hours: float = Field(
        24.0, gt=0, description="errors for this long raise a failing notice"
    )
    silence_factor: float = Field(
        5.0, gt=0, description="no new articles for this many × the feed's cadence: silent"
    )
    silence_floor_days: float = Field(
        2.0, gt=0, description="never silent sooner than this, whatever the cadence"
    )
    silence_unlearned_days: float = Field(
        7.0, gt=0, description="silent after this long while the cadence is still unknown"
    )


class HttpSettings(Section):
    listen: str | None = Field(None, description='"host:port" for /healthz, /readyz, /metrics')


class LogSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "text", "json"] = "auto"


class Settings(BaseSettings):
    """Every setting news-watcher reads. The README documents each (a test checks that)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        populate_by_name=True,
    )

    data_dir: Path = Path("storage")
    rules_dir: Path = Path("rules")
    database_url: SecretStr | None = Field(
        None, description="default sqlite:///<data_dir>/watcher.db"
    )
    timezone: str = "UTC"
    backfill: bool = False
    poll_tick_seconds: float = Field(10.0, gt=0, description="how often due feeds are looked for")
    reload_check_seconds: float = Field(5.0, gt=0, description="how often rules/ is checked")
    fetch: FetchSettings = FetchSettings()
    extract: ExtractSettings = ExtractSettings()
    db: DatabaseSettings = DatabaseSettings()
    digest: DigestSettings = DigestSettings()
    alerts: AlertSettings = AlertSettings()
    delivery: DeliverySettings = DeliverySettings()
    smtp: SmtpSettings = SmtpSettings()
    destinations: dict[str, Destination] = {}
    stories: StoriesSettings = StoriesSettings()
    health: HealthSettings = HealthSettings()
    http: HttpSettings = HttpSettings()
    log: LogSettings = LogSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'unknown IANA time zone {value!r} (e.g. "Asia/Seoul")') from None
        return value

    @field_validator("destinations")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name.replace("_", "").replace("-", "").isalnum() or name != name.lower():
                raise ValueError(
                    f"destination name {name!r}: use lowercase letters, digits, _ or -"
                )
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if self.database_url is None:
            self.database_url = SecretStr(f"sqlite:///{self.data_dir / 'watcher.db'}")
        return self

    # -- derived values -------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url.get_secret_value()

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")

    @property
    def auto_upgrade(self) -> bool:
        return self.is_sqlite if self.db.auto_upgrade is None else self.db.auto_upgrade

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    def effective_destinations(self) -> dict[str, Any]:
        """Configured destinations; else email via [smtp] when a host is set; else the outbox."""
        if self.destinations:
            return dict(self.destinations)
        if self.smtp.host:
            data = self.smtp.model_dump(by_alias=False)
            return {"email": EmailDestination(type="email", **data)}
        return {"outbox": FolderDestination(type="folder", path=self.outbox_dir)}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file is merged in by load_settings() as init values *below* the environment.
        return (env_settings, init_settings)


# -- loading -------------------------------------------------------------------------------

SECRET_KEYS = {"password", "secret", "urls"}


def find_config_file(explicit: Path | None, environ: dict[str, str] | None = None) -> Path | None:
    """--config, then WATCHER_CONFIG, then ./watcher.toml if present."""
    environ = os.environ if environ is None else environ
    if explicit is not None:
        return explicit
    if environ.get("WATCHER_CONFIG"):
        return Path(environ["WATCHER_CONFIG"])
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _secrets_in_file(data: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys of secrets written in the file (refused: they belong in the environment)."""
    if isinstance(data, dict):
        return [hit for key, value in data.items() for hit in _secrets_in_file(value, (*path, key))]
    if not data or not path:
        return []
    is_secret = path[-1] in {"password", "secret"} or (
        path[0] == "destinations" and path[-1] == "urls"
    )
    has_password = path == ("database_url",) and bool(urlsplit(str(data)).password)
    return [".".join(path)] if is_secret or has_password else []


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def _explain(exc: ValidationError, file: Path | None, file_data: dict[str, Any]) -> ConfigError:
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc) or "(top level)"
        origin = _origin(loc, file, file_data)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (see the README's Configuration section)"
        lines.append(f"setting {key} ({origin}): {message}")
    return ConfigError("invalid configuration:\n  " + "\n  ".join(lines))


def _origin(loc: tuple[Any, ...], file: Path | None, file_data: dict[str, Any]) -> str:
    node: Any = file_data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            node = None
            break
    env = _env_name(loc)
    if env in {k.upper() for k in os.environ}:
        return f"from environment variable {env}"
    if node is not None and file is not None:
        return f"in {file}"
    return f"in {file}" if file is not None else "default"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from file + environment + CLI overrides, or a ConfigError naming the key."""
    file = find_config_file(config_file)
    file_data = _read_toml(file) if file is not None else {}
    secrets = _secrets_in_file(file_data)
    if secrets:
        names = ", ".join(f"{key} (set {_env_name(tuple(key.split('.')))})" for key in secrets)
        raise ConfigError(
            f"{file}: secrets must come from the environment, not the config file: {names}"
        )
    values = {**file_data, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise _explain(exc, file, file_data) from None


def redact_url(url: str) -> str:
    """A URL with its password replaced by *** (for logs and `config show`)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret shown as ***."""
    data = settings.model_dump(mode="json", by_alias=True)
    data["database_url"] = redact_url(settings.db_url)
    data["destinations"] = {
        name: dest.model_dump(mode="json", by_alias=True)
        for name, dest in settings.effective_destinations().items()
    }
    return _mask(data)


def _mask(data: Any, key: str = "") -> Any:
    if isinstance(data, dict):
        return {k: _mask(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v, key) for v in data]
    if key in SECRET_KEYS and data:
        return "***"
    return data
