#!/usr/bin/env bash
# The system tools podbrief's make targets need, in one place: checks each, installs what is missing from Debian's
# packages (as root, or with passwordless sudo), or stops before anything else runs with one message that names
# every missing tool and the command that installs it. Idempotent and quiet when everything is there.
#
# Usage: scripts/system-deps.sh install|unit|test|services|deploy|bench|containers|browser [--check]
#        scripts/system-deps.sh go      prints the Go binary to build with (the newest found), or fails
#   install  what `make install` / `make run` need: Python 3.11 or 3.12 with venv, cmake, a C++ compiler
#   unit     `make test-unit`: install's, plus Prometheus's promtool and Go 1.22.7+ (the deployment checks among the
#            unit tests run promtool and the pinned kustomize, which Go builds once into .cache/bin)
#   test     `make test`: install's, plus Java 17+ and Maven (the Kafka broker's jars), PostgreSQL, espeak-ng
#            (spoken test episodes), Chromium and a colour emoji font (the brief page in a browser), Prometheus and
#            promtool, and Go 1.22.7+ (builds the pinned kustomize; not needed once .cache/bin holds it)
#   services `make services-up`: Python (the broker's readiness probe runs in .venv), Java 17+, Maven, PostgreSQL
#   deploy   `make validate-deploy`: Prometheus/promtool and Go
#   bench    `make bench`: install's, plus Java, Maven, PostgreSQL and espeak-ng
#   containers  `make test-containers`: podman, buildah, runc, debootstrap, netavark, aardvark-dns, iptables
#            (compose networks that resolve service names), Java and Maven (the Kafka stand-in's jars), Go (kustomize)
#   browser  scripts/brief-screenshot.sh: Chromium and a colour emoji font (both also in test)
#   --check  report only, never install (exit 1 when something is missing)
# Env: PYTHON (the interpreter make uses), PODBRIEF_NO_APT=1 (never install; same as --check)
#
# Go: Debian 12's golang-go is 1.19, too old for kustomize v5.7; on Debian 12 Go 1.23 comes from Debian's
# bookworm-backports suite (enabled here in /etc/apt/sources.list.d/ when it is needed; backports are never
# preferred over the release's own packages). A Go already on PATH or in /usr/local/go is used when it is new enough.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

GO_MIN=1.22.7
KUSTOMIZE_VERSION=$(sed -n 's/^KUSTOMIZE_VERSION="\(.*\)"$/\1/p' "$ROOT/scripts/validate_deploy.sh")

log() { printf 'system-deps: %s\n' "$*" >&2; }

group=${1:-}
check_only=0
[[ ${2:-} == --check || ${PODBRIEF_NO_APT:-0} == 1 ]] && check_only=1
case $group in
  install | unit | test | services | deploy | bench | containers | browser | go) ;;
  *) echo "usage: $0 install|unit|test|services|deploy|bench|containers|browser [--check] | go" >&2; exit 2 ;;
esac

missing=()  # "tool|debian package|why" per missing tool
backports=0 # Go has to come from bookworm-backports

need() { missing+=("$1|$2|$3"); }

version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1) == "$2" ]]; }

# ---- the checks ---------------------------------------------------------------------------------------------
check_python() {
  local py=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
  if [[ -z $py ]]; then
    need python3.11 "python3.11 python3.11-venv" "the interpreter"
    return
  fi
  local v
  v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [[ $v != 3.11 && $v != 3.12 ]]; then
    need "python 3.11 or 3.12 (found $v at $py)" "python3.11 python3.11-venv" "podbrief supports 3.11 and 3.12"
    return
  fi
  # Debian splits venv's pip bootstrap (ensurepip) into python3.X-venv.
  "$py" -c 'import ensurepip, venv' 2>/dev/null || need "venv for $py" "python$v-venv" "make install creates .venv"
}

