"""The explanation view: a SMART on FHIR app at `/app` that shows the therapy timeline, the LVEF trend,
the receptor history and the full reasoning behind the cards (which link to it with a `smart` link).

| route            | what                                                                                   |
|------------------|----------------------------------------------------------------------------------------|
| `/app/launch`    | EHR launch (`iss`, `launch`): SMART discovery, PKCE, redirect to the EHR's authorize   |
| `/app/callback`  | redirect URL: state check, code -> token (server-side), then 302 to `/app`             |
| `/app`           | the page, for the launched session's patient; or open-server mode `?iss=&patient=`     |
|                  | (a FHIR server needing no authorization; only with HER2CDS_AUTH_MODE=off)              |

The page reads the record with the hooks' own gather -> map -> decide -> render path (`pipeline.evaluate`
on a patient-view call), so it and the card never disagree. Tokens never leave the server: the browser
holds an opaque session id cookie (`sessions.py`).
"""
from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, redirect, render_template, request, send_file, url_for

from cds_service import pipeline
from cds_service.explain import launch as smart
from cds_service.explain.allowlist import FhirServerNotAllowed, check_iss
from cds_service.explain.figures import lvef_figure, timeline_figure
from cds_service.explain.sessions import AppSession, SessionStore
from cds_service.explain.view import build_page
from cds_service.gather import RequiredDataUnavailable
from cds_service.logging_setup import get_logger
from cds_service.state import ServiceState

COOKIE = "her2cds_app"
HOOK = "patient-view"
log = get_logger("explain")


def app_launch_url(public_base_url: str | None, host_url: str) -> str:
    """The launch URL the cards' `smart` link names: on HER2CDS_PUBLIC_BASE_URL, else the URL the EHR called."""
    return (public_base_url or host_url).rstrip("/") + "/app/launch"


