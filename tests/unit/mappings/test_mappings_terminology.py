"""The RxNorm / ATC / name roll-up: every product CUI of clinical.md §4.2 reaches its canonical ingredient."""
from __future__ import annotations

import json

import pytest

from fhir_mappings import model as m
from fhir_mappings import terminology as t
from mappings_helpers import ATC, RXNORM, SNOMED

TRAS, PER, TDM1, TDXD = m.RX_TRASTUZUMAB, m.RX_PERTUZUMAB, m.RX_TDM1, m.RX_TDXD

ROLL_UP = [
    # (code, expected ingredient codes, what it is)
    ("224905", {TRAS}, "trastuzumab IN"),
    ("101306", {TRAS}, "Herceptin BN"),
    ("1922509", {TRAS}, "trastuzumab 150 MG Injection SCD"),
    ("2103478", {TRAS}, "trastuzumab-dkst"), ("2179754", {TRAS}, "Ogivri"),
    ("2107051", {TRAS}, "trastuzumab-pkrb"), ("2107054", {TRAS}, "Herzuma"),
    ("2174802", {TRAS}, "trastuzumab-anns"), ("2174805", {TRAS}, "Kanjinti"),
    ("2280730", {TRAS}, "trastuzumab-qyyp"), ("2280733", {TRAS}, "Trazimera"),
    ("2289225", {TRAS}, "trastuzumab-dttb"), ("2289228", {TRAS}, "Ontruzant"),
    ("2119713", {TRAS}, "hyaluronidase/trastuzumab"), ("2375543", {TRAS}, "trastuzumab-oysk"),
    ("2119715", {TRAS}, "Herceptin Hylecta"), ("2119714", {TRAS}, "Hylecta SCD (Synthea)"),
    ("1298944", {PER}, "pertuzumab"), ("2382597", {PER}, "pertuzumab-zzxf"), ("1298949", {PER}, "Perjeta"),
    ("1298948", {PER}, "pertuzumab SCD"),
    ("2382603", {PER, TRAS}, "Phesgo MIN"), ("2382605", {PER, TRAS}, "Phesgo BN"),
    ("2382604", {PER, TRAS}, "Phesgo 15 mL SCD"), ("2383305", {PER, TRAS}, "Phesgo 10 mL SCD"),
    ("2382599", {TRAS}, "trastuzumab-zzxf"),
    ("1371041", {TDM1}, "T-DM1 IN"), ("1371046", {TDM1}, "Kadcyla"), ("1658084", {TDM1}, "T-DM1 100 mg"),
    ("1658089", {TDM1}, "T-DM1 160 mg"), ("1658086", {TDM1}, "SBDG 'Trastuzumab Injection [KADCYLA]'"),
    ("2267574", {TDXD}, "T-DXd IN"), ("2267582", {TDXD}, "trastuzumab deruxtecan"), ("2267577", {TDXD}, "Enhertu"),
    ("2267576", {TDXD}, "T-DXd SCD"), ("2267581", {TDXD}, "Enhertu SBD"),
    ("2267579", {TDXD}, "SBDG 'Trastuzumab Injection [Enhertu]'"),
    ("2361285", {m.RX_TUCATINIB}, "tucatinib"), ("2361291", {m.RX_TUCATINIB}, "Tukysa"),
    ("2361290", {m.RX_TUCATINIB}, "tucatinib 150 mg"), ("2361298", {m.RX_TUCATINIB}, "tucatinib 50 mg"),
    ("480167", {m.RX_LAPATINIB}, "lapatinib"), ("481474", {m.RX_LAPATINIB}, "lapatinib ditosylate"),
    ("659616", {m.RX_LAPATINIB}, "Tykerb"), ("672149", {m.RX_LAPATINIB}, "lapatinib 250 mg"),
    ("1940643", {m.RX_NERATINIB}, "neratinib"), ("1940642", {m.RX_NERATINIB}, "neratinib maleate"),
    ("1940649", {m.RX_NERATINIB}, "Nerlynx"), ("1940648", {m.RX_NERATINIB}, "neratinib 40 mg"),
    ("194000", {m.RX_CAPECITABINE}, "capecitabine"), ("220961", {m.RX_CAPECITABINE}, "Xeloda"),
    ("1158877", {m.RX_CAPECITABINE}, "capecitabine Oral Product"),
    ("72962", {m.RX_DOCETAXEL}, "docetaxel"), ("56946", {m.RX_PACLITAXEL}, "paclitaxel"),
    ("583214", {m.RX_PACLITAXEL}, "paclitaxel SCD (Synthea)"), ("486610", {"486610"}, "nab-paclitaxel"),
    ("589511", {"486610"}, "Abraxane"), ("583218", {"486610"}, "Abraxane SBD"),
    ("40048", {"40048"}, "carboplatin"), ("597195", {"40048"}, "carboplatin SCD"),
    ("3639", {m.RX_DOXORUBICIN}, "doxorubicin"), ("1790099", {m.RX_DOXORUBICIN}, "doxorubicin SCD"),
    ("214525", {"214525"}, "liposomal doxorubicin"), ("80773", {"214525"}, "Doxil"),
    ("3995", {m.RX_EPIRUBICIN}, "epirubicin"), ("1732186", {m.RX_EPIRUBICIN}, "epirubicin SCD"),
    ("5650", {"5650"}, "idarubicin"), ("7005", {"7005"}, "mitoxantrone"),
    ("3002", {"3002"}, "cyclophosphamide"), ("1734919", {"3002"}, "cyclophosphamide SCD"),
    ("39541", {"39541"}, "vinorelbine"), ("1045453", {"1045453"}, "eribulin"), ("1045452", {"1045453"}, "eribulin mesylate"),
    ("12574", {"12574"}, "gemcitabine"),
    ("72965", {"72965"}, "letrozole"), ("200064", {"72965"}, "letrozole SCD"), ("203769", {"72965"}, "Femara"),
    ("84857", {"84857"}, "anastrozole"), ("199224", {"84857"}, "anastrozole SCD"), ("262485", {"84857"}, "Arimidex"),
    ("258494", {"258494"}, "exemestane"), ("310261", {"258494"}, "exemestane SCD"), ("262105", {"258494"}, "Aromasin"),
    ("10324", {"10324"}, "tamoxifen"), ("198240", {"10324"}, "tamoxifen SCD"),
    ("282357", {"282357"}, "fulvestrant"), ("727762", {"282357"}, "fulvestrant SCD"), ("203870", {"282357"}, "Faslodex"),
    ("1547545", {"1547545"}, "pembrolizumab"),
]


