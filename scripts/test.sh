#!/usr/bin/env bash
# Starts the real services the suite needs (Kafka, PostgreSQL), runs pytest with any extra arguments, and stops
# them whatever happens. `make test` and CI call this.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

cleanup() {
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  scripts/postgres.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

PODBRIEF_TEST_KAFKA=$(scripts/kafka.sh start | tail -n 1)
PODBRIEF_TEST_PG=$(scripts/postgres.sh start | tail -n 1)
export PODBRIEF_TEST_KAFKA PODBRIEF_TEST_PG
echo "test.sh: Kafka at $PODBRIEF_TEST_KAFKA, PostgreSQL at …@${PODBRIEF_TEST_PG#*@}" >&2

# The tools the deployment checks and the browser test use (kustomize, promtool, Chromium).
scripts/install-test-tools.sh

mkdir -p test-artifacts
args=("$@")
# The Compose CLI takes ~20 minutes to build on 2 cores: `make validate-deploy` runs that check, not every test run.
# The container stack has its own target too (`make test-containers`; the README says why it is not in CI).
[[ " $* " == *" -m "* ]] || args=(-m "not compose_cli and not containers" "${args[@]}")
set +e
.venv/bin/python -m pytest "${args[@]}"
rc=$?
set -e
# pytest exits 5 when nothing was collected: for a filtered run that is a wrong filter, not a pass.
exit $rc
