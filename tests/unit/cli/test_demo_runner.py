"""What `her2-cds demo` prints is correct by construction: encoded sandbox URL, pasteable curl."""
from __future__ import annotations

import json
import shlex
from urllib.parse import parse_qs, urlsplit

from sandbox import runner


def test_sandbox_url_encodes_all_three_parameters():
    url = runner.sandbox_url("http://127.0.0.1:9000/fhir", "demo-1-pat", "http://127.0.0.1:8080/cds-services")
    assert url.startswith("https://sandbox.cds-hooks.org/?fhirServiceUrl=http%3A%2F%2F127.0.0.1%3A9000%2Ffhir&")
    assert parse_qs(urlsplit(url).query) == {"fhirServiceUrl": ["http://127.0.0.1:9000/fhir"], "patientId": ["demo-1-pat"],
                                             "serviceDiscoveryURL": ["http://127.0.0.1:8080/cds-services"]}


def test_the_printed_curl_round_trips_through_the_shell():
    body = runner.hook_request("patient-view", "http://127.0.0.1:9000/fhir", "demo-1-pat")
    argv = shlex.split(runner.curl_command("http://127.0.0.1:8080/cds-services/pv", body))
    assert argv[-1] == "http://127.0.0.1:8080/cds-services/pv"
    assert json.loads(argv[argv.index("--data") + 1]) == body


def test_order_select_requests_carry_the_drafts_and_select_them():
    drafts = [{"resourceType": "MedicationRequest", "id": "d1"}]
    body = runner.hook_request("order-select", "http://f/fhir", "p", drafts)
    assert body["context"]["draftOrders"]["entry"][0]["resource"]["id"] == "d1"
    assert body["context"]["selections"] == ["MedicationRequest/d1"]
    assert body["fhirServer"] == "http://f/fhir" and "prefetch" not in body


def test_instructions_name_every_hook_and_write_order_request_files(tmp_path):
    services = {h: f"http://127.0.0.1:8080/cds-services/{h}" for h in ("patient-view", "order-select", "order-sign")}
    text = runner.DemoInstructions("http://127.0.0.1:8080", "http://127.0.0.1:9000/fhir", services, tmp_path).text()
    for hook in services:
        assert f"{hook} for demo-" in text
    order_select = json.loads((tmp_path / "order-select.json").read_text())
    assert order_select["context"]["patientId"] == "demo-5-pat" and "${T" not in json.dumps(order_select)
    assert "authentication OFF" in text and "sandbox.cds-hooks.org" in text


def test_a_busy_port_is_detected():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert runner.port_is_free(s.getsockname()[1]) is False


def test_instructions_print_the_explanation_view_url_for_the_demo_patient(tmp_path):
    text = runner.DemoInstructions("http://127.0.0.1:8080", "http://127.0.0.1:9000/fhir", {}, tmp_path).text()
    assert ("http://127.0.0.1:8080/app?iss=http%3A%2F%2F127.0.0.1%3A9000%2Ffhir&patient=demo-1-pat") in text


def test_the_demo_service_may_read_only_its_own_fhir_server_and_says_tokens_may_go_over_http(tmp_path, monkeypatch):
    """Issue 14: auth off takes its FHIR allowlist from HER2CDS_FHIR_SERVERS; the demo lists its sekmet
    (after any base the user set) and allows access tokens to that http:// server."""
    import subprocess

    from sandbox import runner

    seen = {}

    class FakePopen:
        def __init__(self, argv, env=None, **kwargs):
            seen.update(argv=argv, env=env)

    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setenv("HER2CDS_FHIR_SERVERS", "https://fhir.example.org/r4")
    runner.start_service(8123, tmp_path, fhir_servers=["http://127.0.0.1:9999/fhir"])
    env = seen["env"]
    assert env["HER2CDS_FHIR_SERVERS"] == "https://fhir.example.org/r4,http://127.0.0.1:9999/fhir"
    assert env["HER2CDS_ALLOW_INSECURE_FHIR"] == "1" and env["HER2CDS_AUTH_MODE"] == "off"
    assert seen["argv"][seen["argv"].index("--host") + 1] == "127.0.0.1"
