"""Running one service as a process: uvicorn around the service's app, with JSON logs and a non-zero exit when
a core task dies (so the orchestrator restarts the pod). `podbrief serve <service>` finds the service's spec and
calls this."""

from __future__ import annotations

import logging
import signal
from typing import Any

import uvicorn

from podbrief import logging as plog
from podbrief.service import ServiceSpec, create_app

log = logging.getLogger(__name__)


def serve_service(spec: ServiceSpec[Any, Any], *, host: str | None = None, port: int | None = None) -> int:
    """Serve until SIGTERM; the exit status is 0 after a clean shutdown, 1 after a fatal error."""
    settings = spec.settings_cls()
    plog.configure(settings.log_level, service=spec.name, secrets=settings.secrets())
    server: uvicorn.Server | None = None
    failed: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:
        failed.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(spec, settings, on_fatal=on_fatal)
    config = uvicorn.Config(
        app,
        host=host or settings.http.host,
        port=port if port is not None else settings.http.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    # Once it has shut down, uvicorn re-raises the signal that stopped it under the handler found at start.
    # With the default one a drained SIGTERM would end the process as "killed by signal 15"; ignored here,
    # a clean shutdown exits 0 and only a failure exits non-zero.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    server.run()
    if failed:
        log.error("exiting after a fatal error", extra={"service": spec.name})
        return 1
    return 0 if server.started else 1
