"""SMART App Launch (EHR launch, authorization code + PKCE S256) done with Authlib's OAuth 2 client.

launch: `iss` + `launch` -> `iss/.well-known/smart-configuration` -> authorize URL (state, PKCE
challenge, `aud`=iss, `launch`); callback: state compared with the stored one -> token endpoint (code +
verifier) -> access token and `patient` kept server-side. Every failure is a `LaunchError` with a status
and a message safe to show (no token, no code, no URL with a patient id).
"""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from cds_service.config import Settings
from cds_service.explain.sessions import AppSession

# What the service reads (cds_service/services.py prefetch templates) plus `launch` for the EHR context.
SCOPES = ("launch", "patient/Patient.read", "patient/Condition.read", "patient/Observation.read",
          "patient/MedicationStatement.read", "patient/MedicationRequest.read",
          "patient/MedicationAdministration.read", "patient/Medication.read")
HTTP_TIMEOUT_SECONDS = 5.0


class LaunchError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SmartEndpoints:
    authorize: str
    token: str


def discover(session: requests.Session, iss: str) -> SmartEndpoints:
    """The authorization server of `iss` from its SMART configuration (SMART App Launch 2.x §2.0.4)."""
    url = iss.rstrip("/") + "/.well-known/smart-configuration"
    try:
        response = session.get(url, timeout=HTTP_TIMEOUT_SECONDS, headers={"Accept": "application/json"})
        config = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError):
        config = None
    if not isinstance(config, dict) or not all(isinstance(config.get(k), str) and config[k].startswith(("https://", "http://"))
                                               for k in ("authorization_endpoint", "token_endpoint")):
        raise LaunchError(502, "The EHR's FHIR server did not publish a usable SMART configuration "
                               "(.well-known/smart-configuration with authorization_endpoint and token_endpoint).")
    return SmartEndpoints(config["authorization_endpoint"], config["token_endpoint"])


def _client(settings: Settings, redirect_uri: str, **kwargs: Any) -> OAuth2Session:
    auth_method = "client_secret_basic" if settings.app_client_secret else "none"
    client = OAuth2Session(client_id=settings.app_client_id, client_secret=settings.app_client_secret,
                           token_endpoint_auth_method=auth_method, scope=" ".join(SCOPES),
                           redirect_uri=redirect_uri, code_challenge_method="S256", **kwargs)
    client.trust_env = False
    return client


def begin(settings: Settings, http: requests.Session, iss: str, launch: str, redirect_uri: str) -> tuple[str, AppSession]:
    """(authorize URL to redirect the browser to, the session to store before redirecting)."""
    endpoints = discover(http, iss)
    verifier = generate_token(64)
    state = generate_token(32)
    client = _client(settings, redirect_uri)
    url, _ = client.create_authorization_url(endpoints.authorize, state=state, code_verifier=verifier,
                                             aud=iss, launch=launch)
    return url, AppSession(iss=iss, state=state, code_verifier=verifier, token_endpoint=endpoints.token)


def complete(settings: Settings, session: AppSession, args: dict[str, str], redirect_uri: str) -> AppSession:
    """Exchange the code for a token; the session now holds the token and the patient in context."""
    if session.state is None or session.code_verifier is None or session.token_endpoint is None:
        raise LaunchError(400, "No launch is pending in this browser session; launch the app from the EHR again.")
    if not hmac.compare_digest(args.get("state", ""), session.state):
        raise LaunchError(400, "The authorization response does not belong to this launch (state mismatch).")
    if args.get("error"):
        raise LaunchError(403, f"The EHR did not authorize the app ({args['error'][:64]}).")
    code = args.get("code")
    if not code:
        raise LaunchError(400, "The authorization response carries no code.")
    client = _client(settings, redirect_uri, state=session.state)
    try:
        token = client.fetch_token(session.token_endpoint, grant_type="authorization_code", code=code,
                                   code_verifier=session.code_verifier, timeout=HTTP_TIMEOUT_SECONDS)
    except OAuthError as exc:
        raise LaunchError(401, f"The EHR's token endpoint refused the authorization code ({exc.error}); "
                               "launch the app from the EHR again.") from None
    except (requests.RequestException, ValueError):
        raise LaunchError(502, "The EHR's token endpoint could not be reached or gave no valid answer.") from None
    access_token, patient = token.get("access_token"), token.get("patient")
    if not isinstance(access_token, str) or not access_token:
        raise LaunchError(502, "The EHR's token response has no access_token.")
    if not isinstance(patient, str) or not patient:
        raise LaunchError(400, "The EHR granted no patient context (the token response has no `patient`); "
                               "launch the app from a patient's chart.")
    expires_in = token.get("expires_in")
    lifetime = min(float(expires_in), settings.app_session_seconds) if isinstance(expires_in, (int, float)) \
        else settings.app_session_seconds
    return AppSession(iss=session.iss, access_token=access_token, patient=patient,
                      token_expires_at=time.time() + lifetime)
