"""Structural checks every rendered card must pass (the probe's response rules + card contract),
kept here so the tests do not depend on ../shared being present."""
from __future__ import annotations

import json
import re
from typing import Any

from fhir.resources.R4B.medicationrequest import MedicationRequest

from cards import TOPIC_SYSTEM
from support import SHARED

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$")
LOWEST = {"her2-next-regimen": 0, "anthracycline-her2-cardiotoxicity": 1, "ild-pneumonitis": 1, "lvef-monitoring": 0,
          "her2-status-unknown": 0, "her2-blockade-gap": 1, "tdxd-not-offered": 1, "first-line-restart": 1,
          "her2-status-discordant": 1, "heart-failure": 1, "pregnancy": 1}
RANK = {"info": 0, "warning": 1, "critical": 2}
DRAFT_TOPICS = {"anthracycline-her2-cardiotoxicity", "ild-pneumonitis", "her2-blockade-gap", "tdxd-not-offered",
                "first-line-restart", "heart-failure"}
RESPONSE_SCHEMA = SHARED / "probe" / "schemas" / "response.schema.json"


def empties(value: Any, path: str = "$") -> list[str]:
    if value is None or value == "" or value == [] or value == {}:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in empties(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in empties(v, f"{path}[{i}]")]
    return []


def problems(cards: list[dict], hook: str, patient_id: str) -> list[str]:
    out: list[str] = []
    for i, c in enumerate(cards):
        w = f"cards[{i}]"
        out += [f"empty value at {p}" for p in empties(c, w)]
        topic = c["source"]["topic"]
        if topic["system"] != TOPIC_SYSTEM or topic["code"] not in LOWEST:
            out.append(f"{w}: bad topic {topic}")
        elif RANK[c["indicator"]] < LOWEST[topic["code"]]:
            out.append(f"{w}: indicator below the topic's lowest")
        if not UUID.match(c.get("uuid", "")):
            out.append(f"{w}: uuid")
        if not 1 <= len(c["summary"]) <= 139:
            out.append(f"{w}: summary length {len(c['summary'])}")
        if not c.get("detail", "").strip() or "<" in c["detail"].replace("\\<", ""):
            out.append(f"{w}: detail missing or contains raw HTML")
        if not re.match(r"^https?://\S+$", c["source"].get("url", "")):
            out.append(f"{w}: source.url")
        if hook != "patient-view" and topic["code"] in DRAFT_TOPICS and c["indicator"] != "info":
            if not c.get("overrideReasons") or not all(r.get("display") and r.get("system") and r.get("code")
                                                       for r in c["overrideReasons"]):
                out.append(f"{w}: overrideReasons")
        sugg = c.get("suggestions", [])
        if sugg and c.get("selectionBehavior") != "at-most-one":
            out.append(f"{w}: selectionBehavior")
        if sum(1 for s in sugg if s.get("isRecommended") is True) > 1:
            out.append(f"{w}: more than one isRecommended")
        for k, s in enumerate(sugg):
            if not UUID.match(s.get("uuid", "")):
                out.append(f"{w}.suggestions[{k}]: uuid")
            for a in s["actions"]:
                if not a.get("description"):
                    out.append(f"{w}.suggestions[{k}]: action description")
                if a["type"] == "delete" and not re.match(r"^MedicationRequest/[A-Za-z0-9\-.]{1,64}$", a.get("resourceId", "")):
                    out.append(f"{w}.suggestions[{k}]: delete resourceId")
                if a["type"] == "create":
                    r = a["resource"]
                    MedicationRequest.model_validate(r)
                    if (r["status"], r["intent"], r["subject"]["reference"]) != ("draft", "proposal", f"Patient/{patient_id}"):
                        out.append(f"{w}.suggestions[{k}]: MedicationRequest status/intent/subject")
                    if len(r["medicationCodeableConcept"]["coding"]) != 1:
                        out.append(f"{w}.suggestions[{k}]: one drug per action")
        if topic["code"] == "her2-next-regimen":
            if sum(1 for s in sugg if s.get("isRecommended") is True) != 1:
                out.append(f"{w}: regimen card needs exactly one recommended suggestion")
            if any(a["type"] != "create" for s in sugg for a in s["actions"]):
                out.append(f"{w}: regimen card actions must be create")
    return out


def response_schema() -> dict | None:
    if not RESPONSE_SCHEMA.exists():
        return None
    return json.loads(RESPONSE_SCHEMA.read_text(encoding="utf-8"))
