"""Container HEALTHCHECK: exit 0 when the service's /readyz answers 200.

The port comes from <SERVICE>_HTTP__PORT when set, else the service's default port."""

import os
import sys
import urllib.request

DEFAULT_PORTS = {"ingest": 8001, "transcription": 8002, "extraction": 8003, "clustering": 8004, "delivery": 8005}


def main() -> int:
    service = os.environ.get("SERVICE", "ingest")
    port = os.environ.get(f"{service.upper()}_HTTP__PORT") or str(DEFAULT_PORTS.get(service, 8000))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=4) as resp:
            return 0 if resp.status == 200 else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
