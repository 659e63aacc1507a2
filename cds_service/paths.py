"""Request paths as clients write them: `/cds-services/` (trailing slash) and `//` reach the service.

Why: a discovery URL entered as `https://host/cds-services/` makes clients such as the CDS Hooks
sandbox call `/cds-services/` and `/cds-services//{id}`. Werkzeug's routing answers the first with 404
and the second with a 308 redirect, and a browser's CORS preflight follows neither, so the sandbox
showed "All clear!" (no cards, no error). Normalising the WSGI PATH_INFO before routing serves every
such spelling directly, preflights included, with no redirect.

The path the client invoked is kept in the environ: a JWT's `aud` is "the exact URL invoked", which
may contain the extra slashes (`invoked_url`).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from werkzeug.wsgi import get_current_url

INVOKED_PATH_KEY = "her2cds.invoked_path"
_SLASHES = re.compile(r"/{2,}")


def normalise_path(path: str) -> str:
    """Runs of `/` become one, and a trailing `/` is dropped (the root stays `/`). The regex runs only on a path
    that has a run (why: it runs on every request, and almost every path has none)."""
    merged = _SLASHES.sub("/", path) if "//" in path else path or "/"
    return merged.rstrip("/") or "/"


class NormaliseSlashes:
    """WSGI middleware: routes `/a//b/` as `/a/b`, remembering the path as invoked."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        normalised = normalise_path(path)
        if normalised != path:
            environ[INVOKED_PATH_KEY] = path
            environ["PATH_INFO"] = normalised
        return self.app(environ, start_response)


def invoked_url(environ: dict[str, Any]) -> str:
    """The URL the client invoked (scheme, host, script root and path as sent; no query string)."""
    invoked = environ.get(INVOKED_PATH_KEY)
    if invoked is None:
        return get_current_url(environ, strip_querystring=True)
    return get_current_url({**environ, "PATH_INFO": invoked}, strip_querystring=True)


def invoked_path(environ: dict[str, Any]) -> str | None:
    """The path as invoked when it differed from the routed one (WSGI latin-1 -> UTF-8), else None."""
    invoked = environ.get(INVOKED_PATH_KEY)
    if invoked is None:
        return None
    return invoked.encode("latin-1").decode("utf-8", "replace")
