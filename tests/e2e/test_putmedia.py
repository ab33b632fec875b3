"""PutMedia against the real binary (spec §3): the official producers' uploads replayed by a
C-producer-style client and by curl, live ffmpeg and GStreamer pipelines through curl, the
catalog rows and stored bytes that result, and every kind of bad input while a good upload runs
alongside."""

import hashlib
import json
import os
import pathlib
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest

from conftest import AK, CRED_ARGS, ROOT, SK, leftovers, pg_catalog, psql_rows, start, stored_fragment
from mkv_structure import vint
from putmedia_client import PutMedia

MKV = ROOT / "testdata" / "mkv"
FIXTURES = [
    ("producer-c-1.6.4_h264_putmedia.mkv", "ABSOLUTE"),
    ("producer-c-1.6.4_h264_aac_putmedia.mkv", "RELATIVE"),
    ("kvssink-3.6.0_h264_putmedia.mkv", "ABSOLUTE"),
]


def cluster_bodies(data):
    """Each Cluster's contents without its element header (GetMedia declares the size of a
    Cluster that was uploaded with an unknown size, as the real service does)."""
    out = []
    for o, e, _ in clusters(data):
        _, n, _ = vint(data, o, True)
        _, m, _ = vint(data, o + n)
        out.append(data[o + n + m:e])
    return out


def clusters(data):
    """(offset, end, timecode) of each Cluster, by an EBML walk independent of the server's."""
    out, i = [], 0
    top = {0x1F43B675, 0x1254C367, 0x1549A966, 0x1654AE6B, 0x1C53BB6B, 0x114D9B74, 0x1A45DFA3, 0x18538067}
    while i < len(data):
        eid, n, _ = vint(data, i, True)
        size, m, unknown = vint(data, i + n)
        if eid == 0x18538067:
            i += n + m
            continue
        if eid == 0x1F43B675:
            j, tc = i + n + m, None
            end = None if unknown else j + size
            while j < (end or len(data)):
                cid, cn, _ = vint(data, j, True)
                if end is None and cid in top:
                    break
                cs, csn, _ = vint(data, j + cn)
                if cid == 0xE7:
                    tc = int.from_bytes(data[j + cn + csn:j + cn + csn + cs], "big")
                j += cn + csn + cs
            out.append((i, end or j, tc))
            i = end or j
            continue
        i += n + m + size
    return out


def new_stream(server, retention=2):
    name = "pm-" + uuid.uuid4().hex[:10]
    server.client().create_stream(StreamName=name, DataRetentionInHours=retention)
    return name


def by_fragment(acks):
    seen = {}
    for a in acks:
        if "FragmentNumber" in a:
            seen.setdefault(a["FragmentNumber"], []).append((a["EventType"], a["FragmentTimecode"]))
    return seen


def check_acks(acks, timecodes, persisted=True):
    events = [a for a in acks if a["EventType"] != "IDLE"]
    assert not [a for a in events if a["EventType"] == "ERROR"], events
    frags = by_fragment(events)
    want = ["BUFFERING", "RECEIVED"] + (["PERSISTED"] if persisted else [])
    assert [v[0][1] for v in frags.values()] == timecodes
    for number, seq in frags.items():
        assert [e for e, _ in seq] == want, (number, seq)
        assert len({tc for _, tc in seq}) == 1
    numbers = list(frags)
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert all(len(n) == 20 and n.isdigit() for n in numbers)
    return numbers


def catalog_rows(server, stream):
    sql = ("SELECT f.fragment_number, f.producer_ts_ms, f.server_ts_ms, f.size_bytes, f.object_key, "
           "f.object_offset, f.object_length "
           "FROM fragments f JOIN streams s ON s.id = f.stream_id WHERE s.name = ? ORDER BY f.fragment_number")
    url = pg_catalog(server)
    if url:
        return [(n, int(p), int(t), int(b), k, int(o), int(ln)) for n, p, t, b, k, o, ln in psql_rows(url, sql, stream)]
    db = sqlite3.connect(f"file:{server.data_dir / 'catalog.db'}?mode=ro", uri=True)
    try:
        return db.execute(sql, (stream,)).fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("fixture,timecode_type", FIXTURES)
