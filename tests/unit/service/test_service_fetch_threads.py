"""The FHIR reads of a hook call run on the process's fetch threads (issue 15): kept between calls, at most
HER2CDS_FHIR_MAX_WORKERS at once per call, no more threads than the process has FHIR read slots, and started
anew in a forked process."""
from __future__ import annotations

import json
import os
import re
import threading
import time

import responses

from cds_service import fhir_client as fc
from service_helpers import FHIR, PV, hook_body, searchset


def call(client):
    return client.post(f"/cds-services/{PV}", data=json.dumps(hook_body(fhir_server=FHIR)),
                       content_type="application/json")


def serve_slowly(rsps: responses.RequestsMock, seconds: float, seen_threads: set[threading.Thread],
                 in_flight: list[int], peak: list[int]) -> None:
    lock = threading.Lock()

    def answer(request):
        with lock:
            seen_threads.add(threading.current_thread())
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(seconds)
        with lock:
            in_flight[0] -= 1
        if "/Patient/" in request.url:
            return 200, {}, json.dumps({"resourceType": "Patient", "id": "p1"})
        return 200, {}, json.dumps(searchset([]))

    rsps.add_callback(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), callback=answer)


def test_a_hook_call_reads_at_most_fhir_max_workers_queries_at_once(client_for, fhir):
    seen, in_flight, peak = set(), [0], [0]
    serve_slowly(fhir, 0.05, seen, in_flight, peak)
    response = call(client_for(FHIR, fhir_max_workers=3))
    assert response.status_code == 200
    assert len(fhir.calls) == 9 and peak[0] == 3


def test_a_process_starts_no_more_fetch_threads_than_it_has_fhir_read_slots(client_for, fhir):
    seen, in_flight, peak = set(), [0], [0]
    serve_slowly(fhir, 0.01, seen, in_flight, peak)
    response = call(client_for(FHIR, fhir_max_workers=8, fhir_max_concurrent_reads=2))
    assert response.status_code == 200
    assert len(fhir.calls) == 9 and len(seen) <= 2


def test_the_fetch_threads_are_kept_from_one_hook_call_to_the_next(client_for, fhir):
    first, second, in_flight, peak = set(), set(), [0], [0]
    client = client_for(FHIR)
    serve_slowly(fhir, 0.01, first, in_flight, peak)
    assert call(client).status_code == 200
    fhir.reset()
    serve_slowly(fhir, 0.01, second, in_flight, peak)
    assert call(client).status_code == 200
    assert second & first      # reused (a thread still finishing its lane as the next call starts may add one)


def test_a_forked_process_starts_its_own_fetch_threads(monkeypatch):
    threads = fc.FetchThreads(max_threads=2)
    parent = threads.submit(threading.get_ident).result(timeout=5)
    monkeypatch.setattr(os, "getpid", lambda: -1)      # what a forked worker sees: another pid, no threads
    child = threads.submit(threading.get_ident).result(timeout=5)
    assert child != parent
