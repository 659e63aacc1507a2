"""A Synthea-shaped record (urn-free, SNOMED conditions, per-cycle orders with only authoredOn, string ISH)."""
from __future__ import annotations

from fhir_mappings import model as m
from fhir_mappings.model import ReceptorStatus as S
from mappings_helpers import SNOMED, cc, condition, day, mr, observation, summary, surgery


def synthea_record():
    out = [
        condition(SNOMED, "254837009", "Malignant neoplasm of breast (disorder)", onset=900, id="bc"),
        condition(SNOMED, "126926005", "Neoplasm of breast (disorder)", onset=910),
        condition(SNOMED, "427685000", "Human epidermal growth factor 2 positive carcinoma of breast", onset=895),
        observation("85319-2", days=895, valueCodeableConcept=cc(SNOMED, "260385009", "Negative (qualifier value)")),
        observation("85318-4", days=893, valueString="greater than 2.2"),
        observation("85337-4", days=895, valueCodeableConcept=cc(SNOMED, "10828004", "Positive (qualifier value)")),
        observation("85339-0", days=895, valueCodeableConcept=cc(SNOMED, "10828004", "Positive (qualifier value)")),
        surgery(880, "Lumpectomy of breast (procedure)"),
    ]
    for cycle in range(6):                                   # one stopped order per 21-day cycle
        d = 860 - 21 * cycle
        out += [mr("1734919", status="stopped", authoredOn=f"{day(d).isoformat()}T09:00:00-05:00",
                   display="cyclophosphamide 1000 MG Injection"),
                mr("1790099", status="stopped", authoredOn=day(d).isoformat(), display="doxorubicin 2 MG/ML"),
                mr("2119714", status="stopped", authoredOn=day(d).isoformat(), display="Herceptin Hylecta")]
    out.append(mr("200064", status="active", authoredOn=day(700).isoformat(), display="letrozole 2.5 MG Oral Tablet"))
    return out


def test_synthea_like_her2_is_positive_by_ish_string_over_ihc_negative():
    her2 = summary(*synthea_record()).her2
    assert her2.status == S.POSITIVE and her2.method == "ISH" and her2.conflict


def test_synthea_like_conditions_give_breast_cancer_not_metastatic():
    s = summary(*synthea_record())
    assert s.breast_cancer.present and s.breast_cancer.onset == day(900) and not s.metastatic.metastatic


def test_synthea_like_cycles_group_into_one_adjuvant_regimen_and_anthracycline_with_trastuzumab():
    t = summary(*synthea_record()).therapy
    assert [(r.setting, set(r.rxnorm)) for r in t.regimens] == [
        (m.Setting.ADJUVANT, {"3002", m.RX_DOXORUBICIN, m.RX_TRASTUZUMAB}), (m.Setting.ADJUVANT, {"72965"})]
    assert t.last_trastuzumab_dose == day(860 - 105) and not t.trastuzumab_ongoing
    assert t.early_her2_end == day(755) and t.tfi_months is None