@pytest.mark.parametrize("code, expected, what", ROLL_UP, ids=[r[2] for r in ROLL_UP])
def test_every_listed_rxnorm_cui_rolls_up_to_its_canonical_ingredients(code, expected, what):
    assert {d.rxnorm for d in t.drugs_by_rxnorm(code)} == expected


@pytest.mark.parametrize("code, classes", [
    (TRAS, {m.HER2_ANTIBODY}), (PER, {m.HER2_ANTIBODY}), (TDM1, {m.HER2_ADC}), (TDXD, {m.HER2_ADC}),
    (m.RX_TUCATINIB, {m.HER2_TKI}), (m.RX_LAPATINIB, {m.HER2_TKI}), (m.RX_NERATINIB, {m.HER2_TKI}),
    (m.RX_DOCETAXEL, {m.TAXANE}), (m.RX_PACLITAXEL, {m.TAXANE}), (m.RX_DOXORUBICIN, {m.ANTHRACYCLINE}),
    (m.RX_EPIRUBICIN, {m.ANTHRACYCLINE}), ("40048", {m.PLATINUM}), (m.RX_CAPECITABINE, {m.FLUOROPYRIMIDINE}),
    ("72965", {m.ENDOCRINE}), ("1547545", {m.CHECKPOINT_INHIBITOR}), ("3002", {m.OTHER_CHEMO}),
])
def test_ingredients_carry_their_drug_classes(code, classes):
    assert t.INGREDIENTS[code].classes == classes


@pytest.mark.parametrize("code, unconjugated", [
    ("224905", True), ("2280733", True), ("2119714", True), ("2382605", True),   # biosimilar, SC, Phesgo (via trastuzumab)
    ("1371041", False), ("1658086", False), ("2267574", False), ("2267579", False), ("1298944", False)])
def test_only_unconjugated_trastuzumab_products_count_for_the_anthracycline_washout(code, unconjugated):
    assert any(d.unconjugated_trastuzumab for d in t.drugs_by_rxnorm(code)) is unconjugated


def test_contract_codes_are_canonical_ingredients():
    for code in (TRAS, PER, TDM1, TDXD, m.RX_TUCATINIB, m.RX_CAPECITABINE, m.RX_LAPATINIB, m.RX_NERATINIB,
                 m.RX_DOCETAXEL, m.RX_PACLITAXEL, m.RX_DOXORUBICIN, m.RX_EPIRUBICIN):
        assert [d.rxnorm for d in t.drugs_by_rxnorm(code)] == [code]


@pytest.mark.parametrize("code", ["999999", "", None, 224905])
def test_unknown_and_non_string_rxnorm_codes_give_no_drug(code):
    assert t.drugs_by_rxnorm(code) == ()


@pytest.mark.parametrize("code, expected", [
    ("L01FD01", {TRAS}), ("L01FD02", {PER}), ("L01FD03", {TDM1}), ("L01FD04", {TDXD}), ("L01FY01", {PER, TRAS}),
    ("L01EH03", {m.RX_TUCATINIB}), ("l01bc06", {m.RX_CAPECITABINE}), ("L01DB01", {m.RX_DOXORUBICIN}), ("L01XX99", set())])
def test_atc_codes_are_a_second_path(code, expected):
    assert {d.rxnorm for d in t.drugs_by_atc(code)} == expected