def plotly_js_path() -> Path:
    """plotly.js as shipped inside the installed plotly package (served as-is; no CDN, no copy in the repo)."""
    import plotly
    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def create_blueprint(state: ServiceState) -> Blueprint:
    assert state.database is not None
    store = SessionStore(state.database, state.settings.app_session_seconds)
    bp = Blueprint("explain", __name__, url_prefix="/app", template_folder="templates",
                   static_folder="static", static_url_path="/static")

    @bp.after_request
    def security_headers(response: Response) -> Response:
        # plotly.js sets inline styles and injects <style> elements, hence style-src 'unsafe-inline';
        # scripts come only from this origin (no inline script: figures travel as JSON data blocks).
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
            f"frame-ancestors {state.settings.app_frame_ancestors}")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.endpoint not in ("explain.static", "explain.plotly_js"):
            response.headers["Cache-Control"] = "no-store"      # PHI (and the launch steps): never cached
            response.headers["Pragma"] = "no-cache"
        return response

    @bp.get("/static/plotly.min.js")
    def plotly_js() -> Response:
        return send_file(plotly_js_path(), mimetype="text/javascript", max_age=86400)

    @bp.get("/launch")
    def launch() -> Response | tuple[str, int]:
        iss, launch_id = request.args.get("iss", ""), request.args.get("launch", "")
        if not iss or not launch_id:
            return _error(400, "An EHR launch needs `iss` and `launch` parameters; launch the app from the EHR.")
        try:
            check_iss(state.settings, iss)
            url, session = smart.begin(state.settings, state.sessions.session(), iss, launch_id, _redirect_uri())
        except FhirServerNotAllowed as exc:
            log.warning("app.launch_refused", extra={"reason": "iss-not-allowed"})
            return _error(403, f"The app was launched for a FHIR server it may not read: {exc}.")
        except smart.LaunchError as exc:
            return _error(exc.status, str(exc))
        response = redirect(url, code=302)
        _set_cookie(response, store.create(session))
        return response

    @bp.get("/callback")
    def callback() -> Response | tuple[str, int]:
        session_id = request.cookies.get(COOKIE)
        session = store.load(session_id)
        if session is None or session_id is None:
            return _error(400, "No launch is pending in this browser session (cookie missing or expired); "
                               "launch the app from the EHR again.")
        try:
            authorized = smart.complete(state.settings, session, request.args.to_dict(), _redirect_uri())
        except smart.LaunchError as exc:
            log.warning("app.callback_refused", extra={"status": exc.status})
            store.drop(session_id)           # one try per launch: a failed exchange cannot be retried
            return _error(exc.status, str(exc))
        store.drop(session_id)               # new id once authorized (no session fixation)
        response = redirect(url_for("explain.page"), code=302)
        _set_cookie(response, store.create(authorized))
        return response

    @bp.get("")
    def page() -> Response | str | tuple[str, int]:
        if request.args.get("launch"):
            return launch()
        iss, patient = request.args.get("iss"), request.args.get("patient")
        if iss or patient:
            return _open_server(iss or "", patient or "")
        session = store.load(request.cookies.get(COOKIE))
        if session is None or session.access_token is None or session.patient is None \
                or (session.token_expires_at or 0) < time.time():
            return _error(401, "No authorized session (or it expired): launch the app from the patient's chart "
                               "in the EHR.")
        return _render(session.iss, session.patient, session.access_token)

    def _open_server(iss: str, patient: str) -> str | tuple[str, int]:
        if state.settings.auth_mode != "off":
            return _error(403, "Open-server mode (?iss=&patient=) is for demos and tests "
                               "(HER2CDS_AUTH_MODE=off); launch the app from the EHR.")
        if not iss or not patient:
            return _error(400, "Open-server mode needs both `iss` (the FHIR base) and `patient`.")
        try:
            check_iss(state.settings, iss)
        except FhirServerNotAllowed as exc:
            return _error(403, f"{exc}.")
        return _render(iss, patient, None)

    def _render(iss: str, patient: str, token: str | None) -> str | tuple[str, int]:
        service = next(s for s in map(state.services.get, state.services.ids) if s is not None and s.hook == HOOK)
        body: dict[str, Any] = {"hook": HOOK, "hookInstance": str(uuid.uuid4()), "fhirServer": iss,
                                "context": {"patientId": patient, "userId": "Practitioner/unknown"}}
        if token is not None:
            body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer",
                                         "scope": " ".join(smart.SCOPES), "subject": state.settings.app_client_id}
        try:
            record, _report = state.gatherer.gather(service, body, state.settings.fhir_server_list)  # = check_iss's list
        except RequiredDataUnavailable as exc:
            return _error(502, f"The patient's record could not be read: {exc}")
        evaluation = pipeline.evaluate(service, body["context"], record, today=dt.datetime.now(dt.timezone.utc).date(),
                                       settings=state.settings,
                                       app_launch_url=app_launch_url(state.settings.public_base_url, request.host_url))
        view = build_page(evaluation, record.resources)
        log.info("app.page", extra={"decisions": len(view.decisions), "resources": len(record.resources),
                                    "gaps": len(view.gaps), "authorized": token is not None})
        return render_template("explain.html", page=view, timeline=timeline_figure(view), lvef=lvef_figure(view),
                               knowledge_version=_knowledge_version())

    def _set_cookie(response: Response, session_id: str) -> None:
        secure = request.is_secure or (state.settings.public_base_url or "").startswith("https://")
        samesite = state.settings.app_cookie_samesite
        response.set_cookie(COOKIE, session_id, max_age=state.settings.app_session_seconds, path="/app",
                            httponly=True, secure=secure or samesite == "None", samesite=samesite)

    def _redirect_uri() -> str:
        return (state.settings.public_base_url or request.host_url).rstrip("/") + "/app/callback"

    return bp


def _knowledge_version() -> str:
    from cards import load_knowledge
    return load_knowledge().version


def _error(status: int, message: str) -> tuple[str, int]:
    return render_template("explain_error.html", status=status, message=message), status


def register(app: Flask, state: ServiceState) -> None:
    """Mount the app under /app (called by the app factory)."""
    app.register_blueprint(create_blueprint(state))
