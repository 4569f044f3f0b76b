#!/usr/bin/env bash
# Private, throwaway PostgreSQL cluster on 127.0.0.1 for tests and CI, using
# Debian's packaged binaries (scripts/system-deps.sh installs them) but none of Debian's cluster
# management, so it never touches a system cluster.
#
# Usage: scripts/postgres.sh start|stop|restart|status
#   start    fresh cluster (data wiped unless PG_KEEP_DATA=1), role+db
#            podbrief/podbrief, waits until podbrief can log in over TCP,
#            then prints the DSN on stdout
#   stop     pg_ctl stop -m fast; no-op if not running
#   restart  stop + start keeping data
#   status   exit 0 if running, 3 if not
# Env: PODBRIEF_PG_PORT (54329), PG_KEEP_DATA (0),
#      PODBRIEF_PG_DIR (.cache/pg; must be reachable by the postgres user),
#      PODBRIEF_PG_SOCKDIR (/tmp)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PODBRIEF_PG_DIR:-$ROOT/.cache/pg}
DATA=$CACHE/data
LOG=$CACHE/postgres.log
PORT=${PODBRIEF_PG_PORT:-54329}
# Unix socket paths are limited to ~107 bytes; a deep checkout path could
# exceed that, /tmp never does (the port is part of the socket name).
SOCKDIR=${PODBRIEF_PG_SOCKDIR:-/tmp}
DSN="postgresql+asyncpg://podbrief:podbrief@127.0.0.1:$PORT/podbrief"

log() { echo "postgres.sh: $*" >&2; }
die() { echo "postgres.sh: ERROR: $*" >&2; exit 1; }

log_tail() {
  echo "----- last 40 lines of $LOG -----" >&2
  tail -n 40 "$LOG" >&2 2>/dev/null || true
  echo "-----" >&2
}

# Newest installed major version; empty if none.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
BIN=$(pg_bin)

# Installing is scripts/system-deps.sh's job (`make test` runs it first); here a missing server is one clear error.
ensure_installed() {
  [[ -n $BIN && -x $BIN/pg_ctl ]] && return 0
  die "PostgreSQL not found in /usr/lib/postgresql/*/bin; scripts/system-deps.sh test installs it (apt-get install postgresql)"
}

# The server refuses to run as root, so as root everything runs as the
# unprivileged 'postgres' user (created by the Debian package; created here if
# the binaries came without it). As a normal user, run as that user directly.
if ((EUID == 0)); then
  id -u postgres >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres
  AS_PG=(runuser -u postgres --)
else
  AS_PG=()
fi
pg() { "${AS_PG[@]}" "$@"; }

# psql as superuser over the unix socket (trust auth, socket is mode 0700).
psql_super() {
  pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U postgres -d postgres
}

is_running() {
  [[ -n $BIN && -f $DATA/PG_VERSION ]] && pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}
# Port the running server actually uses (line 4 of postmaster.pid), which may
# differ from what this invocation's env asks for.
running_port() { sed -n 4p "$DATA/postmaster.pid" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

ensure_db() {
  # Idempotent, so it is also correct on a kept (restarted) cluster.
  psql_super <<'SQL' || { log_tail; die "creating role/database podbrief failed"; }
SELECT 'CREATE ROLE podbrief' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'podbrief') \gexec
-- CREATEDB lets tests make per-test/per-worker databases.
ALTER ROLE podbrief LOGIN CREATEDB PASSWORD 'podbrief';
SELECT 'CREATE DATABASE podbrief OWNER podbrief'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'podbrief') \gexec
SQL
  # Final readiness check is the exact path the app uses: TCP + password.
  PGPASSWORD=podbrief pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U podbrief -d podbrief \
    -tAc 'SELECT 1' >/dev/null || { log_tail; die "podbrief cannot log in on 127.0.0.1:$PORT"; }
}

do_start() {
  ensure_installed
  if is_running; then
    [[ $(running_port) == "$PORT" ]] ||
      die "PostgreSQL is already running on port $(running_port), not $PORT; stop it first"
    log "already running ($DATA)"
    ensure_db
    echo "$DSN"
    return 0
  fi
  port_busy "$PORT" && die "127.0.0.1:$PORT is in use by another process; set PODBRIEF_PG_PORT"

  [[ ${PG_KEEP_DATA:-0} == 1 ]] || rm -rf "$DATA"
  mkdir -p "$CACHE"
  touch "$LOG"
  # pg_ctl opens the log itself as the postgres user.
  if ((EUID == 0)); then chown postgres: "$CACHE" "$LOG"; fi
  pg test -w "$CACHE" -a -x "$CACHE" ||
    die "user '$(pg id -un)' cannot write $CACHE (parent dir not traversable?); set PODBRIEF_PG_DIR=/tmp/pb-pg"

  if [[ ! -f $DATA/PG_VERSION ]]; then
    # C locale: deterministic collation in tests and no dependency on which
    # locales the machine has generated. -N: no fsync, it's throwaway data.
    pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --no-locale -N --no-instructions \
      --auth-local=trust --auth-host=scram-sha-256 >>"$LOG" 2>&1 ||
      { log_tail; die "initdb failed"; }
    # Durability off: a crash loses the test DB, which we recreate anyway, and
    # tests run several times faster. Port/socket are passed per start so a
    # kept cluster can be restarted on another port.
    cat >>"$DATA/postgresql.conf" <<'EOF'

# --- scripts/postgres.sh (test cluster) ---
listen_addresses = '127.0.0.1'
unix_socket_permissions = 0700
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
  fi

  echo "===== $(date -Is) start port=$PORT keep_data=${PG_KEEP_DATA:-0} =====" >>"$LOG"
  # 9>&-: the postmaster must not inherit (and hold forever) our lock fd.
  pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 -o "-p $PORT -k '$SOCKDIR'" >/dev/null 9>&- ||
    { log_tail; die "PostgreSQL did not start"; }
  local ok=0
  for _ in $(seq 60); do
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && { ok=1; break; }
    sleep 0.5
  done
  ((ok)) || { log_tail; do_stop; die "PostgreSQL not accepting TCP on 127.0.0.1:$PORT"; }
  ensure_db
  log "ready ($("$BIN/postgres" --version), data $DATA)"
  echo "$DSN"
}

do_stop() {
  if ! is_running; then
    log "not running"
    return 0
  fi
  # fast = roll back sessions and shut down cleanly; immediate only as a last
  # resort (it needs crash recovery on the next start, which still works).
  pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 60 >/dev/null ||
    pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 30 >/dev/null ||
    die "could not stop PostgreSQL ($DATA)"
  log "stopped"
}

mkdir -p "$CACHE"
# Commands run as the postgres user, whose cwd must be accessible to it.
cd /
# Serialise concurrent invocations (parallel CI steps / fixtures).
exec 9>"$CACHE/.lock"
flock -w 120 9 || die "timed out waiting for another postgres.sh holding $CACHE/.lock"

case ${1:-} in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop && PG_KEEP_DATA=1 do_start ;;
  status)
    is_running || { echo "postgres not running"; exit 3; }
    echo "postgres running (127.0.0.1:$(running_port), $DATA)" ;;
  *) echo "usage: $0 start|stop|restart|status" >&2; exit 2 ;;
esac
