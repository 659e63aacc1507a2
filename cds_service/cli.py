"""`her2-cds`: serve, demo, evaluate offline, load the demo patients, feedback report, knowledge.

Each command imports what it needs inside its function, so `her2-cds --help` (and the commands that
do not touch them) work even when a heavy or optional part cannot be imported.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

HOOKS = ("patient-view", "order-select", "order-sign")
log = logging.getLogger("her2_cds.cli")


def _today(value: str | None) -> dt.date:
    if value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise SystemExit(f"error: --today must be YYYY-MM-DD, not {value!r}") from exc
    return dt.datetime.now(dt.timezone.utc).date()


# ----------------------------------------------------------------------------------------- serve
def cmd_serve(args: argparse.Namespace) -> int:
    """gunicorn with `cds_service.create_app()`; flags override HER2CDS_HOST/PORT/WORKERS."""
    from cds_service.config import load_settings
    from cds_service.serve import run

    try:
        settings = load_settings({"host": args.host} if args.host else None)   # auth off checks this bind
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.auth_mode == "required" and not settings.public_base_url:
        print("error: HER2CDS_PUBLIC_BASE_URL is required with HER2CDS_AUTH_MODE=required (the JWT audience, "
              "e.g. https://cds.example.org)", file=sys.stderr)
        return 2
    host = settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers if args.workers is not None else settings.workers
    if settings.auth_mode == "off":
        print("WARNING: HER2CDS_AUTH_MODE=off - hook calls are NOT authenticated (demo only)", file=sys.stderr)
    if settings.allow_insecure_fhir:
        print("WARNING: HER2CDS_ALLOW_INSECURE_FHIR=1 - FHIR access tokens may go to http:// servers in clear text "
              "(demo only)", file=sys.stderr)
    run(host, port, workers, settings.log_level, threads=settings.threads, malloc_arenas=settings.malloc_arenas)
    return 0


# -------------------------------------------------------------------------------------- evaluate
def _draft_resources(paths: Sequence[Path], today: dt.date) -> list[dict[str, Any]]:
    """Draft MedicationRequests from files holding a Bundle of them or one resource each."""
    from cds_service.relative_dates import load_json

    drafts: list[dict[str, Any]] = []
    for path in paths:
        data = load_json(path, today)
        if isinstance(data, dict) and data.get("resourceType") == "Bundle":
            drafts += [e["resource"] for e in data.get("entry", []) if isinstance(e.get("resource"), dict)]
        elif isinstance(data, dict) and data.get("resourceType"):
            drafts.append(data)
        else:
            raise SystemExit(f"error: {path} holds neither a Bundle nor a FHIR resource")
    return drafts


def build_context(hook: str, patient_id: str, drafts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The hook context a CDS client would send: order hooks carry the drafts (all selected)."""
    context: dict[str, Any] = {"patientId": patient_id, "userId": "Practitioner/her2-cds-cli"}
    if hook in ("order-select", "order-sign"):
        context["draftOrders"] = {"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": d} for d in drafts]}
        if hook == "order-select":
            context["selections"] = [f"{d.get('resourceType')}/{d.get('id')}" for d in drafts]
    return context


def _suggestion_drugs(suggestion: dict[str, Any]) -> list[str]:
    names = []
    for action in suggestion.get("actions", []):
        concept = (action.get("resource") or {}).get("medicationCodeableConcept") or {}
        coding = (concept.get("coding") or [{}])[0]
        names.append(concept.get("text") or coding.get("display") or coding.get("code") or "?")
    return names


