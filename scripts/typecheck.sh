#!/usr/bin/env bash
# mypy (strict) on every floor: libs, the services, apps and the test support. The services live in
# services/<name>/ but import as podbrief_<name> (mapped by the editable install, which mypy cannot follow), so
# give mypy a tree of links with the import names.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LINKS=.cache/typing
mkdir -p "$LINKS"
packages=(-p podbrief -p podbrief_cli -p podbrief_run -p podbrief_testing)
for dir in services/*/; do
  name=$(basename "$dir")
  ln -sfn "../../services/$name" "$LINKS/podbrief_$name"
  packages+=(-p "podbrief_$name")
done
MYPYPATH="libs:apps:testing:$LINKS" exec .venv/bin/mypy --exclude '/tests/' --exclude '/migrations/' "${packages[@]}"
