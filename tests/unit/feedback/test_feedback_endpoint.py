"""POST /cds-services/{id}/feedback: single and batched items stored once each, invalid bodies a 400 naming the field."""
from __future__ import annotations

import json
import uuid

import pytest

from cds_service.feedback.card_log import CardLog
from feedback_helpers import PV, SERVICES, accepted, card, issue, overridden, send, stored

URL = f"/cds-services/{PV}/feedback"


def post(client, body, **kwargs):
    """POST without issuing the cards first."""
    return client.post(URL, json=body, **kwargs)


def test_an_overridden_item_is_stored_with_its_reason_and_answered_200_with_an_empty_object(client, db):
    item = overridden(code="not-applicable", display="Not applicable", comment="already on it")
    reply = send(client, db, {"feedback": [item]})
    assert reply.status_code == 200
    assert reply.get_json() == {}
    [row] = stored(db)
    assert (row.service_id, row.card_uuid, row.outcome) == (PV, item["card"], "overridden")
    assert (row.reason_code, row.reason_system, row.reason_display, row.user_comment) == (
        "not-applicable", "https://example.org/override-reason", "Not applicable", "already on it")
    assert row.outcome_timestamp == item["outcomeTimestamp"]
    assert row.received_at.endswith("Z")
    assert row.accepted_suggestions is None
    assert row.topic_code == "her2-next-regimen" and row.hook_instance is None


def test_an_accepted_item_is_stored_with_its_accepted_suggestion_ids(client, db):
    suggestion_ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    assert send(client, db, {"feedback": [accepted(suggestions=suggestion_ids)]}).status_code == 200
    [row] = stored(db)
    assert row.outcome == "accepted"
    assert json.loads(row.accepted_suggestions) == suggestion_ids


def test_an_override_reason_without_display_as_the_sandbox_sends_it_is_accepted(client, db):
    assert send(client, db, {"feedback": [overridden(comment=None)]}).status_code == 200
    assert stored(db)[0].reason_display is None


def test_an_overridden_item_without_any_override_reason_is_accepted(client, db):
    assert send(client, db, {"feedback": [overridden(code=None, comment=None)]}).status_code == 200
    assert stored(db)[0].reason_code is None


def test_a_batch_stores_every_item(client, db):
    items = [overridden(), accepted(), overridden(), accepted()]
    assert send(client, db, {"feedback": items}).status_code == 200
    assert [r.card_uuid for r in stored(db)] == [i["card"] for i in items]


def test_the_same_item_sent_twice_is_stored_once_and_both_requests_get_200(client, db):
    body = {"feedback": [overridden(), accepted()]}
    assert send(client, db, body).status_code == 200
    assert send(client, db, body).status_code == 200
    assert len(stored(db)) == 2


def test_a_duplicate_inside_one_batch_is_stored_once(client, db):
    item = overridden()
    assert send(client, db, {"feedback": [item, dict(item)]}).status_code == 200
    assert len(stored(db)) == 1


def test_the_same_instant_spelled_with_fractional_seconds_is_the_same_item(client, db):
    card_uuid = str(uuid.uuid4())
    send(client, db, {"feedback": [overridden(card_uuid, ts="2026-12-01T10:05:31Z")]})
    send(client, db, {"feedback": [overridden(card_uuid, ts="2026-12-01T10:05:31.000Z")]})
    assert len(stored(db)) == 1


@pytest.mark.parametrize("change", [
    {"outcomeTimestamp": "2026-12-01T11:00:00Z"},
    {"overrideReason": {"userComment": "a different comment"}},
])
def test_the_same_card_with_another_timestamp_or_reason_is_another_item(client, db, change):
    item = overridden()
    send(client, db, {"feedback": [item]})
    send(client, db, {"feedback": [{**item, **change}]})
    assert len(stored(db)) == 2


def test_a_top_level_hook_instance_is_stored(client, db):
    hook_instance = str(uuid.uuid4())
    assert send(client, db, {"hookInstance": hook_instance, "feedback": [overridden()]}).status_code == 200
    assert stored(db)[0].hook_instance == hook_instance


def test_the_topic_and_hook_instance_of_a_logged_card_are_stored_with_its_feedback(client, db):
    issued = card("anthracycline-her2-cardiotoxicity")
    hook_instance = str(uuid.uuid4())
    assert CardLog(db).record(PV, hook_instance, [issued, {"summary": "no uuid, not logged"}]) == 1
    send(client, db, {"feedback": [overridden(issued["uuid"].upper())]})
    [row] = stored(db)
    assert (row.topic_code, row.hook_instance) == ("anthracycline-her2-cardiotoxicity", hook_instance)
    assert row.card_uuid == issued["uuid"]


def test_an_unknown_service_is_404(client):
    reply = client.post("/cds-services/no-such-service/feedback", json={"feedback": [overridden()]})
    assert reply.status_code == 404
    assert reply.get_json()["resourceType"] == "OperationOutcome"


def test_a_body_that_is_not_json_is_400(client):
    reply = client.post(URL, data=b"{not json", content_type="application/json")
    assert reply.status_code == 400


def test_a_body_that_is_not_sent_as_json_is_415(client):
    assert client.post(URL, data=b"feedback", content_type="text/plain").status_code == 415


@pytest.mark.parametrize("body, field", [
    ([], "(body)"),
    ({}, "feedback"),
    ({"feedback": {}}, "feedback"),
    ({"feedback": []}, "feedback"),
    ({"feedback": [{"outcome": "overridden", "outcomeTimestamp": "2026-12-01T10:05:31Z"}]}, "feedback[0].card"),
    ({"feedback": [{**overridden(), "card": "not-a-uuid"}]}, "feedback[0].card"),
    ({"feedback": [{**overridden(), "outcome": "ignored"}]}, "feedback[0].outcome"),
    ({"feedback": [{k: v for k, v in overridden().items() if k != "outcomeTimestamp"}]},
     "feedback[0].outcomeTimestamp"),
    ({"feedback": [{**overridden(), "outcomeTimestamp": "2026-12-01 10:05"}]}, "feedback[0].outcomeTimestamp"),
    ({"feedback": [overridden(), {k: v for k, v in accepted().items() if k != "acceptedSuggestions"}]},
     "feedback[1].acceptedSuggestions"),
    ({"feedback": [{**accepted(), "acceptedSuggestions": [{"id": "x"}]}]}, "feedback[0].acceptedSuggestions[0].id"),
    ({"feedback": [{**overridden(), "overrideReason": {}}]}, "feedback[0].overrideReason"),
    ({"feedback": [{**overridden(), "overrideReason": {"reason": {"display": "no code"}}}]},
     "feedback[0].overrideReason.reason.code"),
    ({"feedback": [{**overridden(), "overrideReason": {"code": "old-2019-shape"}}]}, "feedback[0].overrideReason"),
    ({"feedback": [overridden()], "cards": []}, "(body)"),
])
def test_an_invalid_feedback_body_is_400_naming_the_field(client, db, body, field):
    reply = post(client, body)
    assert reply.status_code == 400
    outcome = reply.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    issue = outcome["issue"][0]
    assert issue.get("expression", ["(body)"]) == [field]
    assert field in issue["details"]["text"]
    assert stored(db) == []
