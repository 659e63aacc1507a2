"""What a hook call leaves behind and what it costs the cycle collector (issue 15): the record is freed once the
answer is sent (when the server closes the response), and a large body's call runs with the collector paused,
resumed afterwards whatever the outcome."""
from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest
from flask import Response

from cds_service import hooks, pipeline
from cds_service.collector_pause import CollectorPause
from service_helpers import PV, RECORD_PATIENT, hook_body, prefetch_for, synthetic_record


@pytest.fixture
def collector_running() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    gc.enable() if was else gc.disable()


def record_call() -> dict:
    return hook_body(patient=RECORD_PATIENT, fhir_server=None,
                     prefetch=prefetch_for(synthetic_record(), RECORD_PATIENT))


def test_a_hook_call_leaves_no_resource_of_the_record_to_the_cycle_collector(client):
    body = record_call()
    client.post(f"/cds-services/{PV}", json=body)          # warm-up: imports, caches
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert client.post(f"/cds-services/{PV}", json=body).status_code == 200
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, dict) and "resourceType" in o]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


def test_a_large_body_is_evaluated_with_the_collector_paused_and_resumed_after(client, monkeypatch,
                                                                                 collector_running):
    seen: list[bool] = []
    real = pipeline.evaluate
    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
    monkeypatch.setattr(hooks, "LARGE_BODY_BYTES", 1)
    assert client.post(f"/cds-services/{PV}", json=record_call()).status_code == 200
    assert seen == [False]
    assert gc.isenabled()


def test_a_small_body_leaves_the_collector_alone(client, monkeypatch, collector_running):
    seen: list[bool] = []
    real = pipeline.evaluate
    monkeypatch.setattr(pipeline, "evaluate", lambda *a, **k: (seen.append(gc.isenabled()), real(*a, **k))[1])
    assert client.post(f"/cds-services/{PV}", json=record_call()).status_code == 200
    assert seen == [True]


@pytest.mark.parametrize("body", [b'{"hook": "patient-view"', b'{"hook": "patient-view"}'],
                         ids=["not JSON", "fails the schema"])
def test_a_refused_large_body_resumes_the_collector(client, monkeypatch, collector_running, body):
    monkeypatch.setattr(hooks, "LARGE_BODY_BYTES", 1)
    assert client.post(f"/cds-services/{PV}", data=body, content_type="application/json").status_code == 400
    assert gc.isenabled()


def test_overlapping_holds_resume_the_collector_when_the_last_one_ends(collector_running):
    pause = CollectorPause()
    pause.hold()
    pause.hold()
    pause.release()
    assert not gc.isenabled()
    pause.release()
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off(collector_running):
    gc.disable()
    pause = CollectorPause()
    pause.hold()
    pause.release()
    assert not gc.isenabled()


def test_a_large_body_keeps_the_collector_paused_until_its_answer_is_closed(client, monkeypatch,
                                                                             collector_running):
    monkeypatch.setattr(hooks, "LARGE_BODY_BYTES", 1)
    response = client.post(f"/cds-services/{PV}", json=record_call())
    assert response.status_code == 200 and not gc.isenabled()     # the record is freed after the answer is sent
    response.close()
    assert gc.isenabled()


def test_the_call_s_objects_are_released_when_the_answer_is_closed():
    held = [{"resourceType": "Observation"}, object()]
    response = hooks._freed_after_sending(Response("{}"), None, held, large=False)
    assert held
    response.close()
    assert held == []


def test_a_worker_answering_with_draft_orders_never_loads_the_fhir_models():
    """fhir.resources checks the knowledge's draft orders in the tests and `check-config`; in a worker its
    pydantic models cost about 12 MB of memory for a check that could only repeat the tests' answer."""
    script = textwrap.dedent("""
        import json, sys, tempfile
        from cds_service import create_app
        from service_helpers import PV, RECORD_PATIENT, hook_body, prefetch_for, synthetic_record
        app = create_app({"auth_mode": "off", "feedback_db_url": f"sqlite:///{tempfile.mkdtemp()}/f.sqlite3"})
        body = hook_body(patient=RECORD_PATIENT, fhir_server=None,
                         prefetch=prefetch_for(synthetic_record(), RECORD_PATIENT))
        reply = app.test_client().post(f"/cds-services/{PV}", json=body)
        creates = [a for c in reply.get_json()["cards"] for s in c.get("suggestions", []) for a in s["actions"]
                   if a["type"] == "create"]
        loaded = sorted({m for m in sys.modules if m.startswith(("fhir.resources", "pydantic"))})
        print(json.dumps({"status": reply.status_code, "creates": len(creates), "loaded": loaded}))
    """)
    here = Path(__file__).resolve()
    paths = [str(here.parent), str(here.parents[2]), str(here.parents[3])]     # service helpers, tests, repository
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": ":".join(paths), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["status"] == 200 and seen["creates"] > 0      # draft orders were rendered
    assert seen["loaded"] == []
