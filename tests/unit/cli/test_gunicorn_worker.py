"""The serve worker listens for new connections only while one of its threads is free (cds_service.gunicorn_worker)."""
from __future__ import annotations

import selectors
import socket
from concurrent.futures import Future
from unittest import mock

import pytest
from gunicorn.config import Config

from cds_service.gunicorn_worker import FreeThreadAcceptingWorker


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


def test_listening_resumes_once_a_request_ends(worker):
    worker.enqueue_req(mock.Mock())
    worker.enqueue_req(mock.Mock())
    _end_request(worker, 0)
    worker.set_accept_enabled(True)                # the run loop's next turn
    assert worker.in_flight == 1 and _listening(worker)
