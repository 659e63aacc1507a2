#!/usr/bin/env python3
"""Profile one hook call in-process (no server, no FHIR): where does the service's time go?

    python bench/profile_call.py [--hook patient-view] [--history 5000] [--calls 20]

Builds the body the bench sends with full prefetch (the realistic patient, or a synthetic history of
N resources), posts it through `create_app(...).test_client()` and prints a pyinstrument profile.
pyinstrument is a dev tool, not a project dependency: `pip install pyinstrument` into the dev venv.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import fhir_side, loadgen, records  # noqa: E402
from bench.run import hook_body, hook_context  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hook", choices=("patient-view", "order-select", "order-sign"), default="patient-view")
    parser.add_argument("--history", type=int, default=0, help="synthetic history of N resources (0: realistic patient)")
    parser.add_argument("--calls", type=int, default=20, help="profiled calls (after 5 warm-up calls)")
    args = parser.parse_args(argv)
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed: pip install pyinstrument", file=sys.stderr)
        return 2
    from cds_service import create_app
    from cds_service.logging_setup import configure_logging

    today = dt.datetime.now(dt.timezone.utc).date()
    patient = records.realistic_patient(today)
    if args.history:
        pid = f"bench-n{args.history}"
        resources = records.synthetic_history(args.history, pid, today)
        patient = records.BenchPatient(pid, tuple(resources), patient.drafts, "synthetic")
    app = create_app({"auth_mode": "off", "feedback_db_url": f"sqlite:///{tempfile.mkdtemp()}/feedback.sqlite3",
                      "max_body_bytes": 64 * 1024 * 1024, "log_level": "WARNING"})
    discovery = app.test_client().get("/cds-services").get_json()
    service = next(s for s in discovery["services"] if s["hook"] == args.hook)
    context = hook_context(args.hook, patient)
    prefetch = fhir_side.prefetch_from_resources(service.get("prefetch") or {}, context, list(patient.resources))
    body = hook_body(args.hook, context, None, prefetch).replace(loadgen.HOOK_INSTANCE_MARK.encode(), b"1" * 32)
    configure_logging("INFO", stream=open(os.devnull, "w"))   # the server logs every call at INFO: profile that too
    client = app.test_client()
    url = f"/cds-services/{service['id']}"
    for _ in range(5):
        response = client.post(url, data=body, content_type="application/json")
        if response.status_code != 200:
            print(f"HTTP {response.status_code}: {response.data[:300]!r}", file=sys.stderr)
            return 1
    profiler = Profiler(interval=0.0005)
    started = time.perf_counter()
    profiler.start()
    for _ in range(args.calls):
        client.post(url, data=body, content_type="application/json")
    profiler.stop()
    elapsed = (time.perf_counter() - started) * 1000 / args.calls
    print(f"{args.hook}, {len(patient.resources)} resources, {len(body) / 1e6:.2f} MB body: "
          f"{elapsed:.1f} ms per call under the profiler")
    print(profiler.output_text(unicode=False, color=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
