"""The gunicorn worker `her2-cds serve` runs: gthread, with its threads kept for connections that have sent bytes.

Why, (1) where a new connection waits: gunicorn's gthread worker (>= 24) hands each accepted connection
straight to its thread pool, where a thread waits up to 5 s for the first bytes (gunicorn PR #3519). A
client that opens connections it does not use yet (hey and Go's HTTP client do, racing dials; browsers
pre-connect; a port scan does) so held the threads: with 4 threads, 4 idle connections stalled a worker
for 5 s, and a throughput run measured 40 req/s instead of 1,000. Here a new connection waits in the
worker's poller, as a kept-alive one does, and goes to a thread only once readable (as gunicorn 21-23
did, PR #2918); unused, it is closed after the keep-alive timeout like any idle connection.

(2) which worker takes it: gthread accepts every connection it can, even when all its threads are busy
(gunicorn issues #908 and #3433); the connection's requests then queue behind the busy threads while a
sibling worker idles. With keep-alive clients the split lasts as long as the connections: in the bench,
16 kept-alive connections often landed 13 : 3 and sometimes 16 : 0 on two workers, the busy worker
serving them all on one core (and paying for switching its threads) while the other core idled. Here a
worker stops listening while its requests in flight and its new connections (which will send one) are as
many as its threads, so the next connection stays in the kernel's queue for a worker with a free thread.
A slow client still holds one thread only once it has started sending.

(3) for how long: a worker whose kept-alive clients keep more requests in flight than it has threads never has
a free thread, so a connection left in the kernel's queue waited for the load to end: at c=16 with calls
reading the FHIR server (~300 ms each), the first request of some hey connections waited 3-6 s, in 8 of 25
runs. So after each pause of `MAX_LISTENING_PAUSE_S` (its loop wakes to look) a busy worker takes one
connection that is waiting, queued behind its busy threads as stock gthread queues every one. It does not
listen for it: a sibling with a free thread listens all the while and takes a new connection at once, so
one still waiting after a pause is one no sibling could take. (A busy worker that listened again after its
pause raced its free siblings for every new connection, and the ones it won waited behind its busy
threads: with 2 threads per worker, two slow clients on one worker stalled new connections for seconds.)

Relies on the hooks of gunicorn's ThreadWorker (>= 27), all called on the worker's main loop: `accept`
(a listener readable), `enqueue_req` (a request handed to the thread pool), `finish_request` (its
thread done), `on_pending_socket_readable` and `murder_pending` (the waiting connections' queue, which
gunicorn uses for connections its threads gave up on), `set_accept_enabled` (the listeners' switch,
which the run loop sets again whenever the state it wants differs from the current one: so a worker that
stopped listening resumes after a request ends, and a busy one looks for a waiting connection after each
pause) and `wait_for_and_dispatch_events` (the loop's wait).
"""
from __future__ import annotations

import errno
import selectors
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

_NOTHING_TO_ACCEPT = (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK)

#: The longest a worker with every thread busy leaves new connections to its siblings (seconds): long enough
#: for a sibling with a free thread to take them first (it listens, and is woken at once), short enough that
#: a connection no worker has a free thread for waits about a tenth of a second, not until the load ends.
MAX_LISTENING_PAUSE_S = 0.1


class FreeThreadAcceptingWorker(ThreadWorker):
    """A gthread worker that listens while a thread is free (busy, it takes one waiting connection after each
    pause), and waits for a new connection's bytes in its poller."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0
        self.listening_paused_at = 0.0      # monotonic time this worker last stopped listening

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno not in _NOTHING_TO_ACCEPT:
                raise
            return
        self.nr_conns += 1
        client_sock.setblocking(False)
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(client_sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))
        if self.threads_claimed() >= self.cfg.threads:
            self.set_accept_enabled(False)

    def enqueue_req(self, conn: Any) -> None:
        self.in_flight += 1
        if self.threads_claimed() >= self.cfg.threads:
            self.set_accept_enabled(False)
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.in_flight -= 1
        super().finish_request(conn, fs)

    def threads_claimed(self) -> int:
        """Requests in flight, and the connections accepted within the last pause that have not sent yet.

        Why the new ones: a client that connects sends its request at once, so a burst of connections
        counts before its bytes arrive; else the first worker awake took them all (16 : 0 at hey's start).
        Why only for a pause: one that stays silent (a spare pooled connection, a pre-connect) then waits in
        the poller without keeping the worker deaf to the connections behind it."""
        since = time.monotonic() - MAX_LISTENING_PAUSE_S
        new = 0
        for conn in reversed(self.pending_conns):            # in the order accepted
            if conn.timeout - self.cfg.keepalive < since:      # (accepted at its timeout - keepalive)
                break
            new += 1
        return self.in_flight + new

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """While not listening, look again after a pause at most (the loop's own wait is 1 s)."""
        super().wait_for_and_dispatch_events(timeout if self._accepting else min(timeout, MAX_LISTENING_PAUSE_S))

    def set_accept_enabled(self, enabled: bool) -> None:
        """Listen while a thread is free. The run loop asks on every turn; a busy worker instead takes one waiting
        connection after each pause."""
        now = time.monotonic()
        if enabled and self.threads_claimed() >= self.cfg.threads:
            enabled = False
            if now - self.listening_paused_at >= MAX_LISTENING_PAUSE_S:
                self.listening_paused_at = now
                self._take_one_waiting()
        if not enabled and self._accepting:
            self.listening_paused_at = now
        super().set_accept_enabled(enabled)

    def _take_one_waiting(self) -> None:
        """One connection from a listener's queue, if one waits there (never blocks)."""
        for listener in self.sockets:
            listener.setblocking(False)
            before = self.nr_conns
            self.accept(listener)
            if self.nr_conns > before:
                return
