"""podbrief ingest service."""
