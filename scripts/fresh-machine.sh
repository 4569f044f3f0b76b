#!/usr/bin/env bash
# Proves that the README's commands work on a fresh machine: a Debian 12 root made by debootstrap with only what
# the README says a fresh machine has (Python 3.11, make, git, ca-certificates), a fresh clone of the
# repository in it, the shared test data beside it (read-only), and then `make test` (or other make targets)
# as root in a chroot with a bare environment. Nothing this machine installed by hand is visible in there:
# not its PATH, its Go, Java, PostgreSQL, Chromium, caches (pip, Maven, Go, llama-server) or virtualenvs.
#
# Usage (as root; debootstrap comes from Debian): scripts/fresh-machine.sh [options] [make targets...]
#   --dir DIR       where the roots live (default /var/tmp/podbrief-fresh): DIR/base is the pristine
#                   debootstrap (made once, kept), DIR/root a copy of it made anew for each run
#   --ref REF       branch or commit to clone (default: the current branch); --repo PATH (default: this repo)
#   --keep          leave DIR/root (and its mounts) after the run, to look around or to --reuse it
#   --reuse         run in the DIR/root an earlier --keep run left (what that run installed stays; the clone is
#                   made anew): to run `make deps-test` (apt only) first, outside a machine-wide lock, and the
#                   heavy `make test` under it
#   --resume        --reuse, and keep the earlier run's clone with everything it built (.venv, .cache: the models,
#                   llama-server, kustomize, the Kafka jars), checked out at REF: the second half of a run split in
#                   two sittings (see "Split" below)
#   targets         default: test. The run's output goes to DIR/run-<date>.log as well, each line time-stamped
#                   (UTC), and what it recorded under test-artifacts/ to DIR/run-<date>-artifacts.
# Split: `make test` on a fresh root takes about 35 minutes of setup (apt, pip, the models, a 17-minute
# llama-server compile) and then the suite. To prove it in two sittings:
#   scripts/fresh-machine.sh --keep deps-test install lint test-unit      # every install step, lint, unit+contract
#   scripts/fresh-machine.sh --resume test PYTEST_ARGS="-m 'not (unit or contract) and not compose_cli and not containers'"
# The first is the README's setup on a fresh root plus the layers that need no services; the second runs the rest
# of `make test` (its setup steps find everything in place and do nothing) on what the first left.
# Env: PODBRIEF_KAFKA_PORT, PODBRIEF_KAFKA_CONTROLLER_PORT, PODBRIEF_PG_PORT are passed through (the chroot shares
# this machine's network); MIRROR (default: http://deb.debian.org/debian).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

dir=/var/tmp/podbrief-fresh
repo=$ROOT
ref=$(git -C "$ROOT" rev-parse --abbrev-ref HEAD)
keep=0
reuse=0
resume=0
targets=()
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --ref) ref=$2; shift 2 ;;
    --repo) repo=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --reuse) reuse=1; shift ;;
    --resume) reuse=1; resume=1; shift ;;
    -h | --help) sed -n '2,28p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
