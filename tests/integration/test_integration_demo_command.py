"""`her2-cds demo` end to end: it starts FHIR + service, the printed patient-view curl returns cards,
and SIGTERM stops everything it started."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest
import requests

from sandbox.sekmet import ensure_sekmet, free_port

pytestmark = pytest.mark.integration


def _read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    deadline, text = time.monotonic() + timeout, ""
    while time.monotonic() < deadline and marker not in text:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        text += line
    return text


def _run_printed_curl(command: str) -> dict:
    argv = shlex.split(command)
    if shutil.which("curl"):
        return json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout)
    data = argv[argv.index("--data") + 1]
    return requests.post(argv[-1], data=data, headers={"Content-Type": "application/json"}, timeout=30).json()


def test_demo_prints_a_working_patient_view_curl_and_app_url_and_stops_cleanly_on_sigterm():
    env = {**os.environ, "HER2CDS_SEKMET_VENV": str(ensure_sekmet())}
    env.pop("HER2CDS_FEEDBACK_DB_URL", None)
    process = subprocess.Popen([sys.executable, "-P", "-m", "cds_service.cli", "demo", "--port", str(free_port())],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    try:
        output = _read_until(process, "Ctrl-C stops", timeout=90)
        lines = output.splitlines()
        curl = next(lines[i + 1].strip() for i, line in enumerate(lines) if line.startswith("patient-view for"))
        assert "https://sandbox.cds-hooks.org/?fhirServiceUrl=http%3A%2F%2F127.0.0.1%3A" in output
        cards = _run_printed_curl(curl)["cards"]
        assert any(c["source"]["topic"]["code"] == "her2-next-regimen" for c in cards)
        fhir = next(line.split(":", 1)[1].split()[0] for line in lines if "FHIR R4 server" in line)
        app = next(lines[i + 1].strip() for i, line in enumerate(lines) if line.startswith("Explanation view"))
        page = requests.get(app, timeout=30)
        assert page.status_code == 200 and "Therapy timeline" in page.text and "demo-1-pat" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{fhir}/metadata", timeout=3)
