"""`map_draft_orders`: the hook context's `draftOrders` -> `DraftOrder`s, leniently.

The CDS Hooks sandbox and real EHRs send Bundles without `type`, MedicationRequests without `intent`
and `category` as an object; a single resource or a bare list is accepted too. DSTU2 `MedicationOrder`
is reported as an issue (the service speaks R4), never a crash. `selections` None means every draft is
selected; otherwise a draft is selected when its "MedicationRequest/<id>" is listed (absolute URLs and
`_history` suffixes are tolerated).

A draft naming its drug by `medicationReference` is resolved against the Medication resources sent in
the same `draftOrders` Bundle (Epic sends them there; by id, "Medication/<id>", or the entry's
`fullUrl`), then against Medications gathered with the record. A draft that still cannot be identified
is reported, never silently ignored; when its ATC group or name stem says what class it probably is, it
carries that class and its known drugs (`probable_class`) so the rules can check it as each of them.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .draft_timing import planned_period
from .fhir_json import as_dict, as_list, as_str, ref_type_id
from .medications import resolve_medication
from .model import DraftOrder, RecordIssue
from .terminology import oncology_class_hint


def _bundled_medications(draft_orders: Any, known: Mapping[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Medication resources of the draftOrders Bundle keyed by id, "Medication/<id>" and fullUrl; then `known`."""
    index: dict[str, dict[str, Any]] = dict(known or {})
    entries = as_list(draft_orders.get("entry")) if isinstance(draft_orders, dict) else \
        [{"resource": r} for r in draft_orders] if isinstance(draft_orders, list) else []
    for e in entries:
        r = as_dict(e).get("resource") if isinstance(e, dict) and "resource" in e else e
        if not isinstance(r, dict) or r.get("resourceType") != "Medication":
            continue
        rid = as_str(r.get("id"))
        if rid:
            index[rid] = index[f"Medication/{rid}"] = r
        full_url = as_str(as_dict(e).get("fullUrl")).strip()
        if full_url:
            index[full_url] = r
    return index


def _resources(draft_orders: Any) -> list[Any]:
    if draft_orders is None:
        return []
    if isinstance(draft_orders, dict):
        if draft_orders.get("resourceType") == "Bundle" or "entry" in draft_orders:
            return [as_dict(e).get("resource") if isinstance(e, dict) and "resource" in e else e
                    for e in as_list(draft_orders.get("entry"))]
        return [draft_orders]
    if isinstance(draft_orders, list):
        return draft_orders
    return [draft_orders]


def _selection_keys(selections: Any) -> set[str] | None:
    if selections is None:
        return None
    keys: set[str] = set()
    for s in as_list(selections) if not isinstance(selections, str) else [selections]:
        tid = ref_type_id(s) if isinstance(s, str) else None
        if tid:
            keys.add(f"{tid[0]}/{tid[1]}")
    return keys


def map_draft_orders(draft_orders: Any, selections: Sequence[str] | None,
                     medications: Mapping[str, dict[str, Any]] | None = None) -> tuple[list[DraftOrder], list[RecordIssue]]:
    """Drafted medication orders with their canonical drugs; never raises.

    `medications`: Medication resources gathered with the record, by id (for drafts whose Medication
    was not sent in the draftOrders Bundle).
    """
    drafts: list[DraftOrder] = []
    issues: list[RecordIssue] = []
    try:
        keys = _selection_keys(selections)
        bundled = _bundled_medications(draft_orders, medications)
        for i, r in enumerate(_resources(draft_orders)):
            where = f"draftOrders[{i}]"
            try:
                if not isinstance(r, dict):
                    issues.append(RecordIssue(where, f"not a FHIR resource ({type(r).__name__})"))
                    continue
                rtype = as_str(r.get("resourceType"))
                rid = as_str(r.get("id")) or f"draft-{i}"
                if rtype == "MedicationOrder":
                    issues.append(RecordIssue(f"MedicationOrder/{rid}", "DSTU2 MedicationOrder is not supported "
                                                                         "(FHIR R4 MedicationRequest expected): not checked"))
                    continue
                if rtype == "Medication":
                    continue                      # the drug of a draft, resolved through `bundled`
                if rtype != "MedicationRequest":
                    if not rtype:
                        issues.append(RecordIssue(where, "draft order without resourceType: not checked"))
                    continue
                if as_str(r.get("status")).lower() == "entered-in-error":
                    continue
                resource_id = f"MedicationRequest/{rid}"
                m, reference_problem = resolve_medication(r, bundled)
                hint = oncology_class_hint(m) if not m.drugs else None
                if not m.drugs:                        # the hint goes first: cards clip long lines
                    what = f"probably {hint.what}, not identified (check by hand)" if hint else \
                        (m.display or ', '.join(m.unknown_codes) or 'no code')
                    issues.append(RecordIssue(resource_id, (reference_problem or "drafted medication not in the "
                                                            "RxNorm/ATC roll-up table") + f": {what}"))
                elif m.via == "name":
                    why = reference_problem or f"drafted medication code {', '.join(m.unknown_codes) or '(none)'} unknown"
                    issues.append(RecordIssue(resource_id, f"identified by name as {', '.join(d.name for d in m.drugs)} "
                                                           f"({why}): {m.display!r}", info=True))
                if m.display_conflict:
                    issues.append(RecordIssue(resource_id, "code/display conflict: " + m.display_conflict))
                start, end = planned_period(r)
                drafts.append(DraftOrder(resource_id=resource_id, drugs=m.drugs, display=m.display or resource_id,
                                         selected=keys is None or resource_id in keys, unmapped=not m.drugs,
                                         planned_start=start, planned_end=end,
                                         probable_class=hint))
            except Exception as exc:   # noqa: BLE001 - one odd draft must not hide the others
                issues.append(RecordIssue(where, f"draft order could not be read ({type(exc).__name__})"))
    except Exception as exc:   # noqa: BLE001
        issues.append(RecordIssue("draftOrders", f"could not be read ({type(exc).__name__})"))
    return drafts, issues
