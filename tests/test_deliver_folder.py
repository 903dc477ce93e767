"""The folder destination (the default outbox): .eml + .html per message, written atomically,
the same files again on a repeat."""

from __future__ import annotations

import asyncio
import email
from email import policy
from pathlib import Path

import pytest

from tests.deliverkit import NOW, Corpus, deliveries, open_engine, rule, ruleset, settings_for
from watcher.deliver.base import Outgoing, build_all
from watcher.deliver.service import DeliveryService

pytestmark = pytest.mark.usefixtures("each_backend")  # SQLite and PostgreSQL


def test_with_nothing_configured_digests_go_to_the_outbox_folder(tmp_path: Path):
    settings = settings_for(tmp_path, timezone="Asia/Seoul")
    assert list(settings.effective_destinations()) == ["outbox"]
    engine = open_engine(settings)
    corpus = Corpus(engine)
    corpus.story("GSOMIA stays", ["Yonhap", "Kyodo"], ["gsomia"])
    rules = ruleset(rule("gsomia", "GSOMIA", immediate=True))
    service = DeliveryService(engine, settings, owner="t")
    results = asyncio.run(service.tick(rules, now=NOW)).results
    assert sorted(r.kind for r in results) == ["alert", "digest"]
    outbox = tmp_path / "data" / "outbox"
    emls, htmls = sorted(outbox.glob("*.eml")), sorted(outbox.glob("*.html"))
    assert len(emls) == len(htmls) == 2
    assert [p.stem for p in emls] == [p.stem for p in htmls]
    assert not list(outbox.glob(".*"))  # no temp files left behind
    stored = {d.payload["message_id"]: d.payload for d in deliveries(engine)}
    for eml, html in zip(emls, htmls, strict=True):
        message = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
        payload = stored[message["Message-ID"]]
        assert message["Subject"] == payload["subject"]
        html_part = message.get_body(("html",)).get_content()  # CRLF: the wire format
        assert html_part.replace("\r\n", "\n") == payload["html"]
        assert html.read_text(encoding="utf-8") == payload["html"]


def test_a_repeated_send_rewrites_the_same_files_byte_for_byte(tmp_path: Path):
    settings = settings_for(tmp_path)
    engine = open_engine(settings)
    Corpus(engine).story("GSOMIA", ["Yonhap"], ["gsomia"])
    service = DeliveryService(engine, settings, owner="t")
    asyncio.run(service.tick(ruleset(rule("gsomia")), now=NOW))
    (delivery,) = deliveries(engine)
    outbox = settings.outbox_dir
    before = {p.name: p.read_bytes() for p in outbox.iterdir()}
    message = Outgoing(delivery.id, "outbox", "digest", delivery.idempotency_key, delivery.payload)
    asyncio.run(build_all(settings)["outbox"].send(message))  # a repeat after a crash
    after = {p.name: p.read_bytes() for p in outbox.iterdir()}
    assert before == after and len(after) == 2


def test_an_unwritable_folder_is_dead_with_the_reason(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    settings = settings_for(
        tmp_path, destinations={"box": {"type": "folder", "path": str(blocker / "sub")}}
    )
    engine = open_engine(settings)
    Corpus(engine).story("GSOMIA", ["Yonhap"], ["gsomia"])
    service = DeliveryService(engine, settings, owner="t")
    (result,) = asyncio.run(service.tick(ruleset(rule("gsomia")), now=NOW)).results
    assert result.status == "dead" and str(blocker / "sub") in result.error


def test_each_backend_leg_really_uses_its_database(tmp_path: Path, each_backend: str | None):
    """The delivery suites run twice through `each_backend`; this checks the switch took."""
    engine = open_engine(settings_for(tmp_path))
    assert engine.dialect.name == ("sqlite" if each_backend is None else "postgresql")
    engine.dispose()
