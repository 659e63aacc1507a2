"""The serve worker listens for new connections only while one of its threads is free; a busy one takes one
waiting connection after each short pause (cds_service.gunicorn_worker)."""
from __future__ import annotations

import selectors
import socket
from concurrent.futures import Future
from unittest import mock

import pytest
from gunicorn.config import Config

from cds_service.gunicorn_worker import MAX_LISTENING_PAUSE_S, FreeThreadAcceptingWorker


class _HeldPool:
    """A thread pool whose requests stay in flight until the test ends them."""

    def __init__(self) -> None:
        self.futures: list[Future] = []

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self.futures.append(future)
        return future


@pytest.fixture
def worker():
    cfg = Config()
    cfg.set("threads", 2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    w = FreeThreadAcceptingWorker(0, 0, [listener], None, 30, cfg, mock.Mock())
    w.poller, w.tpool = selectors.DefaultSelector(), _HeldPool()
    w.method_queue.init()
    w.set_accept_enabled(True)
    yield w
    w.poller.close()
    w.method_queue.close()
    w.tmp.close()
    listener.close()


def _listening(w) -> bool:
    return any(key.fileobj is w.sockets[0] for key in w.poller.get_map().values())


def _end_request(w, index: int) -> None:
    w.tpool.futures[index].set_result(False)      # the thread is done; the connection closes
    w.method_queue.run_callbacks(None)             # what the main loop runs next: finish_request


def test_a_worker_with_a_free_thread_keeps_listening(worker):
    worker.enqueue_req(mock.Mock())
    assert worker.in_flight == 1 and _listening(worker)


def test_a_worker_whose_threads_are_all_busy_stops_listening(worker):
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    assert worker.in_flight == 2 and not _listening(worker)


def test_the_run_loop_cannot_resume_listening_while_every_thread_is_busy(worker):
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    worker.set_accept_enabled(True)                # as the run loop asks while it has room for connections
    assert not _listening(worker)


def _pause_has_lasted(w, seconds: float) -> None:
    w.listening_paused_at -= seconds


def _connect(w) -> socket.socket:
    """A client connected to the worker's listener: in the kernel's queue until a worker accepts it."""
    return socket.create_connection(w.sockets[0].getsockname())


def test_a_worker_busy_for_longer_than_the_pause_takes_a_connection_waiting_in_the_queue(worker):
    """Else a connection in the kernel's queue waits until the kept-alive clients' load ends (seconds)."""
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    client = _connect(worker)
    try:
        _pause_has_lasted(worker, MAX_LISTENING_PAUSE_S)
        worker.set_accept_enabled(True)            # the run loop's next turn
        assert worker.in_flight == 2 and len(worker.pending_conns) == 1 and not _listening(worker)
    finally:
        client.close()


def test_a_busy_worker_does_not_listen_after_its_pause(worker):
    """Listening, it would race its free siblings for every new connection and queue the ones it won behind
    its busy threads (with 2 threads, two slow clients on one worker stalled new connections)."""
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    _pause_has_lasted(worker, MAX_LISTENING_PAUSE_S)
    worker.set_accept_enabled(True)                # nothing waits in the queue
    assert not worker.pending_conns and not _listening(worker)


def test_a_worker_busy_for_less_than_the_pause_stays_deaf(worker):
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    client = _connect(worker)
    try:
        _pause_has_lasted(worker, MAX_LISTENING_PAUSE_S / 2)
        worker.set_accept_enabled(True)
        assert not worker.pending_conns and not _listening(worker)
    finally:
        client.close()


def test_a_busy_worker_takes_one_waiting_connection_per_pause(worker):
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    clients = [_connect(worker), _connect(worker)]
    try:
        _pause_has_lasted(worker, MAX_LISTENING_PAUSE_S)
        worker.set_accept_enabled(True)
        worker.set_accept_enabled(True)            # the next turn, within the new pause
        assert len(worker.pending_conns) == 1 and not _listening(worker)
    finally:
        for client in clients:
            client.close()


def test_listening_resumes_once_a_request_ends(worker):
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    _end_request(worker, 0)
    worker.set_accept_enabled(True)                # the run loop's next turn
    assert worker.in_flight == 1 and _listening(worker)


def _connect_and_accept(w, send: bytes = b"") -> socket.socket:
    client = socket.create_connection(w.sockets[0].getsockname())
    if send:
        client.sendall(send)
    w.sockets[0].setblocking(True)
    w.accept(w.sockets[0])
    return client


def test_a_new_connection_waits_in_the_poller_not_on_a_thread(worker):
    client = _connect_and_accept(worker)
    try:
        assert worker.in_flight == 0 and not worker.tpool.futures
        assert len(worker.pending_conns) == 1 and worker.nr_conns == 1
        assert worker.pending_conns[0].sock in {key.fileobj for key in worker.poller.get_map().values()}
    finally:
        client.close()


def test_a_new_connection_goes_to_a_thread_once_it_has_sent_bytes(worker):
    client = _connect_and_accept(worker, b"GET /cds-services HTTP/1.1\r\n")
    try:
        for key, _ in worker.poller.select(timeout=2):
            key.data(key.fileobj)                  # what the main loop does with a readable socket
        assert worker.in_flight == 1 and len(worker.tpool.futures) == 1 and not worker.pending_conns
    finally:
        client.close()


@pytest.fixture
def two_new_connections(worker):
    """Two connections the worker has accepted (as many as its threads), neither of which has sent a byte."""
    clients = [_connect_and_accept(worker), _connect_and_accept(worker)]
    yield clients
    for client in clients:
        client.close()


def test_new_connections_count_against_the_threads_before_they_send(worker, two_new_connections):
    """Else the first worker awake takes a whole burst of new connections (16 : 0 at hey's start)."""
    worker.set_accept_enabled(True)                # the run loop's next turn
    assert worker.threads_claimed() == 2 and not _listening(worker)


def test_a_new_connection_closed_unused_gives_its_claim_back(worker, two_new_connections):
    worker.pending_conns[0].timeout = 0            # its keep-alive timeout has passed
    worker.murder_pending()
    worker.set_accept_enabled(True)
    assert worker.threads_claimed() == 1 and _listening(worker)


def test_a_new_connection_silent_for_longer_than_the_pause_stops_counting(worker, two_new_connections):
    """Else silent connections (a pool's spares, pre-connects) keep a worker deaf to the ones behind them."""
    for conn in worker.pending_conns:
        conn.timeout -= MAX_LISTENING_PAUSE_S      # accepted a pause ago
    worker.set_accept_enabled(True)
    assert worker.threads_claimed() == 0 and len(worker.pending_conns) == 2 and _listening(worker)


def test_a_connection_that_never_sends_is_closed_after_the_keep_alive_timeout(worker):
    client = _connect_and_accept(worker)
    try:
        worker.pending_conns[0].timeout = 0        # its keep-alive timeout has passed
        worker.murder_pending()
        assert not worker.pending_conns and worker.nr_conns == 0
    finally:
        client.close()
