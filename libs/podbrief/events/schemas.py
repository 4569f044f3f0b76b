"""JSON-schema snapshots of every event. The committed files are the contract; a test fails when a model
drifts from its snapshot, and `podbrief schemas --write` (or `make schemas`) refreshes them on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from podbrief.events.models import ALL_EVENTS
from podbrief.events.topics import topic_for

SNAPSHOT_DIR = Path(__file__).parent / "schemas"


def event_schema(model: type[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(mode="serialization")
    event_type = model.model_fields["event_type"].default
    schema["x-topic"] = topic_for(event_type)
    return schema


def snapshot_path(model: type[Any]) -> Path:
    event_type = model.model_fields["event_type"].default
    return SNAPSHOT_DIR / f"{event_type}.v{model.model_fields['schema_version'].default}.json"


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_snapshots() -> list[Path]:
    SNAPSHOT_DIR.mkdir(exist_ok=True)
    written = []
    for model in ALL_EVENTS:
        path = snapshot_path(model)
        path.write_text(render(event_schema(model)))
        written.append(path)
    return written
