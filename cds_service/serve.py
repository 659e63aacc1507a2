"""Run the service under gunicorn from Python (`her2-cds serve`), no separate config file.

Why embedded: one console script works the same in the demo, CI and production, and the app is
built by `cds_service.create_app()` inside each worker (no app object at import time).
"""
from __future__ import annotations

import gc
from typing import Any, Callable

from gunicorn.app.base import BaseApplication


# The access log as JSON lines like the service's own logs, without User-Agent / Referer (client-supplied,
# unbounded; a referer can carry the app's query) and without the query string (the app's
# /app/callback?code=...&state=... and /app?patient=... must not reach the logs); gunicorn escapes
# double quotes inside the values.
ACCESS_LOG_FORMAT = ('{"ts": "%(t)s", "level": "info", "logger": "gunicorn.access", "event": "http.access", '
                     '"remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", "status": "%(s)s", '
                     '"bytes": "%(B)s", "ms": "%(M)s"}')


class EmbeddedGunicorn(BaseApplication):
    """A gunicorn application whose WSGI app comes from a factory, with options from a dict."""

    def __init__(self, app_factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = app_factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Any:
        return self._factory()


def gunicorn_options(host: str, port: int, workers: int, log_level: str = "info",
                     timeout: int = 30, threads: int = 8) -> dict[str, Any]:
    """The gunicorn settings we use; bind is always explicit (127.0.0.1 unless told otherwise).

    Why gthread: a sync worker is held by one connection from accept to the last byte, so as many
    slow clients (slow-loris: headers or body a byte at a time) as there are workers stall the
    service. A gthread worker waits for a new connection's first bytes in its poller (no thread
    held) and serves each request on one of `threads` threads, so a slow client holds one thread,
    not the worker. For untrusted networks put a buffering proxy in front as well (README).
    """
    return {
        "bind": f"{host}:{port}",
        "workers": max(1, int(workers)),
        "worker_class": "gthread",
        "threads": max(2, int(threads)),
        "keepalive": 5,
        "timeout": timeout,
        "graceful_timeout": 10,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": log_level.lower(),
        "proc_name": "her2-cds",
        # gunicorn >= 25 opens a control socket at one fixed path per user; several instances on a
        # host (demo, tests, CI, benchmark) would fight over it, and we do not use it.
        "control_socket_disable": True,
    }


def run(host: str, port: int, workers: int, log_level: str = "info", threads: int = 8) -> None:
    """Block serving `cds_service.create_app()` until SIGTERM/SIGINT."""
    def factory() -> Any:
        from cds_service import create_app
        app = create_app()
        gc.freeze()     # the app, knowledge base and terminology live for the worker's life: keep them out of GC scans
        return app

    EmbeddedGunicorn(factory, gunicorn_options(host, port, workers, log_level, threads=threads)).run()
