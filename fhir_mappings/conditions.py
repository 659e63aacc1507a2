"""Cancer, metastasis, ILD and heart-failure facts from Conditions (and staging / mCODE Observations).

Conventions (clinical.md §4.4, §4.5):
- A Condition whose verificationStatus is refuted or entered-in-error does not exist for any rule.
  A resolved/inactive one still counts as *history* (ILD, heart failure); its clinical status is kept.
- Breast cancer: ICD-10-CM C50.*, SNOMED breast-cancer concepts, or a generic malignancy code with a
  breast bodySite.
- Distant metastasis: secondary-cancer codes (ICD-10-CM C77-C79, C7B; SNOMED secondary concepts),
  stage IV / M1, or an mCODE history-of-metastatic-cancer Observation. Regional breast nodes
  (C77.3 axillary, SNOMED 94181007; C77.9 unspecified nodes) are N category, not M: not metastatic.
  A secondary Condition linked (condition-related) to a non-breast primary is not breast metastasis.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .fhir_json import (all_text, as_dict, as_list, as_str, choice_dates, clean_display, codings, extensions, is_icd10,
                       is_snomed, parse_date, ref_id, status_code, two_digits)
from .model import ConditionFact, MetastaticSite

IGNORED_VERIFICATION = frozenset({"refuted", "entered-in-error"})

# --- breast cancer -------------------------------------------------------------------------------
# Codes audited 2026-12-02 (data/CODES-AUDIT.md): all but 254837009/353431000119107/408643008 are members of
# a public eCQM "Breast Cancer" value-set code list (the same list also holds C50.*), P.
# not verified: 353441000119101 (meant: a primary malignant neoplasm of breast concept), 1228829006 (same) - removed
# not verified: 413448000 (public sources disagree: lymphoma / adenocarcinoma morphology / IDC of breast) - removed
# not verified: 444604002 (public mCODE extraction code uses it only as an "N/A" placeholder) - removed
BREAST_SNOMED = frozenset({
    "254837009", "353431000119107", "408643008", "372064008", "372137005", "278054005",
    "427685000", "431396003", "417181009", "93796005", "373080008",
    "373081007", "373082000", "403458008", "403946000", "286892007", "286893002", "286894008", "286895009",
    "286896005", "286897001", "372092003", "372093008", "372094002", "373083005", "373088001", "373089009",
    "373090000", "373091001", "429087003", "93680004", "93745008", "93776002", "93874009", "93876006", "93924008", "94115006",
})
# 363358000 removed: it is "Malignant tumor of lung" (several public code lists), not a generic malignancy.
GENERIC_MALIGNANCY_SNOMED = frozenset({"363346000", "372087000", "86049000", "1240414004"})
# Breast structure, left/right/both breasts, upper outer/upper inner/lower outer/lower inner quadrant (P, public
# FHIR examples and DICOM CID tables). 53840002 removed: it is "Calf of leg" (DICOM tables), not breast.
# not verified: 72410000, 12396004 (meant: further breast structures) - removed
BREAST_BODY_SITE_SNOMED = frozenset({"76752008", "80248007", "73056007", "63762007", "76365002",
                                     "77831004", "33564002", "19100000"})
_BREAST_WORD = re.compile(r"\bbreast|\bmamma", re.I)
_MALIGNANT_WORD = re.compile(r"malignan|carcinoma|cancer|sarcoma|lymphoma", re.I)   # not "neoplasm": may be benign
_SECONDARY_WORD = re.compile(r"secondary|metasta", re.I)

# --- secondary sites -------------------------------------------------------------------------------
#: ICD-10-CM prefix -> (site, cns, distant)
ICD_SECONDARY: tuple[tuple[str, str, bool, bool], ...] = (
    ("C79.31", "brain", True, True), ("C79.32", "cerebral meninges", True, True), ("C79.4", "nervous system", True, True),
    ("C79.3", "brain", True, True),
    ("C77.3", "axillary lymph node", False, False), ("C77.9", "lymph node, unspecified", False, False),
    ("C77", "distant lymph node", False, True),
    ("C78.0", "lung", False, True), ("C78.1", "mediastinum", False, True), ("C78.2", "pleura", False, True),
    ("C78.3", "respiratory organ", False, True), ("C78.4", "small intestine", False, True), ("C78.5", "large intestine", False, True),
    ("C78.6", "peritoneum", False, True), ("C78.7", "liver", False, True), ("C78", "digestive organ", False, True),
    ("C79.5", "bone", False, True), ("C79.0", "kidney", False, True), ("C79.1", "bladder", False, True),
    ("C79.2", "skin", False, True), ("C79.6", "ovary", False, True), ("C79.7", "adrenal gland", False, True),
    ("C79.8", "other", False, True), ("C79.9", "other", False, True), ("C79", "other", False, True), ("C7B", "other", False, True),
)
# Audited 2026-12-02: 94391008 lung, 94493005 pleura, 94260004 colon (P, public FSH/code lists); 94503003 is a
# metastasis to prostate or spine in public lists (both distant, not CNS), never skin: labelled "other".
# not verified: 94409002 and 369486003 (meant: brain metastasis), 94297009 (peritoneum), 94455000 (distant lymph
# node), 94169000 (meninges), 94602001 and 1144702001 (other secondary sites) - removed; the display words
# ("secondary", "metastatic" + site) and the ICD-10-CM C77-C79 codes still find these.
SNOMED_SECONDARY: dict[str, tuple[str, bool, bool]] = {
    "94225005": ("brain", True, True), "94222008": ("bone", False, True), "94381002": ("liver", False, True),
    "94391008": ("lung", False, True), "94181007": ("axillary lymph node", False, False),
    "128462008": ("other", False, True), "94493005": ("pleura", False, True),
    "94260004": ("other", False, True), "94503003": ("other", False, True),
}
_SITE_WORDS: tuple[tuple[re.Pattern[str], str, bool, bool], ...] = (
    (re.compile(r"axilla", re.I), "axillary lymph node", False, False),
    (re.compile(r"brain|cerebr|intracranial|mening|leptomening|central nervous|\bcns\b", re.I), "brain", True, True),
    (re.compile(r"liver|hepat", re.I), "liver", False, True),
    (re.compile(r"bone|osseous|skelet|spine|vertebr", re.I), "bone", False, True),
    (re.compile(r"lung|pulmon", re.I), "lung", False, True),
    (re.compile(r"pleura", re.I), "pleura", False, True),
    (re.compile(r"lymph", re.I), "distant lymph node", False, True),
)
MCODE_SECONDARY = "mcode-secondary-cancer-condition"
MCODE_PRIMARY = "mcode-primary-cancer-condition"
MCODE_HISTORY_METASTATIC = "mcode-history-of-metastatic-cancer"

# --- staging ----------------------------------------------------------------------------------------
# Staging Observation codes (LOINC and the SNOMED codes mCODE examples use). SNOMED AJCC stage/M value
# concepts are not listed (their codes are easy to confuse: 1222806003 is stage IIIC): values are read
# from AJCC (cancerstaging.org) codes or from the display, e.g. "... stage IV ...", "... cM1 ...".
STAGE_GROUP_CODES = frozenset({"21908-9", "21902-2", "21914-7", "399537006", "399588009"})
M_CATEGORY_CODES = frozenset({"21907-1", "21901-4", "399387003", "371497001"})
AJCC_STAGE_IV = frozenset({"4", "IV", "4A", "4B", "4C", "IVA", "IVB", "IVC"})
_STAGE_IV_TEXT = re.compile(r"\bstage\s*(iv|4)[abc]?\b", re.I)
_M1_TEXT = re.compile(r"(?<![a-z0-9])[cpy]{0,2}m1[a-d]?(?![0-9])", re.I)


def _ajcc(system: str) -> bool:
    s = system.lower()
    return "cancerstaging" in s or "ajcc" in s


# --- ILD, heart failure -------------------------------------------------------------------------------
# Pneumonitis of any cause counts (contract v2): J84.* (incl. idiopathic and organising pneumonia),
# J70.0 / J70.1 radiation pneumonitis / fibrosis, J70.2-J70.4 drug-induced ILD.
ILD_ICD_PREFIXES = ("J84", "J70.0", "J70.1", "J70.2", "J70.3", "J70.4")
ILD_SNOMED = frozenset({"233703007", "427046006", "205237003", "51615001", "700250006", "28168000", "196125002",
                        "233713004", "233723008", "64667001"})
_ILD_TEXT = re.compile(r"interstitial lung|interstitial pneumon|pneumonitis|pulmonary fibrosis", re.I)
# I11.0, I13.0, I13.2, I09.81 audited 2026-12-02 (P: hccbuddy.com / medcoder.ai / icdlist.com ICD-10-CM pages).
# HF SNOMED: 85232009 left HF, 417996009 systolic HF, 441481004 / 441530006 chronic systolic / chronic (diastolic)
# HF - public lists disagree on the subtype, all say heart failure -, 446221000 HFpEF, 703272007 HFrEF (P).
# not verified: 10335000 (meant: chronic right-sided heart failure) - removed
HF_ICD_PREFIXES = ("I50", "I11.0", "I13.0", "I13.2", "I09.81")
CARDIOMYOPATHY_ICD_PREFIXES = ("I42", "I43")
HF_SNOMED = frozenset({"84114007", "42343007", "88805009", "703272007", "85232009", "441481004", "441530006",
                       "417996009", "446221000"})
CARDIOMYOPATHY_SNOMED = frozenset({"85898001", "399020009", "195021004", "53043001"})

# --- breast surgery (to tell neoadjuvant from adjuvant) ----------------------------------------------
# Audited 2026-12-02 (P: public FHIR examples and eCQM mastectomy code lists). 70536003 removed: it is
# "Transplant of kidney". not verified: 237372004 (meant: a breast excision procedure) - removed
BREAST_SURGERY_SNOMED = frozenset({"69031006", "172043006", "22964006", "392021009", "64368001",
                                   "428564008", "429400009", "395702000", "384723003", "447135002", "14693006",
                                   "27865001"})
_SURGERY_TEXT = re.compile(r"mastectomy|lumpectomy|quadrantectomy|breast[- ]conserving|partial mastectomy|"
                           r"excision of (the )?breast|wide local excision", re.I)


def verification_ignored(cond: dict[str, Any]) -> bool:
    return status_code(cond.get("verificationStatus")) in IGNORED_VERIFICATION


def onset(cond: dict[str, Any]) -> dt.date | None:
    start, _ = choice_dates(cond, "onset")
    return start or parse_date(cond.get("recordedDate")) or parse_date(cond.get("assertedDate"))


def _profiles(resource: dict[str, Any]) -> str:
    return " ".join(p for p in as_list(as_dict(resource.get("meta")).get("profile")) if isinstance(p, str))


@lru_cache(maxsize=4096)          # pure function of a code string, asked by several readers of every Condition
def _icd_norm(code: str) -> str:
    c = code.upper().strip()
    if len(c) > 3 and "." not in c:
        c = c[:3] + "." + c[3:]
    return c


@dataclass(frozen=True)
class CancerKind:
    breast: bool = False
    other_primary: bool = False
    secondary: MetastaticSite | None = None   # site template (onset/source filled by caller)
    regional_only: bool = False
    says_metastatic: bool = False             # a breast-cancer code whose name says the disease is metastatic


_NOT_CANCER, _OTHER_PRIMARY = CancerKind(), CancerKind(other_primary=True)
_BREAST, _METASTATIC_BREAST = CancerKind(breast=True), CancerKind(breast=True, says_metastatic=True)
_NOT_A_PRIMARY_TEXT = re.compile(r"benign|in situ|history of|screening|family", re.I)
_CANCER_TEXT = re.compile(r"malignan|carcinoma|cancer", re.I)


def classify_cancer(cond: dict[str, Any], source: str) -> CancerKind:
    """Is this Condition breast cancer, another primary, or a secondary (metastatic) cancer?

    The codings are read once (ICD-10 codes normalised once), the onset and profiles only where they are used."""
    code_cc = cond.get("code")
    text = all_text(code_cc)
    coded = _with_icd(codings(code_cc))
    for system, code, display, icd in coded:
        secondary = _icd_secondary_site(icd) if icd else None
        if secondary:
            site, cns, distant = secondary
            s = MetastaticSite(site, cns, icd, system, clean_display(display or text), onset(cond), source)
            return CancerKind(secondary=s, regional_only=not distant)
    for system, code, display, _ in coded:
        if code in SNOMED_SECONDARY and is_snomed(system):
            site, cns, distant = SNOMED_SECONDARY[code]
            return CancerKind(secondary=MetastaticSite(site, cns, code, system, clean_display(display or text),
                                                       onset(cond), source),
                              regional_only=not distant)
    # Codes over text: a specific primary code decides before any word of the name ("Metastatic breast
    # cancer" coded C50.912 is breast cancer that is metastatic, not a metastasis site).
    for system, code, _, c in coded:
        if c:
            if c.startswith(("C50", "Z85.3")):       # Z85.3: personal history of breast cancer (recurrence charts)
                return _breast_kind(text)
            if c.startswith(("C80", "C76")):         # unspecified site: the body site or the name decides
                if _breast_site(cond):
                    return _breast_kind(text)
                continue
            if c.startswith("C") and two_digits(c[1:3]) and (int(c[1:3]) <= 75 or 81 <= int(c[1:3]) <= 97):
                return _OTHER_PRIMARY
        elif code in BREAST_SNOMED and is_snomed(system):
            return _breast_kind(text)
    profiles = _profiles(cond)
    if MCODE_SECONDARY in profiles or (_SECONDARY_WORD.search(text) and _MALIGNANT_WORD.search(text)):
        for pattern, site, cns, distant in _SITE_WORDS:
            if pattern.search(text):
                break
        else:
            site, cns, distant = "other", False, True
        system, code = (coded[0][0], coded[0][1]) if coded else ("", "")
        return CancerKind(secondary=MetastaticSite(site, cns, code, system, clean_display(text), onset(cond), source),
                          regional_only=not distant)
    for system, code, _, c in coded:
        if c.startswith(("C80", "C76")):
            return _OTHER_PRIMARY
        if code in GENERIC_MALIGNANCY_SNOMED and is_snomed(system):
            return _BREAST if _breast_site(cond) else _OTHER_PRIMARY
    if _MALIGNANT_WORD.search(text) and not _NOT_A_PRIMARY_TEXT.search(text):
        if _BREAST_WORD.search(text) or _breast_site(cond):
            return _BREAST
        if MCODE_PRIMARY in profiles or _CANCER_TEXT.search(text):
            return _OTHER_PRIMARY
    elif MCODE_PRIMARY in profiles:
        return _BREAST if _breast_site(cond) else _OTHER_PRIMARY
    return _NOT_CANCER


@lru_cache(maxsize=1024)
def _icd_secondary_site(icd: str) -> tuple[str, bool, bool] | None:
    """(site, CNS, distant) of the first `ICD_SECONDARY` prefix of a normalised ICD-10 code, None for other
    codes: kept per code, as the table is walked in order (more specific prefixes first). why: 220 bytecodes
    per C79.5 Condition."""
    for prefix, site, cns, distant in ICD_SECONDARY:
        if icd.startswith(prefix):
            return site, cns, distant
    return None


@lru_cache(maxsize=1024)          # pure function of the codings (strings)
def _with_icd(coded: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, str, str, str], ...]:
    """Each (system, code, display) with its normalised ICD-10 code ("" for other systems)."""
    return tuple((system, code, display, _icd_norm(code) if is_icd10(system) else "") for system, code, display in coded)


def _breast_kind(text: str) -> CancerKind:
    return _METASTATIC_BREAST if _says_metastatic(text) else _BREAST


_METASTATIC_TEXT = re.compile(r"metasta|\bstage\s*(?:iv|4)\b|\bm1\b", re.I)
_NOT_METASTATIC = re.compile(r"non-?\s?metasta|not\s+metasta|no\s+(?:evidence\s+of\s+)?(?:distant\s+)?metasta|"
                             r"without\s+(?:distant\s+)?metasta|history\s+of|\bm0\b|rule\s+out", re.I)


@lru_cache(maxsize=1024)          # pure function of a code's text
def _says_metastatic(text: str) -> bool:
    """The name of a breast-cancer Condition says the disease is metastatic ("Metastatic breast cancer")."""
    return bool(_METASTATIC_TEXT.search(text)) and not _NOT_METASTATIC.search(text)


def _breast_site(cond: dict[str, Any]) -> bool:
    for site in as_list(cond.get("bodySite")):
        for system, code, _ in codings(site):
            if is_snomed(system) and code in BREAST_BODY_SITE_SNOMED:
                return True
        if _BREAST_WORD.search(all_text(site)):
            return True
    return False


def related_condition_ids(cond: dict[str, Any]) -> list[str]:
    ids = []
    for ext in extensions(cond, "condition-related"):
        rid = ref_id(ext.get("valueReference"), "Condition")
        if rid:
            ids.append(rid)
    return ids


def stage_iv(cond_or_obs: dict[str, Any]) -> bool:
    """Stage IV in a Condition.stage summary or a stage-group Observation value."""
    concepts: list[Any] = [as_dict(st).get("summary") for st in as_list(cond_or_obs.get("stage"))]
    concepts.append(cond_or_obs.get("valueCodeableConcept"))
    for cc in concepts:
        for system, code, display in codings(cc):
            if _ajcc(system) and code.upper().lstrip("CPY") in AJCC_STAGE_IV:
                return True
            if _STAGE_IV_TEXT.search(display):
                return True
        if _STAGE_IV_TEXT.search(all_text(cc)):
            return True
    return False


def _m1(value: Any) -> bool:
    for system, code, display in codings(value):
        if (_ajcc(system) and _M1_TEXT.fullmatch(code.strip())) or _M1_TEXT.search(display):
            return True
    return bool(_M1_TEXT.search(as_str(as_dict(value).get("text"))))


def observation_metastatic(obs: dict[str, Any]) -> str:
    """'' or the kind of metastatic evidence an Observation carries (stage IV, M1, mCODE history)."""
    code_cc = obs.get("code")
    codes = {code for _, code, _ in codings(code_cc)}
    if MCODE_HISTORY_METASTATIC in _profiles(obs) or re.search(r"history of metastatic", all_text(code_cc), re.I):
        value = obs.get("valueCodeableConcept")
        neg = any(code in ("LA32-8", "373067005", "260385009", "N", "false") for _, code, _ in codings(value)) \
            or obs.get("valueBoolean") is False
        return "" if neg else "mCODE history of metastatic cancer"
    if codes & STAGE_GROUP_CODES and stage_iv(obs):
        return "stage IV"
    if codes & M_CATEGORY_CODES and _m1(obs.get("valueCodeableConcept")):
        return "M1"
    return ""


def condition_fact(cond: dict[str, Any], source: str) -> ConditionFact | None:
    """ILD / heart failure / cardiomyopathy fact of a Condition, or None."""
    code_cc = cond.get("code")
    coded = codings(code_cc)
    kind, chosen, known_system = _coded_fact(coded)
    if not kind and not known_system:
        text = all_text(code_cc)           # a code is trusted over its display; text only for uncoded
        if _ILD_TEXT.search(text) and not re.search(r"\bno\b|rule out|family history", text, re.I):
            kind = "ild"
            system, code, display = coded[0] if coded else ("", "", text)
            chosen = (system, code, display or text)
    if not kind or chosen is None:
        return None
    system, code, display = chosen
    return ConditionFact(kind, code, system, clean_display(display or all_text(code_cc)), onset(cond),
                         status_code(cond.get("clinicalStatus")), source)


@lru_cache(maxsize=1024)          # pure function of the codings (strings): every Condition of every call asks
def _coded_fact(coded: tuple[tuple[str, str, str], ...]) -> tuple[str, tuple[str, str, str] | None, bool]:
    """(kind, the coding that says it, whether any coding is ICD-10 or SNOMED) of a Condition's codings."""
    kind = ""
    chosen: tuple[str, str, str] | None = None
    for system, code, display in coded:
        if is_icd10(system):
            c = _icd_norm(code)
            if c.startswith(ILD_ICD_PREFIXES):
                kind = "ild"
            elif c.startswith(HF_ICD_PREFIXES):
                kind = "heart-failure"
            elif c.startswith(CARDIOMYOPATHY_ICD_PREFIXES):
                kind = "cardiomyopathy"
            code = c
        elif is_snomed(system):
            if code in ILD_SNOMED:
                kind = "ild"
            elif code in HF_SNOMED:
                kind = "heart-failure"
            elif code in CARDIOMYOPATHY_SNOMED:
                kind = "cardiomyopathy"
        if kind:
            chosen = (system, code, display)
            break
    return kind, chosen, any(is_icd10(system) or is_snomed(system) for system, _, _ in coded)


def breast_surgery_date(proc: dict[str, Any]) -> dt.date | None:
    status = as_str(proc.get("status")).lower()
    if status in ("entered-in-error", "not-done", "preparation"):
        return None
    code_cc = proc.get("code")
    is_surgery = any(is_snomed(s) and c in BREAST_SURGERY_SNOMED for s, c, _ in codings(code_cc)) \
        or bool(_SURGERY_TEXT.search(all_text(code_cc)))
    if not is_surgery:
        return None
    start, _ = choice_dates(proc, "performed")
    return start
