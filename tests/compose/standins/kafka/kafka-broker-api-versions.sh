#!/usr/bin/env bash
# STAND-IN for the official image's /opt/kafka/bin/kafka-broker-api-versions.sh
# (tests only): the same tool class from the same jars.
exec java -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto -Dlog4j.configuration=file:/opt/kafka/config/log4j.properties \
    -cp "/opt/kafka/libs/*" kafka.admin.BrokerApiVersionsCommand "$@"
