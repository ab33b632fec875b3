"""Durability (DESIGN.md convention 7): ten uploads in flight, `kill -9` of the server; after a
restart every fragment that was ACKed PERSISTED is listed with intact bytes, no row points at
missing or partial bytes, and fragment numbers keep increasing."""

import hashlib
import random
import signal
import sqlite3
import threading
import time
import uuid

import botocore.exceptions
import pytest

from conftest import CRED_ARGS, Server, fragment_path, leftovers, start, stored_fragment
from putmedia_client import PutMedia
from test_putmedia import MKV, clusters


def test_kill_9_mid_upload_loses_nothing_acknowledged(tmp_path):
    server = start(tmp_path, *CRED_ARGS, "--no-tls")
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    by_timecode = {tc: hashlib.sha256(data[o:e]).hexdigest() for o, e, tc in clusters(data)}
    streams = []
    for i in range(10):
        name = f"crash-{i}-{uuid.uuid4().hex[:6]}"
        server.client().create_stream(StreamName=name, DataRetentionInHours=1)
        streams.append(name)

    uploads = []

    def run(name, offset):
        pm = PutMedia(server, name, "RELATIVE", start=1_700_000_000 + offset)
        uploads.append(pm)
        # Slow enough that the kill lands mid-upload: ~1 s per cluster.
        if pm.send(data, chunk=32768, pace=0.05):
            pm.end()

    threads = [threading.Thread(target=run, args=(n, 10 * i)) for i, n in enumerate(streams)]
    for t in threads:
        t.start()
    # Kill once a good number of fragments are PERSISTED, with uploads still in flight.
    deadline = time.time() + 60
    while time.time() < deadline and sum(x["EventType"] == "PERSISTED" for u in list(uploads) for x in list(u.acks)) < 15:
        time.sleep(0.05)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    for t in threads:
        t.join(30)
    acked = {}
    # The kill landed mid-upload: not every fragment was persisted.
    assert sum(x["EventType"] == "PERSISTED" for u in uploads for x in u.acks) < 10 * len(by_timecode)
    for u in uploads:
        for x in u.acks:
            if x["EventType"] == "PERSISTED":
                acked[x["FragmentNumber"]] = x["FragmentTimecode"]
    assert len(acked) >= 15
    before_max = max(acked)

    server.start()
    try:
        db = sqlite3.connect(f"file:{server.data_dir / 'catalog.db'}?mode=ro", uri=True)
        rows = db.execute("SELECT fragment_number, size_bytes, object_key, object_offset, object_length FROM fragments").fetchall()
        db.close()
        listed = {r[0]: r for r in rows}
        # Every fragment ACKed PERSISTED is there, with its bytes intact.
        for number, timecode in acked.items():
            assert number in listed, number
            _, size, key, offset, length = listed[number]
            stored = stored_fragment(server, key, offset, length)
            assert len(stored) == size
            assert hashlib.sha256(stored).hexdigest() == by_timecode[timecode]
        # Nothing half-written is visible: every row's object is complete, no partial files remain.
        for number, size, key, offset, length in rows:
            assert fragment_path(server, key).stat().st_size >= offset + length
        assert not leftovers(server)
        # Fragment numbers continue above everything issued before the crash. (Stamped after the
        # uploads before it, and not ahead of the server clock: 4007.)
        name = streams[0]
        pm = PutMedia(server, name, "RELATIVE", start=1_750_000_000)
        pm.send(data)
        pm.end()
        acks = pm.finish()
        new = [x["FragmentNumber"] for x in acks if x["EventType"] == "PERSISTED"]
        assert new and min(new) > before_max and min(new) > max(listed)
    finally:
        server.stop()


