"""news-watcher: polls news feeds, extracts articles, matches rules, delivers digests and alerts."""

__version__ = "0.1.0"
