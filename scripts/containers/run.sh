#!/usr/bin/env bash
# `make test-containers`: podman set up, every image built from the real Dockerfiles (and the stand-ins), the
# compose cpu profile brought up and tested (tests/containers: health, readiness, listening ports against compose,
# k8s and Prometheus, a feed turned into a brief, Prometheus scraping every service, read-only non-root
# containers, a clean `down`), then the result and timings written into the README (scripts/containers/report.py).
#
# HEAVY_LOCK=/path/to/lock: hold that lock (flock) for each build and for the stack's run, not for the whole
# target; the timings are taken inside the lock. PYTEST_ARGS: extra pytest arguments.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OUT=test-artifacts/containers
PY=.venv/bin/python
mkdir -p "$OUT"
rm -f "$OUT/phases.json" "$OUT/result.json"

now() { date +%s.%N; }
# Runs a command under HEAVY_LOCK (if set) and prints the seconds it took once it held the lock.
locked_seconds() {
  flock "${HEAVY_LOCK:-$OUT/.lock}" bash -c 'start=$(date +%s.%N); "$@" >&2; rc=$?; echo "$(date +%s.%N) $start $rc"' _ "$@"
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

started=$(now)
t=$(now)
scripts/containers/setup.sh
# kustomize renders the k8s overlay the listening-port test compares against.
scripts/validate_deploy.sh --install
setup_s=$(elapsed "$(now)" "$t")

read -r end start rc < <(locked_seconds scripts/containers/base.sh)
base_s=$(elapsed "$end" "$start")
((rc == 0)) || { echo "test-containers: the base stand-in failed" >&2; exit "$rc"; }

t=$(now)
$PY scripts/containers/images.py --out "$OUT"
images_s=$(elapsed "$(now)" "$t")

# shellcheck disable=SC2086
read -r end start rc < <(locked_seconds $PY -m pytest -p no:cacheprovider -m containers tests/containers -v ${PYTEST_ARGS:-})
stack_s=$(elapsed "$end" "$start")
total_s=$(elapsed "$(now)" "$started")

cat >"$OUT/phases.json" <<JSON
{"setup_s": $setup_s, "base_s": $base_s, "images_s": $images_s, "stack_s": $stack_s, "total_s": $total_s, "rc": $rc,
 "finished_at": "$(date -u '+%Y-%m-%d %H:%M UTC')"}
JSON
$PY scripts/containers/report.py --artifacts "$OUT"
exit "$rc"
