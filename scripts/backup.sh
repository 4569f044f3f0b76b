#!/usr/bin/env bash
# Backup and restore of podbrief's stores (deploy/BACKUP.md is the procedure around it).
#
# Usage:
#   scripts/backup.sh pg-dump      DSN OUT.dump     pg_dump -Fc of one database, written atomically (+ .sha256)
#   scripts/backup.sh pg-restore   DSN IN.dump      pg_restore into DSN's (empty, freshly created) database
#   scripts/backup.sh vectors-snapshot DIR OUT.tar.gz
#                                                   tar of the embedded vector store (CLUSTERING_QDRANT__PATH: Qdrant
#                                                   Edge, or a qdrant-client local-mode directory), under its locks
#   scripts/backup.sh vectors-restore  IN.tar.gz DIR
#                                                   unpack beside DIR, then swap it in (old dir kept as DIR.old-*)
#   (qdrant-local-snapshot and qdrant-local-restore, their names before Qdrant Edge, still work)
# DSN: postgresql://user:pass@host:port/db (postgresql+asyncpg:// as in *_DB__URL works too). The password is
# moved into PGPASSWORD so it never shows in a process list or in this script's output; PGPASSWORD/PGPASSFILE
# set by the caller work as usual. Query parameters go to libpq as they are: write sslmode=require, not asyncpg's
# ssl=require.
# Env: PG_BIN (directory of pg_dump/pg_restore; default: newest /usr/lib/postgresql/*/bin, else PATH).
set -euo pipefail

# A half-written output file is removed on any exit, so only complete backups carry the final name.
PARTIAL=
trap '[[ -z $PARTIAL ]] || rm -f "$PARTIAL"' EXIT

log() { echo "backup.sh: $*" >&2; }
die() {
  echo "backup.sh: ERROR: $*" >&2
  exit 1
}

pg_tool() {
  local bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
  if [[ -n $bin && -x $bin/$1 ]]; then
    echo "$bin/$1"
  else
    command -v "$1" || die "$1 not found (set PG_BIN or install the PostgreSQL client)"
  fi
}

urldecode() {
  local s=${1//+/ }
  printf '%b' "${s//%/\\x}"
}

# Sets DSN (libpq form, no password) and exports PGPASSWORD when the DSN carries one; prints nothing secret.
split_dsn() {
  local raw=$1 scheme rest creds
  [[ $raw == postgresql*://* || $raw == postgres://* ]] || die "not a PostgreSQL DSN (postgresql://...)"
  scheme=postgresql
  rest=${raw#*://}
  if [[ $rest == *@* ]]; then
    creds=${rest%%@*}
    rest=${rest#*@}
    if [[ $creds == *:* ]]; then
      PGPASSWORD=$(urldecode "${creds#*:}")
      export PGPASSWORD
      creds=${creds%%:*}
    fi
    DSN="$scheme://$creds@$rest"
  else
    DSN="$scheme://$rest"
  fi
  # What may be logged: host, port and database, never the user's password.
  SAFE="${DSN#*@}"
}

pg_dump_cmd() {
  (($# == 2)) || die "usage: pg-dump DSN OUT.dump"
  split_dsn "$1"
  local out=$2
  PARTIAL="$out.partial.$$"
  local tmp=$PARTIAL
  log "dumping $SAFE"
  # -Fc: compressed, and pg_restore can pick objects and run in parallel. No owners or grants, so a dump
  # restores under whatever role the target deployment uses.
  "$(pg_tool pg_dump)" --format=custom --no-owner --no-privileges --file="$tmp" --dbname="$DSN"
  mv -f "$tmp" "$out"
  PARTIAL=
  (cd "$(dirname "$out")" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
  log "wrote $out ($(stat -c %s "$out") bytes)"
}

pg_restore_cmd() {
  (($# == 2)) || die "usage: pg-restore DSN IN.dump"
  split_dsn "$1"
  local in=$2
  [[ -f $in ]] || die "no dump at $in"
  if [[ -f $in.sha256 ]]; then
    (cd "$(dirname "$in")" && sha256sum --quiet -c "$(basename "$in").sha256") || die "checksum mismatch: $in"
  fi
  log "restoring $in into $SAFE"
  # One transaction: a restore that fails half way leaves the database as it was (empty), not half filled.
  "$(pg_tool pg_restore)" --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$DSN" "$in"
  log "restored"
}

# Every lock file of a store: one per collection in Qdrant Edge (DIR/<collection>/.lock), one for the whole
# directory in qdrant-client's local mode (DIR/.lock).
store_locks() {
  local dir=$1 f
  for f in "$dir"/.lock "$dir"/*/.lock; do
    [[ -f $f ]] && printf '%s\n' "$f"
  done
  return 0
}

# A writer holds an exclusive flock on each lock file while it has the store open. Taking them all (held until
# this script exits) both proves no writer runs and keeps one from starting until the copy is complete.
lock_store() {
  local f fd
  while IFS= read -r f; do
    exec {fd}<"$f"
    flock --nonblock "$fd" || die "$1 is in use (stop the clustering service first)"
  done < <(store_locks "$1")
}

vectors_snapshot() {
  (($# == 2)) || die "usage: vectors-snapshot DIR OUT.tar.gz"
  local dir=${1%/} out=$2
  [[ -d $dir && -n $(store_locks "$dir") ]] ||
    die "$dir is not a vector store (no DIR/<collection>/.lock of Qdrant Edge, no DIR/.lock of local mode)"
  lock_store "$dir"
  PARTIAL="$out.partial.$$"
  local tmp=$PARTIAL
  # --sparse: Qdrant Edge preallocates its WAL files (32 MB each, mostly holes).
  tar -C "$dir" --sparse --exclude=.lock -czf "$tmp" . || die "tar of $dir failed"
  mv -f "$tmp" "$out"
  PARTIAL=
  (cd "$(dirname "$out")" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
  log "wrote $out ($(stat -c %s "$out") bytes)"
}

vectors_restore() {
  (($# == 2)) || die "usage: vectors-restore IN.tar.gz DIR"
  local in=$1 dir=${2%/} stage old
  [[ -f $in ]] || die "no snapshot at $in"
  if [[ -f $in.sha256 ]]; then
    (cd "$(dirname "$in")" && sha256sum --quiet -c "$(basename "$in").sha256") || die "checksum mismatch: $in"
  fi
  [[ ! -e $dir ]] || lock_store "$dir"
  stage="$dir.restore.$$"
  mkdir -p "$stage"
  tar -C "$stage" -xzf "$in" || {
    rm -rf "$stage"
    die "cannot unpack $in"
  }
  # Renames on one file system: the directory is either the old one or the restored one, never a mix.
  if [[ -e $dir ]]; then
    old="$dir.old-$(date -u +%Y%m%dT%H%M%SZ)"
    mv "$dir" "$old"
    log "previous directory kept at $old"
  fi
  mv "$stage" "$dir"
  log "restored $in into $dir"
}

cmd=${1:-}
shift || true
case $cmd in
pg-dump) pg_dump_cmd "$@" ;;
pg-restore) pg_restore_cmd "$@" ;;
vectors-snapshot | qdrant-local-snapshot) vectors_snapshot "$@" ;;
vectors-restore | qdrant-local-restore) vectors_restore "$@" ;;
*) die "usage: $0 pg-dump|pg-restore|vectors-snapshot|vectors-restore ..." ;;
esac
