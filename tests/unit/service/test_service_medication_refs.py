"""Referenced Medication resources (issue 10): asked for with `_include`, kept when included, read by id
(batched) when still unresolved, and an unreadable one is a named data gap, never a 412."""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from cds_service import medication_refs
from cds_service.medication_refs import medication_id, medication_related, unresolved_medication_ids
from cds_service.services import SERVICES
from service_helpers import FHIR, PATIENT, PV, full_prefetch, hook_body, resource, searchset

QUERIES = {q.key: q for q in SERVICES[0].queries}


def call(client, body):
    return client.post(f"/cds-services/{PV}", data=json.dumps(body), content_type="application/json")


def order_naming(mid: str, rid: str = "mr-1", rtype: str = "MedicationRequest") -> dict:
    return {**resource(rtype, rid), "status": "completed", "medicationReference": {"reference": f"Medication/{mid}"}}


def medication(mid: str) -> dict:
    return {"resourceType": "Medication", "id": mid, "code": {"text": f"drug {mid}"}}


def prefetch_with_orders(*orders: dict, included: tuple[dict, ...] = ()) -> dict:
    prefetch = full_prefetch()
    entries = [{"resource": o, "search": {"mode": "match"}} for o in orders]
    entries += [{"resource": m, "search": {"mode": "include"}} for m in included]
    prefetch["medicationRequests"] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return prefetch


def serve_medications(rsps: responses.RequestsMock, held: dict[str, dict], *, status: int = 200) -> list[str]:
    """A FHIR server answering `Medication?_id=` from `held` (or with `status`); returns the URLs asked."""
    seen: list[str] = []

    def search(request):
        seen.append(request.url)
        if status != 200:
            return status, {}, json.dumps({"resourceType": "OperationOutcome", "issue": []})
        ids = parse_qs(urlsplit(request.url).query)["_id"][0].split(",")
        return 200, {}, json.dumps(searchset([held[i] for i in ids if i in held]))

    def read(request):
        seen.append(request.url)
        mid = urlsplit(request.url).path.rsplit("/", 1)[1]
        return (200, {}, json.dumps(held[mid])) if mid in held else (404, {}, "{}")

    rsps.add_callback(responses.GET, re.compile(re.escape(f"{FHIR}/Medication?") + ".*"), callback=search)
    rsps.add_callback(responses.GET, re.compile(re.escape(f"{FHIR}/Medication/") + ".*"), callback=read)
    return seen


# ---------------------------------------------------------------- templates


@pytest.mark.parametrize("key,rtype", [("medicationRequests", "MedicationRequest"),
                                       ("medicationStatements", "MedicationStatement"),
                                       ("medicationAdministrations", "MedicationAdministration")])
def test_medication_templates_include_the_referenced_medication(key, rtype):
    params = parse_qs(QUERIES[key].template.split("?", 1)[1])
    assert params["_include"] == [f"{rtype}:medication"]


def test_component_template_searches_component_code_for_the_codes_the_mapping_reads():
    components = parse_qs(QUERIES["observationComponents"].template.split("?", 1)[1])
    plain = parse_qs(QUERIES["observations"].template.split("?", 1)[1])
    assert components["component-code"] == plain["code"]
    assert "http://loinc.org|10230-1" in components["component-code"][0].split(",")   # LVEF
    assert QUERIES["observationComponents"].required is False


def test_component_search_the_server_rejects_is_a_named_gap_not_a_412(client, evaluate, fhir):
    fhir.add(responses.GET, re.compile(re.escape(f"{FHIR}/Observation?") + ".*component-code=.*"), status=400,
             json={"resourceType": "OperationOutcome", "issue": []})
    prefetch = full_prefetch()
    del prefetch["observationComponents"]
    assert call(client, hook_body(prefetch=prefetch)).status_code == 200
    (gap,) = evaluate.record.gaps
    assert gap.source == "observationComponents" and "inside panels" in gap.problem


# ---------------------------------------------------------------- which references are unresolved (pure)


@pytest.mark.parametrize("reference,expected", [
    ("Medication/abc", "abc"),
    ("Medication/abc/_history/2", "abc"),
    (f"{FHIR}/Medication/abc", "abc"),
    ("https://elsewhere.example/fhir/Medication/abc", None),    # another server: never ours to read
    ("#med1", None),                                            # contained: resolved by the mapping
    ("urn:uuid:6f1a2c1e-0000-4000-8000-000000000001", None),
    ("Substance/abc", None),
    ("Medication/bad id", None),
    (None, None),
])
def test_medication_id_of_a_reference(reference, expected):
    assert medication_id(reference, FHIR) == expected


def test_unresolved_ids_skip_medications_already_in_the_record_and_repeat_once():
    resources = [order_naming("a"), order_naming("a", "mr-2"), order_naming("b", "ma-1", "MedicationAdministration"),
                 order_naming("c", "ms-1", "MedicationStatement"), medication("c"),
                 {**resource("Observation", "o1"), "medicationReference": {"reference": "Medication/x"}}]
    assert unresolved_medication_ids(resources, FHIR) == ("a", "b")


def test_medication_related_resources_are_those_unresolved_ids_read_in_order():
    record = [resource("Condition", "c1"), order_naming("a"), medication("m"), resource("Observation", "o1"),
              order_naming("b", "ma-1", "MedicationAdministration"), order_naming("a")]
    picked = medication_related(record)
    assert picked == [record[1], record[2], record[4], record[5]]
    assert unresolved_medication_ids(picked, FHIR) == unresolved_medication_ids(record, FHIR) == ("a", "b")


# ---------------------------------------------------------------- through the endpoint


