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

from conftest import CRED_ARGS, fragment_path, leftovers, start, stored_fragment
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
