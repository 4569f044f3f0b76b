"""Signed links cannot be forged, replayed for another purpose, or used after they expire."""

from __future__ import annotations

import base64
import time
import uuid

import orjson
import pytest
from podbrief_delivery.settings import DeliverySettings
from podbrief_delivery.tokens import Signer, TokenError, TokenExpired
from pydantic import SecretStr, ValidationError

pytestmark = pytest.mark.unit

SECRET = "a-real-secret-of-enough-length-42"


def test_round_trip() -> None:
    s = Signer(SECRET)
    sub = uuid.uuid4()
    tok = s.for_subscriber("unsubscribe", sub, 3600)
    got, body = s.subscriber_of(tok, "unsubscribe")
    assert got == sub and body["p"] == "unsubscribe"


def test_unsubscribe_token_cannot_be_forged() -> None:
    s = Signer(SECRET)
    victim, attacker = uuid.uuid4(), uuid.uuid4()
    mine = s.for_subscriber("unsubscribe", attacker, 3600)
    raw, mac = mine.split(".")
    # 1. Swap the subscriber id inside a valid token, keep the MAC.
    body = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    body["s"] = str(victim)
    forged_raw = base64.urlsafe_b64encode(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        s.verify(forged_raw + "." + mac, "unsubscribe")
    # 2. Sign with another key.
    with pytest.raises(TokenError):
        s.verify(Signer("some-other-secret-0000000000").for_subscriber("unsubscribe", victim, 3600), "unsubscribe")
    # 3. No MAC, an empty MAC, garbage, a flipped MAC bit.
    for bad in (
        forged_raw,
        forged_raw + ".",
        "....",
        "",
        "x" * 5000,
        raw + "." + mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1],
    ):
        with pytest.raises(TokenError):
            s.verify(bad, "unsubscribe")
    # 4. A token made for another purpose (feedback links are in every email) is not an unsubscribe token.
    with pytest.raises(TokenError):
        s.verify(s.for_subscriber("feedback", victim, 3600, i="x", k="up"), "unsubscribe")


def test_expired_tokens_are_refused() -> None:
    s = Signer(SECRET)
    tok = s.sign("confirm", {"s": str(uuid.uuid4())}, 60, now=time.time() - 120)
    with pytest.raises(TokenExpired):
        s.verify(tok, "confirm")


def test_placeholder_secret_fails_fast_unless_dev_flag() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        DeliverySettings(signing_secret=SecretStr("changethis"))
    with pytest.raises(ValidationError, match="at least 16"):
        DeliverySettings(signing_secret=SecretStr("short"))
    ok = DeliverySettings(signing_secret=SecretStr("changethis"), allow_insecure_dev_secret=True)
    assert ok.http.port == 8005