def cards_markdown(cards: Sequence[dict[str, Any]]) -> str:
    """A readable rendering for clinicians reviewing the logic (the card text is already Markdown)."""
    if not cards:
        return "_No cards._\n"
    out: list[str] = []
    for card in cards:
        topic = ((card.get("source") or {}).get("topic") or {}).get("code", "")
        out.append(f"## [{card.get('indicator', '?')}] {card.get('summary', '')}")
        out.append(f"_topic: {topic} · source: {(card.get('source') or {}).get('label', '')}_\n")
        if card.get("detail"):
            out.append(card["detail"].rstrip() + "\n")
        for s in card.get("suggestions", []):
            mark = " **(recommended)**" if s.get("isRecommended") else ""
            drugs = " + ".join(_suggestion_drugs(s))
            out.append(f"- {s.get('label', '')}{mark}" + (f" — {drugs}" if drugs else ""))
        if card.get("overrideReasons"):
            out.append("\nOverride reasons: " + "; ".join(r.get("display", "") for r in card["overrideReasons"]))
        for link in card.get("links", []):
            out.append(f"- [{link.get('label', '')}]({link.get('url', '')})")
        out.append("")
    return "\n".join(out)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Offline: the same pipeline as the hooks, on a Bundle file (relative-date tokens resolved)."""
    from cds_service.config import load_settings
    from cds_service.relative_dates import load_json
    from cds_service.gather import GatheredRecord
    from cds_service.pipeline import evaluate
    from cds_service.services import service_for_hook

    today = _today(args.today)
    bundle = load_json(args.bundle, today)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        print(f"error: {args.bundle} is not a FHIR Bundle", file=sys.stderr)
        return 2
    resources = [e["resource"] for e in bundle.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    patient = args.patient or next((r.get("id") for r in resources if r.get("resourceType") == "Patient"), None)
    if not patient:
        print("error: --patient is required (the bundle has no Patient)", file=sys.stderr)
        return 2
    if args.hook != "patient-view" and not args.draft:
        print(f"error: {args.hook} needs at least one --draft FILE", file=sys.stderr)
        return 2
    context = build_context(args.hook, patient, _draft_resources(args.draft or [], today))
    record = GatheredRecord(patient_id=patient, resources=tuple(resources))
    cards = evaluate(service_for_hook(args.hook), context, record,
                     today=today, settings=load_settings()).cards
    if args.format == "markdown":
        print(cards_markdown(cards))
    else:
        print(json.dumps({"cards": cards}, indent=2))
    return 0


# ---------------------------------------------------------------------------------- load-sandbox
def cmd_load_sandbox(args: argparse.Namespace) -> int:
    from sandbox.loader import PATIENTS_DIR, LoadError, load_directory

    directory = args.dir or PATIENTS_DIR
    try:
        results = load_directory(args.fhir, directory, today=_today(args.today), timeout=args.timeout)
    except LoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"loaded {r.bundle}: {r.resources} resources ({r.method})")
    return 0


# ------------------------------------------------------------------------------- feedback-report
def cmd_feedback_report(args: argparse.Namespace) -> int:
    from cds_service.config import load_settings
    from cds_service.feedback.report import feedback_report

    db_url = args.db or load_settings().feedback_db_url
    print(feedback_report(db_url))
    return 0


# ----------------------------------------------------------------------------------------- purge
def cmd_purge(args: argparse.Namespace) -> int:
    """Retention by hand (cron, or before a backup): the same purge the workers run every interval."""
    from cds_service.config import load_settings
    from cds_service.retention import purge
    from cds_service.storage import Database

    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    days = args.older_than_days if args.older_than_days is not None else settings.retention_days
    if days < 1:
        print(f"error: --older-than-days must be at least 1, not {days}", file=sys.stderr)
        return 2
    db = Database(args.db or settings.feedback_db_url)
    try:
        db.create_all()
        counts = purge(db, days)
    finally:
        db.dispose()
    print(f"purged {counts.issued_cards} issued card(s) and {counts.feedback} feedback item(s) older than "
          f"{days} days, and {counts.replay_rows} expired JWT replay row(s)")
    return 0


# ---------------------------------------------------------------------------------- check-config
# HER2CDS_* variables read by the tooling around the service (./dev, tests), not by the service.
_TOOLING_VARIABLES = {"HER2CDS_VENV", "HER2CDS_SEKMET_VENV", "HER2CDS_TEST_POSTGRES_URL", "HER2CDS_REQUIRE_BROWSER",
                      "HER2CDS_SCREENSHOT_DIR"}


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate what the service would start with; one line per check, exit 1 if any check failed."""
    from dataclasses import fields

    from cds_service.config import Settings, load_settings
    from cds_service.health import check_database, check_knowledge, check_trusted_keys

    failures = 0

    def report(name: str, problem: str | None, *, warning: bool = False) -> None:
        nonlocal failures
        if problem is None:
            print(f"OK    {name}")
        elif warning:
            print(f"WARN  {name}: {' '.join(problem.split())}")
        else:
            failures += 1
            print(f"FAIL  {name}: {' '.join(problem.split())}")

    known = {f"HER2CDS_{f.name.upper()}" for f in fields(Settings)} | _TOOLING_VARIABLES
    for name in sorted(v for v in os.environ if v.startswith("HER2CDS_") and v not in known):
        report("environment", f"{name} is not a setting of this version (typo?); it is ignored", warning=True)
    try:
        settings = load_settings()
    except (ValueError, TypeError) as exc:
        report("environment", str(exc))
        print("1 check failed: fix the environment first")
        return 1
    report("environment", None)
    if settings.auth_mode == "off":
        report("auth", "HER2CDS_AUTH_MODE=off: hook calls are not authenticated (demo only)", warning=True)
    elif not settings.public_base_url:
        report("auth", "HER2CDS_PUBLIC_BASE_URL is not set: behind a TLS proxy every JWT `aud` check fails",
               warning=True)

    report("trusted issuers", _check_trusted_issuers(settings, check_trusted_keys))

    try:
        from cds_service.storage import Database
        database = Database(settings.feedback_db_url)
        where = database.url.render_as_string(hide_password=True)
        problem = check_database(database)
        database.dispose()
    except Exception as exc:  # noqa: BLE001 - a bad URL is a configuration problem to report, not a crash
        where, problem = "HER2CDS_FEEDBACK_DB_URL", f"{type(exc).__name__}: {exc}"
    report(f"database {where}", problem)

    knowledge = f"knowledge {args.knowledge or '(packaged)'}"
    problem = check_knowledge(str(args.knowledge) if args.knowledge else None)
    report(knowledge, problem)
    if problem is None:
        report(f"{knowledge}: draft orders are FHIR R4 MedicationRequests", _check_draft_orders(args.knowledge))
    print("all checks passed" if not failures else f"{failures} check(s) failed")
    return 1 if failures else 0


