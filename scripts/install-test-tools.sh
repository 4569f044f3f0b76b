#!/usr/bin/env bash
# The tools some tests drive for real that do not come from Debian: kustomize (built from the Go module proxy,
# pinned) for the k8s overlays. The Debian ones (Chromium, Prometheus/promtool, PostgreSQL, ...) are
# scripts/system-deps.sh's, which `make test` runs first. Idempotent and quiet when all are present.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/validate_deploy.sh" --install
