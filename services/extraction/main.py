"""Entry point: `python -m podbrief_extraction.main` (the same as `podbrief serve extraction`)."""

from podbrief.server import serve_service


def main() -> None:
    raise SystemExit(serve_service("extraction"))


if __name__ == "__main__":
    main()
