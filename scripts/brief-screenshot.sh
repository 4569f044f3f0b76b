#!/usr/bin/env bash
# A screenshot of a brief's web page in headless Chromium (Debian's chromium package, as the browser tests use),
# the whole page as tall as its content:
#   scripts/brief-screenshot.sh [DATA_DIR] [OUT.png]
# DATA_DIR is a `podbrief run` data directory (default .data); its newest brief is shot. OUT defaults to
# docs/brief.png, the README's picture, so running it again after `make run` updates the README.
# WIDTH (default 1000) sets the page's width in CSS pixels.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${1:-$ROOT/.data}
OUT=${2:-$ROOT/docs/brief.png}
PY=$ROOT/.venv/bin/python
[[ -x $PY ]] || { echo "brief-screenshot: no $ROOT/.venv (run \`make install\` first)" >&2; exit 2; }
# Chromium and a colour emoji font (the brief's feedback buttons), installed as root or named with the command.
"$ROOT/scripts/system-deps.sh" browser
BRIEF=$(ls -t "$DATA"/briefs/brief-*.html 2>/dev/null | head -n 1 || true)
[[ -n $BRIEF ]] || { echo "brief-screenshot: no brief-*.html under $DATA/briefs (run \`make run\` first)" >&2; exit 2; }
"$PY" -m podbrief_testing.browser "$BRIEF" "$OUT" --width "${WIDTH:-1000}"
echo "brief-screenshot: $BRIEF -> $OUT ($(($(stat -c %s "$OUT") / 1024)) KB)"
