"""FHIR R4 resources -> typed clinical facts (`fhir_mappings.model`). Pure functions: no HTTP here.

Public API:
- `summarize(resources, patient_id, as_of) -> PatientSummary`
- `map_draft_orders(draft_orders, selections) -> tuple[list[DraftOrder], list[RecordIssue]]`
- `terminology.drugs_by_rxnorm(code) -> tuple[Drug, ...]`: the canonical ingredients of any known RxNorm code
- `RELEVANT_OBSERVATION_CODES`: every Observation code the mapping reads (receptors, serum HER2 - read
  only to exclude it -, LVEF, stage group / M category in LOINC and SNOMED), for FHIR search filters
"""
from .drafts import map_draft_orders
from .summary import RELEVANT_OBSERVATION_CODES, dedupe_resources, observation_search_tokens, summarize

__all__ = ["summarize", "map_draft_orders", "dedupe_resources", "RELEVANT_OBSERVATION_CODES", "observation_search_tokens"]
