"""Publication dates as feeds write them: RFC 822 (RSS), ISO 8601 (Atom, Dublin Core), and their variants.

Tried in order: RFC 822 through `email.utils` (two-digit years, named zones, no day name), ISO 8601, the same
two after translating day and month names from the common non-English languages and after dropping a
timezone name nobody defines, and last dateutil's tolerant parser (day-first orders, stray words). A date
without a timezone is read as UTC and flagged `date_assumed_utc`; one that nothing reads is flagged
`date_unparsed` and the episode keeps `published_at = null`."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta, timezone

# Zones feeds write that email.utils does not know (it knows UT, GMT, Z and the US zones), in minutes.
_ZONES = {
    "CET": 60,
    "CEST": 120,
    "MET": 60,
    "MEST": 120,
    "WET": 0,
    "WEST": 60,
    "EET": 120,
    "EEST": 180,
    "BST": 60,
    "IST": 330,
    "MSK": 180,
    "JST": 540,
    "KST": 540,
    "HKT": 480,
    "SGT": 480,
    "AWST": 480,
    "ACST": 570,
    "ACDT": 630,
    "AEST": 600,
    "AEDT": 660,
    "NZST": 720,
    "NZDT": 780,
    "HST": -600,
    "AKST": -540,
    "AKDT": -480,
    "NST": -210,
    "NDT": -150,
    "BRT": -180,
    "ART": -180,
}
# The zones email.utils knows, for the tolerant parser, which does not.
_US_ZONES = {
    "UT": 0,
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -300,
    "EDT": -240,
    "CST": -360,
    "CDT": -300,
    "MST": -420,
    "MDT": -360,
    "PST": -480,
    "PDT": -420,
    "AST": -240,
    "ADT": -180,
}
_MONTHS = {
    # French, German, Spanish, Italian, Portuguese, Dutch, Swedish/Danish/Norwegian, Polish, Czech, Finnish
    "jan": (
        "janv",
        "janvier",
        "januar",
        "jän",
        "jänner",
        "enero",
        "ene",
        "gennaio",
        "gen",
        "janeiro",
        "januari",
        "stycznia",
        "styczeń",
        "sty",
        "leden",
        "ledna",
        "tammikuu",
        "tammi",
    ),
    "feb": (
        "févr",
        "fevr",
        "février",
        "fevrier",
        "februar",
        "febrero",
        "febbraio",
        "fevereiro",
        "fev",
        "fév",
        "februari",
        "lutego",
        "luty",
        "lut",
        "únor",
        "února",
        "helmikuu",
        "helmi",
    ),
    "mar": (
        "mars",
        "märz",
        "marz",
        "mär",
        "marzo",
        "março",
        "marco",
        "maart",
        "mrt",
        "marca",
        "marzec",
        "březen",
        "března",
        "maaliskuu",
        "maalis",
    ),
    "apr": (
        "avr",
        "avril",
        "abril",
        "abr",
        "aprile",
        "april",
        "kwietnia",
        "kwiecień",
        "kwi",
        "duben",
        "dubna",
        "huhtikuu",
        "huhti",
    ),
    "may": ("mai", "mayo", "maggio", "mag", "maio", "mei", "maj", "maja", "květen", "května", "toukokuu", "touko"),
    "jun": (
        "juin",
        "juni",
        "junio",
        "giugno",
        "giu",
        "junho",
        "czerwca",
        "czerwiec",
        "cze",
        "červen",
        "června",
        "kesäkuu",
        "kesä",
    ),
    "jul": (
        "juil",
        "juillet",
        "juli",
        "julio",
        "luglio",
        "lug",
        "julho",
        "lipca",
        "lipiec",
        "lip",
        "červenec",
        "července",
        "heinäkuu",
        "heinä",
    ),
    "aug": (
        "août",
        "aout",
        "agosto",
        "ago",
        "augustus",
        "augusti",
        "sierpnia",
        "sierpień",
        "sie",
        "srpen",
        "srpna",
        "elokuu",
        "elo",
    ),
    "sep": (
        "sept",
        "septembre",
        "september",
        "septiembre",
        "set",
        "settembre",
        "setembro",
        "września",
        "wrzesień",
        "wrz",
        "září",
        "syyskuu",
        "syys",
    ),
    "oct": (
        "octobre",
        "oktober",
        "okt",
        "octubre",
        "ottobre",
        "ott",
        "outubro",
        "out",
        "października",
        "październik",
        "paź",
        "říjen",
        "října",
        "lokakuu",
        "loka",
    ),
    "nov": (
        "novembre",
        "november",
        "noviembre",
        "novembro",
        "listopada",
        "listopad",
        "lis",
        "listopadu",
        "marraskuu",
        "marras",
    ),
    "dec": (
        "déc",
        "décembre",
        "decembre",
        "dezember",
        "dez",
        "diciembre",
        "dic",
        "dicembre",
        "dezembro",
        "december",
        "grudnia",
        "grudzień",
        "gru",
        "prosinec",
        "prosince",
        "joulukuu",
        "joulu",
    ),
}
_MONTH_WORDS = {word: en for en, words in _MONTHS.items() for word in words}
_DAY_WORDS = re.compile(
    r"^(?:lun|mar|mer|jeu|ven|sam|dim|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|mo|di|mi|do|fr|sa|so|"
    r"montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|lu|ma|ju|vi|lunes|martes|miércoles|jueves|"
    r"viernes|sábado|domingo|mié|sáb|dom|lunedì|martedì|mercoledì|giovedì|venerdì|sabato|gio|ven|seg|ter|qua|"
    r"qui|sex|sáb|segunda|terça|quarta|quinta|sexta|zo|wo|vr|za|maandag|dinsdag|woensdag|donderdag|vrijdag|"
    r"zaterdag|zondag|mån|tis|ons|tor|fre|lör|sön|må|ti|on|to|lø|sø|man|tir|pon|wt|śr|czw|pt|sob|ndz|"
    r"po|út|st|čt|pá|ne|ma|ti|ke|to|pe|la|su)\.?,?\s+",
    re.I,
)
_WORD = re.compile(r"[^\W\d_]+\.?", re.U)
_MERIDIEM = re.compile(r"\d\s*[AaPp]\.?[Mm]\.?(?:\s|$)")
_TRAILING_ZONE = re.compile(r"\s([A-Z]{2,5})$")
# A zone email.utils reads: a numeric offset or one of the names it knows.
_EXPLICIT_ZONE = re.compile(r"(?:[+-]\d{2}:?\d{2}|\b(?:UT|UTC|GMT|Z|[ECMP][SD]T|A[SD]T))\s*$", re.I)
_EARLIEST, _LATEST = 1900, 2200


def parse_date(raw: str | None) -> tuple[datetime | None, str | None]:
    """(aware UTC datetime or None, flag or None). Flags: date_assumed_utc, date_unparsed, date_out_of_range."""
    text = " ".join((raw or "").split())
    if not text:
        return None, None
    when, assumed = _read(text)
    if when is None:
        return None, "date_unparsed"
    if not _EARLIEST <= when.year <= _LATEST:
        return None, "date_out_of_range"
    return when.astimezone(UTC), "date_assumed_utc" if assumed else None


def _read(text: str) -> tuple[datetime | None, bool]:
    for attempt in (text, _translated(text)):
        if attempt is None:
            continue
        for reader in (_rfc822, _iso8601):
            found = reader(attempt)
            if found[0] is not None:
                return found
    return _tolerant(_translated(text) or text)


def _rfc822(text: str) -> tuple[datetime | None, bool]:
    if _MERIDIEM.search(text):
        return None, False  # email.utils would read "AM" as the zone and ignore the real one
    zone = _TRAILING_ZONE.search(text)
    offset: int | None = None
    if zone and zone.group(1) in _ZONES:
        offset = _ZONES[zone.group(1)]
        text = text[: zone.start()]
    try:
        parts = email.utils.parsedate_tz(text)
    except (TypeError, ValueError, IndexError):
        return None, False
    if parts is None or parts[0] < 1 or not 1 <= parts[1] <= 12 or not 1 <= parts[2] <= 31:
        return None, False
    try:
        naive = datetime(*parts[:6])  # type: ignore[misc]
    except (ValueError, OverflowError):
        return None, False
    if offset is not None:
        return naive.replace(tzinfo=timezone(timedelta(minutes=offset))), False
    if parts[9] is None or not _EXPLICIT_ZONE.search(text):
        # email.utils answers 0 for a missing or unknown zone; only a zone actually written is trusted.
        return naive.replace(tzinfo=UTC), True
    return naive.replace(tzinfo=timezone(timedelta(seconds=parts[9]))), False


def _iso8601(text: str) -> tuple[datetime | None, bool]:
    s = text.strip()
    if not re.match(r"^\d{4}-?\d{2}", s):
        return None, False
    if len(s) == 4:
        return None, False
    try:
        when = datetime.fromisoformat(s.replace("z", "Z"))
    except ValueError:
        return None, False
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC), True
    return when, False


def _translated(text: str) -> str | None:
    """`text` with a leading non-English day name dropped and month names in English, or None when nothing
    changed."""
    out = _DAY_WORDS.sub("", text, count=1) if not re.match(r"^[A-Za-z]{3},", text) else text

    def month(m: re.Match[str]) -> str:
        word = m.group(0).rstrip(".").lower()
        return _MONTH_WORDS.get(word, m.group(0))

    out = _WORD.sub(month, out)
    return out if out != text else None


def _tolerant(text: str) -> tuple[datetime | None, bool]:
    from dateutil import parser as dateparser

    zones = {name: minutes * 60 for name, minutes in (*_ZONES.items(), *_US_ZONES.items())}
    try:
        when = dateparser.parse(text, fuzzy=True, tzinfos=zones, default=datetime(2000, 1, 1))
    except (ValueError, OverflowError, TypeError):
        return None, False
    if not re.search(r"\d{4}|\d{1,2}[ ./-]\d{1,2}[ ./-]\d{2}", text):
        # dateutil fills in what is missing; a text without a year is not a date we can trust.
        return None, False
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC), True
    return when, False


__all__ = ["parse_date"]
