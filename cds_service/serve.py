"""Run the service under gunicorn from Python (`her2-cds serve`), no separate config file.

Why embedded: one console script works the same in the demo, CI and production, and the app is
built by `cds_service.create_app()` inside each worker (no app object at import time).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import shutil
import tempfile
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
                     timeout: int = 30, threads: int = 2) -> dict[str, Any]:
    """The gunicorn settings we use; bind is always explicit (127.0.0.1 unless told otherwise).

    Why gthread: a sync worker is held by one connection from accept to the last byte, so as many
    slow clients (slow-loris: headers or body a byte at a time) as there are workers stall the
    service. A gthread worker waits for a new connection's first bytes in its poller (no thread
    held) and serves each request on one of `threads` threads, so a slow client holds one thread,
    not the worker. For untrusted networks put a buffering proxy in front as well (README). The
    worker class is gthread taking new connections only while it has a free thread
    (`cds_service.gunicorn_worker`), so kept-alive connections spread over the workers.

    Why 2 threads by default (HER2CDS_THREADS): a call with its data in the prefetch is CPU work under the
    worker's one GIL, so more threads only interleave more calls, each evicting the others' objects from
    the caches and keeping more of them alive for the collector. At 16 kept-alive connections on 2
    workers, in rounds run next to the floor app (3 s each, 10-12 rounds per hook), 2 threads gave the
    higher throughput ratio in 8 and 9 of 10 paired rounds (order-sign, S01) and the higher median for
    every hook (order-select 0.393 vs 0.360, patient-view 0.379 vs 0.366, order-sign 0.388 vs 0.357, S01
    0.423 vs 0.378), at 4-7 % less CPU per call; the floor app measured the same at 2 and 4. Earlier, 8
    threads cost more CPU per call than 4 in 7 of 8 batches (median +10 %). Two is the fewest that keeps
    one slow client from holding a worker. Threads also bound the calls a worker has waiting on FHIR
    reads: raise it where most calls read a slow FHIR server, or where clients reach the service without
    a buffering proxy.
    """
    return {
        "bind": f"{host}:{port}",
        "workers": max(1, int(workers)),
        "worker_class": "cds_service.gunicorn_worker.FreeThreadAcceptingWorker",
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


def _worker_exit(server: Any, worker: Any) -> None:
    """In a worker leaving (SIGTERM, max requests): write the issued cards still queued before it is gone."""
    state = getattr(getattr(worker, "wsgi", None), "extensions", {}).get("her2cds")
    if state is not None and state.card_log is not None:
        state.card_log.flush(5.0)


def _child_exit(server: Any, worker: Any) -> None:
    """In the master: let prometheus_client drop a dead worker's live gauges (multiprocess mode)."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)


#: The young generation's threshold in a worker (CPython's default: 700 allocations net of frees).
GC_YOUNG_THRESHOLD = 10_000


def settle_collector() -> None:
    """In a worker whose app is built: set the cycle collector for a long-lived process serving short calls.

    Why freeze: the app, knowledge base and terminology live for the worker's life; frozen, no collection
    scans them again. Why the threshold: a hook call's objects are a tree freed by reference counting, but
    with several calls in flight the young generation filled every few calls, and each collection
    traversed the live objects of every call in flight. One worker, patient-view at c=16: ~80 young and
    8 middle collections per 665 calls at 700 (0.02-0.06 ms a call), 0-1 at 10,000. Our calls leave no
    cycles behind (tests/unit/service/test_service_memory.py), so the higher threshold holds no more memory."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


_M_ARENA_MAX = -8      # glibc malloc.h


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process and the workers it forks; True when set.

    Why: glibc gives each thread that allocates its own arena (up to 8 per core), and memory freed in one
    arena is reused only by that arena. Each of a gthread worker's threads thus kept the peak of the largest
    call it had served: worker peak RSS 206 MB after a throughput run and twenty 5,000-resource calls,
    124 MB with 2 arenas (same sequence, one worker). Python's own small-object allocator is shared by all
    threads anyway, so the threads lose little by sharing two arenas. Called in the master before it forks,
    while it has no other thread (the cap is read when the second arena would be made). Not glibc (musl,
    macOS), `arenas` 0, or MALLOC_ARENA_MAX set by the operator (glibc read it already): nothing done."""
    if arenas <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (OSError, AttributeError):
        return False


def run(host: str, port: int, workers: int, log_level: str = "info", threads: int = 2,
        malloc_arenas: int = 0) -> None:
    """Block serving `cds_service.create_app()` until SIGTERM/SIGINT (which drains in-flight calls).

    Metrics: the workers share one prometheus_client multiprocess directory, set here before any
    worker imports prometheus_client (see cds_service.metrics) and removed afterwards if made here."""
    from cds_service.metrics import MULTIPROC_ENV, multiprocess_dir_for_serve

    def factory() -> Any:
        from cds_service import create_app
        app = create_app()
        settle_collector()
        return app

    limit_malloc_arenas(malloc_arenas)
    metrics_dir, made_here = multiprocess_dir_for_serve(lambda: tempfile.mkdtemp(prefix="her2cds-metrics-"))
    os.environ[MULTIPROC_ENV] = metrics_dir
    master = os.getpid()
    options = {**gunicorn_options(host, port, workers, log_level, threads=threads), "worker_exit": _worker_exit,
               "child_exit": _child_exit}
    try:
        EmbeddedGunicorn(factory, options).run()
    finally:
        if made_here and os.getpid() == master:     # workers leave through here too (SystemExit)
            shutil.rmtree(metrics_dir, ignore_errors=True)
