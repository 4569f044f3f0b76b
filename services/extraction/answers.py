"""What each LLM call answers, as pydantic models and as the JSON schemas the server enforces with a grammar.

Keys are one or two letters and there is no free prose beyond the fields that are the product (the insight's
text) or the verifier's short reason: generation is the expensive part of a CPU run (~23 tokens/s for the
1.5B model on 2 cores, against ~68 tokens/s of prompt), so every output token is budgeted. Every string and
array is bounded, so no model can run on inside one value."""

from __future__ import annotations

from typing import Any

from podbrief.events import InsightKind
from pydantic import BaseModel, ConfigDict, Field, field_validator

KINDS = tuple(k.value for k in InsightKind)
VERDICTS = ("supported", "partly", "unsupported")


class Point(BaseModel):
    """A point picked in a chunk: its first and last sentence number, a headline, an importance."""

    model_config = ConfigDict(extra="ignore")

    s: int
    e: int
    h: str = Field(default="", max_length=300)
    w: int = 3


class SelectAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    p: list[Point] = Field(default_factory=list, max_length=50)


class PickedPoint(BaseModel):
    """A point picked and written in one call: its sentence range, the insight's text, kind, topics and
    importance."""

    model_config = ConfigDict(extra="ignore")

    s: int
    e: int
    t: str = Field(max_length=2000)
    k: str = "claim"
    tp: list[str] = Field(default_factory=list)
    w: int = 3


class PickAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    p: list[PickedPoint] = Field(default_factory=list, max_length=50)


class WriteAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    t: str = Field(max_length=2000)
    k: str = "claim"
    tp: list[str] = Field(default_factory=list)
    w: int = 3  # importance, 1-5: asked for only when the writer also ranks (code-proposed passages)

    @field_validator("tp", mode="before")
    @classmethod
    def _topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value


class VerifyAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    r: str = Field(default="", max_length=1000)
    v: str


def _points_schema(max_points: int, sentences: int, fields: dict[str, Any], min_points: int = 0) -> dict[str, Any]:
    """{"p": [...]}: `min_points` to `max_points` points, each a sentence range ("s", "e") and `fields`, all
    required."""
    number = {"type": "integer", "minimum": 1, "maximum": max(1, sentences)}
    properties = {"s": number, "e": number, **fields}
    return {
        "type": "object",
        "properties": {
            "p": {
                "type": "array",
                **({"minItems": min(min_points, max_points)} if min_points > 0 else {}),
                "maxItems": max_points,
                "items": {
                    "type": "object",
                    "properties": properties,
                    "required": list(properties),
                    "additionalProperties": False,
                },
            }
        },
        "required": ["p"],
        "additionalProperties": False,
    }


_IMPORTANCE = {"type": "integer", "enum": [1, 2, 3, 4, 5]}


def select_schema(max_points: int, sentences: int) -> dict[str, Any]:
    return _points_schema(
        max_points, sentences, {"h": {"type": "string", "minLength": 8, "maxLength": 100}, "w": _IMPORTANCE}
    )


def _insight_fields(max_chars: int, max_topics: int) -> dict[str, Any]:
    """The written insight: its text, kind and topics."""
    return {
        "t": {"type": "string", "minLength": 40, "maxLength": max_chars},
        "k": {"type": "string", "enum": list(KINDS)},
        "tp": {
            "type": "array",
            "minItems": 1,
            "maxItems": max_topics,
            "items": {"type": "string", "minLength": 2, "maxLength": 30},
        },
    }


def pick_schema(max_points: int, sentences: int, max_chars: int, min_points: int = 0) -> dict[str, Any]:
    """Select and write in one call: per point the sentence range, then the insight written from it. A model
    left free to stop writes about one point per chunk, the first it meets; `min_points` makes it write up
    more, and the gates and the verifier (not the model's modesty) decide which are kept."""
    return _points_schema(
        max_points, sentences, {**_insight_fields(max_chars, 2), "w": _IMPORTANCE}, min_points=min_points
    )


def write_schema(max_chars: int, *, importance: bool = False) -> dict[str, Any]:
    fields = _insight_fields(max_chars, 3)
    if importance:
        fields["w"] = _IMPORTANCE
    return {"type": "object", "properties": fields, "required": list(fields), "additionalProperties": False}


def verify_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "r": {"type": "string", "maxLength": 120},
            "v": {"type": "string", "enum": list(VERDICTS)},
        },
        "required": ["r", "v"],
        "additionalProperties": False,
    }
