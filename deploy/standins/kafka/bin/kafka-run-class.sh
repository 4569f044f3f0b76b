#!/bin/sh
# Runs a Kafka main class on the image's classpath, as Kafka's own kafka-run-class.sh does (a subset).
set -eu
exec java ${KAFKA_TOOL_OPTS:--Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC} \
    -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
    -cp '/opt/kafka/libs/*' "$@"
