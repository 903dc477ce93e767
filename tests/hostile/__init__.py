"""Hostile input for news-watcher's robustness tests: a feed server that misbehaves on purpose,
a TCP proxy that can take PostgreSQL away, helpers to run and crash real daemon processes."""
