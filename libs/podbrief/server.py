"""`podbrief serve <service>`: uvicorn around one service app, with JSON logs and a non-zero exit when a core
task dies (so the orchestrator restarts the pod)."""

from __future__ import annotations

import importlib
import logging
import signal

import uvicorn

from podbrief import logging as plog

log = logging.getLogger(__name__)


def serve_service(name: str, *, host: str | None = None, port: int | None = None) -> int:
    mod = importlib.import_module(f"podbrief_{name}.app")
    spec = mod.SPEC
    settings = spec.settings_cls()
    plog.configure(settings.log_level, service=name, secrets=settings.secrets())
    server: uvicorn.Server | None = None
    failed: list[BaseException] = []

    def on_fatal(exc: BaseException) -> None:
        failed.append(exc)
        if server is not None:
            server.should_exit = True

    app = mod.create_app(settings, on_fatal=on_fatal)
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
        log.error("exiting after a fatal error", extra={"service": name})
        return 1
    return 0 if server.started else 1
