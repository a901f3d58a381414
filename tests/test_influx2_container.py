"""InfluxDB 2.7 in testcontainers: the real /api/v2/write path and InfluxQL reads through a DBRP mapping.

Skipped (with the reason) where no Docker engine runs: this build machine has only the docker CLI.
"""

from __future__ import annotations

import pytest

from ingest.config import load_settings
from ingest.model import Reading
from ingest.store import open_store
from ingest.timeutil import now_ms

pytestmark = [pytest.mark.docker, pytest.mark.integration]

TOKEN = "fumewatch-test-token"  # a throwaway container's token, not a secret


@pytest.fixture(scope="module")
def influx2():
    from testcontainers.community.influxdb.version2 import InfluxDb2Container

    with InfluxDb2Container(
        image="influxdb:2.7",
        init_mode="setup",
        admin_token=TOKEN,
        username="fumewatch",
        password="fumewatch-test-password",
        org_name="fumewatch",
        bucket="fumewatch",
    ) as c:
        client, org = c.get_client(token=TOKEN, org_name="fumewatch")
        bucket = client.buckets_api().find_bucket_by_name("fumewatch")
        # DBRP mapping so InfluxQL on /query finds the bucket as database "fumewatch"
        from influxdb_client import DBRPCreate

        client.dbrps_api().create(
            DBRPCreate(
                org_id=org.id,
                bucket_id=bucket.id,
                database="fumewatch",
                retention_policy="autogen",
                default=True,
            )
        )
        client.close()
        yield c.get_url()


def test_write_and_read_back_influxdb2(influx2):
    settings = load_settings(
        None, {"influx": {"org": "fumewatch", "bucket": "fumewatch", "flush_interval_ms": 100}}
    )
    settings.influx.token = type(settings.influx.token)(TOKEN)
    store = open_store(influx2, settings)
    acked: list = []
    store.set_on_durable(acked.extend)
    t0 = (now_ms() // 60_000 - 30) * 60_000
    readings = [
        Reading(
            time_ms=t0 + i * 60_000,
            device_id="D1",
            restaurant_id="R1",
            district="朝阳区",
            oil_fume_mg_m3=1.0,
            oil_fume_ref_mg_m3=1.5,
            ref_converted=True,
            flow_m3_h=6000.0,
            fan_on=True,
            purifier_on=True,
        )
        for i in range(10)
    ]
    store.write([(i, [r]) for i, r in enumerate(readings)])
    store.flush(30)
    assert sorted(acked) == list(range(10))
    store.close()
    reader = open_store(influx2, settings, read_only=True)
    rows = reader.query(restaurant_id="R1")
    assert len(rows) == 10 and rows[0]["district"] == "朝阳区" and rows[0]["fan_on"] is True
    reader.close()
