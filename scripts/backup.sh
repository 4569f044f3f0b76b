#!/usr/bin/env bash
# Backup and restore of podbrief's stores (deploy/BACKUP.md is the procedure around it).
#
# Usage:
#   scripts/backup.sh pg-dump      DSN OUT.dump     pg_dump -Fc of one database, written atomically (+ .sha256)
#   scripts/backup.sh pg-restore   DSN IN.dump      pg_restore into DSN's (empty, freshly created) database
#   scripts/backup.sh qdrant-local-snapshot DIR OUT.tar.gz
#                                                   tar of a Qdrant local-mode directory, under its lock
#   scripts/backup.sh qdrant-local-restore  IN.tar.gz DIR
#                                                   unpack beside DIR, then swap it in (old dir kept as DIR.old-*)
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

qdrant_local_snapshot() {
  (($# == 2)) || die "usage: qdrant-local-snapshot DIR OUT.tar.gz"
  local dir=$1 out=$2
  [[ -d $dir && -f $dir/.lock ]] || die "$dir is not a Qdrant local-mode directory (no .lock)"
  PARTIAL="$out.partial.$$"
  local tmp=$PARTIAL
  # The Qdrant client holds an exclusive flock on DIR/.lock while it has the directory open; taking it here
  # both proves the writer is stopped and keeps one from starting until the copy is complete.
  flock --nonblock "$dir/.lock" tar -C "$dir" --exclude=./.lock -czf "$tmp" . ||
    die "$dir is in use (stop the clustering service first) or tar failed"
  mv -f "$tmp" "$out"
  PARTIAL=
  (cd "$(dirname "$out")" && sha256sum "$(basename "$out")" >"$(basename "$out").sha256")
  log "wrote $out ($(stat -c %s "$out") bytes)"
}

qdrant_local_restore() {
  (($# == 2)) || die "usage: qdrant-local-restore IN.tar.gz DIR"
  local in=$1 dir=${2%/} stage old
  [[ -f $in ]] || die "no snapshot at $in"
  if [[ -f $in.sha256 ]]; then
    (cd "$(dirname "$in")" && sha256sum --quiet -c "$(basename "$in").sha256") || die "checksum mismatch: $in"
  fi
  if [[ -e $dir/.lock ]]; then
    flock --nonblock "$dir/.lock" true || die "$dir is in use (stop the clustering service first)"
  fi
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
qdrant-local-snapshot) qdrant_local_snapshot "$@" ;;
qdrant-local-restore) qdrant_local_restore "$@" ;;
*) die "usage: $0 pg-dump|pg-restore|qdrant-local-snapshot|qdrant-local-restore ..." ;;
esac