def test_sdk_style_upload_is_persisted_before_the_final_chunk(server, fixture, timecode_type):
    data = (MKV / fixture).read_bytes()
    stream = new_stream(server)
    cl = clusters(data)
    start_ts = 1_700_000_000.5
    before = time.time()
    pm = PutMedia(server, stream, timecode_type, start=start_ts)
    assert pm.continued, "100 Continue must come at once (spec §0.7)"
    assert pm.send(data, chunk=16384)
    # The SDK sends its end-of-fragment tag, then waits for the last PERSISTED before it
    # sends the final chunk.
    last_tc = cl[-1][2]
    assert pm.wait_for(lambda acks: any(a["EventType"] == "PERSISTED" and a["FragmentTimecode"] == last_tc for a in acks), 20)
    pm.end()
    acks = pm.finish()
    assert pm.status == 200
    numbers = check_acks(acks, [c[2] for c in cl])

    rows = catalog_rows(server, stream)
    assert [r[0] for r in rows] == numbers
    for (offset, end, tc), (number, producer_ms, server_ms, size, key, at, length) in zip(cl, rows):
        expect = tc if timecode_type == "ABSOLUTE" else int(start_ts * 1000) + tc
        assert producer_ms == expect
        assert before * 1000 - 50 <= server_ms <= time.time() * 1000
        assert size == end - offset
        stored = stored_fragment(server, key, at, length)
        assert hashlib.sha256(stored).digest() == hashlib.sha256(data[offset:end]).digest()


@pytest.mark.parametrize("fixture,timecode_type", FIXTURES)
def test_curl_paced_upload(server, tmp_path, fixture, timecode_type):
    stream = new_stream(server)
    data = (MKV / fixture).read_bytes()
    cmd = ["curl", "-sS", "-N", "-X", "POST", "--aws-sigv4", "aws:amz:us-west-2:kinesisvideo", "--user", f"{AK}:{SK}",
           "-H", f"x-amzn-stream-name: {stream}", "-H", f"x-amzn-fragment-timecode-type: {timecode_type}",
           "-H", f"x-amzn-producer-start-timestamp: {time.time():.3f}", "-H", "Content-Type: video/x-matroska",
           "-H", "Transfer-Encoding: chunked", "--limit-rate", "4M", "-T", str(MKV / fixture),
           server.endpoint + "/putMedia"]
    if server.ca:
        cmd += ["--cacert", server.ca]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    import json
    acks = [json.loads(line) for line in out.stdout.splitlines()]
    check_acks(acks, [c[2] for c in clusters(data)])


