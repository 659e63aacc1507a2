"""Server-side sessions of the SMART app: the browser holds only an opaque random id in a cookie.

Why server-side: the access token the EHR grants must never reach the browser, a URL or a log, and
gunicorn runs several worker processes (the launch and the callback may land on different ones), so
the session lives in the service's database (the feedback DB, shared by all workers). Only a SHA-256
of the cookie value is stored, so a copy of the table cannot be replayed as cookies.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from cds_service.storage import Database

metadata = MetaData()

app_sessions = Table(
    "app_sessions", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False, index=True),
    Column("data", Text, nullable=False),          # JSON of AppSession fields (state, verifier, token, ...)
)


@dataclass
class AppSession:
    """What one browser's launch knows. `access_token` is set once the token endpoint answered."""

    iss: str
    state: str | None = None                 # OAuth2 `state` of the pending authorization request
    code_verifier: str | None = None         # PKCE verifier of the pending request
    token_endpoint: str | None = None
    access_token: str | None = None
    patient: str | None = None
    token_expires_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:   # never print the token or the verifier
        return f"AppSession(iss={self.iss!r}, authorized={self.access_token is not None})"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


class SessionStore:
    """Create / load / save / drop app sessions by cookie value; expired rows are purged on create."""

    def __init__(self, database: Database, lifetime_seconds: int) -> None:
        self.database = database
        self.lifetime = lifetime_seconds
        try:
            metadata.create_all(database.engine)
        except SQLAlchemyError:   # another worker created it between the check and the CREATE
            metadata.create_all(database.engine)

    def create(self, session: AppSession) -> str:
        """Store `session` under a new random id; returns the id (the cookie value)."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self.database.begin() as conn:
            conn.execute(delete(app_sessions).where(app_sessions.c.expires_at < now))
            conn.execute(insert(app_sessions), [{"id_hash": _hash(session_id), "expires_at": now + self.lifetime,
                                                 "data": json.dumps(session.__dict__)}])
        return session_id

    def load(self, session_id: str | None) -> AppSession | None:
        if not session_id or len(session_id) > 128:
            return None
        with self.database.begin() as conn:
            row = conn.execute(select(app_sessions.c.data, app_sessions.c.expires_at)
                               .where(app_sessions.c.id_hash == _hash(session_id))).first()
        if row is None or row.expires_at < time.time():
            return None
        return AppSession(**json.loads(row.data))

    def save(self, session_id: str, session: AppSession) -> None:
        with self.database.begin() as conn:
            conn.execute(update(app_sessions).where(app_sessions.c.id_hash == _hash(session_id))
                         .values(data=json.dumps(session.__dict__)))

    def drop(self, session_id: str) -> None:
        with self.database.begin() as conn:
            conn.execute(delete(app_sessions).where(app_sessions.c.id_hash == _hash(session_id)))
