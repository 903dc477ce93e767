"""Secrets never leave the process: an SMTP password, a webhook secret, a chat token and a database
password, all set the only way allowed (the environment), must not appear in logs (text and JSON,
with --debug), in `watcher config show`, `status`, `deliveries`, `feeds`, `digest preview`, in
stored error messages, or anywhere in the database — while each is really used (the SMTP server
sees the password, the receiver a valid signature, PostgreSQL the password)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import sqlalchemy

from tests.conftest import Workspace
from tests.feedsite import FeedSite, items
from tests.hostile.proc import Daemon, daemon_env, free_port, wait_until, watcher
from tests.hostile.servers import Mailbox, WebhookReceiver, smtp_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SMTP_PASSWORD = "Smtp-Pa55-7f3e9a"
SMTP_SECTION_PASSWORD = "Section-Pa55-51c2"
WEBHOOK_SECRET = "whsec-9b1d4c77e2"
CHAT_TOKEN = "ChatT0ken-a8e1f0"
DB_PASSWORD = "S3cretPW"
SECRETS = (SMTP_PASSWORD, SMTP_SECTION_PASSWORD, WEBHOOK_SECRET, CHAT_TOKEN, DB_PASSWORD)
RULE = "id: gsomia\nname: GSOMIA\nquery: GSOMIA\ndeliver: {digest: daily, immediate: true}\n"


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def test_no_secret_appears_in_logs_commands_errors_or_the_database(
    workspace: Workspace, threaded_httpserver, pg_url: str
):
    site = FeedSite(threaded_httpserver)
    (workspace.rules_dir / "gsomia.yaml").write_text(RULE, encoding="utf-8")
    workspace.write_feeds({"Outlet": site.add_feed("/a.xml", items("a", 6))})
    smtp_port = free_port()
    logins: list[bytes] = []
    mailbox = Mailbox()
    controller = smtp_server(smtp_port, mailbox, refuse_login=True, logins=logins)
    receiver = WebhookReceiver(status=500, answer=b'{"error": "echo of nothing secret"}')
    config = workspace.root / "watcher.toml"
    config.write_text(
        f'[destinations.mail]\ntype = "email"\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        f'username = "watcher"\nto = ["desk@example.com"]\ntimeout = 5\n'
        f'[destinations.hook]\ntype = "webhook"\nurl = "{receiver.url}"\n'
        f'[smtp]\nhost = "mail.example"\nusername = "section-user"\n',
        encoding="utf-8",
    )
    database_url = pg_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    assert DB_PASSWORD in database_url
    env = daemon_env(
        workspace.data_dir,
        workspace.rules_dir,
        WATCHER_CONFIG=str(config),
        WATCHER_DATABASE_URL=database_url,
        WATCHER_DB__AUTO_UPGRADE="true",
        WATCHER_BACKFILL="true",
        WATCHER_EXTRACT__ENABLED="false",
        WATCHER_DELIVERY__TICK_SECONDS="1",
        WATCHER_DELIVERY__INITIAL_BACKOFF="1",
        WATCHER_DELIVERY__MAX_BACKOFF="2",
        WATCHER_DESTINATIONS__MAIL__PASSWORD=SMTP_PASSWORD,
        WATCHER_DESTINATIONS__HOOK__SECRET=WEBHOOK_SECRET,
        WATCHER_DESTINATIONS__CHAT__TYPE="chat",
        WATCHER_DESTINATIONS__CHAT__URLS=json.dumps(
            [f"json://127.0.0.1:{free_port()}/hooks/{CHAT_TOKEN}"]
        ),
        WATCHER_SMTP__PASSWORD=SMTP_SECTION_PASSWORD,
    )
    outputs: dict[str, str] = {}
    try:
        with Daemon(env, workspace.root, workspace.root / "text.log", "--debug") as daemon:
            daemon.wait_for("to mail is dead", timeout=60)  # 535: the password was refused
            daemon.wait_for("to chat failed (attempt 2)", timeout=60)
            wait_until(lambda: len(receiver.posts) >= 2, 30, what="signed webhook posts")
            outputs["text log (--debug)"] = daemon.stop()
        json_log = workspace.root / "json.log"
        with Daemon(env, workspace.root, json_log, "--log-format", "json") as daemon:
            daemon.wait_for("failed (attempt 4)", timeout=60)
            outputs["json log"] = daemon.stop()
    finally:
        controller.stop()
        receiver.close()

    assert SMTP_PASSWORD.encode() in logins[0], "the SMTP password must really be used"
    post = receiver.posts[0]
    timestamp, mac = post.headers["X-Watcher-Signature"].removeprefix("t=").split(",v1=")
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + post.body, hashlib.sha256
    )
    assert mac == expected.hexdigest(), "the webhook secret must really be used"

    commands = (
        ("config", "show"),
        ("config", "show", "--json"),
        ("status",),
        ("status", "--json"),
        ("deliveries", "--all"),
        ("deliveries", "--json", "--all"),
        ("deliveries", "--failed"),
        ("feeds", "--json"),
        ("digest", "preview", "--destination", "mail", "--text"),
        ("rules", "check"),
    )
    stdout: dict[str, str] = {}
    for args in commands:
        result = watcher(*args, env=env, cwd=workspace.root)
        assert result.returncode == 0, (args, result.stderr)
        stdout[" ".join(args)] = result.stdout
        outputs[" ".join(args)] = result.stdout + result.stderr
    assert "***" in stdout["config show --json"]
    failed = json.loads(stdout["deliveries --json --all"])
    errors: dict[str, str] = {}
    for row in failed:
        errors[row["destination"]] = errors.get(row["destination"], "") + (row["last_error"] or "")
    assert "535" in errors["mail"] and "500" in errors["hook"] and errors["chat"]
    # an unreachable database: the error names it, without the password
    down = {**env, "WATCHER_DATABASE_URL": database_url.replace(":5432/", f":{free_port()}/")}
    outputs["status, database down"] = (
        unreachable := watcher("status", env=down, cwd=workspace.root)
    ).stderr
    assert unreachable.returncode != 0 and "cannot reach the database" in unreachable.stderr

    for name, text in outputs.items():
        assert leaks(text) == [], f"{name} shows {leaks(text)}"
    engine = sqlalchemy.create_engine(pg_url)
    try:
        with engine.connect() as connection:
            stored = _every_value(connection)
    finally:
        engine.dispose()
    assert stored and leaks(stored) == [], "a secret was stored in the database"


def _every_value(connection: sqlalchemy.Connection) -> str:
    """Every row of every table in the scratch schema, as one string."""
    tables = connection.exec_driver_sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).scalars()
    parts = []
    for table in list(tables):
        for row in connection.exec_driver_sql(f'SELECT * FROM "{table}"'):
            parts.append(repr(tuple(row)))
    return "\n".join(parts)