def rows_with_bytes(server):
    """Every catalog row with the bytes it points at, read from the data directory. Packing runs
    meanwhile: a row read just before its segment went is read again."""
    for _ in range(20):
        db = sqlite3.connect(f"file:{server.data_dir / 'catalog.db'}?mode=ro", uri=True)
        rows = db.execute("SELECT fragment_number, size_bytes, object_key, object_offset, object_length "
                          "FROM fragments").fetchall()
        db.close()
        try:
            return {n: (size, key, stored_fragment(server, key, offset, length)) for n, size, key, offset, length in rows}
        except FileNotFoundError:
            time.sleep(0.1)
    raise AssertionError("rows kept pointing at missing files")


def test_kill_9_at_random_points_before_and_after_packing(tmp_path):
    """Three rounds of 20 concurrent uploads into one data directory, packing every second, each
    ended by `kill -9` at a random moment. After every restart, every fragment ACKed PERSISTED in
    any round is listed with its bytes unchanged, wherever it is by then (the log or a packed
    object), and no row points at missing bytes."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    server = start(tmp_path, *CRED_ARGS, "--no-tls", "--pack-seconds", "1")
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    by_timecode = {tc: hashlib.sha256(data[o:e]).hexdigest() for o, e, tc in clusters(data)}
    acked, packed = {}, set()
    try:
        for round_ in range(3):
            uploads = []

            def run(name, offset):
                pm = PutMedia(server, name, "RELATIVE", start=1_700_000_000 + offset)
                uploads.append(pm)
                if pm.send(data, chunk=32768, pace=rng.uniform(0.01, 0.06)):
                    pm.end()
                    pm.finish(10)

            threads = []
            for i in range(20):
                name = f"kill-{round_}-{i}-{uuid.uuid4().hex[:6]}"
                server.client().create_stream(StreamName=name, DataRetentionInHours=1)
                threads.append(threading.Thread(target=run, args=(name, 10 * i)))
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.3, 4.0))
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
            for t in threads:
                t.join(30)
            for u in uploads:
                for x in list(u.acks):
                    if x["EventType"] == "PERSISTED":
                        acked[x["FragmentNumber"]] = by_timecode[x["FragmentTimecode"]]
            server.start()
            stored = rows_with_bytes(server)
            for number, digest in acked.items():
                assert number in stored, (seed, round_, number)
                size, key, content = stored[number]
                assert len(content) == size and hashlib.sha256(content).hexdigest() == digest, (seed, round_, number, key)
            packed |= {n for n, (_, key, _) in stored.items() if key.startswith("streams/")}
        assert len(acked) >= 20, (seed, len(acked))
        assert packed & set(acked), f"seed {seed}: some acknowledged fragments were packed before a kill"
    finally:
        server.stop()


# Each step at which KINESCOPE_CRASH_AT aborts the server (archive/src/crash.rs), with the flags
# that take it there.
CRASH_STEPS = [
    ("commit-stored", []),
    ("commit-stored", ["--persist-to-store"]),
    ("commit-recorded", []),
    ("commit-recorded", ["--persist-to-store"]),
    ("pack-written", []),
    ("pack-moved", []),
    ("expire-rows", ["--max-storage", "1000000"]),
    ("delete-stream-marked", []),
]


@pytest.mark.parametrize("step,flags", CRASH_STEPS, ids=[" ".join([s, *f[:1]]) for s, f in CRASH_STEPS])
def test_crash_at_each_step_is_repaired_by_the_next_start(tmp_path, step, flags):
    """A stream is uploaded and packed; the server is restarted with `KINESCOPE_CRASH_AT=<step>`
    and driven to that step of a commit, packing, deletion by budget or DeleteStream, where it
    aborts (as `kill -9` would). After a normal restart, `kinescope fsck` (orphan grace 0: every
    unreferenced object counts) is clean within seconds, without `--repair`: the server sweeps
    the orphans itself. Every fragment ACKed PERSISTED is listed with its bytes unchanged, except
    what the budget or DeleteStream deleted before the crash, and the server takes new uploads."""
    from test_retention import fsck, objects, wait
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    by_timecode = {tc: hashlib.sha256(data[o:e]).hexdigest() for o, e, tc in clusters(data)}
    base = [*CRED_ARGS, "--no-tls", "--pack-seconds", "1", "--retention-interval", "1", "--orphan-grace", "1"]
    server = start(tmp_path, *base)
    acked = {}

    def upload(pm_start, pace=0.0):
        pm = PutMedia(server, "crashed", "RELATIVE", start=pm_start)
        try:
            if pm.send(data, chunk=32768, pace=pace):
                pm.end()
                pm.finish(30)
        except OSError:
            pass  # the server died mid-upload
        for x in pm.acks:
            if x["EventType"] == "PERSISTED":
                acked[x["FragmentNumber"]] = by_timecode[x["FragmentTimecode"]]
        return pm

    try:
        kvs = server.client()
        kvs.create_stream(StreamName="crashed", DataRetentionInHours=1)
        upload(time.time() - 60)
        assert len(acked) == len(by_timecode)
        wait(lambda: len(objects(server)) == len(by_timecode), what=f"packed: {objects(server)}")
        server.stop()
        server.args += flags
        server.env = {"KINESCOPE_CRASH_AT": step}
        try:
            server.start()
        except RuntimeError as e:
            # The first budget pass runs at start and may reach its step before the banner.
            assert step == "expire-rows" and f"KINESCOPE_CRASH_AT={step}" in str(e), e
        if step == "delete-stream-marked":
            arn = server.client().describe_stream(StreamName="crashed")["StreamInfo"]["StreamARN"]
            with pytest.raises(botocore.exceptions.ConnectionError):
                server.client().delete_stream(StreamARN=arn)
        elif step != "expire-rows":  # the first budget pass gets there by itself
            upload(time.time() - 30, pace=0.02)
        assert server.proc.wait(30) == -signal.SIGABRT, f"the server did not reach {step}"
        server.proc.stdout.close()
        server.env = None
        server.args = [a for a in server.args if a not in flags]
        server.start()
        wait(lambda: fsck(server, "--orphan-grace", "0")[0] == 0, what=fsck(server, "--orphan-grace", "0")[1])
        stored = rows_with_bytes(server)
        if step == "delete-stream-marked":
            assert stored == {} and objects(server) == []
            names = [s["StreamName"] for s in server.client().list_streams()["StreamInfoList"]]
            assert "crashed" not in names
            server.client().create_stream(StreamName="crashed", DataRetentionInHours=1)
        else:
            kept = acked if step != "expire-rows" else {n: d for n, d in acked.items() if n in stored}
            assert step != "expire-rows" or 0 < len(kept) < len(acked), (len(kept), len(acked))
            for number, digest in kept.items():
                assert number in stored, (step, number)
                size, key, content = stored[number]
                assert len(content) == size and hashlib.sha256(content).hexdigest() == digest, (step, number, key)
            # What the budget deleted is the oldest (fragment numbers grow with time).
            assert all(g < k for g in set(acked) - set(kept) for k in kept)
        # Healthy: a new upload persists in full.
        before = len(acked)
        upload(time.time() - 20)
        assert len(acked) == before + len(by_timecode)
    finally:
        server.stop()


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path):
    """Two servers appending to one fragment log would corrupt it: the second exits at once
    with a clear message, the first goes on serving, and a restart after `kill -9` (the lock
    dies with the process) starts."""
    data = tmp_path / "data"
    first = Server(data, ["--data-dir", str(data), "--listen", "127.0.0.1:0", "--no-tls", *CRED_ARGS])
    try:
        with pytest.raises(RuntimeError, match="is in use by another kinescope serve"):
            Server(data, ["--data-dir", str(data), "--listen", "127.0.0.1:0", "--no-tls", *CRED_ARGS])
        first.client().list_streams()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        first.proc.stdout.close()
        first.start()
        first.client().list_streams()
    finally:
        first.stop()
