"""Entry point of the clustering service process."""

from __future__ import annotations

from podbrief.server import serve_service


def main() -> None:
    raise SystemExit(serve_service("clustering"))


if __name__ == "__main__":
    main()
