#!/usr/bin/env bash
# Real single-node Apache Kafka (KRaft, broker+controller in one JVM) on
# 127.0.0.1 for tests and CI. No Docker, no tarball: the broker classpath comes
# from Maven Central via deploy/local/kafka/pom.xml.
#
# Usage: scripts/kafka.sh start|stop|restart|kill|status
#   start    fresh broker (data wiped unless KAFKA_KEEP_DATA=1); waits until a
#            real produce/consume/commit round trip works, then prints the
#            bootstrap address (127.0.0.1:PORT) on stdout
#   stop     SIGTERM, wait, then SIGKILL; no-op if not running
#   restart  stop + start keeping data
#   kill     SIGKILL now, keeping data (crash simulation for fault tests)
#   status   exit 0 if running, 3 if not
# Env: PODBRIEF_KAFKA_PORT (9092), PODBRIEF_KAFKA_CONTROLLER_PORT (9093), PODBRIEF_KAFKA_DIR (.cache/kafka),
#      KAFKA_KEEP_DATA (0), KAFKA_READY_TIMEOUT (90 s), KAFKA_STOP_TIMEOUT (30 s),
#      KAFKA_HEAP (512m), PYTHON (.venv/bin/python, else python3; needs aiokafka)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONF=$ROOT/deploy/local/kafka
# The jars are shared; PODBRIEF_KAFKA_DIR gives a second broker (e.g. the fault suite's, which it kills and
# restarts) its own data, pid file, log and lock.
LIB=$ROOT/.cache/kafka/lib
CACHE=${PODBRIEF_KAFKA_DIR:-$ROOT/.cache/kafka}
DATA=$CACHE/data
PIDFILE=$CACHE/kafka.pid
LOG=$CACHE/kafka.log
PORT=${PODBRIEF_KAFKA_PORT:-9092}
CPORT=${PODBRIEF_KAFKA_CONTROLLER_PORT:-9093}
# The readiness probe needs aiokafka: prefer the repo venv, else whatever
# python3 is on PATH (e.g. a CI runner's own environment).
if [[ -z ${PYTHON:-} ]]; then
  PYTHON=$ROOT/.venv/bin/python
  [[ -x $PYTHON ]] || PYTHON=python3
fi

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: ERROR: $*" >&2; exit 1; }

