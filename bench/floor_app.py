"""The floor app (issue 15): the cheapest Flask service that does what every hook call must do.

    python -m bench.floor_app --host 127.0.0.1 --port P --workers 2

It runs under the very gunicorn settings of `her2-cds serve` (`cds_service.serve.gunicorn_options`:
its gthread worker class and threads per worker, access log to stdout; and its malloc arena cap), reads the same hook body, parses it with the standard library's
`json` (what a plain Flask service does) and answers one fixed card. Why: absolute req/s on a shared
2-core machine swing by a third between runs, so the bench measures this floor in the same run,
interleaved with the service, and judges the service by the ratio service / floor, which the
machine's other work moves far less.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from flask import Flask, Response, jsonify, request

FIXED_CARD: dict[str, Any] = {
    "uuid": "00000000-0000-4000-8000-000000000001",
    "summary": "Floor app: one fixed card",
    "indicator": "info",
    "detail": "The bench's floor: Flask + gunicorn, the hook body parsed, this card answered.",
    "source": {"label": "her2-cds bench floor app",
               "topic": {"system": "urn:her2-cds:bench", "code": "floor", "display": "Floor"}},
}


def create_floor_app(max_body_bytes: int = 64 * 1024 * 1024) -> Flask:
    """The floor's Flask app: discovery with no services, and `POST /cds-services/<id>` -> one card."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.json.sort_keys = False
    app.json.compact = True

    @app.get("/cds-services")
    def discovery() -> Response:
        return jsonify({"services": []})

    @app.post("/cds-services/<service_id>")
    def call(service_id: str) -> Response | tuple[Response, int]:
        try:
            body = json.loads(request.get_data(cache=False))
        except ValueError:
            return jsonify({"resourceType": "OperationOutcome"}), 400
        if not isinstance(body, dict) or not isinstance(body.get("hook"), str):
            return jsonify({"resourceType": "OperationOutcome"}), 400
        return jsonify({"cards": [FIXED_CARD]})

    return app


def main(argv: list[str] | None = None) -> int:
    from cds_service.config import Settings
    from cds_service.serve import EmbeddedGunicorn, gunicorn_options, limit_malloc_arenas

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    settings = Settings()
    limit_malloc_arenas(settings.malloc_arenas)        # as `her2-cds serve` does
    EmbeddedGunicorn(create_floor_app,
                     gunicorn_options(args.host, args.port, args.workers, threads=settings.threads)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
