#!/usr/bin/env bash
# The Python base stand-in: a Debian bookworm root filesystem made with debootstrap from the mirror this machine's
# apt sources name, with Debian's Python 3.11, imported into podman as
#   localhost/podbrief/python-standin:3.11-bookworm
#
# It stands in for the official base (python:3.11.14-slim-bookworm, pinned by digest in docker-compose.yml),
# which stays the Dockerfile's default: this machine cannot pull from Docker Hub. Differences that matter:
# Debian's Python 3.11.2 in /usr/bin (the official image has 3.11.14 in /usr/local/bin), and the machine's own CA
# bundle is trusted (pip inside a build reaches PyPI only through it). That CA makes it a test image only: never
# push anything built on it.
#
# Idempotent: skipped when the image exists and was built by this script's current version (a label), unless
# REBUILD=1. Env: DEBIAN_MIRROR (default: the first URI of the machine's apt sources), SUITE (bookworm).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGE=${BASE_STANDIN_IMAGE:-localhost/podbrief/python-standin:3.11-bookworm}
SUITE=${SUITE:-bookworm}
# Packages the official slim image has that podbrief needs (tzdata for subscribers' time zones, netbase for
# /etc/services), plus what makes Debian's python3 behave like the image's `python` with venv and pip.
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,netbase,tzdata
RECIPE=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)

log() { echo "containers/base: $*" >&2; }
die() { echo "containers/base: ERROR: $*" >&2; exit 1; }

if [[ ${REBUILD:-0} != 1 ]] &&
  [[ $(podman image inspect "$IMAGE" --format '{{index .Labels "dev.podbrief.recipe"}}' 2>/dev/null) == "$RECIPE" ]]; then
  log "$IMAGE is up to date"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1)
  [[ -n $mirror ]] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n 1)
fi
[[ -n $mirror ]] || die "no Debian mirror in /etc/apt/sources*; set DEBIAN_MIRROR"

work=$(mktemp -d "${TMPDIR:-/tmp}/podbrief-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
log "debootstrap $SUITE from $mirror (minbase + $PACKAGES)"
mkdir -p "$ROOT/.cache/containers/debootstrap"
# The downloaded packages are kept, so a rebuild after a change to this script fetches nothing.
debootstrap --variant=minbase --cache-dir="$ROOT/.cache/containers/debootstrap" --include="$PACKAGES" \
  "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap failed"
}

# The machine's CA bundle, kept through any later update-ca-certificates (the runtime stage reinstalls
# ca-certificates); pip is pointed at the system bundle, which Debian's pip does not use by default in a venv.
install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/usr/local/share/ca-certificates/podbrief-test-machine.crt"
chroot "$rootfs" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the rootfs"
# An image, not a system: no apt caches, logs, manuals or docs, now or from later installs (as in Debian's slim
# images, whose dpkg excludes these too). The manual directories stay: some packages' scripts link into them
# (openjdk's update-alternatives into man1). Services are never started by package scripts in an image.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/* "$rootfs"/tmp/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/info/*
find "$rootfs"/usr/share/man -type f -delete
mkdir -p "$rootfs"/usr/share/man/man1
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/podbrief-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
DPKG
# apt deletes the packages it downloaded once they are installed, as in Debian's official images.
cat >"$rootfs/etc/apt/apt.conf.d/podbrief-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

log "importing $IMAGE"
tar -C "$rootfs" -c . | podman import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change "LABEL dev.podbrief.recipe=$RECIPE" \
  --change 'LABEL dev.podbrief.standin=python:3.11.14-slim-bookworm' \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
log "built $IMAGE ($(podman image inspect "$IMAGE" --format '{{.Size}}') bytes)"
