#!/usr/bin/env bash
# Installs the system tools some tests drive for real: Chromium (the brief page and sign-up in a browser),
# espeak-ng (the end-to-end benchmark's episodes, run at smoke size by the suite), Prometheus/promtool (rules and
# live scraping) and kustomize (the k8s overlays). Idempotent and quiet when all are present; needs root (or sudo)
# for Debian packages. `--apt-only`: the Debian packages alone (what the benchmarks need).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "install-test-tools: apt-get install ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[[ ${1:-} == --apt-only ]] && exit 0
# kustomize (Go module proxy), promtool (Debian), kubernetes-validate (PyPI), all pinned there.
"$ROOT/scripts/validate_deploy.sh" --install
