"""`python -m podbrief_delivery.main`: run the delivery service."""

from podbrief.server import serve_service


def main() -> None:
    raise SystemExit(serve_service("delivery"))


if __name__ == "__main__":
    main()