SYNONYMS = [
    ("Trastuzumab Injection [KADCYLA]", {TDM1}),
    ("Trastuzumab Injection [Enhertu]", {TDXD}),
    ("fam-trastuzumab deruxtecan-nxki", {TDXD}),
    ("ado-trastuzumab emtansine 100 MG", {TDM1}),
    ("T-DXd 5.4 mg/kg", {TDXD}),
    ("Herceptin", {TRAS}),
    ("Trazimera (trastuzumab-qyyp) every 21 days", {TRAS}),
    ("trastuzumab 150 MG Injection", {TRAS}),
    ("Phesgo", {PER, TRAS}),
    ("pertuzumab/trastuzumab/hyaluronidase", {PER, TRAS}),
    ("tucatinib + trastuzumab + capecitabine", {m.RX_TUCATINIB, TRAS, m.RX_CAPECITABINE}),
    ("liposomal doxorubicin", {"214525"}),
    ("trastuzumabs", set()),                     # whole words only: no substring matching
    ("antitrastuzumab", set()),
    ("ondansetron 8 mg", set()),
    ("", set()),
]


@pytest.mark.parametrize("text, expected", SYNONYMS, ids=[s[0] or "empty" for s in SYNONYMS])
def test_name_fallback_uses_the_explicit_synonym_list_with_adcs_before_trastuzumab(text, expected):
    assert {d.rxnorm for d in t.drugs_by_name(text)} == expected


def test_a_known_code_wins_over_a_conflicting_display_and_the_conflict_is_reported():
    mapping = t.map_codeable_concept(cc_rx("224905", "Kadcyla"))
    assert [d.rxnorm for d in mapping.drugs] == [TRAS]
    assert "Kadcyla" in mapping.display_conflict and "code was used" in mapping.display_conflict


def test_an_unknown_code_with_a_known_name_maps_by_name_and_keeps_the_unknown_code():
    mapping = t.map_codeable_concept(cc_rx("9999999", "Trastuzumab Injection [KADCYLA]"))
    assert [d.rxnorm for d in mapping.drugs] == [TDM1]
    assert mapping.via == "name" and mapping.unknown_codes == ("RxNorm 9999999",)


def test_an_unknown_code_without_a_known_name_maps_to_nothing():
    mapping = t.map_codeable_concept(cc_rx("9999999", "ondansetron"))
    assert mapping.drugs == () and mapping.via == "none"


def test_non_rxnorm_codings_are_not_read_as_rxnorm():
    mapping = t.map_codeable_concept({"coding": [{"system": SNOMED, "code": "224905"}]})
    assert mapping.drugs == ()


def test_atc_coding_maps_when_there_is_no_rxnorm_coding():
    mapping = t.map_codeable_concept({"coding": [{"system": "http://fhir.de/CodeSystem/bfarm/atc", "code": "L01FD04"}]})
    assert [d.rxnorm for d in mapping.drugs] == [TDXD] and mapping.via == "atc"
    assert t.map_codeable_concept({"coding": [{"system": ATC, "code": "L01FD03"}]}).drugs[0].rxnorm == TDM1


def test_data_file_is_versioned_with_sources_and_every_reference_resolves():
    raw = json.loads(t.DATA_FILE.read_text(encoding="utf-8"))
    assert isinstance(raw["version"], str) and raw["version"] and raw["sources"]
    ingredients = set(raw["ingredients"])
    for entry in raw["products"].values():
        assert set(entry["ingredients"]) <= ingredients
    for codes in raw["atc"].values():
        assert set(codes) <= ingredients
    for group in raw["synonyms"]:
        for codes in group["phrases"].values():
            assert set(codes) <= ingredients
    known_classes = {m.HER2_ANTIBODY, m.HER2_ADC, m.HER2_TKI, m.TAXANE, m.ANTHRACYCLINE, m.PLATINUM,
                     m.FLUOROPYRIMIDINE, m.ENDOCRINE, m.CDK46, m.CHECKPOINT_INHIBITOR, m.OTHER_CHEMO}
    for entry in raw["ingredients"].values():
        assert set(entry["classes"]) <= known_classes


def cc_rx(code, display):
    return {"coding": [{"system": RXNORM, "code": code, "display": display}], "text": display}


@pytest.mark.parametrize("concept", [
    {"coding": [{"system": RXNORM, "code": "224905", "display": "Herceptin"}], "text": "Herceptin"},
    {"coding": [{"code": "224905"}]},
    {"coding": [{"system": RXNORM, "code": "224905"}, {"system": RXNORM, "code": "1298944"}]},
    {"coding": ["224905", {"system": RXNORM, "code": "224905"}]},
    {"coding": [None]},
    {"text": "trastuzumab"},
])
def test_a_concept_is_keyed_by_the_parts_it_is_mapped_from(concept):
    coding = concept.get("coding", [])
    assert t._concept_key(concept, "x") == (concept.get("text"), tuple(
        (c.get("system"), c.get("code"), c.get("display")) for c in coding if isinstance(c, dict)), "x")
