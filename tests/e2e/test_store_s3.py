"""`--store s3://…` end to end (issue 11, design/0013 and 0014): the real binary keeps fragment
bytes in a real S3-compatible server, `s3s-fs` 0.14.1 (installed by scripts/install-test-deps; it
checks SigV4 signatures), started here on a free port over a temporary directory. A PutMedia
upload is PERSISTED from the local fragment log, packed into one object of the bucket, and
GetMedia, ListFragments + GetMediaForFragmentList and an HLS session read its bytes back from
there; nothing is written under DATA_DIR/media. The S3 server stopped for 10 s during an upload
delays packing, never PERSISTED; with `--persist-to-store` it fails fragments, never loses one.

Then the ingest, GetMedia, ListFragments and GetMediaForFragmentList suites (test_putmedia.py,
test_getmedia.py, test_archived.py) run unchanged against servers on `--store s3://media`: their
tests are collected here a second time, with this module's `server`, `srv` and `strict` fixtures
in place of theirs. Each of those servers has its own s3s-fs whose root is the server's data
directory, so bucket `media` is DATA_DIR/media and the tests that look at stored bytes there
see the S3 objects; they pack every second, so reads meet fragments in the log, in the bucket
and moving between them. Fails (never skips) when s3s-fs is missing."""

import os
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

import test_archived
import test_getmedia
import test_putmedia
from conftest import CRED_ARGS, start
from test_archived import put
from test_putmedia import MKV, clusters, new_stream

S3_AK = "kinescope-e2e"
S3_SK = "kinescope-e2e-secret"
BUCKET = "media-bucket"
PREFIX = "node-1/media"


def s3s_fs_binary():
    path = os.environ.get("KINESCOPE_S3S_FS") or shutil.which("s3s-fs")
    if not path:
        cargo = pathlib.Path.home() / ".cargo" / "bin" / "s3s-fs"
        path = str(cargo) if cargo.exists() else None
    if not path:
        pytest.fail("s3s-fs is not installed: run scripts/install-test-deps "
                    "(cargo install s3s-fs --version 0.14.1 --features binary --locked)")
    return path


