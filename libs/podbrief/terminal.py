"""Text from outside (feeds, transcripts, error messages quoting them, subscribers' input) printed to a
terminal: as plain text, never as Rich markup, and without the characters that drive a terminal.

A show title `[link=https://evil.example]Click[/link]` must print as those characters, not as a link; an escape
sequence in a transcript must not move the cursor, retitle the window or open a hyperlink (OSC 8). So:
- `plain()` gives a `rich.text.Text`, which Rich never parses for markup, for anything a CLI prints through
  Rich (tables, panels, console.print);
- `safe()` removes C0 and C1 control characters (ESC, BEL, CSI ...) except tab and newline, and the bidi
  controls and invisible characters `podbrief.text` removes from display fields, for anything printed raw.
The services sanitise at ingestion too (`podbrief.text`); this is the last line, for data stored before that,
model output and error messages.
"""

from __future__ import annotations

import re

from rich.text import Text

from podbrief.text import BIDI_CONTROLS, INVISIBLE

_CONTROLS = "".join(chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if chr(c) not in "\t\n")
_UNSAFE = re.compile("[" + re.escape(_CONTROLS + BIDI_CONTROLS + INVISIBLE) + "\U000e0000-\U000e007f]")


def safe(value: object) -> str:
    """`value` as text a terminal only displays: CR becomes a newline, other control characters (ESC among
    them), bidi controls and invisible characters are removed."""
    text = str(value if value is not None else "").replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def plain(value: object, style: str = "") -> Text:
    """`value` for Rich, as literal text (never markup), made `safe()`, in `style` (a style of ours)."""
    return Text(safe(value), style=style)


def one_line(value: object, max_chars: int | None = None, style: str = "") -> Text:
    """`plain()` on one line: every run of whitespace folded to a space, cut at `max_chars` with an ellipsis."""
    text = " ".join(safe(value).split())
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return Text(text, style=style)


def error_text(message: object) -> Text:
    """ "error: <message>" for stderr, the message as plain text."""
    return Text("error: ", style="red").append_text(plain(message))


__all__ = ["error_text", "one_line", "plain", "safe"]
