"""PostgreSQL restarted during a 30 s upload (issue 13): fragments whose rows cannot be committed
get ERROR 5001, never PERSISTED; every fragment ACKed PERSISTED is listed afterwards; the server
reconnects by itself and the next upload persists. Always on PostgreSQL (the machine's
cluster at 127.0.0.1:5432, or $KINESCOPE_E2E_POSTGRES), which this test stops and starts with
pg_ctlcluster (this machine runs as root); it fails, never skips, when that is impossible."""

import os
import subprocess
import time
import uuid

import pytest

from conftest import CRED_ARGS, Server
from test_playback import Producer, live_media
from test_archived import put
from test_putmedia import MKV, clusters, new_stream

ADMIN = os.environ.get("KINESCOPE_E2E_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")


def pg_cluster(action):
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *(["-m", "fast"] if action == "stop" else [])],
                   check=True, timeout=60)


def psql(sql):
    subprocess.run(["psql", ADMIN, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, timeout=60)


@pytest.fixture
def pg_url():
    db = "kinescope_restart_" + uuid.uuid4().hex[:12]
    psql(f"CREATE DATABASE {db}")
    yield ADMIN.rsplit("/", 1)[0] + "/" + db + "?acquire_timeout=2"
    psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def test_postgres_restart_during_an_upload(tmp_path, pg_url):
    server = Server(tmp_path / "data", ["--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                                        "--catalog", pg_url, *CRED_ARGS, "--no-tls"])
    try:
        stream = new_stream(server)
        data, pace = live_media(tmp_path, 30)
        producer = Producer(server, stream, data, pace)
        producer.start()
        producer.wait_persisted(5)
        try:
            pg_cluster("stop")
            time.sleep(4)
        finally:
            pg_cluster("start")
        producer.join(90)
        assert producer.error is None
        acks = producer.pm.acks
        persisted = [a["FragmentNumber"] for a in acks if a["EventType"] == "PERSISTED"]
        failed = [a for a in acks if a["EventType"] == "ERROR"]
        assert {a["ErrorId"] for a in failed} <= {5001}, failed
        assert not set(persisted) & {a.get("FragmentNumber") for a in failed}, "never both"
        # The first fragment without a row ends the upload with ERROR 5001 (as a failed store
        # does); the SDK reconnects, and once PostgreSQL is back its fragments persist.
        assert failed, acks[-5:]
        again = put(server, stream, (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes(),
                    start=time.time() - 4)
        assert len(again) == 3
        persisted += [a["FragmentNumber"] for a in again]
        # Every fragment ACKed PERSISTED is listed, and readable.
        ep = server.client().get_data_endpoint(StreamName=stream, APIName="LIST_FRAGMENTS")["DataEndpoint"]
        listed = server.client("kinesis-video-archived-media", endpoint=ep).list_fragments(StreamName=stream)["Fragments"]
        assert set(persisted) <= {f["FragmentNumber"] for f in listed}
        ep = server.client().get_data_endpoint(StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"]
        body = server.client("kinesis-video-media", endpoint=ep).get_media(
            StreamName=stream, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
        assert len(clusters(body)) == len(listed)
        # The control plane answers again.
        assert server.client().describe_stream(StreamName=stream)["StreamInfo"]["Status"] == "ACTIVE"
    finally:
        server.stop()