check_build() {
  command -v cmake >/dev/null || need cmake cmake "builds llama-server"
  command -v c++ >/dev/null || command -v g++ >/dev/null || need "a C++ compiler" g++ "builds llama-server"
}

check_kafka() {
  local v=""
  if command -v java >/dev/null; then
    v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')
  fi
  if [[ ! ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    need "java 17+${v:+ (found $v)}" openjdk-17-jre-headless "runs the Kafka broker"
  fi
  command -v mvn >/dev/null || need mvn maven "resolves the Kafka broker's jars from Maven Central"
}

check_postgres() {
  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need "PostgreSQL server" postgresql "the stores' tests"
}

check_espeak() {
  command -v espeak-ng >/dev/null || need espeak-ng espeak-ng "speaks the benchmark and test episodes"
}

check_chromium() {
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
    need chromium chromium "the brief page and sign-up in a real browser"
  # Without one, the pages' emoji (the brief's 👍/👎 feedback buttons) are empty boxes in the screenshots.
  compgen -G "/usr/share/fonts/truetype/noto/NotoColorEmoji*.ttf" >/dev/null ||
    need "a colour emoji font" fonts-noto-color-emoji "the pages' emoji in browser screenshots"
}

check_prometheus() {
  command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    need "prometheus, promtool" prometheus "checks the alert rules and scrapes the services"
}

check_containers() {
  command -v podman >/dev/null || need podman podman "builds and runs the images"
  command -v buildah >/dev/null || need buildah buildah "podman build's engine"
  command -v runc >/dev/null || need runc runc "the OCI runtime that works here (crun does not)"
  command -v debootstrap >/dev/null || need debootstrap debootstrap "makes the Python base stand-in"
  [[ -x /usr/lib/podman/netavark ]] || command -v netavark >/dev/null || need netavark netavark "compose networks"
  [[ -x /usr/lib/podman/aardvark-dns ]] || command -v aardvark-dns >/dev/null ||
    need aardvark-dns aardvark-dns "service names on compose networks"
  command -v iptables >/dev/null || [[ -x /usr/sbin/iptables ]] || need iptables iptables "netavark's firewall rules"
}

# The newest Go among PATH, /usr/local/go and Debian's versioned packages; empty when none.
find_go() {
  local best="" bestv="" g v
  for g in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go-1.*/bin/go; do
    [[ -n $g && -x $g ]] || continue
    v=$("$g" env GOVERSION 2>/dev/null) || continue
    v=${v#go}
    if [[ -z $bestv ]] || version_ge "$v" "$bestv"; then best=$g bestv=$v; fi
  done
  [[ -n $best ]] && echo "$best $bestv"
}

check_go() {
  # Only kustomize needs Go, and only until it is built.
  if [[ -x $ROOT/.cache/bin/kustomize ]] && "$ROOT/.cache/bin/kustomize" version 2>/dev/null | grep -q "$KUSTOMIZE_VERSION"; then
    return
  fi
  # Go fetches kustomize's modules over TLS, with the system's certificate bundle (Java brings it for `make test`;
  # nothing else in `make test-unit`'s list does).
  [[ -s /etc/ssl/certs/ca-certificates.crt ]] ||
    need ca-certificates ca-certificates "TLS to the Go module proxy (kustomize $KUSTOMIZE_VERSION)"
  local found
  found=$(find_go || true)
  if [[ -n $found ]] && version_ge "${found#* }" "$GO_MIN"; then
    return
  fi
  if [[ $(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}") == bookworm ]]; then
    backports=1
    need "go $GO_MIN+${found:+ (found ${found#* })}" golang-1.23-go "builds kustomize $KUSTOMIZE_VERSION"
  else
    need "go $GO_MIN+${found:+ (found ${found#* })}" golang-go "builds kustomize $KUSTOMIZE_VERSION"
  fi
}

run_checks() {
  missing=() backports=0
  case $group in
    install) check_python; check_build ;;
    unit) check_python; check_build; check_prometheus; check_go ;;
    test) check_python; check_build; check_kafka; check_postgres; check_espeak; check_chromium; check_prometheus; check_go ;;
    services) check_python; check_kafka; check_postgres ;;
    deploy) check_prometheus; check_go ;;
    bench) check_python; check_build; check_kafka; check_postgres; check_espeak ;;
    containers) check_containers; check_kafka; check_go ;;
    browser) check_chromium ;;
  esac
}

