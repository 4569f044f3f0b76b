"""`python -m podbrief_ingest.main`: run the ingest service."""

from podbrief.server import serve_service


def main() -> None:
    raise SystemExit(serve_service("ingest"))


if __name__ == "__main__":
    main()