def _check_draft_orders(path: Path | None) -> str | None:
    """None when every regimen's draft MedicationRequest validates with fhir.resources (R4B)."""
    import cards
    problems = cards.draft_order_problems(cards.load_knowledge(path))
    return "; ".join(problems) if problems else None


def _check_trusted_issuers(settings: Any, check_trusted_keys: Any) -> str | None:
    """None when auth is off or the trusted-issuers file loads and every issuer has keys."""
    if settings.auth_mode == "off":
        return None
    if not settings.trusted_issuers_file:
        return "HER2CDS_TRUSTED_ISSUERS_FILE is not set: every token would be refused"
    from types import SimpleNamespace

    from cds_service.jwks import load_trusted_issuers
    try:
        issuers = load_trusted_issuers(settings.trusted_issuers_file, cache_seconds=settings.jwks_cache_seconds)
    except Exception as exc:  # noqa: BLE001 - TrustConfigError and anything else the file provokes
        return str(exc)
    return check_trusted_keys(SimpleNamespace(issuers=issuers), settings.auth_mode)


# ------------------------------------------------------------------------------------- knowledge
def cmd_knowledge(args: argparse.Namespace) -> int:
    import cards

    print(cards.knowledge_markdown(cards.load_knowledge()))
    return 0


# ------------------------------------------------------------------------------------------ demo
def cmd_demo(args: argparse.Namespace) -> int:
    from sandbox.runner import run_demo

    return run_demo(port=args.port, fhir_port=args.fhir_port, venv=args.sekmet_venv)


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="her2-cds", description=(
        "CDS Hooks service for HER2-positive metastatic breast cancer (decision support, "
        "not a substitute for clinical judgment)."))
    parser.add_argument("--log-level", default=os.environ.get("HER2CDS_LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the service under gunicorn (binds 127.0.0.1 by default)")
    p.add_argument("--host", default=None, help="listen address (default $HER2CDS_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default $HER2CDS_PORT or 8080)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default $HER2CDS_WORKERS or 2)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="local FHIR server + demo patients + the service, with curl and sandbox instructions")
    p.add_argument("--port", type=int, default=8080, help="service port (default 8080)")
    p.add_argument("--fhir-port", type=int, default=None, help="FHIR server port (default: a free one)")
    p.add_argument("--sekmet-venv", type=Path, default=None, help="venv for sekmet-fhir (default $HER2CDS_SEKMET_VENV or ~/.cache/her2-cds)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("evaluate", help="run the decision pipeline offline on a FHIR Bundle and print the cards")
    p.add_argument("--bundle", type=Path, required=True, help="FHIR Bundle file (relative-date tokens allowed)")
    p.add_argument("--patient", default=None, help="patient id (default: the bundle's Patient)")
    p.add_argument("--hook", choices=HOOKS, default="patient-view")
    p.add_argument("--draft", type=Path, action="append", default=None,
                   help="draft order file: a Bundle of MedicationRequests or one resource (repeatable)")
    p.add_argument("--today", default=None, help="evaluation date YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--format", choices=("json", "markdown"), default="json")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("load-sandbox", help="load the demo patients into a FHIR R4 server")
    p.add_argument("--fhir", required=True, help="FHIR base URL, e.g. http://127.0.0.1:8090/fhir or a HAPI .../fhir")
    p.add_argument("--dir", type=Path, default=None, help="folder of transaction Bundles (default sandbox/patients)")
    p.add_argument("--today", default=None, help="resolve relative dates against this day (default today)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)")
    p.set_defaults(func=cmd_load_sandbox)

    p = sub.add_parser("feedback-report", help="summarise card feedback (accepted / overridden, reasons)")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default $HER2CDS_FEEDBACK_DB_URL)")
    p.set_defaults(func=cmd_feedback_report)

    p = sub.add_parser("purge", help="delete issued cards and feedback older than the retention age, and expired JWT ids")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default $HER2CDS_FEEDBACK_DB_URL)")
    p.add_argument("--older-than-days", type=int, default=None,
                   help="retention age in days (default $HER2CDS_RETENTION_DAYS or 365)")
    p.set_defaults(func=cmd_purge)


    p = sub.add_parser("check-config", help="validate the environment, trusted issuers, database and knowledge; exit 1 on any problem")
    p.add_argument("--knowledge", type=Path, default=None, help="knowledge YAML to validate (default: the packaged one)")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("knowledge", help="print the guideline knowledge base (statements, citations) as Markdown")
    p.set_defaults(func=cmd_knowledge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:       # `her2-cds knowledge | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # as the Python docs advise
        return 0


if __name__ == "__main__":
    sys.exit(main())
