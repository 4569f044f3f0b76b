"""Ingest's outside world: the database (`repo`: feeds, episodes, the outbox) and feed hosts (`fetcher`: guarded
fetches with per-host limits). Import each from its own module."""
