#!/usr/bin/env python3
"""Entrypoint of the Kafka stand-in image: the apache/kafka image's configuration interface, then the broker.

KAFKA_* variables become server.properties entries as in apache/kafka (KAFKA_LOG_DIRS -> log.dirs; `__` is `_`,
`___` is `-`); KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS and KAFKA_TOOL_OPTS are JVM options, not properties.
CLUSTER_ID formats an empty log dir (KRaft). The broker replaces this process (exec), so it gets the signals."""

import os
import re
import subprocess
import sys
from pathlib import Path

CONFIG = Path("/opt/kafka/config/server.properties")
NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS", "KAFKA_TOOL_OPTS", "KAFKA_OPTS"}
LOG4J = "-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties"


def property_name(variable: str) -> str:
    name = variable[len("KAFKA_") :].lower()
    return re.sub("___", "-", re.sub("(?<!_)__(?!_)", "\0", name)).replace("_", ".").replace("\0", "_")


def main() -> int:
    props = {
        property_name(k): v for k, v in sorted(os.environ.items()) if k.startswith("KAFKA_") and k not in NOT_PROPERTIES
    }
    missing = [p for p in ("node.id", "process.roles", "listeners", "log.dirs") if p not in props]
    if missing:
        print(f"kafka stand-in: set {', '.join('KAFKA_' + m.upper().replace('.', '_') for m in missing)}", file=sys.stderr)
        return 2
    CONFIG.write_text("".join(f"{k}={v}\n" for k, v in props.items()), encoding="utf-8")
    log_dir = Path(props["log.dirs"].split(",")[0])
    if not (log_dir / "meta.properties").is_file():
        cluster_id = os.environ.get("CLUSTER_ID")
        if not cluster_id:
            print("kafka stand-in: the log dir is not formatted; set CLUSTER_ID", file=sys.stderr)
            return 2
        subprocess.run(
            ["/opt/kafka/bin/kafka-storage.sh", "format", "-t", cluster_id, "-c", str(CONFIG)], check=True
        )
    heap = os.environ.get("KAFKA_HEAP_OPTS", "").split()
    perf = os.environ.get(
        "KAFKA_JVM_PERFORMANCE_OPTS", "-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError"
    ).split()
    extra = os.environ.get("KAFKA_OPTS", "").split()
    java = ["java", *heap, *perf, *extra, "-Djava.awt.headless=true", LOG4J, "-cp", "/opt/kafka/libs/*"]
    os.execvp("java", [*java, "kafka.Kafka", str(CONFIG)])
    return 1


if __name__ == "__main__":
    sys.exit(main())
