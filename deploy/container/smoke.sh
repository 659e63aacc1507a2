#!/usr/bin/env bash
# Smoke test of the built image (CI): inside a container of IMAGE, as the image's unprivileged user,
# start `her2-cds serve` (auth off, loopback), wait for /readyz, run the image's health-check command,
# read discovery, stop the service with SIGTERM. Exit 0 only if all of that worked.
# Usage: deploy/container/smoke.sh [IMAGE]
set -euo pipefail
IMAGE="${1:-localhost/her2-cds:latest}"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
ctr="$(buildah from --quiet "$IMAGE")"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah run --isolation oci "$ctr" -- python3 - <<'PY'
import json, os, signal, subprocess, sys, time, urllib.request

assert os.getuid() != 0, "the image must not run as root"
base = "http://127.0.0.1:8080"
server = subprocess.Popen(["her2-cds", "serve", "--host", "127.0.0.1", "--port", "8080", "--workers", "1"],
                          env={**os.environ, "HER2CDS_AUTH_MODE": "off", "HER2CDS_HOST": "127.0.0.1"})  # auth off: loopback only
try:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            sys.exit("the service in the image never became ready")
        time.sleep(0.5)
    # the image's HEALTHCHECK command, verbatim
    subprocess.run(["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"],
                   check=True)
    with urllib.request.urlopen(base + "/cds-services", timeout=5) as reply:
        hooks = sorted(s["hook"] for s in json.load(reply)["services"])
    assert hooks == ["order-select", "order-sign", "patient-view"], hooks
    print("# image smoke test: ready, healthy, discovery lists", ", ".join(hooks))
finally:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
PY
