"""Container HEALTHCHECK: exit 0 when the service's /readyz answers 200.

The port comes from <SERVICE>_HTTP__PORT when set, else the service's default port (the one its settings
declare; tests/deploy/test_endpoints.py keeps the two in step)."""

import os
import sys
import urllib.request
from collections.abc import Mapping

DEFAULT_PORTS = {"ingest": 8001, "transcription": 8002, "extraction": 8003, "clustering": 8004, "delivery": 8005}


def port(service: str, env: Mapping[str, str]) -> int:
    return int(env.get(f"{service.upper()}_HTTP__PORT") or DEFAULT_PORTS.get(service, 8000))


def main() -> int:
    service = os.environ.get("SERVICE", "ingest")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port(service, os.environ)}/readyz", timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except (OSError, ValueError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
