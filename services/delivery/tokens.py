"""Signed, expiring tokens for the links in emails (confirm, unsubscribe, feedback, profile, brief pages).

Format: base64url(JSON payload) "." base64url(HMAC-SHA256(key, purpose "." payload)). The purpose is inside
the MAC, so a feedback token can never be replayed as an unsubscribe or profile token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from typing import Any

import orjson

MAX_TOKEN_LEN = 2048


class TokenError(Exception):
    """The token is malformed, forged, for another purpose, or expired."""


class TokenExpired(TokenError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: str) -> None:
        # Derive a key of our own so the configured secret is never used raw in two places.
        self._key = hashlib.sha256(b"podbrief-delivery-links\x00" + secret.encode()).digest()

    def sign(self, purpose: str, data: dict[str, Any], ttl_s: int, *, now: float | None = None) -> str:
        body = dict(data)
        body["p"] = purpose
        body["exp"] = int((time.time() if now is None else now) + ttl_s)
        raw = _b64(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
        return raw + "." + _b64(self._mac(purpose, raw))

    def verify(self, token: str, purpose: str, *, now: float | None = None) -> dict[str, Any]:
        if not token or len(token) > MAX_TOKEN_LEN or token.count(".") != 1:
            raise TokenError("malformed token")
        raw, mac = token.split(".", 1)
        try:
            given = _unb64(mac)
        except (ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        if not hmac.compare_digest(given, self._mac(purpose, raw)):
            raise TokenError("bad signature")
        try:
            body = orjson.loads(_unb64(raw))
        except (ValueError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        if not isinstance(body, dict) or body.get("p") != purpose:
            raise TokenError("wrong purpose")
        if int(body.get("exp", 0)) < (time.time() if now is None else now):
            raise TokenExpired("token expired")
        return body

    def _mac(self, purpose: str, raw: str) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"." + raw.encode(), hashlib.sha256).digest()

    # Convenience wrappers: the subscriber id travels as "s".
    def for_subscriber(self, purpose: str, subscriber_id: uuid.UUID, ttl_s: int, **extra: Any) -> str:
        return self.sign(purpose, {"s": str(subscriber_id), **extra}, ttl_s)

    def subscriber_of(self, token: str, purpose: str) -> tuple[uuid.UUID, dict[str, Any]]:
        body = self.verify(token, purpose)
        try:
            return uuid.UUID(str(body["s"])), body
        except (KeyError, ValueError) as exc:
            raise TokenError("token names no subscriber") from exc


def version_of(body: dict[str, Any]) -> int:
    """The subscriber's token version a confirmation or profile token was issued under (see
    `subscribers.confirm`); tokens from before versions existed carry none and are refused."""
    v = body.get("v")
    if not isinstance(v, int) or isinstance(v, bool):
        raise TokenError("token carries no version; it was issued before tokens could be revoked")
    return v


def new_api_key() -> str:
    return "pbk_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
