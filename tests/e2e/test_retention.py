"""Data lifecycle (issue 12) against the real binary: DeleteStream removes the stream at once
and frees its packed objects in the background within seconds; a stream created again under
the same name is independent (new ARN, no fragments, objects under keys of its own);
`--max-storage` keeps the newest within a budget; `kinescope fsck` finds and repairs.
Retention by time is tested with an injected clock in `archive/src/lifecycle.rs`: streams keep
at least an hour, longer than a test may wait."""

import subprocess
import time

from conftest import BIN, CRED_ARGS, pg_catalog, start
from test_archived import put
from test_putmedia import MKV, clusters


def objects(server):
    media = server.data_dir / "media"
    return sorted(p.relative_to(media).as_posix() for p in media.rglob("*") if p.is_file()) if media.exists() else []


def wait(predicate, timeout=20, what=""):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, what
        time.sleep(0.1)


def test_delete_stream_frees_its_objects_and_a_same_name_stream_starts_empty(tmp_path):
    server = start(tmp_path, *CRED_ARGS, "--no-tls", "--pack-seconds", "4")
    try:
        kvs = server.client()
        data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
        kvs.create_stream(StreamName="doomed", DataRetentionInHours=1)
        kvs.create_stream(StreamName="kept", DataRetentionInHours=1)
        put(server, "doomed", data, start=time.time() - 30)
        put(server, "kept", data, start=time.time() - 30)
        # Three fragments of 1.8 s each: one object per stream once it is quiet for 4 s.
        wait(lambda: len(objects(server)) == 2, what=f"packed: {objects(server)}")
        before = objects(server)
        old_arn = kvs.describe_stream(StreamName="doomed")["StreamInfo"]["StreamARN"]
        kvs.delete_stream(StreamARN=old_arn)
        # Gone from the control plane at once; its objects within seconds; the other stream's stay.
        names = [s["StreamName"] for s in kvs.list_streams()["StreamInfoList"]]
        assert "doomed" not in names and "kept" in names
        wait(lambda: len(objects(server)) == len(before) - 1, what=f"freed: {objects(server)}")
        remaining = objects(server)
        assert len(remaining) == 1 and remaining[0].startswith("streams/")
        # The same name again: a new stream with a new ARN and nothing in it.
        kvs.create_stream(StreamName="doomed", DataRetentionInHours=1)
        new_arn = kvs.describe_stream(StreamName="doomed")["StreamInfo"]["StreamARN"]
        assert new_arn != old_arn
        ep = kvs.get_data_endpoint(StreamName="doomed", APIName="LIST_FRAGMENTS")["DataEndpoint"]
        archived = server.client("kinesis-video-archived-media", endpoint=ep)
        assert archived.list_fragments(StreamName="doomed")["Fragments"] == []
        put(server, "doomed", data, start=time.time() - 30)
        assert len(archived.list_fragments(StreamName="doomed")["Fragments"]) == len(clusters(data))
        wait(lambda: len(objects(server)) == 2, what=f"packed again: {objects(server)}")
        assert remaining[0] in objects(server), "the kept stream's object is untouched"
    finally:
        server.stop()


def tree_size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def test_max_storage_keeps_media_under_budget_oldest_first(tmp_path):
    """`--max-storage 1200000` during a 30 s upload of about 4.6 MB: the fragment log and the
    packed objects together stay within the budget plus what a pass may lag behind (the log's
    segments of budget/8, one sealed and one open, a fragment, and a second of upload); the
    fragments kept are the newest, every one of them readable."""
    from test_playback import Producer, live_media
    budget = 1_200_000
    server = start(tmp_path, *CRED_ARGS, "--no-tls", "--max-storage", str(budget), "--retention-interval", "1",
                   "--pack-seconds", "2")
    try:
        kvs = server.client()
        kvs.create_stream(StreamName="recorder", DataRetentionInHours=24)
        data, pace = live_media(tmp_path, 30)
        assert len(data) > 3 * budget, "the upload is several budgets long"
        producer = Producer(server, "recorder", data, pace)
        producer.start()
        peak = 0
        while producer.is_alive():
            peak = max(peak, tree_size(server.data_dir / "media") + tree_size(server.data_dir / "log"))
            time.sleep(0.2)
        producer.join()
        assert producer.error is None
        time.sleep(2)
        persisted = [a["FragmentNumber"] for a in producer.pm.acks if a["EventType"] == "PERSISTED"]
        slack = 2 * (budget // 8) + max(e - o for o, e, _ in clusters(data)) + len(data) // 30
        assert peak <= budget + slack, (peak, budget, slack)
        ep = kvs.get_data_endpoint(StreamName="recorder", APIName="LIST_FRAGMENTS")["DataEndpoint"]
        listed = sorted(f["FragmentNumber"] for f in server.client("kinesis-video-archived-media", endpoint=ep)
                        .list_fragments(StreamName="recorder")["Fragments"])
        assert 0 < len(listed) < len(persisted)
        assert listed == persisted[-len(listed):], "the newest are kept"
        ep = kvs.get_data_endpoint(StreamName="recorder", APIName="GET_MEDIA")["DataEndpoint"]
        body = server.client("kinesis-video-media", endpoint=ep).get_media(
            StreamName="recorder", StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
        assert len(clusters(body)) == len(listed)
    finally:
        server.stop()


def fsck(server, *args):
    r = subprocess.run([BIN, "fsck", "--data-dir", str(server.data_dir), *pg_args(server), *args],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout + r.stderr


def pg_args(server):
    url = pg_catalog(server)
    return ["--catalog", url] if url else []


def test_fsck_reports_missing_bytes_and_orphans_and_repairs_orphans(tmp_path):
    """`kinescope fsck` beside a running server: clean after uploads (exit 0); an object deleted
    behind its fragments and a stray object are reported (exit 1); `--repair` deletes the stray
    one once it is older than `--orphan-grace`, and still reports the missing bytes."""
    server = start(tmp_path, *CRED_ARGS, "--no-tls", "--pack-seconds", "1")
    try:
        kvs = server.client()
        kvs.create_stream(StreamName="checked", DataRetentionInHours=1)
        put(server, "checked", (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes(), start=time.time() - 30)
        wait(lambda: len(objects(server)) == 3, what=f"packed: {objects(server)}")
        rc, out = fsck(server)
        assert rc == 0, out
        assert "1 streams, 3 fragments, 3 objects" in out, out
        stray = server.data_dir / "media" / "streams" / "999" / "1-1"
        stray.parent.mkdir(parents=True)
        stray.write_bytes(b"left behind")
        (server.data_dir / "media" / objects(server)[0]).unlink()
        rc, out = fsck(server)
        assert rc == 1, out
        assert "fragments with missing or short bytes: 1" in out, out
        assert "left alone): 1" in out, out
        rc, out = fsck(server, "--repair", "--orphan-grace", "0")
        assert rc == 1, out
        assert "orphan objects deleted: 1" in out and not stray.exists(), out
        assert "fragments with missing or short bytes: 1" in out, out
    finally:
        server.stop()
