#!/bin/sh
# The health check docker-compose.yml runs: the real tool, which fails unless the broker answers ApiVersions.
exec /opt/kafka/bin/kafka-run-class.sh org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
