#!/bin/bash
# fumewatch: DBRP mapping so that InfluxQL on the v1-compatible /query endpoint finds the bucket.
#
# influxdb:2.7 runs the *.sh files in /docker-entrypoint-initdb.d once, when DOCKER_INFLUXDB_INIT_MODE=setup
# initialises an empty data volume, after the org, bucket and operator token exist; the influx CLI is
# already configured (INFLUX_HOST, INFLUX_CONFIGS_PATH) and DOCKER_INFLUXDB_INIT_BUCKET_ID is exported.
# The file must be executable (run-parts).
#
# Readers (fumewatch reports, the alerts warm-up, the API, Grafana's InfluxQL datasource) query database
# "<bucket>" with the default retention policy "autogen"; fumewatch's [influx] database setting defaults
# to the bucket name for exactly this mapping.
set -euo pipefail

db="${FUMEWATCH_INFLUXQL_DATABASE:-${DOCKER_INFLUXDB_INIT_BUCKET}}"
rp="autogen"

if influx v1 dbrp list --org "${DOCKER_INFLUXDB_INIT_ORG}" --db "${db}" --hide-headers 2>/dev/null \
    | grep -q "${DOCKER_INFLUXDB_INIT_BUCKET_ID}"; then
  echo "fumewatch: DBRP mapping ${db}/${rp} -> bucket ${DOCKER_INFLUXDB_INIT_BUCKET} exists"
  exit 0
fi

influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --db "${db}" \
  --rp "${rp}" \
  --default
echo "fumewatch: DBRP mapping ${db}/${rp} -> bucket ${DOCKER_INFLUXDB_INIT_BUCKET} created"
