"""Disk full (issues 11 and 12): the data directory on a 16 MiB tmpfs (mounted here; this machine
kind runs the tests as root), filled up by a file while a producer uploads. The fragment that
cannot be written gets ERROR 5001 and is never PERSISTED; the server stays up and serves what
it stored before, unchanged; once space returns, the next upload persists."""

import hashlib
import subprocess
import time

import pytest

from conftest import CRED_ARGS, start
from putmedia_client import PutMedia
from test_archived import put
from test_putmedia import MKV, clusters


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True, timeout=30)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def free_bytes(path):
    out = subprocess.run(["df", "--output=avail", "-B1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def stored_clusters(server, stream):
    """The Clusters GetMedia sends from EARLIEST (its tags, such as MillisBehindNow, vary)."""
    ep = server.client().get_data_endpoint(StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"]
    body = server.client("kinesis-video-media", endpoint=ep).get_media(
        StreamName=stream, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
    return [hashlib.sha256(body[o:e]).hexdigest() for o, e, _ in clusters(body)]


def test_a_full_disk_fails_the_fragment_not_the_server(small_disk):
    server = start(small_disk, *CRED_ARGS, "--no-tls", "--pack-seconds", "3600")
    try:
        data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
        sizes = [e - o for o, e, _ in clusters(data)]
        kvs = server.client()
        kvs.create_stream(StreamName="before", DataRetentionInHours=1)
        kvs.create_stream(StreamName="during", DataRetentionInHours=1)
        assert len(put(server, "before", data, start=time.time() - 60)) == 3
        stored_before = stored_clusters(server, "before")
        assert len(stored_before) == 3
        # Leave room for less than one fragment.
        filler = small_disk / "filler"
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free_bytes(small_disk) - min(sizes) // 2))
        pm = PutMedia(server, "during", "RELATIVE", start=time.time() - 30)
        pm.send(data)
        pm.end()
        acks = pm.finish(60)
        persisted = [a for a in acks if a["EventType"] == "PERSISTED"]
        errors = [a for a in acks if a["EventType"] == "ERROR"]
        assert errors and {a["ErrorId"] for a in errors} == {5001}, acks
        assert not {a["FragmentNumber"] for a in persisted} & {a.get("FragmentNumber") for a in errors}
        # Up, and what it had is served unchanged.
        assert server.proc.poll() is None
        assert server.client().describe_stream(StreamName="before")["StreamInfo"]["Status"] == "ACTIVE"
        assert stored_clusters(server, "before") == stored_before
        # Space again: the next upload persists, after whatever "during" stored.
        filler.unlink()
        again = put(server, "during", data, start=time.time() - 10)
        assert len(again) == 3
        assert len(stored_clusters(server, "during")) == len(persisted) + 3
    finally:
        server.stop()