def test_included_medications_in_a_prefetched_bundle_are_kept_and_not_refetched(client, evaluate, fhir):
    seen = serve_medications(fhir, {})
    body = hook_body(prefetch=prefetch_with_orders(order_naming("trast"), included=(medication("trast"),)))
    assert call(client, body).status_code == 200
    assert "Medication/trast" in evaluate.resource_ids() and seen == []
    assert evaluate.record.gaps == ()


def test_unresolved_medications_are_read_by_id_in_one_batch(client, evaluate, fhir):
    seen = serve_medications(fhir, {"a": medication("a"), "b": medication("b")})
    body = hook_body(prefetch=prefetch_with_orders(order_naming("a"), order_naming("b", "mr-2")))
    assert call(client, body).status_code == 200
    assert len(seen) == 1 and parse_qs(urlsplit(seen[0]).query)["_id"] == ["a,b"]
    assert {"Medication/a", "Medication/b"} <= evaluate.resource_ids()
    assert evaluate.record.gaps == ()


def test_many_unresolved_medications_are_read_in_batches(client, evaluate, fhir):
    ids = [f"m{i}" for i in range(medication_refs.BATCH_SIZE + 3)]
    seen = serve_medications(fhir, {i: medication(i) for i in ids})
    orders = [order_naming(mid, f"mr-{mid}") for mid in ids]
    assert call(client, hook_body(prefetch=prefetch_with_orders(*orders))).status_code == 200
    assert len(seen) == 2
    assert {f"Medication/{i}" for i in ids} <= evaluate.resource_ids()


def test_a_server_refusing_the_id_search_is_asked_by_reads(client, evaluate, fhir):
    seen: list[str] = []
    fhir.add(responses.GET, re.compile(re.escape(f"{FHIR}/Medication?") + ".*"), status=400, json={})
    fhir.add_callback(responses.GET, f"{FHIR}/Medication/a",
                      callback=lambda r: (seen.append(r.url), (200, {}, json.dumps(medication("a"))))[1])
    assert call(client, hook_body(prefetch=prefetch_with_orders(order_naming("a")))).status_code == 200
    assert "Medication/a" in evaluate.resource_ids() and len(seen) == 1


@pytest.mark.parametrize("status", [500, 401, 403])
def test_an_unreadable_medication_is_a_named_gap_not_a_412(client, evaluate, fhir, status):
    serve_medications(fhir, {}, status=status)
    response = call(client, hook_body(prefetch=prefetch_with_orders(order_naming("a"))))
    assert response.status_code == 200
    (gap,) = evaluate.record.gaps
    assert gap.source == "referencedMedications" and "Medication resources named by medication orders" in gap.problem


def test_a_medication_the_server_does_not_hold_is_left_for_the_mapping_to_name_once(client, evaluate, fhir):
    """The mapping names the order whose Medication is missing (with its date); a count-only gap from the
    lookup as well named the same Medication twice on the cards."""
    seen = serve_medications(fhir, {})
    assert call(client, hook_body(prefetch=prefetch_with_orders(order_naming("gone")))).status_code == 200
    assert len(seen) == 1 and evaluate.record.gaps == ()
    assert "Medication/gone" not in evaluate.resource_ids()


def drafts_call(client, drafts: list[dict], extra: tuple[dict, ...] = ()):
    body = hook_body("order-sign", prefetch=full_prefetch(), drafts=drafts)
    body["context"]["draftOrders"]["entry"] += [{"resource": r} for r in extra]
    return client.post("/cds-services/her2-order-sign", data=json.dumps(body), content_type="application/json")


def draft_naming(mid: str, rid: str = "d-1") -> dict:
    return {**resource("MedicationRequest", rid), "status": "draft", "intent": "order",
            "medicationReference": {"reference": f"Medication/{mid}"}}


def test_a_medication_a_draft_names_is_read_from_the_server(client, evaluate, fhir):
    seen = serve_medications(fhir, {"drafted": medication("drafted")})
    assert drafts_call(client, [draft_naming("drafted")]).status_code == 200
    assert len(seen) == 1 and parse_qs(urlsplit(seen[0]).query)["_id"] == ["drafted"]
    assert "Medication/drafted" in evaluate.resource_ids() and evaluate.record.gaps == ()


def test_a_medication_sent_with_the_drafts_is_not_read_again(client, evaluate, fhir):
    seen = serve_medications(fhir, {"drafted": medication("drafted")})
    assert drafts_call(client, [draft_naming("drafted")], extra=(medication("drafted"),)).status_code == 200
    assert seen == []


def test_without_a_fhir_server_an_unresolved_medication_is_a_named_gap(client, evaluate):
    body = hook_body(fhir_server=None, prefetch=prefetch_with_orders(order_naming("a")))
    assert call(client, body).status_code == 200
    (gap,) = evaluate.record.gaps
    assert gap.source == "referencedMedications" and "no fhirServer" in gap.problem


def test_only_the_medications_asked_for_are_kept(client, evaluate, fhir):
    fhir.add(responses.GET, re.compile(re.escape(f"{FHIR}/Medication?") + ".*"),
             json=searchset([medication("a"), medication("unasked")]))
    assert call(client, hook_body(prefetch=prefetch_with_orders(order_naming("a")))).status_code == 200
    assert "Medication/a" in evaluate.resource_ids() and "Medication/unasked" not in evaluate.resource_ids()


def test_the_medication_lookup_is_logged(client, evaluate, fhir, logs):
    serve_medications(fhir, {"a": medication("a")})
    assert call(client, hook_body(prefetch=prefetch_with_orders(order_naming("a")))).status_code == 200
    (line,) = [json.loads(x) for x in logs.getvalue().splitlines() if '"hook.call"' in x]
    assert "referencedMedications" in line["prefetch"]["misses"]
    assert PATIENT not in json.dumps(line["prefetch"])
