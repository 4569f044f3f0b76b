"""HTML as a browser or a mail client would act on it: the start tags of a document and their attributes, so a
test can tell a real link or handler from escaped text that only shows one."""

from __future__ import annotations

from html.parser import HTMLParser


class StartTags(HTMLParser):
    """Every start tag of a document, with its attributes (character references decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def start_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = StartTags()
    parser.feed(html)
    parser.close()
    return parser.tags


__all__ = ["StartTags", "start_tags"]
