#!/usr/bin/env bash
# Podman on this kind of machine, for `make test-containers`: idempotent, quiet when everything is in place.
#
# - podman, buildah, runc, debootstrap, netavark, aardvark-dns and iptables from Debian's packages, with Java and
#   Maven for the Kafka stand-in's jars (scripts/system-deps.sh containers);
# - /etc/containers/containers.conf: runc instead of crun (crun fails without CAP_SYS_RESOURCE on hybrid cgroups),
#   cgroupfs (no systemd), events to a file, and explicit ulimits (the defaults ask for more than the machine
#   grants). An existing file with other content is kept as containers.conf.podbrief-bak;
# - podman-compose, pinned, into .cache/containers/venv (a test tool, not a dependency of podbrief).
#
# Needs root (or sudo) for the packages and the configuration file.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# The pin lives in pyproject.toml's `containers` extra.
PODMAN_COMPOSE=$(python3 -c 'import sys, tomllib
extra = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["containers"]
print(next(d for d in extra if d.startswith("podman-compose==")))' "$ROOT/pyproject.toml")
TOOLS=$ROOT/.cache/containers/venv

log() { echo "containers/setup: $*" >&2; }
die() { echo "containers/setup: ERROR: $*" >&2; exit 1; }

sudo=""
[[ $(id -u) == 0 ]] || sudo="sudo"

"$ROOT/scripts/system-deps.sh" containers

CONF=/etc/containers/containers.conf
want=$(cat <<'CONF'
# Written by podbrief scripts/containers/setup.sh (make test-containers).
[containers]
# The defaults ask for more open files and processes than this machine grants a container.
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]

[engine]
# crun fails here (no CAP_SYS_RESOURCE, hybrid cgroups); runc works.
runtime = "runc"
# No systemd: cgroups are managed directly, events go to a file, health checks are run with
# `podman healthcheck run` by the caller.
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
# Compose networks resolve service names through aardvark-dns; the CNI file the podman package ships is unused.
network_backend = "netavark"
CONF
)
if [[ ! -f $CONF || "$(cat "$CONF")" != "$want" ]]; then
  $sudo mkdir -p /etc/containers
  if [[ -f $CONF ]] && ! grep -q "podbrief scripts/containers/setup.sh" "$CONF"; then
    $sudo cp "$CONF" "$CONF.podbrief-bak"
    log "kept the previous $CONF as $CONF.podbrief-bak"
  fi
  printf '%s\n' "$want" | $sudo tee "$CONF" >/dev/null
  log "wrote $CONF"
fi

if [[ ! -x $TOOLS/bin/podman-compose ]] || [[ "podman-compose==$("$TOOLS/bin/python" -m pip show podman-compose \
  2>/dev/null | sed -n 's/^Version: //p')" != "$PODMAN_COMPOSE" ]]; then
  log "installing $PODMAN_COMPOSE into $TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q "$PODMAN_COMPOSE" || die "pip install $PODMAN_COMPOSE failed"
fi

podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}' >/dev/null ||
  die "podman does not work with $CONF (see podman info)"
