"""The feedback endpoint inside the real app: cards are owned by the issuer of the hook call's token,
feedback right after the hook answer finds its card, and bad JSON is a 400 like on the hook endpoint."""
from __future__ import annotations

import jwt
import pytest
from sqlalchemy import select

from cds_service.client_identity import AUTH_OFF_ISSUER
from cds_service.storage import issued_cards_table
from service_helpers import CARD, PV, SELECT, full_prefetch, hook_body, log_events

FEEDBACK = f"/cds-services/{PV}/feedback"
pytestmark = pytest.mark.usefixtures("fake_evaluate")   # HTTP wiring: feedback on the one fixed card


def overridden(card_uuid: str = CARD["uuid"]) -> dict:
    return {"feedback": [{"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": "2026-12-01T10:05:31Z"}]}


class AcceptEverything:
    """Stands in for the JWT authenticator (its checks are tested in tests/unit/auth): every token passes."""

    def authenticate(self, request) -> None:
        return None

    def fhir_servers_for(self, iss) -> tuple[str, ...]:   # these calls name no fhirServer
        return ()


def bearer(iss: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + jwt.encode({"iss": iss}, "not-checked-here-by-this-stand-in-authenticator", algorithm="HS256")}


def test_feedback_sent_right_after_the_hook_answer_is_accepted(client):
    assert client.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch())).status_code == 200
    assert client.post(FEEDBACK, json=overridden()).status_code == 200


def test_cards_issued_with_auth_off_carry_the_fixed_marker(app, client):
    client.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch()))
    state = app.extensions["her2cds"]
    assert state.card_log.flush()
    with state.database.begin() as conn:
        assert conn.execute(select(issued_cards_table.c.issuer)).scalars().all() == [AUTH_OFF_ISSUER]


@pytest.mark.parametrize("feedback_iss, feedback_service, status", [
    ("https://ehr-a.example.org", PV, 200),
    ("https://ehr-b.example.org", PV, 404),       # another client: as if the card did not exist
    ("https://ehr-a.example.org", SELECT, 404),   # the same client, another service
])
def test_feedback_is_accepted_only_from_the_client_the_card_was_issued_to(app, logs, feedback_iss,
                                                                         feedback_service, status):
    app.extensions["her2cds"].authenticator = AcceptEverything()
    client = app.test_client()
    hook = client.post(f"/cds-services/{PV}", json=hook_body(fhir_server=None, prefetch=full_prefetch()),
                       headers=bearer("https://ehr-a.example.org"))
    assert hook.status_code == 200
    reply = client.post(f"/cds-services/{feedback_service}/feedback", json=overridden(),
                        headers=bearer(feedback_iss))
    assert reply.status_code == status
    if status != 200:
        [line] = log_events(logs, "feedback.rejected")
        assert line["reason"] in ("card-of-another-client", "card-of-another-service")
        assert line["issuer"] == feedback_iss


@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b"{\"feedback\": " + b"[" * 50_000])
def test_deeply_nested_or_broken_json_on_the_feedback_endpoint_is_a_400(client, raw):
    reply = client.post(FEEDBACK, data=raw, content_type="application/json")
    assert reply.status_code == 400
    assert reply.get_json()["resourceType"] == "OperationOutcome"