class S3sFs:
    """A running s3s-fs over `root` (each directory in it a bucket), killed by `stop`, started
    again on the same port by `start`."""

    def __init__(self, root):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.root = root
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self):
        self.proc = subprocess.Popen([s3s_fs_binary(), "--host", "127.0.0.1", "--port", str(self.port),
                                      "--access-key", S3_AK, "--secret-key", S3_SK, str(self.root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None, f"s3s-fs exited: {self.proc.returncode}"
                assert time.time() < deadline, "s3s-fs did not start"
                time.sleep(0.05)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def objects(root):
    return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]


def wait_packed(root, size, timeout=30):
    """Until the objects under `root` hold `size` bytes (every fragment packed); the objects."""
    deadline = time.time() + timeout
    while sum(p.stat().st_size for p in objects(root)) < size:
        assert time.time() < deadline, f"not packed: {objects(root)}"
        time.sleep(0.2)
    return objects(root)


S3_ENV = {"AWS_ACCESS_KEY_ID": S3_AK, "AWS_SECRET_ACCESS_KEY": S3_SK}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A running s3s-fs with one bucket: (endpoint, its root directory)."""
    root = tmp_path_factory.mktemp("s3s-fs")
    (root / BUCKET).mkdir()
    server = S3sFs(root)
    yield server.endpoint, root
    server.stop()


@pytest.fixture(scope="module")
def s3srv(s3, tmp_path_factory):
    endpoint, _ = s3
    url = f"s3://{BUCKET}/{PREFIX}?endpoint={endpoint}&region=us-east-1&allow_http=true&path_style=true"
    s = start(tmp_path_factory.mktemp("s3-server"), *CRED_ARGS, "--no-tls", "--store", url, "--pack-seconds", "4",
              env=S3_ENV)
    assert_on_s3(s, f"{BUCKET}/{PREFIX}")
    yield s
    assert s.stop() == 0


def assert_on_s3(server, location):
    """The server's banner says fragments go to the bucket (not DATA_DIR/media)."""
    assert server.banner.get("Store", "").startswith(f"s3://{location}"), server.banner_text


def s3_backed(tmp_path_factory, name, *args):
    """A server started as `start(…, *args)` is, on `--store s3://media` served by an s3s-fs
    rooted at its own data directory (bucket `media` = DATA_DIR/media)."""
    tmp = tmp_path_factory.mktemp(name)
    (tmp / "data" / "media").mkdir(parents=True)
    s3 = S3sFs(tmp / "data")
    url = f"s3://media?endpoint={s3.endpoint}&region=us-east-1&allow_http=true"
    try:
        s = start(tmp, *CRED_ARGS, "--store", url, "--pack-seconds", "1", *args, env=S3_ENV)
        assert_on_s3(s, "media/")
        return s, s3
    except Exception:
        s3.stop()
        raise


def archived(server, stream, api):
    ep = server.client().get_data_endpoint(StreamName=stream, APIName=api)["DataEndpoint"]
    return server.client("kinesis-video-archived-media", endpoint=ep)


def http_get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.read()


def test_upload_and_every_read_path_through_s3(s3srv, s3):
    srv = s3srv
    _, root = s3
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    n = len(clusters(data))
    stream = new_stream(srv)
    stream_arn = srv.client().describe_stream(StreamName=stream)["StreamInfo"]["StreamARN"]
    before = time.time()
    persisted = put(srv, stream, data, start=time.time() - 30)
    after = time.time()
    assert len(persisted) == n

    # Packed: the three fragments (5.4 s) are one object in the bucket, under the prefix, once
    # the stream has been quiet for 4 s; nothing under DATA_DIR/media.
    packed = wait_packed(root / BUCKET / PREFIX, sum(e - o for o, e, _ in clusters(data)))
    assert len(packed) == 1, packed
    assert packed[0].relative_to(root / BUCKET / PREFIX).parts[0] == "streams"
    media_dir = srv.data_dir / "media"
    assert not media_dir.exists() or not any(p.is_file() for p in media_dir.rglob("*"))

    # GetMedia from EARLIEST: every fragment, each an MKV document with the upload's clusters.
    ep = srv.client().get_data_endpoint(StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"]
    media = srv.client("kinesis-video-media", endpoint=ep)
    body = media.get_media(StreamName=stream, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
    assert body.count(b"\x1a\x45\xdf\xa3") == n, "one EBML header per fragment"
    assert len(clusters(body)) == n

    # ListFragments, then GetMediaForFragmentList of all of them, in order.
    c = archived(srv, stream, "LIST_FRAGMENTS")
    fragments = c.list_fragments(StreamName=stream)["Fragments"]
    assert sorted(f["FragmentNumber"] for f in fragments) == sorted(a["FragmentNumber"] for a in persisted)
    numbers = [a["FragmentNumber"] for a in persisted]
    c = archived(srv, stream, "GET_MEDIA_FOR_FRAGMENT_LIST")
    listed = c.get_media_for_fragment_list(StreamName=stream, Fragments=numbers)["Payload"].read()
    assert len(clusters(listed)) == n
    assert listed.count(b"\x1a\x45\xdf\xa3") == n

    # An HLS session over the same fragments: master, media playlist, init and media segments.
    c = archived(srv, stream, "GET_HLS_STREAMING_SESSION_URL")
    url = c.get_hls_streaming_session_url(
        StreamARN=stream_arn, PlaybackMode="ON_DEMAND",
        HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                             "TimestampRange": {"StartTimestamp": before - 1, "EndTimestamp": after + 1}},
    )["HLSStreamingSessionURL"]
    base = url.rsplit("/", 1)[0] + "/"
    status, master = http_get(url)
    assert status == 200 and master.startswith(b"#EXTM3U")
    playlist = [line for line in master.decode().splitlines() if line and not line.startswith("#")][0]
    status, text = http_get(base + playlist)
    assert status == 200
    text = text.decode()
    segments = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(segments) == n, text
    init = [part.split('URI="')[1].split('"')[0] for part in text.splitlines() if part.startswith("#EXT-X-MAP")]
    total = 0
    for u in init + segments:
        status, seg = http_get(base + u)
        assert status == 200 and seg, u
        total += len(seg)
    assert total > 0


@pytest.mark.parametrize("persist_to_store", [False, True])
def test_a_wrong_s3_secret_fails_packing_or_the_fragment_not_the_server(s3, tmp_path, persist_to_store):
    """s3s-fs checks signatures. With a wrong secret and `--persist-to-store`, each fragment gets an
    ERROR, never PERSISTED. By default fragments are PERSISTED from the log and readable; packing
    keeps failing (and retrying), and the bucket stays empty."""
    from putmedia_client import PutMedia
    endpoint, root = s3
    url = f"s3://{BUCKET}/wrong-{persist_to_store}?endpoint={endpoint}&region=us-east-1&allow_http=true"
    env = dict(S3_ENV, AWS_SECRET_ACCESS_KEY="not-" + S3_SK)
    mode = ["--persist-to-store"] if persist_to_store else []
    s = start(tmp_path, *CRED_ARGS, "--no-tls", "--store", url, "--pack-seconds", "1", *mode, env=env)
    try:
        stream = new_stream(s)
        data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
        pm = PutMedia(s, stream, "RELATIVE", start=time.time() - 30)
        pm.send(data)
        pm.end()
        acks = pm.finish(120)
        persisted = [a for a in acks if a["EventType"] == "PERSISTED"]
        errors = [a for a in acks if a["EventType"] == "ERROR"]
        if persist_to_store:
            assert not persisted and errors, acks
            assert {a["ErrorId"] for a in errors} == {5001}, errors
        else:
            assert len(persisted) == 3 and not errors, acks
            time.sleep(3)
            media = s.client("kinesis-video-media", endpoint=s.client().get_data_endpoint(
                StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"])
            body = media.get_media(StreamName=stream, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
            assert len(clusters(body)) == 3
        bucket = root / BUCKET / f"wrong-{persist_to_store}"
        assert not bucket.exists() or not objects(bucket)
        assert s.proc.poll() is None
    finally:
        s.stop()


@pytest.mark.parametrize("persist_to_store", [False, True])
def test_s3_outage_during_an_upload(tmp_path, persist_to_store):
    """The S3 server is stopped for 10 s during a 30 s upload. By default every fragment is still
    PERSISTED (from the log), and packing catches up afterwards. With `--persist-to-store` a
    fragment is PERSISTED only once stored or gets ERROR 5001, never both, and a new upload
    persists once the store is back. Either way every PERSISTED fragment is readable at the end."""
    from test_playback import Producer, live_media
    (tmp_path / "s3" / "media").mkdir(parents=True)
    s3 = S3sFs(tmp_path / "s3")
    url = f"s3://media?endpoint={s3.endpoint}&region=us-east-1&allow_http=true"
    mode = ["--persist-to-store"] if persist_to_store else []
    s = start(tmp_path, *CRED_ARGS, "--no-tls", "--store", url, "--pack-seconds", "2", *mode, env=S3_ENV)
    try:
        stream = new_stream(s)
        data, pace = live_media(tmp_path, 30)
        producer = Producer(s, stream, data, pace)
        producer.start()
        producer.wait_persisted(3)
        s3.stop()
        time.sleep(10)
        during = sum(a["EventType"] == "PERSISTED" for a in list(producer.pm.acks))
        s3.start()
        producer.join(120)
        assert producer.error is None
        acks = producer.pm.acks
        persisted = {a["FragmentNumber"] for a in acks if a["EventType"] == "PERSISTED"}
        failed = [a for a in acks if a["EventType"] == "ERROR"]
        if persist_to_store:
            # The first fragment the store refuses ends the upload with ERROR 5001, as KVS ends
            # it; the SDK then reconnects, and once the store is back its fragments persist.
            assert failed and {a["ErrorId"] for a in failed} == {5001}, acks
            assert not persisted & {a.get("FragmentNumber") for a in failed}, "never both"
            again = put(s, stream, (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes(),
                        start=time.time() - 4)
            assert len(again) == 3
            persisted |= {a["FragmentNumber"] for a in again}
        else:
            assert not failed, acks
            assert len(persisted) >= 28, len(persisted)
            assert during >= 3 + 8, f"PERSISTED went on during the outage: {during}"
            wait_packed(tmp_path / "s3" / "media", sum(e - o for o, e, _ in clusters(data)), timeout=90)
        media = s.client("kinesis-video-media", endpoint=s.client().get_data_endpoint(
            StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"])
        body = media.get_media(StreamName=stream, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
        assert len(clusters(body)) == len(persisted)
    finally:
        s.stop()
        s3.stop()


# ---------------------------------------------------------------- the suites again, on S3

@pytest.fixture(scope="module", params=["http", "https"])
def server(request, tmp_path_factory):
    """conftest's `server` (plain HTTP and TLS), on S3."""
    tls = ["--no-tls"] if request.param == "http" else []
    s, s3 = s3_backed(tmp_path_factory, f"s3-{request.param}", *tls)
    yield s
    assert s.stop() == 0
    s3.stop()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """test_getmedia's `srv`, on S3."""
    s, s3 = s3_backed(tmp_path_factory, "s3-gm", "--no-tls", "--getmedia-idle-timeout", "2")
    yield s
    s.stop()
    s3.stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """test_putmedia's `strict`, on S3."""
    s, s3 = s3_backed(tmp_path_factory, "s3-strict", "--no-tls", "--ingest-idle-limit", "3")
    yield s
    s.stop()
    s3.stop()


for _module in (test_putmedia, test_getmedia, test_archived):
    for _name in dir(_module):
        if _name.startswith("test_"):
            globals()[f"test_s3_{_module.__name__[5:]}_{_name[5:]}"] = getattr(_module, _name)
