"""Email addresses as delivery stores, counts and sends to them: one normal form per mailbox.

podbrief refuses non-ASCII local parts (`josé@…`, full-width letters) rather than supporting SMTPUTF8: sending
to them needs every relay on the way to announce SMTPUTF8, which podbrief cannot check at sign-up, and a
confirmation that can never arrive would leave a pending row behind. Internationalised domains are fine: they
are stored and sent to in their ASCII (IDNA) form, so `bücher.example`, its punycode and its NFD spelling are one
mailbox, for the database's unique key and for the per-address rate limit alike."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

MAX_EMAIL_LEN = 320


class InvalidAddress(ValueError):
    """An address a person can fix; the message says what was wrong."""


def normalise_email(email: str) -> str:
    """The mailbox's one spelling: ASCII local part, IDNA domain, lower case. InvalidAddress otherwise."""
    text = email.strip()
    if any(ord(c) > 127 for c in text.rpartition("@")[0]):
        raise InvalidAddress(
            "this address has non-ASCII characters before the @ (such as é or full-width letters); podbrief "
            "sends mail without SMTPUTF8, so it cannot deliver to it: use an ASCII address"
        )
    try:
        checked = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    ascii_form = checked.ascii_email  # always set when SMTPUTF8 is not allowed
    assert ascii_form is not None
    return ascii_form.lower()


def mailbox_key(email: str) -> str:
    """What the per-address rate limit counts: the normal form, or for input that is no valid address the NFC,
    case-folded text (bounded), so spellings of one string still count together."""
    try:
        return normalise_email(email)
    except InvalidAddress:
        return unicodedata.normalize("NFC", email.strip()).casefold()[:MAX_EMAIL_LEN]