if [[ $group == go ]]; then
  found=$(find_go || true)
  [[ -n $found ]] && version_ge "${found#* }" "$GO_MIN" && { echo "${found% *}"; exit 0; }
  echo "system-deps: no Go $GO_MIN+ found${found:+ (newest: ${found#* } at ${found% *})}; run scripts/system-deps.sh deploy" >&2
  exit 1
fi

run_checks

((${#missing[@]})) || exit 0

# ---- install, or say exactly what to install ----------------------------------------------------------------
packages=()
for m in "${missing[@]}"; do
  IFS='|' read -r _ pkg _ <<<"$m"
  for p in $pkg; do [[ " ${packages[*]} " == *" $p "* ]] || packages+=("$p"); done
done

sudo=()
can_apt=0
if ((!check_only)) && command -v apt-get >/dev/null; then
  if ((EUID == 0)); then
    can_apt=1
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
    can_apt=1
  fi
fi

# The make target(s) each group is for, as the message names them.
declare -A targets=([install]="make install" [unit]="make test-unit" [test]="make test"
  [services]="make services-up" [deploy]="make validate-deploy" [bench]="make bench"
  [containers]="make test-containers" [browser]="make brief-screenshot")

explain() {
  {
    echo "system-deps: '${targets[$group]:-make}' needs these tools, which this machine lacks:"
    for m in "${missing[@]}"; do
      IFS='|' read -r tool pkg why <<<"$m"
      printf '  - %-34s %s (Debian package %s)\n' "$tool" "$why" "$pkg"
    done
    echo "Install them with:"
    if ((backports)); then
      echo "  echo 'deb http://deb.debian.org/debian bookworm-backports main' | sudo tee /etc/apt/sources.list.d/bookworm-backports.list"
    fi
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${packages[*]/golang-1.23-go/}"
    if ((backports)); then
      echo "  sudo apt-get install -y -t bookworm-backports golang-1.23-go"
    fi
    echo "or run make as root (or with passwordless sudo), which installs them itself."
  } >&2
}

if ((!can_apt)); then
  explain
  exit 1
fi

log "installing from Debian's packages: ${packages[*]}"
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
if ((backports)) && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "enabling Debian's bookworm-backports suite for Go 1.23 (/etc/apt/sources.list.d/bookworm-backports.list)"
  echo 'deb http://deb.debian.org/debian bookworm-backports main' |
    "${sudo[@]}" tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
"${apt[@]}" update >&2 || { explain; exit 1; }
release=() backported=()
for p in "${packages[@]}"; do
  if [[ $p == golang-1.23-go ]]; then backported+=("$p"); else release+=("$p"); fi
done
# --no-install-recommends: Chromium and Prometheus would otherwise bring a desktop's worth of extras.
if ((${#release[@]})); then
  "${apt[@]}" install -y --no-install-recommends "${release[@]}" >&2 || { explain; exit 1; }
fi
if ((${#backported[@]})); then
  "${apt[@]}" install -y --no-install-recommends -t bookworm-backports "${backported[@]}" >&2 || { explain; exit 1; }
fi
if [[ " ${packages[*]} " == *" prometheus "* ]]; then
  # Only the binaries are wanted; the package may have started its server (it would hold :9090).
  "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || "${sudo[@]}" service prometheus stop >/dev/null 2>&1 || true
fi

# Check again: a package that installed but did not bring the tool is a failure to report, not to ignore.
run_checks
if ((${#missing[@]})); then
  log "still missing after apt-get install:"
  explain
  exit 1
fi
log "done"
