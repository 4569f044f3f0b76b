#!/usr/bin/env bash
# A screenshot of a brief's web page in headless Chromium (Debian's chromium package, as the browser test uses):
#   scripts/brief-screenshot.sh [DATA_DIR] [OUT.png]
# DATA_DIR is a `podbrief run` data directory (default .data); its newest brief is shot. OUT defaults to
# docs/brief.png, the README's picture.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${1:-$ROOT/.data}
OUT=${2:-$ROOT/docs/brief.png}
BROWSER=$(command -v chromium || command -v chromium-browser || true)
[[ -n $BROWSER ]] || { echo "brief-screenshot: chromium is not installed (apt-get install -y chromium)" >&2; exit 2; }
BRIEF=$(ls -t "$DATA"/briefs/brief-*.html 2>/dev/null | head -n 1 || true)
[[ -n $BRIEF ]] || { echo "brief-screenshot: no brief-*.html under $DATA/briefs (run \`make run\` first)" >&2; exit 2; }
PROFILE=$(mktemp -d)
trap 'rm -rf "$PROFILE"' EXIT
mkdir -p "$(dirname "$OUT")"
"$BROWSER" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
  --disable-sync --no-first-run --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$PROFILE" \
  --window-size="${WIDTH:-1000},${HEIGHT:-1800}" --screenshot="$OUT" "file://$(realpath "$BRIEF")" 2>/dev/null
echo "brief-screenshot: $BRIEF -> $OUT"
