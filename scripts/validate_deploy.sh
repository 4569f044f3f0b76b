#!/usr/bin/env bash
# Validate the deployment artefacts without Docker or a cluster: installs the tools the checks need (pinned)
# into <repo>/.cache/bin, then runs tests/deploy.
#
#   scripts/validate_deploy.sh             install what is missing, then run the checks
#   scripts/validate_deploy.sh --install   install only (CI setup step)
#   scripts/validate_deploy.sh --compose   also build the Docker Compose v2 CLI from the Go module proxy (slow the
#                                          first time: ~20 minutes of compiling on 2 cores) and run
#                                          `docker-compose config` on both profiles (tests/deploy's slow test
#                                          needs it too)
#
# Tools: kustomize (Go module proxy, built with the Go that scripts/system-deps.sh finds or installs), promtool
# (Debian package `prometheus`, through scripts/system-deps.sh), Python deps kubernetes-validate and jsonschema
# (pinned in pyproject.toml's dev extra, installed by `make install`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/.cache/bin"
PY="${PYTHON:-${ROOT}/.venv/bin/python}"
KUSTOMIZE_VERSION="v5.7.1"
COMPOSE_VERSION="v2.40.3"

log() { printf '[validate-deploy] %s\n' "$*" >&2; }
die() { printf '[validate-deploy] ERROR: %s\n' "$*" >&2; exit 1; }

mode="run"
compose=0
for arg in "$@"; do
  case "${arg}" in
    --install) mode="install" ;;
    --compose) compose=1 ;;
    *) die "unknown argument ${arg}" ;;
  esac
done

mkdir -p "${BIN}"

install_kustomize() {
  if [ -x "${BIN}/kustomize" ] && "${BIN}/kustomize" version 2>/dev/null | grep -q "${KUSTOMIZE_VERSION}"; then
    return
  fi
  local go
  go="$("${ROOT}/scripts/system-deps.sh" go)" || die "Go is needed to build kustomize: run scripts/system-deps.sh deploy"
  log "installing kustomize ${KUSTOMIZE_VERSION} ($("${go}" env GOVERSION))"
  GOBIN="${BIN}" GOFLAGS=-buildvcs=false "${go}" install "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
}

check_python_deps() {
  [ -x "${PY}" ] || die "no Python at ${PY}; run make install first (or set PYTHON)"
  "${PY}" -c "import kubernetes_validate, jsonschema" 2>/dev/null ||
    die "${PY} lacks kubernetes-validate or jsonschema (pyproject.toml's dev extra): run make install"
}

install_compose() {
  # A stamp, not `docker-compose version`: the build cannot always stamp the version into the binary.
  if [ -x "${BIN}/docker-compose" ] && [ "$(cat "${BIN}/docker-compose.version" 2>/dev/null)" = "${COMPOSE_VERSION}" ]; then
    return
  fi
  local go
  go="$("${ROOT}/scripts/system-deps.sh" go)" || die "Go is needed to build docker-compose: run scripts/system-deps.sh deploy"
  log "building docker-compose ${COMPOSE_VERSION} from the Go module proxy (slow the first time)"
  # `go install module@version` refuses modules whose go.mod has replace/exclude directives, as compose's has:
  # build inside a writable copy of the module instead.
  local src
  src="$(GOFLAGS=-mod=mod "${go}" mod download -json "github.com/docker/compose/v2@${COMPOSE_VERSION}" \
         | "${PY}" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  local work="${ROOT}/.cache/compose-src"
  rm -rf "${work}" && cp -r "${src}" "${work}" && chmod -R u+w "${work}"
  (cd "${work}" && "${go}" build -trimpath \
      -ldflags "-X github.com/docker/compose/v2/internal.Version=${COMPOSE_VERSION}" \
      -o "${BIN}/docker-compose" ./cmd)
  rm -rf "${work}"
  echo "${COMPOSE_VERSION}" > "${BIN}/docker-compose.version"
}

run_compose_config() {
  local envfile
  envfile="$(mktemp)"
  cp "${ROOT}/.env.example" "${envfile}"
  for profile in cpu gpu; do
    log "docker-compose config --profile ${profile}"
    "${BIN}/docker-compose" --project-directory "${ROOT}" -f "${ROOT}/docker-compose.yml" --env-file "${envfile}" \
      --profile "${profile}" config --quiet
  done
  rm -f "${envfile}"
}

"${ROOT}/scripts/system-deps.sh" deploy
install_kustomize
check_python_deps
if [ "${compose}" -eq 1 ]; then
  install_compose
fi
[ "${mode}" = "install" ] && exit 0

if [ "${compose}" -eq 1 ]; then
  run_compose_config
fi
log "pytest tests/deploy"
cd "${ROOT}"
exec "${PY}" -m pytest tests/deploy -q
