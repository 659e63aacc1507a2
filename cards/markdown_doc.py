"""The whole knowledge base as one Markdown document (`her2-cds knowledge`), for the clinical reviewer."""
from __future__ import annotations

from pathlib import Path

from cards.detail import text
from cards.knowledge_base import Citation, Knowledge


def _cites(cs: tuple[Citation, ...]) -> str:
    return ", ".join(f"[{c.id}]({c.url})" if c.url else c.id for c in cs)


def knowledge_markdown(knowledge: Knowledge) -> str:
    k = knowledge
    out = [f"# {text(k.title)}", "", f"Knowledge version **{text(k.version)}** — source file `cards/knowledge/{Path(k.source_path).name}`.", "",
           f"> {text(k.disclaimer)}", ""]

    out += ["## Line plans (which regimens each line offers, in order of preference)", "",
            "The first eligible *seed* regimen is recommended; other eligible regimens are alternatives. A regimen is "
            "not offered when a drug in *exclude if received* was already given (any setting), when it is "
            "contraindicated by a record finding, or (later evidence) when the policy does not list it.", "",
            "| Plan | Rules | Candidates (preference order) |", "|---|---|---|"]
    for plan in k.line_plans.values():
        out.append(f"| {text(plan.title)} (`{plan.id}`) | {', '.join(r.id for r in plan.rules)} | "
                   f"{' → '.join(text(r.name) for r in plan.candidates)} |")
    out += ["", "## Regimens", "",
            "| Id | Regimen | Status | Drugs (RxNorm IN) and doses | Exclude if received | Contraindicated by | Evidence | Citations |",
            "|---|---|---|---|---|---|---|---|"]
    for r in k.regimens.values():
        drugs = "; ".join(f"{text(c.drug.name)} ({c.drug.rxnorm}): {text(c.dose)}" for c in r.components) or (
            f"not orderable: {text(r.not_orderable_reason or '')}")
        out.append(f"| `{r.id}` | {text(r.name)} | {r.status} | {drugs} | "
                   f"{', '.join(d.label for d in r.exclude_if_received) or '—'} | {', '.join(r.contraindicated_by) or '—'} | "
                   f"{text(r.evidence)} | {_cites(r.citations)} |")
    out += ["", "## Rules", "",
            "*Listed on a card when* names the regimens a line-plan rule puts on a next-regimen card: the card's "
            "\"Rules applied\" shows the rule only when one of them is on the card (\"only when leading\": only when "
            "the decision leads with it). Rules without an entry are attached only when they fire.", "",
            "| Id | Rule | Statement (quoted) | What the service does | Strength | Citations | Listed on a card when |",
            "|---|---|---|---|---|---|---|"]
    for rule in k.rules.values():
        offers = ("—" if rule.offers is None else
                  ", ".join(f"`{r}` offered" for r in rule.offers) or "only when leading")
        out.append(f"| {rule.id} | {text(rule.title)} | {text(rule.statement)} | {text(rule.recommendation)} | "
                   f"{text(rule.strength)} | {_cites(rule.citations)} | {offers} |")
    out += ["", "## Safety and guideline checks", "",
            "| Check | Card topic | Rule | Indicator | Fires when | Thresholds | Card wording |", "|---|---|---|---|---|---|---|"]
    for c in k.safety_checks.values():
        params = ", ".join(f"{name} = {value:g}" for name, value in c.params.items()) or "—"
        out.append(f"| `{c.id}` | `{c.topic}` | {c.rule.id} | {c.indicator} | {text(c.condition)} | {params} | "
                   f"{text(c.wording)} |")
    out += ["", "## Configurable policy: treatment-free interval (HER2CDS_TFI_POLICY)", "",
            "Recurrence at or below the threshold (months from the end of (neo)adjuvant HER2 therapy to the metastatic "
            "diagnosis, days / 30.44) is treated as second line.", "",
            "| Policy | Shown on cards as | Default | Threshold (months) | If the early regimen had pertuzumab | Statement | Citations |",
            "|---|---|---|---|---|---|---|"]
    for p in k.tfi_policies.values():
        out.append(f"| `{p.id}` | {text(p.display)} | {'yes' if p.default else 'no'} | {p.months:g} | {p.months_if_pertuzumab:g} | "
                   f"{text(p.statement)} | {_cites(p.citations)} |")
    out += ["", "Later-evidence regimens (e.g. T-DXd + pertuzumab) are listed as alternatives, never recommended, "
            "unless HER2CDS_LIST_POST_SEED_REGIMENS=false removes them.", "",
            "## Never recommended", "", *[f"- {text(r.name)}: {text(r.evidence)}" for r in k.investigational], "",
            "## Override reasons (on every warning about a draft order)", "", f"System `{k.override_reason_system}`.", "",
            "| Code | Display |", "|---|---|", *[f"| `{o.code}` | {text(o.display)} |" for o in k.override_reasons], "",
            "## Citations", "",
            "Cards cite only entries with a URL, and every URL is a primary source on a contract citation host "
            "(FDA labels, guideline publishers, publications, HL7 specifications). Entries without a URL are the "
            "algorithm's provenance (the seed documents): recorded here, never shown on a card. What changed and "
            "why: `docs/knowledge-changelog.md`.", "",
            "| Id | Shown on cards as | Source | Status | URL |", "|---|---|---|---|---|"]
    for c in k.citations.values():
        out.append(f"| `{c.id}` | {text(c.short_label) if c.url else '— (provenance only)'} | {text(c.label)} | "
                   f"{c.status} | {c.url or '—'} |")
    out += ["", "Status marks: seed = stated in a seed document; V = read in the primary source or its verbatim text; "
            "P = read only in a secondary reproduction (confirm in the primary source); U = not verified.", ""]
    return "\n".join(out)
