"""The gunicorn worker `her2-cds serve` runs: gthread, taking a new connection only while a thread is free.

Why: gunicorn's gthread worker accepts every connection it can, even when all its threads are busy
(gunicorn issues #908 and #3433); the connection's requests then queue behind the busy threads while a
sibling worker idles. With keep-alive clients the split lasts as long as the connections: in the bench,
16 kept-alive connections often landed 13 : 3 and sometimes 16 : 0 on two workers, the busy worker
serving them all on one core (and paying for switching its threads) while the other core idled. Here a
worker stops listening while as many requests are in flight as it has threads, so the next connection
stays in the kernel's queue for a worker with a free thread. Connections already accepted are served
as before; a slow client still holds one thread only (its first bytes are awaited in the poller).

Relies on the hooks of gunicorn's ThreadWorker (>= 27), all called on the worker's main loop:
`enqueue_req` (a request handed to the thread pool), `finish_request` (its thread done) and
`set_accept_enabled` (the listeners' switch, which the run loop sets again whenever the state it
wants differs from the current one: so a worker that stopped listening resumes after a request ends).
"""
from __future__ import annotations

from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class FreeThreadAcceptingWorker(ThreadWorker):
    """A gthread worker that listens for new connections only while fewer requests than threads are in flight."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0

    def enqueue_req(self, conn: Any) -> None:
        self.in_flight += 1
        if self.in_flight >= self.cfg.threads:
            self.set_accept_enabled(False)
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_flight -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.in_flight < self.cfg.threads)
