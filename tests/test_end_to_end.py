"""The whole chain on a real local server: feeds → pipeline → stories → matches → outbox → folder.

The same wire story served by five feeds under five different URLs must give ONE digest entry
("also in" the four other outlets) and ONE immediate alert.
"""

from __future__ import annotations

import asyncio
import email
from email import policy

import pytest

from tests.conftest import Workspace, poll_once
from tests.feedsite import FeedSite, Item
from watcher.daemon import Watcher
from watcher.deliver.service import DeliveryService

WIRE_BODY = (
    "SEOUL, Nov. 20 (Yonhap) -- South Korea and Japan agreed on Thursday to keep their General "
    "Security of Military Information Agreement (GSOMIA) in force, the defense ministry said, "
    "ending months of uncertainty over the intelligence-sharing pact. Officials said the two "
    "countries would resume real-time exchanges of missile warning data with the United States "
    "by the end of the year, and that working-level talks would continue in Tokyo next month."
)
OUTLETS = ["Yonhap", "Korea Herald", "Korea Times", "JoongAng Daily", "Japan Times"]
ALERT_RULE = """id: gsomia
name: Korea–Japan GSOMIA
query: GSOMIA OR "General Security of Military Information Agreement"
deliver: {digest: daily, immediate: true}
"""


def deliver(settings, *, digests: str) -> None:
    watcher = Watcher(settings)
    watcher.prepare()
    service = DeliveryService(watcher.engine, settings, owner="test")
    asyncio.run(service.tick(watcher.ruleset, digests=digests))  # type: ignore[arg-type]
    watcher.engine.dispose()


def messages(folder, kind: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if kind in path.name:
            found.append(message)
    return found


def text_of(message: email.message.EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


@pytest.fixture
def settings(workspace: Workspace, database_url: str):
    (workspace.rules_dir / "gsomia.yaml").write_text(ALERT_RULE, encoding="utf-8")
    return workspace.settings(database_url=database_url, timezone="Asia/Seoul")


def test_one_story_from_five_outlets_is_one_digest_entry_and_one_alert(
    httpserver, workspace: Workspace, settings
):
    site = FeedSite(httpserver)
    paths = {outlet: f"/{outlet.lower().replace(' ', '-')}.xml" for outlet in OUTLETS}
    workspace.write_feeds(
        {outlet: site.add_feed(path, title=outlet) for outlet, path in paths.items()}
    )
    poll_once(settings, force=True)  # first poll primes the feeds (nothing to alert yet)

    for number, (outlet, path) in enumerate(paths.items()):
        byline = f"By {outlet} staff. " if number % 2 else ""
        title = "S. Korea, Japan keep GSOMIA intelligence pact" + (" (LEAD)" if number == 2 else "")
        site.publish(path, Item(f"{path.strip('/.xml')}-gsomia", title, byline + WIRE_BODY))
    poll_once(settings, force=True)

    deliver(settings, digests="none")  # the delivery tick right after the poll: alerts only
    outbox = settings.outbox_dir
    alerts = messages(outbox, "alert")
    assert len(alerts) == 1, [m["Subject"] for m in alerts]

    deliver(settings, digests="now")
    (digest,) = messages(outbox, "digest")
    body = text_of(digest)
    assert body.count("keep GSOMIA intelligence pact") == 1, body
    line = next(line for line in body.splitlines() if "also in:" in line)
    lead, also = line.split("also in:")
    assert sum(outlet in also for outlet in OUTLETS) == 4, line
    assert sum(outlet in lead for outlet in OUTLETS) == 1, line

    deliver(settings, digests="now")  # nothing new: nothing sent again
    assert len(messages(outbox, "alert")) == 1 and len(messages(outbox, "digest")) == 1
