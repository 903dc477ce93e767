"""The webhook JSON: versioned schemas `news-watcher.alert/v1` and `news-watcher.digest/v1`.

Receivers can rely on v1: fields are only ever added (never renamed, removed or retyped) within a
version. `python -m watcher.deliver.payloads` prints the JSON Schema of both.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ALERT_SCHEMA = "news-watcher.alert/v1"
DIGEST_SCHEMA = "news-watcher.digest/v1"


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class RuleV1(_Model):
    id: str
    name: str
    priority: Literal["high", "normal", "low"]


class SnippetV1(_Model):
    field: str = Field(description="title, text, …: where the text comes from")
    text: str = Field(description="keyword-in-context excerpt, plain text")
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) character offsets of matched terms in `text`"
    )


class ArticleV1(_Model):
    id: int
    url: str
    title: str
    source: str = Field(description="the outlet")
    published_at: datetime | None
    lang: str | None
    author: str | None


class MatchV1(_Model):
    id: int = Field(description="match id: stable across retries")
    article: ArticleV1
    terms: list[str]
    snippets: list[SnippetV1]
    update: str | None = Field(None, description="what changed, when the article was updated")
    matched_at: datetime


class StoryV1(_Model):
    id: int | None = Field(description="story id; null when the article has none")
    title: str
    also_in: list[str] = Field(description="other outlets carrying the same story")
    matches: list[MatchV1] = Field(description="first outlet first")


class AlertV1(_Model):
    schema_: Literal["news-watcher.alert/v1"] = Field(ALERT_SCHEMA, alias="schema")
    idempotency_key: str
    destination: str
    created_at: datetime
    rule: RuleV1
    story: StoryV1


class DigestRuleV1(_Model):
    rule: RuleV1
    articles: int = Field(description="matched articles in this digest (listed or not)")
    stories: list[StoryV1]
    not_listed: int = Field(0, description="further stories beyond digest.max_items_per_rule")


class NoticeV1(_Model):
    feed: str
    url: str
    message: str


class DigestV1(_Model):
    schema_: Literal["news-watcher.digest/v1"] = Field(DIGEST_SCHEMA, alias="schema")
    idempotency_key: str
    destination: str
    period: str = Field(description="e.g. daily:2026-11-21, hourly:2026-11-21T07, weekly:2026-W47")
    created_at: datetime
    time_zone: str
    articles: int
    rules: list[DigestRuleV1]
    notices: list[NoticeV1] = Field(description="sources needing attention")


def dump(model: AlertV1 | DigestV1) -> str:
    """The exact body that is posted (and stored, so retries post the same bytes)."""
    return model.model_dump_json(by_alias=True)


def json_schemas() -> dict[str, object]:
    return {
        ALERT_SCHEMA: AlertV1.model_json_schema(by_alias=True),
        DIGEST_SCHEMA: DigestV1.model_json_schema(by_alias=True),
    }


if __name__ == "__main__":
    print(json.dumps(json_schemas(), indent=2))
