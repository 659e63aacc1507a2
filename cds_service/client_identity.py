"""Who is calling: the issuer (`iss`) of the request's verified JWT, or a fixed marker when auth is off.

Why: cards are recorded with the issuer they were issued to, and feedback is accepted only for cards
issued to the same issuer (and service), so one client cannot read or skew another client's feedback.
`_authenticate` in the app factory calls `remember_caller` after the token has been verified; the
`iss` read here is therefore the verified one.
"""
from __future__ import annotations

import flask
import jwt

AUTH_OFF_ISSUER = "urn:her2-cds:auth-off"        # every caller when HER2CDS_AUTH_MODE=off (demo)
ANONYMOUS_ISSUER = "urn:her2-cds:anonymous"      # a call without a token where a mode lets it through
_G_KEY = "her2cds_caller_issuer"


def remember_caller(request: flask.Request) -> None:
    """Store the caller's issuer for this request (after authentication succeeded). With auth off nothing
    is stored: `caller_issuer` answers the auth-off marker then (why: a `g` lookup and a call per hook call)."""
    setattr(flask.g, _G_KEY, _issuer_of(request))


def caller_issuer() -> str:
    """The issuer remembered for this request; the auth-off marker when none was (auth off, or outside an
    authenticated app)."""
    return getattr(flask.g, _G_KEY, None) or AUTH_OFF_ISSUER


def _issuer_of(request: flask.Request) -> str:
    scheme, _, token = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ANONYMOUS_ISSUER
    try:   # already verified by the authenticator: only reading the claim here
        iss = jwt.decode(token.strip(), options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return ANONYMOUS_ISSUER
    return iss if isinstance(iss, str) and iss else ANONYMOUS_ISSUER
