"""FHIR R4 resources -> typed clinical facts (`fhir_mappings.model`). Pure functions: no HTTP here.

Public API (implemented in the submodules):
- `summarize(resources, patient_id, as_of) -> PatientSummary`
- `map_draft_orders(draft_orders, selections) -> tuple[list[DraftOrder], list[RecordIssue]]`
"""
