"""The prefetch decision table, paging, concurrency limits and the 412 policy (cds-hooks.md §1.4)."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from cds_service.gather import classify_prefetch
from cds_service.services import SERVICES
from service_helpers import (FHIR, PATIENT, PV, SEARCH_KEYS, closed_port, elapsed, full_prefetch, hook_body,
                             record_id, resource, searchset, serve_record)

QUERIES = {q.key: q for q in SERVICES[0].queries}
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}
BASIC = {"resourceType": "Basic", "id": "wrong", "code": {"text": "not what the template asked for"}}


def call(client, body):
    return client.post(f"/cds-services/{PV}", data=json.dumps(body), content_type="application/json")


# ---------------------------------------------------------------- the table, key by key (pure)

TABLE = [
    ("read answered", "patient", resource("Patient", PATIENT), "prefetch", None),
    ("search answered", "conditions", searchset([resource("Condition", "c1")]), "prefetch", None),
    ("empty search", "conditions", searchset([]), "prefetch", None),
    ("null", "patient", None, "prefetch-null", None),
    ("OperationOutcome", "conditions", OUTCOME, "missing", "OperationOutcome"),
    ("wrong resource type", "conditions", BASIC, "missing", "wrong-type:Basic"),
    ("a Bundle for a read", "patient", searchset([]), "missing", "wrong-type:Bundle"),
    ("a resource for a search", "conditions", resource("Condition", "c1"), "missing", "wrong-type:Condition"),
    ("object without resourceType", "conditions", {"foo": 1}, "missing", "wrong-type:dict"),
]


@pytest.mark.parametrize("name,key,value,source,ignored", TABLE, ids=[t[0] for t in TABLE])
def test_decision_table_row(name, key, value, source, ignored):
    result = classify_prefetch(QUERIES[key], {key: value})
    assert (result.source, result.ignored) == (source, ignored)


def test_read_of_another_patient_is_ignored():
    other = resource("Patient", "someone-else")
    result = classify_prefetch(QUERIES["patient"], {"patient": other}, {"patientId": PATIENT})
    assert (result.source, result.ignored) == ("missing", "other-id")
    same = classify_prefetch(QUERIES["patient"], {"patient": resource("Patient", PATIENT)}, {"patientId": PATIENT})
    assert same.source == "prefetch"


def test_absent_key_is_missing():
    assert classify_prefetch(QUERIES["patient"], {}).source == "missing"


def test_search_outcome_entries_are_not_resources():
    bundle = searchset([resource("Condition", "c1"), OUTCOME])
    assert [r["resourceType"] for r in classify_prefetch(QUERIES["conditions"], {"conditions": bundle}).resources] \
        == ["Condition"]


# ---------------------------------------------------------------- the table through the endpoint


def test_full_prefetch_makes_no_fhir_call(client, evaluate, fhir):
    seen = serve_record(fhir)
    assert call(client, hook_body(prefetch=full_prefetch())).status_code == 200
    assert seen == []
    assert evaluate.resource_ids() == {"Patient/p1", *(f"{t}/{record_id(k)}" for k, t in SEARCH_KEYS.items())}


def test_full_prefetch_without_fhir_server_is_answered(client, evaluate):
    assert call(client, hook_body(fhir_server=None, prefetch=full_prefetch())).status_code == 200


def test_null_keys_are_no_data_and_never_refetched(client, evaluate, fhir):
    seen = serve_record(fhir)
    response = call(client, hook_body(prefetch={k: None for k in QUERIES}))
    assert response.status_code == 200 and seen == []
    assert evaluate.record.resources == () and evaluate.record.gaps == ()


def test_missing_keys_are_fetched_with_the_template_queries(client, evaluate, fhir):
    seen = serve_record(fhir)
    assert call(client, hook_body()).status_code == 200
    assert len(seen) == len(QUERIES)
    assert "/fhir/Patient/p1" in [urlsplit(u).path for u in seen]
    issued = [(urlsplit(u).path.split("/")[2], parse_qs(urlsplit(u).query)) for u in seen]
    for key, rtype in SEARCH_KEYS.items():
        template_params = parse_qs(QUERIES[key].template.split("?", 1)[1].replace("{{context.patientId}}", PATIENT))
        assert (rtype, template_params) in issued
    assert len(evaluate.record.resources) == len(QUERIES)


def test_partial_prefetch_fetches_only_what_is_missing(client, evaluate, fhir):
    seen = serve_record(fhir)
    prefetch = full_prefetch()
    del prefetch["observations"]
    assert call(client, hook_body(prefetch=prefetch)).status_code == 200
    assert [urlsplit(u).path for u in seen] == ["/fhir/Observation"]


def test_operation_outcome_keys_are_fetched(client, evaluate, fhir):
    seen = serve_record(fhir)
    assert call(client, hook_body(prefetch={k: OUTCOME for k in QUERIES})).status_code == 200
    assert len(seen) == len(QUERIES) and len(evaluate.record.resources) == len(QUERIES)
    assert evaluate.record.gaps == ()


def test_wrong_type_keys_are_ignored_fetched_and_logged(client, evaluate, fhir, logs):
    serve_record(fhir)
    assert call(client, hook_body(prefetch={k: BASIC for k in QUERIES})).status_code == 200
    assert "Basic/wrong" not in evaluate.resource_ids()
    assert len(evaluate.record.resources) == len(QUERIES)
    (line,) = [json.loads(x) for x in logs.getvalue().splitlines() if '"hook.call"' in x]
    assert line["prefetch"]["ignored"] == {k: "wrong-type:Basic" for k in QUERIES}


def test_wrong_type_required_key_without_fhir_server_is_412(client, evaluate):
    prefetch = full_prefetch()
    prefetch["conditions"] = BASIC
    response = call(client, hook_body(fhir_server=None, prefetch=prefetch))
    assert response.status_code == 412
    assert "conditions" in response.get_json()["issue"][0]["details"]["text"]


def test_no_prefetch_and_no_fhir_server_is_412_outcome(client, evaluate):
    response = call(client, hook_body(fhir_server=None))
    assert response.status_code == 412 and response.mimetype == "application/json"
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert evaluate.calls == []


def test_missing_optional_key_without_fhir_server_is_a_named_gap(client, evaluate):
    prefetch = full_prefetch()
    del prefetch["medicationAdministrations"]
    assert call(client, hook_body(fhir_server=None, prefetch=prefetch)).status_code == 200
    (gap,) = evaluate.record.gaps
    assert gap.source == "medicationAdministrations" and "MedicationAdministration" in gap.problem


@pytest.mark.parametrize("status", [401, 403, 500, 503, 400])
def test_required_query_failing_is_412(client, evaluate, fhir, status):
    serve_record(fhir, status={"Condition": status})
    assert call(client, hook_body()).status_code == 412


@pytest.mark.parametrize("status", [401, 500])
def test_optional_query_failing_is_answered_with_a_gap(client, evaluate, fhir, status):
    serve_record(fhir, status={"MedicationAdministration": status})
    assert call(client, hook_body()).status_code == 200
    assert [g.source for g in evaluate.record.gaps] == ["medicationAdministrations"]


def test_patient_404_is_no_data_not_412(client, evaluate, fhir):
    serve_record(fhir, status={"Patient": 404})
    assert call(client, hook_body()).status_code == 200
    assert "Patient/p1" not in evaluate.resource_ids() and evaluate.record.gaps == ()


def test_resources_are_deduplicated_by_type_and_id(client, evaluate, fhir):
    prefetch = full_prefetch()
    twice = resource("MedicationRequest", "same")
    prefetch["medicationRequests"] = searchset([twice, twice, resource("MedicationRequest", "other")])
    assert call(client, hook_body(prefetch=prefetch)).status_code == 200
    ids = [r["id"] for r in evaluate.record.resources if r["resourceType"] == "MedicationRequest"]
    assert ids == ["same", "other"]


# ---------------------------------------------------------------- paging


def page_url(n: int) -> str:
    return f"{FHIR}/Condition?patient={PATIENT}&_count=1&_offset={n}"


def serve_condition_pages(rsps: responses.RequestsMock, pages: int) -> list[str]:
    seen: list[str] = []

    def callback(request):
        seen.append(request.url)
        n = int(parse_qs(urlsplit(request.url).query).get("_offset", ["0"])[0])
        nxt = page_url(n + 1) if n + 1 < pages else None
        return 200, {}, json.dumps(searchset([resource("Condition", f"c{n}")], nxt))

    rsps.add_callback(responses.GET, re.compile(re.escape(f"{FHIR}/Condition") + r"\?.*"), callback=callback)
    return seen


def test_paged_prefetch_is_followed_on_the_fhir_server(client, evaluate, fhir):
    seen = serve_condition_pages(fhir, pages=3)
    prefetch = full_prefetch()
    prefetch["conditions"] = searchset([resource("Condition", "c0")], page_url(1))
    assert call(client, hook_body(prefetch=prefetch)).status_code == 200
    assert len(seen) == 2
    assert {"Condition/c0", "Condition/c1", "Condition/c2"} <= evaluate.resource_ids()


def test_paged_fetch_follows_next_links(client, evaluate, fhir):
    serve_record(fhir)
    fhir.remove(responses.GET, re.compile(re.escape(f"{FHIR}/Condition") + r"([/?].*)?$"))
    seen = serve_condition_pages(fhir, pages=4)
    prefetch = full_prefetch()
    del prefetch["conditions"]
    assert call(client, hook_body(prefetch=prefetch)).status_code == 200
    assert len(seen) == 4 and {f"Condition/c{i}" for i in range(4)} <= evaluate.resource_ids()


def test_page_cap_stops_paging_and_names_the_gap(client, evaluate, fhir):
    seen = serve_condition_pages(fhir, pages=50)      # the test app caps at 5 pages per query
    prefetch = full_prefetch()
    prefetch["conditions"] = searchset([resource("Condition", "c0")], page_url(1))
    assert call(client, hook_body(prefetch=prefetch)).status_code == 200
    assert len(seen) == 4
    (gap,) = evaluate.record.gaps
    assert gap.source == "conditions" and "5 pages" in gap.problem


def test_paged_prefetch_of_a_required_key_without_fhir_server_is_412(client, evaluate):
    prefetch = full_prefetch()
    prefetch["conditions"] = searchset([resource("Condition", "c0")], page_url(1))
    assert call(client, hook_body(fhir_server=None, prefetch=prefetch)).status_code == 412


def test_next_link_to_another_server_is_not_followed(client, evaluate, fhir):
    fhir.add(responses.GET, re.compile(r"https://elsewhere\.example/.*"), json=searchset([]))
    prefetch = full_prefetch()
    prefetch["medicationAdministrations"] = searchset([], "https://elsewhere.example/steal?page=2")
    body = hook_body(prefetch=prefetch, fhirAuthorization={"access_token": "secret-token", "token_type": "Bearer"})
    assert call(client, body).status_code == 200
    assert all("elsewhere" not in c.request.url for c in fhir.calls)
    assert [g.source for g in evaluate.record.gaps] == ["medicationAdministrations"]


# ---------------------------------------------------------------- authorization towards the FHIR server


def test_fhir_authorization_is_sent_as_bearer(client, evaluate, fhir):
    serve_record(fhir)
    body = hook_body(fhirAuthorization={"access_token": "abc.def", "token_type": "Bearer", "expires_in": 30,
                                        "scope": "patient/*.read", "subject": "her2-cds"})
    assert call(client, body).status_code == 200
    assert {c.request.headers.get("Authorization") for c in fhir.calls} == {"Bearer abc.def"}


def test_no_authorization_header_without_fhir_authorization(client, evaluate, fhir):
    serve_record(fhir)
    assert call(client, hook_body()).status_code == 200
    assert all("Authorization" not in c.request.headers for c in fhir.calls)


# ---------------------------------------------------------------- unreachable, hanging, slow


def test_closed_port_is_412(client_for, evaluate):
    base = f"http://127.0.0.1:{closed_port()}/fhir"
    response, seconds = elapsed(lambda: call(client_for(base), hook_body(fhir_server=base)))
    assert response.status_code == 412 and seconds < 2


def test_server_that_never_answers_is_412_within_the_deadline(client_for, evaluate, hanging_server):
    base = hanging_server.base
    client = client_for(base)
    body = hook_body(fhir_server=base)
    response, seconds = elapsed(lambda: call(client, body))
    assert response.status_code == 412
    assert seconds < 1.0 + 0.5          # test app: 0.5 s per request, 1.0 s overall deadline


def test_slow_required_query_past_the_deadline_is_412(client, evaluate, fhir, settings_overrides):
    import time

    serve_record(fhir)

    def slow(request):
        time.sleep(1.3)                  # a mock ignores socket timeouts; this outlasts the 1.0 s deadline
        return 200, {}, json.dumps(searchset([]))

    fhir.remove(responses.GET, re.compile(re.escape(f"{FHIR}/Observation") + r"([/?].*)?$"))
    fhir.add_callback(responses.GET, re.compile(re.escape(f"{FHIR}/Observation") + r".*"), callback=slow)
    response, seconds = elapsed(lambda: call(client, hook_body()))
    assert response.status_code == 412 and seconds < 1.25
    assert "observations" in response.get_json()["issue"][0]["details"]["text"]


def test_queries_run_concurrently(client, evaluate, fhir):
    import time

    def slowish(request):
        time.sleep(0.2)
        rtype = urlsplit(request.url).path.split("/")[2]
        return 200, {}, json.dumps(resource("Patient", PATIENT) if rtype == "Patient" else searchset([]))

    fhir.add_callback(responses.GET, re.compile(re.escape(FHIR) + r"/.*"), callback=slowish)
    response, seconds = elapsed(lambda: call(client, hook_body()))
    assert response.status_code == 200
    assert seconds < 0.2 * len(QUERIES) / 2      # six 0.2 s queries sequentially would take 1.2 s


FILLED = [
    ("an id", "Patient/{{context.patientId}}", {"patientId": "p-1.a_b~"}, "Patient/p-1.a_b~"),
    ("characters a URL must escape", "Patient/{{context.patientId}}", {"patientId": "a b/é"}, "Patient/a%20b%2F%C3%A9"),
    ("numbers", "X?a={{context.n}}&b={{ context.f }}", {"n": 5, "f": 1.5}, "X?a=5&b=1.5"),
    ("a user token of the right type", "X?u={{userPractitionerId}}", {"userId": "Practitioner/u 1"}, "X?u=u%201"),
    ("a user token of another type", "X?u={{userPatientId}}", {"userId": "Practitioner/u1"}, None),
    ("a missing value", "Patient/{{context.patientId}}", {}, None),
    ("an empty value", "Patient/{{context.patientId}}", {"patientId": ""}, None),
    ("a boolean", "Patient/{{context.patientId}}", {"patientId": True}, None),
    ("an object", "Patient/{{context.patientId}}", {"patientId": {"id": "p"}}, None),
    ("an unknown token", "X?u={{unknown}}", {}, None),
    ("no token", "Metadata", {}, "Metadata"),
]


@pytest.mark.parametrize("name,template,context,filled", FILLED, ids=[f[0] for f in FILLED])
def test_prefetch_template_filling(name, template, context, filled):
    from cds_service.services import fill_template
    assert fill_template(template, context) == filled
