"""Feedback belongs to whoever got the card: only cards issued to the same client (issuer) by the same
service may be reported on, accepted suggestions must be that card's, batches are capped. A refusal stores
nothing and logs its reason."""
from __future__ import annotations

import threading
import time
import uuid

import pytest

from cds_service.client_identity import AUTH_OFF_ISSUER
from cds_service.feedback.card_log import CardLog
from cds_service.feedback.endpoint import MAX_FEEDBACK_ITEMS
from cds_service.feedback.store import FeedbackStore
from feedback_helpers import PV, SERVICES, accepted, card, feedback_app, issue, overridden, stored
from support import captured_logs

URL = f"/cds-services/{PV}/feedback"


def unknown(db):
    return [overridden()]


def of_another_client(db):
    items = [overridden()]
    issue(db, items, issuer="https://other-ehr.example.org")
    return items


def of_another_service(db):
    items = [overridden()]
    issue(db, items, service=SERVICES[1])
    return items


def foreign_suggestion(db):
    item = accepted(suggestions=[str(uuid.uuid4())])
    issue(db, [overridden(item["card"])])          # the card, issued without that suggestion
    return [item]


def one_good_one_unknown(db):
    good = overridden()
    issue(db, [good])
    return [good, overridden()]


def too_many(db):
    items = [overridden() for _ in range(MAX_FEEDBACK_ITEMS + 1)]
    issue(db, items)
    return items


@pytest.mark.parametrize("make_items, status, reason, expression", [
    (unknown, 404, "unknown-card", "feedback[0].card"),
    (of_another_client, 404, "card-of-another-client", "feedback[0].card"),
    (of_another_service, 404, "card-of-another-service", "feedback[0].card"),
    (foreign_suggestion, 400, "suggestion-not-on-card", "feedback[0].acceptedSuggestions[0].id"),
    (one_good_one_unknown, 404, "unknown-card", "feedback[1].card"),
    (too_many, 400, "batch-too-large", "feedback"),
])
def test_a_refused_batch_stores_nothing_and_logs_why(client, db, caplog, make_items, status, reason, expression):
    items = make_items(db)
    with captured_logs(caplog, "her2cds.feedback") as records:
        reply = client.post(URL, json={"feedback": items})
    assert reply.status_code == status
    outcome = reply.get_json()
    assert outcome["resourceType"] == "OperationOutcome" and outcome["issue"][0]["expression"] == [expression]
    assert stored(db) == []
    refusals = {(r.reason, r.status) for r in records if r.getMessage() == "feedback.rejected"}
    assert refusals == {(reason, status)}


def test_an_unknown_card_and_another_clients_card_get_the_same_answer(client, db):
    """No oracle: a caller cannot tell whether a card uuid exists for someone else."""
    mine_unknown, theirs = unknown(db)[0], of_another_client(db)[0]
    texts = [client.post(URL, json={"feedback": [item]}).get_json()["issue"][0]["details"]["text"]
             .replace(item["card"], "<card>") for item in (mine_unknown, theirs)]
    assert texts[0] == texts[1]


def test_feedback_for_a_card_issued_to_this_client_by_this_service_is_stored(client, db):
    issued = card("her2-next-regimen", suggestions=2)
    CardLog(db).record(PV, None, [issued], issuer=AUTH_OFF_ISSUER)
    item = accepted(issued["uuid"], suggestions=[issued["suggestions"][1]["uuid"]])
    assert client.post(URL, json={"feedback": [item]}).status_code == 200
    assert [r.card_uuid for r in stored(db)] == [issued["uuid"]]


def test_a_full_batch_is_accepted(client, db):
    items = [overridden() for _ in range(MAX_FEEDBACK_ITEMS)]
    issue(db, items)
    assert client.post(URL, json={"feedback": items}).status_code == 200
    assert len(stored(db)) == MAX_FEEDBACK_ITEMS


def test_feedback_right_after_the_hook_answer_finds_a_card_still_queued_in_this_process(db):
    card_log = CardLog(db)
    client = feedback_app(db, card_log=card_log, lookup_wait_seconds=0.0).test_client()
    issued = card("her2-next-regimen")
    card_log.record_later(PV, None, [issued])          # what the hook endpoint does; the writer may lag
    assert client.post(URL, json={"feedback": [overridden(issued["uuid"])]}).status_code == 200


def test_feedback_waits_for_a_card_another_worker_is_still_writing(db):
    client = feedback_app(db, lookup_wait_seconds=3.0).test_client()
    issued = card("her2-next-regimen")
    other_worker = threading.Timer(0.3, CardLog(db).record, args=(PV, None, [issued]))
    other_worker.start()
    started = time.monotonic()
    reply = client.post(URL, json={"feedback": [overridden(issued["uuid"])]})
    other_worker.join()
    assert reply.status_code == 200 and time.monotonic() - started < 3.0


def test_at_most_a_few_calls_wait_for_unknown_cards_at_once(db):
    store = FeedbackStore(db, max_waiting_lookups=1)
    holding = threading.Thread(target=store.issued_cards, args=(["nobody-issued-this-1"],), kwargs={"wait_seconds": 2.0})
    holding.start()
    time.sleep(0.5)          # the first lookup takes the slot (it then waits 2 s: the sleep costs the test nothing)
    started = time.monotonic()
    assert store.issued_cards(["nobody-issued-this-2"], wait_seconds=2.0) == {}
    assert time.monotonic() - started < 1.0           # the one waiting slot is taken: answered at once
    holding.join()
