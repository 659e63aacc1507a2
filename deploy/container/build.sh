#!/usr/bin/env bash
# Build the her2-cds container image with buildah (Debian package), without any container registry:
#   1. the base image `localhost/her2-cds-base:bookworm` = Debian bookworm (debootstrap, minbase) with
#      python3 + python3-venv, made once and kept;
#   2. the wheels of the service and its dependencies, built on the host with its pip;
#   3. deploy/container/Containerfile (multi-stage) -> `localhost/her2-cds:latest` (docker format, so
#      the HEALTHCHECK is kept).
# Needs root (or a user allowed to mount buildah containers), buildah, runc and debootstrap.
# Usage: deploy/container/build.sh [IMAGE]   (PYTHON: the host Python that builds the wheels)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
IMAGE="${1:-localhost/her2-cds:latest}"
BASE="localhost/her2-cds-base:bookworm"
PYTHON="${PYTHON:-python3}"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"   # works without overlay/fuse support

if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  echo "# building $BASE with debootstrap (once)"
  ctr="$(buildah from scratch)"
  mnt="$(buildah mount "$ctr")"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$mnt" \
    http://deb.debian.org/debian >/dev/null
  chroot "$mnt" apt-get clean
  rm -rf "$mnt"/var/lib/apt/lists/* "$mnt"/var/cache/apt/*
  buildah umount "$ctr" >/dev/null
  buildah config --env LANG=C.UTF-8 "$ctr"
  buildah commit --quiet "$ctr" "$BASE" >/dev/null
  buildah rm "$ctr" >/dev/null
fi

CONTEXT="$(mktemp -d "${TMPDIR:-/tmp}/her2cds-image.XXXXXX")"
trap 'rm -rf "$CONTEXT"' EXIT
"$PYTHON" -m pip wheel --quiet --wheel-dir "$CONTEXT/wheels" ".[postgres]"
buildah bud --quiet --format docker --isolation oci --network host -f deploy/container/Containerfile \
  --build-arg BASE="$BASE" -t "$IMAGE" "$CONTEXT"
echo "# built $IMAGE"