((${#targets[@]})) || targets=(test)

log() { printf '[fresh-machine] %s\n' "$*" >&2; }
die() { printf '[fresh-machine] ERROR: %s\n' "$*" >&2; exit 1; }
((EUID == 0)) || die "needs root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
[[ -d $ROOT/../shared ]] || die "no shared test data at $ROOT/../shared"

mirror=${MIRROR:-http://deb.debian.org/debian}
base=$dir/base
run=$dir/root
mkdir -p "$dir"

# ---- the pristine base, once --------------------------------------------------------------------------------
if [[ ! -f $base/.podbrief-base ]]; then
  log "debootstrap bookworm from $mirror into $base (python3, make, git, ca-certificates)"
  rm -rf "$base"
  debootstrap --include=python3,make,git,ca-certificates bookworm "$base" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
    { tail -n 30 "$dir/debootstrap.log" >&2; die "debootstrap failed (log: $dir/debootstrap.log)"; }
  date -Is >"$base/.podbrief-base"
fi

# ---- a fresh copy of it, mounts, the clone ------------------------------------------------------------------
mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  ((keep)) && return
  # Never delete through a mount (the shared data is bound in there): only when nothing is mounted below.
  if grep -q " $run/" /proc/mounts; then
    log "mounts remain under $run; not removing it"
  else
    rm -rf --one-file-system "$run"
  fi
}
trap cleanup EXIT
mounted() { mountpoint -q "$1"; }
bind() { mkdir -p "$2"; mounted "$2" || mount "${@:3}" --bind "$1" "$2"; mounts+=("$2"); }
fs() { mkdir -p "$3"; mounted "$3" || mount -t "$1" "${@:4}" "$2" "$3"; mounts+=("$3"); }

if ((reuse)) && [[ -f $run/.podbrief-base ]]; then
  log "reusing $run (what an earlier run installed there stays)"
else
  ((reuse)) && log "nothing to reuse in $run: starting from the base"
  if grep -q " $run/" /proc/mounts; then die "something is still mounted under $run; umount -R it first"; fi
  rm -rf --one-file-system "$run"
  log "copying the base into $run"
  cp -a "$base" "$run"
  cp /etc/resolv.conf "$run/etc/resolv.conf"
  # As in any chroot or container image: packages installed in there must not start their services (PostgreSQL's
  # and Prometheus's would take ports on this machine); the tests start their own.
  printf '#!/bin/sh\nexit 101\n' >"$run/usr/sbin/policy-rc.d" && chmod +x "$run/usr/sbin/policy-rc.d"
  # Bases made before curl was dropped from the list above still have it: nothing podbrief runs needs it.
  if [[ -x $run/usr/bin/curl ]]; then chroot "$run" dpkg --purge curl >/dev/null; fi
fi
fs proc proc "$run/proc"
fs sysfs sys "$run/sys"
bind /dev "$run/dev"
bind /dev/pts "$run/dev/pts"
fs tmpfs shm "$run/dev/shm" -o mode=1777
if ! mounted "$run/work/shared"; then
  bind "$(cd "$ROOT/../shared" && pwd)" "$run/work/shared" -o ro
  mount -o remount,ro,bind "$run/work/shared"
else
  mounts+=("$run/work/shared")
fi

# The chroot shares this machine's network, and so what it trusts on it: where the network intercepts TLS with a
# CA of its own (an egress proxy), the chroot gets the certificates this machine trusts and Debian's bundle lacks
# (the same step an image of this workplace has; nothing of podbrief's).
added=$(python3 - "$run" <<'PY'
import pathlib, re, sys
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
run = pathlib.Path(sys.argv[1])
host = pem.findall(pathlib.Path("/etc/ssl/certs/ca-certificates.crt").read_text())
have = set(pem.findall((run / "etc/ssl/certs/ca-certificates.crt").read_text()))
out = run / "usr/local/share/ca-certificates"
out.mkdir(parents=True, exist_ok=True)
extra = [c for c in host if c not in have]
for i, c in enumerate(extra):
    (out / f"host-network-{i}.crt").write_text(c + "\n")
print(len(extra))
PY
)
if ((added)) || compgen -G "$run/usr/local/share/ca-certificates/host-network-*.crt" >/dev/null; then
  log "trusting the certificate(s) this machine's network needs (its TLS-intercepting proxy): $added new"
  # --fresh, with /proc mounted: Java's keystore (Maven fetches the Kafka jars over TLS) is rebuilt too.
  chroot "$run" update-ca-certificates --fresh >/dev/null
fi

clone=$run/work/podbrief
if ((resume)) && [[ -d $clone/.git ]]; then
  want=$(git -C "$repo" rev-parse "$ref^{commit}")
  log "keeping the earlier run's clone and what it built; checking out $ref ($(git -C "$repo" rev-parse --short "$want"))"
  git -C "$clone" fetch -q origin '+refs/heads/*:refs/remotes/origin/*'
  git -C "$clone" checkout -q --detach "$want"
  [[ -z $(git -C "$clone" status --porcelain --untracked-files=no) ]] || die "the kept clone has local changes"
else
  ((resume)) && log "no clone to resume in $clone: cloning anew"
  rm -rf "$clone"
  log "cloning $repo ($ref) into $clone"
  git clone -q --no-local --branch "$ref" "$repo" "$clone" 2>/dev/null ||
    { git clone -q --no-local "$repo" "$clone" && git -C "$clone" checkout -q "$ref"; }
fi
commit=$(git -C "$run/work/podbrief" rev-parse --short HEAD)

# ---- the README's commands, in a bare environment -----------------------------------------------------------
out=$dir/run-$(date +%Y%m%dT%H%M%S).log
log "chroot: make ${targets[*]} at $commit (log: $out)"
env_vars=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 CI=true TERM=dumb)
# Passed through: our ports, and this machine's settings for its network's TLS trust (they name the system bundle,
# which the chroot has, with the proxy's certificates added above), as any process on this machine gets them.
for v in PODBRIEF_KAFKA_PORT PODBRIEF_KAFKA_CONTROLLER_PORT PODBRIEF_PG_PORT PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE \
  CURL_CA_BUNDLE; do
  [[ -n ${!v:-} ]] && env_vars+=("$v=${!v}")
done
# Where the chroot carries this network's certificates, pip (whose own bundle lacks them) and the other clients
# read the system bundle that now has them, whether or not the caller's environment says so.
if compgen -G "$run/usr/local/share/ca-certificates/host-network-*.crt" >/dev/null; then
  for v in PIP_CERT REQUESTS_CA_BUNDLE SSL_CERT_FILE CURL_CA_BUNDLE; do
    [[ -n ${!v:-} ]] || env_vars+=("$v=/etc/ssl/certs/ca-certificates.crt")
  done
fi
started=$(date +%s)
# Every line of the log carries the wall-clock time it was written, so each phase's duration (apt, pip, the
# llama-server build, the models, lint, the suite) can be read off it.
stamp() { local TZ=UTC; export TZ; while IFS= read -r line || [[ -n $line ]]; do printf '%(%H:%M:%S)T %s\n' -1 "$line"; done; }
set +e
chroot "$run" /usr/bin/env -i "${env_vars[@]}" bash -c \
  'cd /work/podbrief && echo "python: $(python3 --version), go: $(command -v go || echo none), java: $(command -v java || echo none)" && make "$@"' \
  _ "${targets[@]}" 2>&1 | stamp | tee "$out"
rc=${PIPESTATUS[0]}
set -e
# What the run recorded (the fault suite's tables, bench smoke, logs) outlives the root.
if [[ -d $run/work/podbrief/test-artifacts ]]; then
  cp -a "$run/work/podbrief/test-artifacts" "${out%.log}-artifacts"
  log "test artifacts: ${out%.log}-artifacts"
fi
log "make ${targets[*]} exited $rc after $(($(date +%s) - started)) s (commit $commit; log: $out)"
exit "$rc"