# "Gone" must mean the sockets are released, or an immediate restart finds its
# port busy. After SIGKILL the JVM's main thread can turn zombie (empty
# cmdline, state Z) while other threads are still tearing down, so a process
# only counts as gone when it has no /proc entry or is a zombie with no live
# threads left (an unreaped zombie must count as gone too: in containers PID 1
# may never reap it).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]] && return 0
  local tasks=("/proc/$1/task/"*)
  ((${#tasks[@]} > 1))
}
# A pid file can outlive its process (kill -9, reboot) and the pid can be
# reused, so only trust it if that pid is still a kafka.Kafka JVM.
running_pid() {
  local pid
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}
# Port of the broker that is actually running (from its rendered config), which
# may differ from what this invocation's env asks for.
running_port() { sed -n 's|^advertised.listeners=PLAINTEXT://127.0.0.1:||p' "$CACHE/server.properties"; }
wait_gone() { # pid, tenths of a second
  for _ in $(seq "$2"); do alive "$1" || return 0; sleep 0.1; done
  ! alive "$1"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

log_tail() {
  echo "----- last 60 lines of $LOG -----" >&2
  tail -n 60 "$LOG" >&2 2>/dev/null || true
  echo "-----" >&2
}

# Resolve jars only when the pom changed: mvn costs seconds even when
# everything is in ~/.m2, and warm starts should not pay for it.
fetch_jars() {
  local want
  want=$(sha256sum "$CONF/pom.xml" | cut -d' ' -f1)
  [[ -f $LIB/.pom.sha256 && $(<"$LIB/.pom.sha256") == "$want" ]] && return 0
  command -v mvn >/dev/null || die "mvn not found; install Maven 3.8+ (apt-get install maven)"
  log "resolving Kafka jars from Maven Central into $LIB (first run takes a while)"
  # Download into a temp dir and swap, so an interrupted run never leaves a
  # half-filled classpath that later looks valid.
  rm -rf "$LIB.tmp"
  mvn -q -B -Dstyle.color=never -f "$CONF/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIB.tmp" -DincludeScope=runtime >"$CACHE/mvn.log" 2>&1 || {
    tail -n 40 "$CACHE/mvn.log" >&2
    die "Maven could not resolve the Kafka classpath (Maven Central reachable?); see $CACHE/mvn.log"
  }
  echo "$want" >"$LIB.tmp/.pom.sha256"
  rm -rf "$LIB" && mv "$LIB.tmp" "$LIB"
}

check_java() {
  command -v java >/dev/null ||
    die "java not found; Kafka 4 needs Java 17+ (apt-get install openjdk-17-jre-headless)"
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/{print $2}')
  [[ ${v%%.*} =~ ^[0-9]+$ ]] && ((${v%%.*} >= 17)) || die "java '$v' is too old; Kafka 4 needs 17+"
}

# Common JVM flags. C1-only JIT and a small heap: startup time and footprint
# matter more than peak throughput on a 2-core CI box.
JAVA_OPTS=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:TieredStopAtLevel=1
  -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$CONF/log4j2.properties" "-Dkafka.logs.dir=$CACHE")

wait_ready() {
  "$PYTHON" "$ROOT/scripts/wait_kafka.py" --bootstrap "127.0.0.1:$PORT" \
    --timeout "${KAFKA_READY_TIMEOUT:-90}" --pid "$1" && return 0
  log_tail
  # Leave nothing half-started behind: a later `start` would otherwise see
  # "already running" and a test would hang on a broken broker.
  do_stop
  die "Kafka did not become ready on 127.0.0.1:$PORT (full log: $LOG)"
}

do_start() {
  local pid
  if pid=$(running_pid); then
    [[ $(running_port) == "$PORT" ]] ||
      die "a broker is already running on port $(running_port) (pid $pid), not $PORT; stop it first"
    log "already running (pid $pid)"
    wait_ready "$pid"
    echo "127.0.0.1:$PORT"
    return 0
  fi
  # Grace period: a broker that a test just kill -9'd may still hold its
  # sockets for a moment.
  for p in "$PORT" "$CPORT"; do
    for _ in $(seq 50); do port_busy "$p" || continue 2; sleep 0.1; done
    die "127.0.0.1:$p is in use by another process; set PODBRIEF_KAFKA_PORT/_CONTROLLER_PORT"
  done
  "$PYTHON" -c 'import aiokafka' 2>/dev/null ||
    die "$PYTHON cannot import aiokafka (needed for the readiness probe); create .venv or set PYTHON"
  check_java
  fetch_jars

  [[ ${KAFKA_KEEP_DATA:-0} == 1 ]] || rm -rf "$DATA"
  mkdir -p "$DATA"
  sed -e "s|@PORT@|$PORT|g" -e "s|@CONTROLLER_PORT@|$CPORT|g" -e "s|@DATA_DIR@|$DATA|g" \
    "$CONF/server.properties" >"$CACHE/server.properties"
  echo "===== $(date -Is) kafka.sh start port=$PORT keep_data=${KAFKA_KEEP_DATA:-0} =====" >>"$LOG"

  # KRaft refuses to start on an unformatted log dir; a kept dir is already
  # formatted with its own cluster id, which must not change.
  if [[ ! -f $DATA/meta.properties ]]; then
    local cid
    # Kafka cluster ids are 16 random bytes, base64url without padding; avoid a
    # leading '-' which Kafka's own generator also avoids (CLI parsing).
    cid=$("$PYTHON" -c 'import base64,uuid
while (c := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(c)')
    java -Xmx256m "${JAVA_OPTS[@]}" -cp "$LIB/*" kafka.tools.StorageTool format \
      -t "$cid" -c "$CACHE/server.properties" >>"$LOG" 2>&1 ||
      { log_tail; die "formatting $DATA failed"; }
  fi

  # setsid+nohup: the broker must survive the calling shell/CI step and not get
  # its Ctrl-C; 9>&- so it does not inherit (and hold) our lock. The inner
  # bash records its own pid and then execs java, so the pid file names the
  # JVM itself, not a wrapper.
  rm -f "$PIDFILE"
  setsid nohup bash -c 'cd "$1" && echo $$ >"$2" && shift 2 && exec "$@"' _ "$CACHE" "$PIDFILE" \
    java "-Xmx${KAFKA_HEAP:-512m}" -Xms128m "${JAVA_OPTS[@]}" -cp "$LIB/*" \
    kafka.Kafka "$CACHE/server.properties" >>"$LOG" 2>&1 </dev/null 9>&- &
  for _ in $(seq 50); do [[ -s $PIDFILE ]] && break; sleep 0.1; done
  pid=$(cat "$PIDFILE" 2>/dev/null) || die "broker process did not start (see $LOG)"
  log "started pid $pid, waiting for readiness (log: $LOG)"
  wait_ready "$pid"
  local jars=("$LIB"/kafka-clients-*.jar) ver
  ver=${jars[0]##*/kafka-clients-}
  log "ready (Kafka ${ver%.jar})"
  echo "127.0.0.1:$PORT"
}

do_stop() {
  local pid timeout=${KAFKA_STOP_TIMEOUT:-30}
  if ! pid=$(running_pid); then
    rm -f "$PIDFILE"
    log "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" $((timeout * 10)); then
    log "pid $pid ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 100 || die "could not stop pid $pid"
  fi
  rm -f "$PIDFILE"
  log "stopped (pid $pid)"
}

do_kill() {
  local pid
  pid=$(running_pid) || { log "not running"; return 0; }
  kill -KILL "$pid"
  wait_gone "$pid" 100 || die "pid $pid survived SIGKILL"
  rm -f "$PIDFILE"
  log "killed (pid $pid); data kept in $DATA"
}

mkdir -p "$CACHE" "$(dirname "$LIB")"
# Serialise concurrent invocations (parallel CI steps, test fixtures) so two
# starts can't race on the pid file, data dir or jar download.
exec 9>"$CACHE/.lock"
flock -w 300 9 || die "timed out waiting for another kafka.sh holding $CACHE/.lock"

case ${1:-} in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop && KAFKA_KEEP_DATA=1 do_start ;;
  kill) do_kill ;;
  status)
    pid=$(running_pid) || { echo "kafka not running"; exit 3; }
    echo "kafka running (pid $pid, 127.0.0.1:$(running_port))" ;;
  *) echo "usage: $0 start|stop|restart|kill|status" >&2; exit 2 ;;
esac
