"""GetMedia against the real binary (spec §4): every StartSelector, the payload decoded while it
streams by PyAV (frame counts and producer timestamps as uploaded), the AWS CLI's output checked
by mkvmerge, and a live tail that three readers follow while a producer uploads."""

import json
import re
import subprocess
import threading
import time

import av
import pytest

from conftest import CRED_ARGS, start
from mkv_structure import structure
from putmedia_client import PutMedia
from test_archived import put
from test_putmedia import MKV, cluster_bodies, clusters, new_stream

DATA = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("gm"), *CRED_ARGS, "--no-tls", "--getmedia-idle-timeout", "2")
    yield s
    s.stop()


def media_client(server, stream):
    ep = server.client().get_data_endpoint(StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"]
    return server.client("kinesis-video-media", endpoint=ep)


def tags_of(data):
    """(fragment number, producer timestamp, continuation token) per document, in order."""
    out, i = [], 0
    def value(name, at):
        j = data.find(name, at)
        if j < 0:
            return None, -1
        k = data.find(b"\x44\x87", j) + 2
        size = int.from_bytes(data[k:k + 4], "big") & 0x0FFFFFFF
        return data[k + 4:k + 4 + size].decode(), k
    while True:
        number, i = value(b"AWS_KINESISVIDEO_FRAGMENT_NUMBER", i)
        if number is None:
            return out
        producer, _ = value(b"AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", i)
        token, _ = value(b"AWS_KINESISVIDEO_CONTINUATION_TOKEN", i)
        out.append((number, producer, token))


def get(server, stream, **selector):
    payload = media_client(server, stream).get_media(StreamName=stream, StartSelector=selector)
    assert payload["ContentType"] == "video/webm"
    return payload["Payload"]


def test_every_selector(srv):
    stream = new_stream(srv)
    persisted = put(srv, stream, DATA, start=1_700_000_000.0)
    numbers = [a["FragmentNumber"] for a in persisted]
    fragments = srv.client("kinesis-video-archived-media", endpoint=srv.endpoint).list_fragments(StreamName=stream)["Fragments"]
    server_ts = [f["ServerTimestamp"].timestamp() for f in fragments]

    def read(**sel):
        return [t[0] for t in tags_of(get(srv, stream, **sel).read())]

    assert read(StartSelectorType="EARLIEST") == numbers
    assert read(StartSelectorType="FRAGMENT_NUMBER", AfterFragmentNumber=numbers[0]) == numbers[1:]
    assert read(StartSelectorType="CONTINUATION_TOKEN", ContinuationToken=numbers[1]) == numbers[2:]
    assert read(StartSelectorType="PRODUCER_TIMESTAMP", StartTimestamp=1_700_000_001.0) == numbers[1:]
    assert read(StartSelectorType="SERVER_TIMESTAMP", StartTimestamp=server_ts[1]) == numbers[1:]
    assert read(StartSelectorType="NOW") == numbers[-1:]
    assert read(StartSelectorType="SERVER_TIMESTAMP", StartTimestamp=time.time() + 3600) == []
    c = media_client(srv, stream)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_media(StreamName=stream + "-missing", StartSelector={"StartSelectorType": "NOW"})
    with pytest.raises(c.exceptions.InvalidArgumentException):
        c.get_media(StreamName=stream, StartSelector={"StartSelectorType": "FRAGMENT_NUMBER"})


def test_pyav_decodes_the_payload_while_it_streams(srv):
    stream = new_stream(srv)
    start_ts = 1_700_000_100.0
    put(srv, stream, DATA, start=start_ts)
    payload = get(srv, stream, StartSelectorType="EARLIEST")
    container = av.open(payload, format="matroska")
    video = audio = 0
    for packet in container.demux():
        if packet.size == 0:
            continue
        if packet.stream.type == "video":
            video += len(packet.decode())
        else:
            audio += 1
    source = av.open(str(MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv"))
    src_video = sum(1 for p in source.demux(video=0) if p.size)
    assert video == src_video and audio > 0
    # Producer timestamps in the tags are the uploaded ones.
    producer = [float(t[1]) for t in tags_of(get(srv, stream, StartSelectorType="EARLIEST").read())]
    assert producer == [start_ts + tc / 1000 for _, _, tc in clusters(DATA)]


def test_aws_cli_get_media_writes_valid_mkv(srv, tmp_path):
    stream = new_stream(srv)
    put(srv, stream, DATA)
    out = tmp_path / "out.mkv"
    srv.aws("kinesis-video-media", "get-media", "--stream-name", stream,
            "--start-selector", "StartSelectorType=EARLIEST", str(out))
    info = json.loads(subprocess.run(["mkvmerge", "-J", str(out)], capture_output=True, text=True).stdout)
    assert info["errors"] == [] and len(info["tracks"]) == 2
    # The element structure of the real service's GetMedia output (testdata/mkv/output_get_media*):
    # per fragment one document, the producer's own elements before its first Cluster, then
    # Tags(FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP), the Cluster, and
    # Tags(MILLIS_BEHIND_NOW, CONTINUATION_TOKEN). (KVS adds Cues when the upload had them.)
    def kvs_part(doc):
        return [e for e in doc[doc.index("Tags(FRAGMENT_NUMBER,SERVER_TIMESTAMP,PRODUCER_TIMESTAMP)"):] if e != "Cues"]
    aws = [kvs_part(d) for f in ("output_get_media", "output_get_media_sparse_fragments")
           for d in structure((MKV / f"{f}.mkv").read_bytes())]
    assert all(a == aws[0] for a in aws)
    ours = structure(out.read_bytes())
    assert len(ours) == len(clusters(DATA))
    uploaded = structure(DATA)[0]
    producer_part = uploaded[:uploaded.index("Cluster")]
    for doc in ours:
        assert kvs_part(doc) == aws[0], doc
        assert doc[:len(producer_part)] == producer_part, doc


def test_producer_metadata_where_the_real_service_puts_it(srv, tmp_path):
    # The C producer's video sample sends TEST_KEY_1..9 after each Cluster (design/0009). The
    # real service returns such tags after the Cluster, one Tags element each, before its own
    # post-cluster Tags (testdata/mkv/test_mixed_tags.mkv); so must GetMedia and
    # GetMediaForFragmentList here, read by boto3.
    stream = new_stream(srv)
    data = (MKV / "producer-c-1.6.4_h264_putmedia.mkv").read_bytes()
    numbers = [a["FragmentNumber"] for a in put(srv, stream, data, "ABSOLUTE")]
    user = [f"Tags(TEST_KEY_{i})" for i in range(1, 10)]

    def shape(doc):
        """From the Cluster on, user Tags as one word."""
        rest = doc[doc.index("Cluster"):]
        return [e if e == "Cluster" or e.startswith("Tags(MILLIS") else "user" for e in rest]
    theirs = shape(structure((MKV / "test_mixed_tags.mkv").read_bytes())[0])
    assert theirs == ["Cluster"] + ["user"] * 5 + ["Tags(MILLIS_BEHIND_NOW,CONTINUATION_TOKEN)"]
    out = tmp_path / "getmedia.mkv"
    out.write_bytes(get(srv, stream, StartSelectorType="EARLIEST").read())
    ours = structure(out.read_bytes())
    assert len(ours) == len(numbers)
    for doc in ours:
        assert shape(doc) == ["Cluster"] + ["user"] * 9 + theirs[-1:], doc
        assert doc[doc.index("Cluster") + 1:-1] == user, doc
    info = json.loads(subprocess.run(["mkvmerge", "-J", str(out)], capture_output=True, text=True).stdout)
    assert info["errors"] == [] and info["warnings"] == []

    archived = srv.client("kinesis-video-archived-media", endpoint=srv.endpoint)
    listed = archived.get_media_for_fragment_list(StreamName=stream, Fragments=numbers[::-1])["Payload"].read()
    assert [t[0] for t in tags_of(listed)] == numbers[::-1]
    for doc in structure(listed):
        assert doc[doc.index("Cluster") + 1:] == user, doc
    # With the uploaded values: the last fragment's are TEST_VALUE_91..99.
    first = listed.index(b"AWS_KINESISVIDEO_FRAGMENT_NUMBER")
    second = listed.index(b"AWS_KINESISVIDEO_FRAGMENT_NUMBER", first + 1)
    assert b"TEST_VALUE_91" in listed[first:second] and b"TEST_VALUE_99" in listed[first:second]


def test_live_tail_every_fragment_exactly_once(srv):
    stream = new_stream(srv)
    first = put(srv, stream, DATA, start=1_700_000_000.0)
    token = first[-1]["FragmentNumber"]
    results = {}

    def reader(name, **selector):
        payload = get(srv, stream, **selector)
        seen = []
        arrivals = []
        buf = b""
        while True:
            chunk = payload.read(65536)
            if not chunk:
                break
            buf += chunk
            n = len(tags_of(buf))
            while len(arrivals) < n:
                arrivals.append(time.time())
        results[name] = ([t[0] for t in tags_of(buf)], arrivals)

    threads = [threading.Thread(target=reader, args=(n,), kwargs=k) for n, k in [
        ("now", {"StartSelectorType": "NOW"}),
        ("earliest", {"StartSelectorType": "EARLIEST"}),
        ("token", {"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": token}),
    ]]
    for t in threads:
        t.start()
    time.sleep(0.5)
    # The producer uploads for a while (three passes, paced), its fragments following the first's.
    pm = PutMedia(srv, stream, "RELATIVE", start=1_700_001_000.0)
    pm.send(DATA, chunk=16384, pace=0.02)
    pm.end()
    acks = pm.finish(60)
    persisted_at = {a["FragmentNumber"]: t for a, t in zip(acks, pm.ack_times) if a["EventType"] == "PERSISTED"}
    second = [a["FragmentNumber"] for a in acks if a["EventType"] == "PERSISTED"]
    assert len(second) == 3
    for t in threads:
        t.join(30)
    all_numbers = [a["FragmentNumber"] for a in first] + second
    assert results["earliest"][0] == all_numbers
    assert results["token"][0] == second
    assert results["now"][0] == [first[-1]["FragmentNumber"]] + second
    for name, (seen, _) in results.items():
        assert len(seen) == len(set(seen)), name
    # PERSISTED (seen by the producer) to the fragment's arrival at a live reader: the tail is
    # pushed by the live bus, not found by polling. Reported, not a benchmark.
    seen, arrivals = results["token"]
    latencies = sorted(arrivals[i] - persisted_at[n] for i, n in enumerate(seen))
    print(f"PERSISTED -> live reader latency: median {latencies[len(latencies) // 2] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
    assert latencies[-1] < 1.0


def raw_get_media(server, stream, selector):
    """A signed GetMedia over http.client, for many readers at once without a boto3 client each."""
    import http.client
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    from conftest import AK, REGION, SK
    body = json.dumps({"StreamName": stream, "StartSelector": selector}).encode()
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/getMedia", data=body,
                                         headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(AK, SK), "kinesisvideo", REGION).add_auth(req)
    host, port = server.endpoint.split("://")[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/getMedia", body=body, headers=dict(req.headers))
    return conn, conn.getresponse()


def test_two_hundred_live_readers_on_one_stream(srv):
    stream = new_stream(srv)
    put(srv, stream, DATA, start=1_700_000_000.0)
    results = [None] * 200
    connected = threading.Semaphore(0)

    def reader(i):
        conn, resp = raw_get_media(srv, stream, {"StartSelectorType": "NOW"})
        connected.release()
        assert resp.status == 200
        results[i] = [t[0] for t in tags_of(resp.read())]
        conn.close()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    # Upload as soon as every reader has its response: each ends 2 s after its last fragment.
    for _ in threads:
        assert connected.acquire(timeout=30)
    second = put(srv, stream, DATA, start=1_700_000_100.0)
    for t in threads:
        t.join(60)
    expected = [a["FragmentNumber"] for a in second]
    assert all(r is not None and r[1:] == expected for r in results), [r for r in results if r is None or r[1:] != expected][:2]


def test_deleting_the_stream_ends_its_readers(srv):
    stream = new_stream(srv)
    put(srv, stream, DATA)
    conn, resp = raw_get_media(srv, stream, {"StartSelectorType": "NOW"})
    first = resp.read(1000)
    arn = srv.client().describe_stream(StreamName=stream)["StreamInfo"]["StreamARN"]
    t0 = time.time()
    srv.client().delete_stream(StreamARN=arn)
    rest = resp.read()  # returns once the server ends the response
    assert time.time() - t0 < 1.9, "ended by the deletion, not by the 2 s idle timeout"
    assert len(tags_of(first + rest)) == 1
    conn.close()


STALL_SECONDS = 60


def test_stalled_readers_cost_bounded_memory_and_miss_nothing(srv):
    """Two readers stop reading for 60 s while the producer uploads: one catching up from
    EARLIEST, one on the live tail (NOW). The server must neither read ahead nor queue fragments
    for them: its RSS stays bounded. A third reader that keeps reading is not held back: it has
    every fragment by the end of the stall. When the stalled ones read on, each gets every
    fragment exactly once, in order: the live one, which fell behind its stream's live bus, from
    the archive."""
    stream = new_stream(srv)
    numbers = [a["FragmentNumber"] for a in put(srv, stream, DATA, start=1_700_000_000.0)]
    first_upload = len(numbers)
    rss = lambda: int(open(f"/proc/{srv.proc.pid}/status").read().split("VmRSS:")[1].split()[0]) * 1024
    readers = {sel: raw_get_media(srv, stream, {"StartSelectorType": sel}) for sel in ("EARLIEST", "NOW")}
    heads = {sel: resp.read(100) for sel, (_, resp) in readers.items()}
    follower, followed = raw_get_media(srv, stream, {"StartSelectorType": "NOW"}), bytearray()

    def follow():
        while chunk := follower[1].read1(1 << 16):
            followed.extend(chunk)

    following = threading.Thread(target=follow)
    following.start()
    before = peak = rss()
    deadline, i = time.time() + STALL_SECONDS, 1
    while time.time() < deadline:
        # One upload (~2 MB, 3 fragments) a second, each after the last in producer time.
        numbers += [a["FragmentNumber"] for a in put(srv, stream, DATA, start=1_700_000_000.0 + 10 * i)]
        i += 1
        peak = max(peak, rss())
        time.sleep(1)
    grown = peak - before
    print(f"{i - 1} uploads ({len(numbers)} fragments) during the stall; server RSS grew {grown / 2**20:.1f} MiB")
    assert i > 20
    assert grown < 24 * 2**20, f"RSS grew by {grown} bytes while the readers stalled"
    time.sleep(0.5)
    assert [t[0] for t in tags_of(bytes(followed))] == numbers[first_upload - 1:], "the follower kept up"
    # Read on (the 2 s idle timeout ran out long ago, but fragments are waiting: no early end);
    # each response ends 2 s after its last fragment.
    got = {sel: [t[0] for t in tags_of(heads[sel] + resp.read())] for sel, (_, resp) in readers.items()}
    following.join(10)
    for conn, _ in [*readers.values(), follower]:
        conn.close()
    assert got["EARLIEST"] == numbers
    assert got["NOW"] == numbers[first_upload - 1:]


def test_retention_zero_is_served_from_the_live_bus(srv):
    stream = new_stream(srv, retention=0)
    result = {}

    def reader():
        conn, resp = raw_get_media(srv, stream, {"StartSelectorType": "NOW"})
        result["data"] = resp.read()
        conn.close()

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.5)
    pm = PutMedia(srv, stream, "RELATIVE", start=1_700_000_000.0)
    pm.send(DATA)
    pm.end()
    acks = pm.finish()
    assert not [a for a in acks if a["EventType"] in ("PERSISTED", "ERROR")]
    t.join(30)
    received = [a["FragmentNumber"] for a in acks if a["EventType"] == "RECEIVED"]
    data = result["data"]
    assert [x[0] for x in tags_of(data)] == received
    # The clusters are the uploaded bytes.
    assert cluster_bodies(data) == cluster_bodies(DATA)


def test_simulated_cameras_with_live_viewers(srv):
    """`kinescope simulate --viewers` (the fan-out benchmark's load generator): every fragment
    each camera got PERSISTED reaches each of its viewers exactly once."""
    from conftest import AK, BIN, SK
    r = subprocess.run([BIN, "simulate", "--endpoint", srv.endpoint, "--access-key", AK, "--secret-key", SK,
                        "--prefix", "sim-" + str(time.time_ns()), "--streams", "2", "--viewers", "3",
                        "--bitrate", "400000", "--fragment-ms", "500", "--duration-secs", "3"],
                       capture_output=True, text=True, timeout=60)
    print(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    persisted = int(re.search(r"fragments PERSISTED: (\d+)", r.stdout).group(1))
    viewed = int(re.search(r"fragments viewed: (\d+)", r.stdout).group(1))
    assert persisted >= 2 * 6
    assert viewed == 3 * persisted
    assert "missed 0, duplicated 0" in r.stdout


def test_getmedia_metrics(srv):
    """Readers are counted while they last (a reader that hangs up is released by the idle
    timeout at the latest), fragments by source, bytes, and readers that fell behind the bus."""
    import urllib3
    def metrics():
        text = urllib3.PoolManager().request("GET", srv.endpoint + "/metrics").data.decode()
        return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("kinescope_getmedia")}
    stream = new_stream(srv)
    put(srv, stream, DATA)
    # A live reader that does not read while 36 fragments (~25 MB) go by: more than its socket
    # buffers and the stream's live bus hold, so it falls behind and reads on from the archive.
    lagging, lagging_resp = raw_get_media(srv, stream, {"StartSelectorType": "NOW"})
    lagging_resp.read(100)
    for i in range(1, 13):
        put(srv, stream, DATA, start=1_700_000_000.0 + 10 * i)
    lagging_resp.read()
    lagging.close()
    conn, resp = raw_get_media(srv, stream, {"StartSelectorType": "EARLIEST"})
    resp.read(1000)
    m = metrics()
    assert m["kinescope_getmedia_active_readers"] >= 1
    assert m['kinescope_getmedia_fragments_total{source="archive"}'] > 0
    assert m['kinescope_getmedia_fragments_total{source="live"}'] > 0
    assert m["kinescope_getmedia_bytes_total"] > len(DATA)
    assert m["kinescope_getmedia_lagged_total"] >= 1
    conn.close()
    deadline = time.time() + 5
    while metrics()["kinescope_getmedia_active_readers"] > 0:
        assert time.time() < deadline, "a closed reader is still counted"
        time.sleep(0.2)
