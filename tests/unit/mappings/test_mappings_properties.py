"""Property-based: no input shape makes the mapper raise; what it cannot read is a reported skip."""
from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.synthetic import large_record
from fhir_mappings import map_draft_orders, summarize
from fhir_mappings import model as m

AS_OF = dt.date(2026, 6, 1)
TYPES = ["Condition", "Observation", "MedicationStatement", "MedicationRequest", "MedicationAdministration",
         "Procedure", "Medication", "Patient", "Bundle", "MedicationOrder", "Encounter", ""]
CODES = ["C50.912", "C78.7", "C79.31", "C77.3", "J84.9", "J70.4", "I50.32", "I42.7", "Z17.31", "48676-1",
         "85319-2", "85318-4", "49683-6", "42914-2", "10230-1", "417181009", "224905", "2382605", "1658086",
         "2267574", "101306", "94225005", "LA6576-8", "LA6577-6", "10828004", "260385009", "363676003",
         "373808002", "266721009", "21908-9", "IV", "cM1", "999999", ""]
SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm",
           "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc", "", "urn:x"]
DATES = ["2026-05-01", "2025-13-45", "2026", "2026-02", "2026-01-01T10:00:00+05:00", "yesterday", "", "9999-12-31"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.sampled_from(DATES + CODES), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=12)
codings = st.fixed_dictionaries({}, optional={"system": st.one_of(st.sampled_from(SYSTEMS), json_values),
                                              "code": st.one_of(st.sampled_from(CODES), json_values),
                                              "display": st.one_of(st.sampled_from(["Positive", "greater than 2.2", "3+",
                                                                                    "Trastuzumab Injection [KADCYLA]",
                                                                                    "stage IV"]), json_values)})
concepts = st.one_of(st.fixed_dictionaries({}, optional={"coding": st.one_of(st.lists(codings, max_size=3), json_values),
                                                         "text": st.one_of(st.text(max_size=20), json_values)}),
                     json_values)
refs = st.one_of(st.fixed_dictionaries({"reference": st.sampled_from(
    ["Patient/p1", "Patient/other", "http://x/fhir/Patient/p1", "urn:uuid:1", "#m", "Medication/m", "Condition/c", ""])}),
    json_values)
dates_or_junk = st.one_of(st.sampled_from(DATES), json_values)
periods = st.one_of(st.fixed_dictionaries({}, optional={"start": dates_or_junk, "end": dates_or_junk}), json_values)
quantity = st.one_of(st.fixed_dictionaries({}, optional={"value": st.one_of(st.floats(allow_nan=True), st.integers(),
                                                                            json_values),
                                                         "unit": st.sampled_from(["%", "score", ""]),
                                                         "comparator": st.sampled_from([">", "<", ""])}), json_values)
FIELDS = {
    "id": st.one_of(st.sampled_from(["a", "b", "c", "m", ""]), json_values),
    "status": st.one_of(st.sampled_from(["final", "active", "completed", "stopped", "entered-in-error", "draft"]),
                        json_values),
    "intent": st.one_of(st.sampled_from(["order", "proposal", "plan"]), json_values),
    "subject": refs, "patient": refs, "code": concepts, "valueCodeableConcept": concepts, "valueQuantity": quantity,
    "valueString": st.one_of(st.sampled_from(["greater than 2.2", "3+", "55-60%", "Negative"]), json_values),
    "valueInteger": json_values, "valueRange": json_values,
    "effectiveDateTime": dates_or_junk, "effectivePeriod": periods, "onsetDateTime": dates_or_junk,
    "onsetPeriod": periods, "recordedDate": dates_or_junk, "authoredOn": dates_or_junk, "issued": dates_or_junk,
    "performedDateTime": dates_or_junk, "clinicalStatus": concepts, "verificationStatus": concepts,
    "medicationCodeableConcept": concepts, "medicationReference": refs, "statusReason": st.one_of(concepts, st.lists(concepts)),
    "extension": st.one_of(st.lists(st.fixed_dictionaries({"url": st.sampled_from([
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-procedure-intent",
        "http://hl7.org/fhir/StructureDefinition/condition-related"])}, optional={
        "valueCodeableConcept": concepts, "valueReference": refs}), max_size=2), json_values),
    "dosageInstruction": st.one_of(st.lists(st.fixed_dictionaries({}, optional={"timing": st.one_of(
        st.fixed_dictionaries({}, optional={"repeat": st.one_of(st.fixed_dictionaries({}, optional={
            "boundsPeriod": periods, "boundsDuration": quantity, "count": json_values, "period": json_values,
            "periodUnit": st.sampled_from(["d", "wk", "mo", "x"])}), json_values), "event": json_values}),
        json_values)}), max_size=2), json_values),
    "component": st.one_of(st.lists(st.fixed_dictionaries({}, optional={"code": concepts, "valueQuantity": quantity,
                                                                        "valueCodeableConcept": concepts}), max_size=2),
                           json_values),
    "stage": json_values, "bodySite": st.one_of(st.lists(concepts, max_size=2), json_values),
    "contained": st.one_of(st.lists(st.fixed_dictionaries({"resourceType": st.just("Medication"), "id": st.just("m")},
                                                          optional={"code": concepts, "ingredient": json_values}),
                                    max_size=1), json_values),
    "dispenseRequest": json_values, "focus": json_values, "meta": json_values, "entry": json_values,
}
resources = st.builds(lambda rtype, fields: {"resourceType": rtype, **fields}, st.sampled_from(TYPES),
                      st.fixed_dictionaries({}, optional=FIELDS))
records = st.lists(st.one_of(resources, json_values), max_size=12)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records)
def test_summarize_never_raises_on_any_record_shape(record):
    s = summarize(record, "p1", AS_OF)
    assert isinstance(s, m.PatientSummary)
    assert all(isinstance(i, m.RecordIssue) for i in s.skipped + s.unmapped)


@settings(max_examples=50, deadline=None)
@given(json_values)
def test_summarize_never_raises_on_arbitrary_json(value):
    assert isinstance(summarize(value, "p1", AS_OF), m.PatientSummary)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(records, resources, json_values,
                 st.builds(lambda es: {"resourceType": "Bundle", "entry": es},
                           st.lists(st.one_of(st.builds(lambda r: {"resource": r}, resources), json_values), max_size=5))),
       st.one_of(st.none(), st.lists(st.one_of(st.sampled_from(["MedicationRequest/a", "a", ""]), json_values)),
                 json_values))
def test_map_draft_orders_never_raises(draft_orders, selections):
    drafts, issues = map_draft_orders(draft_orders, selections)
    assert all(isinstance(d, m.DraftOrder) for d in drafts)
    assert all(isinstance(i, m.RecordIssue) for i in issues)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(resources, min_size=1, max_size=5), st.integers(1, 40))
def test_repeated_resources_map_like_a_single_copy(record, copies):
    record = [dict(r, id=f"r{i}", resourceType=r["resourceType"] or "Observation") for i, r in enumerate(record)]
    once = summarize(record, "p1", AS_OF)
    many = summarize(record * copies, "p1", AS_OF)
    assert once == many


def test_a_huge_history_maps_without_issues():
    s = summarize(large_record(5000, 1000, "bench-pat", today=AS_OF), "bench-pat", AS_OF)
    assert s.her2.status == m.ReceptorStatus.POSITIVE and s.metastatic.metastatic
    assert s.therapy.metastatic_lines == 2 and len(s.lvef.measurements) > 10
    assert s.skipped == () and all("roll-up table" in i.problem for i in s.unmapped)
