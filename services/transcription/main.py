"""`python -m podbrief_transcription.main`: the transcription service (API + consumer)."""

from __future__ import annotations

from podbrief.server import serve_service


def main() -> None:
    raise SystemExit(serve_service("transcription"))


if __name__ == "__main__":
    main()