def media_pipeline(server, producer_cmd, stream):
    curl = ["curl", "-sS", "-N", "-X", "POST", "--aws-sigv4", "aws:amz:us-west-2:kinesisvideo", "--user", f"{AK}:{SK}",
            "-H", f"x-amzn-stream-name: {stream}", "-H", "x-amzn-fragment-timecode-type: RELATIVE",
            "-H", f"x-amzn-producer-start-timestamp: {time.time():.3f}", "-H", "Content-Type: video/x-matroska",
            "-T", "-", server.endpoint + "/putMedia"]
    if server.ca:
        curl += ["--cacert", server.ca]
    producer = subprocess.Popen(producer_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = subprocess.run(curl, stdin=producer.stdout, capture_output=True, text=True, timeout=120)
    producer.stdout.close()
    assert producer.wait(60) == 0, producer.stderr.read()
    assert out.returncode == 0, out.stderr
    import json
    return [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize("audio", [False, True])
def test_ffmpeg_pipeline_30s(server, audio):
    stream = new_stream(server)
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-c:a", "aac"]
    cmd += ["-t", "30", "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30", "-keyint_min", "30",
            "-sc_threshold", "0", "-f", "matroska", "-live", "1", "-cluster_time_limit", "1100",
            "-cluster_size_limit", "50000000", "-"]
    acks = media_pipeline(server, cmd, stream)
    frags = by_fragment(acks)
    assert len(frags) >= 29, len(frags)
    assert all([e for e, _ in seq] == ["BUFFERING", "RECEIVED", "PERSISTED"] for seq in frags.values()), frags
    rows = catalog_rows(server, stream)
    assert len(rows) == len(frags)
    producer = [r[1] for r in rows]
    assert producer == sorted(producer)
    assert 28_000 <= producer[-1] - producer[0] <= 30_000


def test_gstreamer_pipeline(server):
    stream = new_stream(server)
    pipeline = ("videotestsrc num-buffers=300 ! video/x-raw,width=320,height=240,framerate=30/1 ! "
                "x264enc key-int-max=30 tune=zerolatency option-string=scenecut=0 ! h264parse ! "
                "matroskamux name=mux streamable=true min-cluster-duration=0 ! fdsink fd=1 "
                "audiotestsrc num-buffers=430 ! audio/x-raw,rate=44100,channels=2 ! audioconvert ! avenc_aac ! aacparse ! mux.")
    acks = media_pipeline(server, ["gst-launch-1.0", "-q", *pipeline.split(" ")], stream)
    frags = by_fragment(acks)
    assert len(frags) >= 9
    assert not [a for a in acks if a["EventType"] == "ERROR"], acks
    assert len(catalog_rows(server, stream)) == len(frags)


# ---------------------------------------------------------------- bad input, with a good upload alongside

@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("strict"), *CRED_ARGS, "--no-tls", "--ingest-idle-limit", "3")
    yield s
    s.stop()


def header_of(data):
    return data[:clusters(data)[0][0]]


def ebml_size(n, length=8):
    return bytes([1 << (8 - length)]) + n.to_bytes(length, "big")[1:] if length == 8 else None


def upload(server, stream, body, timecode_type="RELATIVE", **kw):
    pm = PutMedia(server, stream, timecode_type, start=1_700_000_000, **kw)
    pm.send(body)
    pm.end()
    return pm, pm.finish()


def errors(acks):
    return [(a["ErrorId"], a.get("FragmentTimecode")) for a in acks if a["EventType"] == "ERROR"]


def test_bad_input_gets_specific_errors_and_spares_other_uploads(strict):
    good_data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    good_stream = new_stream(strict)
    good_result = {}

    def good():
        pm = PutMedia(strict, good_stream, "RELATIVE", start=1_700_000_000)
        pm.send(good_data, chunk=8192, pace=0.01)
        pm.end()
        good_result["acks"] = pm.finish(60)

    t = threading.Thread(target=good)
    t.start()

    base = (MKV / "producer-c-1.6.4_h264_putmedia.mkv").read_bytes()
    head = header_of(base)
    s = new_stream(strict)

    # Garbage: 4006 with no fragment fields.
    pm, acks = upload(strict, s, b"GET / HTTP/1.1\r\nnot mkv at all" * 10)
    assert acks == [{"EventType": "ERROR", "ErrorCode": "INVALID_MKV_DATA", "ErrorId": 4006}]

    # A truncated stream: complete fragments persist, the cut one is an error.
    cl = clusters(base)
    cut = (cl[1][0] + cl[1][1]) // 2
    pm, acks = upload(strict, new_stream(strict), base[:cut], "ABSOLUTE")
    assert [a["EventType"] for a in acks if a.get("FragmentTimecode") == cl[0][2]] == ["BUFFERING", "RECEIVED", "PERSISTED"]
    assert errors(acks) == [(4006, cl[1][2])]

    # A 60 MB cluster (declared), and a 2^56 declared size: 4001 at once, nothing allocated.
    for size in (60_000_000, (1 << 56) - 2):
        body = head + b"\x1f\x43\xb6\x75" + ebml_size(size) + b"\xe7\x81\x00"
        pm, acks = upload(strict, new_stream(strict), body, "ABSOLUTE")
        assert [a["ErrorId"] for a in acks if a["EventType"] == "ERROR"] == [4001], acks

    # Decreasing timecodes: the same ABSOLUTE upload twice on one connection.
    pm, acks = upload(strict, new_stream(strict), base + base, "ABSOLUTE")
    assert errors(acks) == [(4004, cl[0][2])]
    assert sum(a["EventType"] == "PERSISTED" for a in acks) == len(cl)

    # A block for a track the Tracks element does not declare.
    block = b"\xa3\x85\x85\x00\x00\x80\x00"
    body = head + b"\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff" + b"\xe7\x81\x00" + block
    pm, acks = upload(strict, new_stream(strict), body, "ABSOLUTE")
    assert [a["ErrorId"] for a in acks if a["EventType"] == "ERROR"] == [4010]

    # A wrong signature, a stream that does not exist, a missing header: refused before the 200.
    pm = PutMedia(strict, s, sk="not-the-secret")
    pm.send(base[:1000])
    pm.finish(10)
    assert pm.status == 403
    pm = PutMedia(strict, "no-such-stream-" + uuid.uuid4().hex[:6])
    pm.send(base[:1000])
    pm.finish(10)
    assert pm.status == 404

    # A client that sends nothing: IDLE ACKs, then the request ends at the idle limit (3 s here).
    t0 = time.time()
    pm = PutMedia(strict, s)
    pm.send(head)
    acks = pm.finish(15)
    assert 2.5 <= time.time() - t0 <= 10
    assert acks and all(a == {"EventType": "IDLE"} for a in acks), acks

    t.join(60)
    check_acks(good_result["acks"], [c[2] for c in clusters(good_data)])
    assert strict.proc.poll() is None, "the server stays up"
    assert not leftovers(strict), "refused fragments leave nothing"
    assert strict.client().describe_stream(StreamName=good_stream)["StreamInfo"]["Status"] == "ACTIVE"


@pytest.mark.parametrize("start", ["2020-02-31T00:00:00Z", "2019-02-29T12:00:00.000Z", "2021-04-31T00:00:00Z"])
def test_start_timestamp_must_be_a_real_date(strict, start):
    pm = PutMedia(strict, new_stream(strict), extra={"x-amzn-producer-start-timestamp": start})
    assert pm.status == 400 and pm.headers["x-amzn-errortype"] == "InvalidArgumentException", pm.status
    assert "x-amzn-producer-start-timestamp" in json.loads(pm.error_body)["Message"]
    # A leap day is a date. (This upload's timecodes start at 0: RELATIVE to a 2020 start they
    # stay in the past, where the producer-clock check lets them be.)
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    _, acks = upload(strict, new_stream(strict), data, extra={"x-amzn-producer-start-timestamp": "2020-02-29T00:00:00Z"})
    check_acks(acks, [tc for _, _, tc in clusters(data)])


def test_retention_zero_acks_received_but_stores_nothing(strict):
    stream = new_stream(strict, retention=0)
    data = (MKV / "kvssink-3.6.0_h264_putmedia.mkv").read_bytes()
    pm, acks = upload(strict, stream, data, "ABSOLUTE")
    check_acks(acks, [c[2] for c in clusters(data)], persisted=False)
    assert catalog_rows(strict, stream) == []


def test_ingest_metrics(strict):
    import urllib3
    from test_archived import put
    # Its Cluster timecodes are epoch times: ABSOLUTE (RELATIVE would date them in 2080: 4007).
    put(strict, new_stream(strict), (MKV / "producer-c-1.6.4_h264_putmedia.mkv").read_bytes(), "ABSOLUTE")
    upload(strict, new_stream(strict), b"not mkv at all" * 10)
    m = urllib3.PoolManager().request("GET", strict.endpoint + "/metrics").data.decode()
    for name in ["kinescope_ingest_fragments_total", "kinescope_ingest_bytes_total", "kinescope_ingest_persist_seconds",
                 'kinescope_ingest_errors_total{error_id="4006"}', "kinescope_ingest_active_uploads"]:
        assert name in m, name


def test_a_new_connection_takes_over_the_stream(strict):
    """Handover (spec §0.8, design/0005): the older upload finishes its in-flight fragment and
    ends; the newer one's fragments follow it; a later connection going back in time gets 4004."""
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    cl = clusters(data)
    stream = new_stream(strict)
    t0 = 1_700_000_000.0

    a = PutMedia(strict, stream, "RELATIVE", start=t0)
    middle_of_second = (cl[1][0] + cl[1][1]) // 2
    a.send(data[:middle_of_second])
    assert a.wait_for(lambda acks: any(x["EventType"] == "BUFFERING" and x["FragmentTimecode"] == cl[1][2] for x in acks))

    b = PutMedia(strict, stream, "RELATIVE", start=t0 + 100)
    b.send(data)
    assert b.wait_for(lambda acks: sum(x["EventType"] == "PERSISTED" for x in acks) == len(cl))
    b.end()
    b_acks = b.finish()

    # The old connection finishes the fragment it was receiving, then is told to go.
    a.send(data[middle_of_second:cl[2][0] + 100])
    a_acks = a.finish(15)
    assert [x["EventType"] for x in a_acks if x.get("FragmentTimecode") == cl[1][2]] == ["BUFFERING", "RECEIVED", "PERSISTED"]
    assert a_acks[-1] == {"EventType": "ERROR", "ErrorCode": "MAX_CONNECTION_DURATION_REACHED", "ErrorId": 4003}
    assert not any(x.get("FragmentTimecode") == cl[2][2] for x in a_acks)

    b_numbers = check_acks(b_acks, [c[2] for c in cl])
    a_numbers = list(by_fragment([x for x in a_acks if "FragmentNumber" in x]))
    assert max(a_numbers) < min(b_numbers)
    rows = catalog_rows(strict, stream)
    assert len(rows) == 2 + len(cl)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows), "producer time only moves forward"

    # A connection whose fragments would go back in time is refused.
    c, c_acks = upload(strict, stream, data, "RELATIVE")
    assert errors(c_acks) == [(4004, 0)]
