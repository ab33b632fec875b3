"""`kinescope put` (issue 14) against the real server: the official producers' captures, an
ffmpeg-made file and a live GStreamer pipeline through stdin are uploaded, every fragment
PERSISTED, and GetMedia returns the same frames (payloads compared by PyAV, an independent MKV
demuxer). Then the fault test: while `put --realtime` uploads 60 s, the server is killed and
restarted twice and a TCP proxy cuts the connection mid-fragment; ListFragments then holds
every fragment of the input exactly once, with its original producer timestamp."""

import io
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import av
import pytest

from conftest import AK, BIN, CRED_ARGS, SK, Server, start
from mkv_structure import structure
from test_putmedia import MKV


def put(server, stream, source, *flags, stdin=None, endpoint=None, timeout=300):
    cmd = [BIN, "put", "--endpoint", endpoint or server.endpoint, "--stream", stream, "--create",
           "--access-key", AK, "--secret-key", SK, *flags, str(source)]
    if server.ca:
        cmd[2:2] = ["--ca", server.ca]
    return subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, timeout=timeout)


def packets(data):
    """Every packet's stream type and payload, in stored order, as libavformat demuxes them."""
    container = av.open(io.BytesIO(data), format="matroska")
    return [(p.stream.type, bytes(p)) for p in container.demux() if p.size]


def get_media(server, stream):
    kvs = server.client()
    ep = kvs.get_data_endpoint(StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"]
    return server.client("kinesis-video-media", endpoint=ep).get_media(
        StreamName=stream, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()


def list_fragments(server, stream):
    kvs = server.client()
    ep = kvs.get_data_endpoint(StreamName=stream, APIName="LIST_FRAGMENTS")["DataEndpoint"]
    archived = server.client("kinesis-video-archived-media", endpoint=ep)
    out, token = [], None
    while True:
        page = archived.list_fragments(StreamName=stream, **({"NextToken": token} if token else {}))
        out += page["Fragments"]
        token = page.get("NextToken")
        if not token:
            return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("put"), *CRED_ARGS)
    yield s
    assert s.stop() == 0


def summary_fragments(out):
    line = out.strip().splitlines()[-1]
    assert line.startswith("kinescope put: ") and " fragments PERSISTED" in line, out
    return int(line.split()[2])


@pytest.mark.parametrize("fixture", ["producer-c-1.6.4_h264_putmedia.mkv", "producer-c-1.6.4_h264_aac_putmedia.mkv",
                                     "kvssink-3.6.0_h264_putmedia.mkv"])
def test_put_uploads_a_capture_and_getmedia_returns_the_same_frames(server, fixture):
    stream = f"put-{uuid.uuid4().hex[:8]}"
    r = put(server, stream, MKV / fixture)
    assert r.returncode == 0, r.stderr
    n = summary_fragments(r.stdout)
    assert n == len(list_fragments(server, stream))
    assert packets(get_media(server, stream)) == packets((MKV / fixture).read_bytes())


def test_put_uploads_an_ffmpeg_file(server, tmp_path):
    """ffmpeg writes 5 s clusters with a key frame every second: `put` cuts them at each."""
    source = tmp_path / "ffmpeg.mkv"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "12", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "25", "-c:a", "libopus", str(source)], check=True, timeout=120)
    stream = f"put-{uuid.uuid4().hex[:8]}"
    r = put(server, stream, source)
    assert r.returncode == 0, r.stderr
    assert summary_fragments(r.stdout) >= 12
    assert packets(get_media(server, stream)) == packets(source.read_bytes())


def test_put_tags_every_fragment_and_getmedia_returns_them(server):
    """`--tag` metadata (spec §3.5) follows each fragment's Cluster, one Tags element each, where
    the real service returns it; a bad tag is refused before anything is sent."""
    stream = f"put-{uuid.uuid4().hex[:8]}"
    fixture = MKV / "kvssink-3.6.0_h264_putmedia.mkv"
    r = put(server, stream, fixture, "--tag", "camera=north gate", "--tag", "firmware=2.1")
    assert r.returncode == 0, r.stderr
    n = summary_fragments(r.stdout)
    data = get_media(server, stream)
    docs = structure(data)
    assert len(docs) == n
    for doc in docs:
        assert doc[doc.index("Cluster") + 1:] == [
            "Tags(camera)", "Tags(firmware)", "Tags(MILLIS_BEHIND_NOW,CONTINUATION_TOKEN)"], doc
    assert data.count(b"north gate") == n and data.count(b"2.1") >= n
    assert packets(data) == packets(fixture.read_bytes())
    for bad in ["no-equals", "AWS_KINESISVIDEO_X=1", "x=" + "v" * 257]:
        r = put(server, stream, fixture, "--tag", bad, timeout=30)
        assert r.returncode == 1 and "--tag" in r.stderr, r.stderr


def test_put_uploads_a_live_gstreamer_pipeline_through_stdin(server, tmp_path):
    """GStreamer's streamable matroskamux (unknown-size clusters) piped into `put -`; a copy of
    what went through the pipe is kept to compare with."""
    copy = tmp_path / "gst.mkv"
    pipeline = ("gst-launch-1.0 -q videotestsrc num-buffers=150 is-live=true ! video/x-raw,width=320,height=240,framerate=30/1 "
                "! x264enc key-int-max=30 tune=zerolatency ! h264parse ! matroskamux streamable=true ! fdsink fd=1")
    stream = f"put-{uuid.uuid4().hex[:8]}"
    cmd = f"{pipeline} | tee {copy} | {BIN} put --endpoint {server.endpoint} --ca {server.ca} --stream {stream} " \
          f"--create --access-key {AK} --secret-key {SK} -"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert summary_fragments(r.stdout) == 5
    assert packets(get_media(server, stream)) == packets(copy.read_bytes())


def test_put_surfaces_what_retrying_cannot_fix(server, tmp_path):
    """Bad credentials and input that is not MKV end the upload at once with a clear message."""
    r = subprocess.run([BIN, "put", "--endpoint", server.endpoint, "--ca", server.ca, "--stream", "nope", "--create",
                        "--access-key", AK, "--secret-key", "wrong", str(MKV / "kvssink-3.6.0_h264_putmedia.mkv")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "HTTP 403" in r.stderr, r.stderr
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(b"GIF89a" + bytes(5000))
    r = put(server, f"put-{uuid.uuid4().hex[:8]}", junk, timeout=60)
    assert r.returncode == 1 and "not MKV" in r.stderr, r.stderr


class Proxy:
    """A TCP proxy that can cut every connection through it at once, cut them in the middle of
    the next bytes a client sends (mid-fragment), or stop passing the server's answers on (so
    that ACKs are lost while the server still stores what it receives)."""

    def __init__(self, target_port):
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.cut_mid = threading.Event()
        self.muted = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            threading.Thread(target=self.pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(upstream, client, False), daemon=True).start()

    def pipe(self, a, b, from_client):
        try:
            while data := a.recv(65536):
                if from_client and self.cut_mid.is_set():
                    self.cut_mid.clear()
                    b.sendall(data[:len(data) // 2])
                    self.cut()
                    break
                if not from_client and self.muted.is_set():
                    continue
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.muted.clear()
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def kill_and_restart(server, started, seconds):
    """Kills the server (-9) at each of `seconds` after `started` and starts it again 2 s later."""
    for at in seconds:
        time.sleep(max(0, started + at - time.time()))
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        server.proc.stdout.close()
        time.sleep(2)
        server.start()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_put_realtime_survives_server_restarts_and_a_cut_connection(tmp_path):
    """60 s uploaded in real time; the server is killed (-9) and restarted at about 15 s and
    30 s; at 38 s the proxy the uploads go through stops passing ACKs on for 3 s and then cuts
    the connection (fragments stored whose ACK was lost); at 48 s it cuts the connection in the
    middle of a fragment. `put` exits 0, and ListFragments lists every fragment of the input
    exactly once, with the original producer timestamps (one per second, a second apart)."""
    source = tmp_path / "minute.mkv"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-g", "25", "-keyint_min", "25",
                    "-sc_threshold", "0", str(source)], check=True, timeout=120)
    port = free_port()
    proxy = Proxy(port)
    data = tmp_path / "data"
    server = Server(data, ["--data-dir", str(data), "--listen", f"127.0.0.1:{port}", "--no-tls",
                           "--public-url", f"http://127.0.0.1:{proxy.port}", *CRED_ARGS])
    stream = "unreliable"
    try:
        started = time.time()
        uploader = subprocess.Popen([BIN, "put", "--endpoint", f"http://127.0.0.1:{proxy.port}", "--stream", stream,
                                     "--create", "--access-key", AK, "--secret-key", SK, "--realtime", str(source)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill_and_restart(server, started, (15, 30))
        time.sleep(max(0, started + 38 - time.time()))
        proxy.muted.set()
        time.sleep(3)
        proxy.cut()
        time.sleep(max(0, started + 48 - time.time()))
        proxy.cut_mid.set()
        out, err = uploader.communicate(timeout=180)
        assert uploader.returncode == 0, err
        n = summary_fragments(out)
        assert n == 60, out
        counts = {k: int(out.split(f" {k}")[0].split()[-1]) for k in ("reconnects", "re-sent", "found stored")}
        # Two restarts (retried until the server is back) and two cuts; the fragments stored
        # while ACKs were lost are found, not sent again; the one cut in half is sent again.
        assert counts["reconnects"] >= 4 and counts["found stored"] >= 2 and counts["re-sent"] >= 1, out
        # Each reconnection counted by its cause, e.g. "(connection 5, response ended 1)".
        causes = out.split(" reconnects (")[1].split(")")[0].split(", ")
        assert sum(int(c.rsplit(" ", 1)[1]) for c in causes) == counts["reconnects"], out
        assert any(c.startswith("connection ") for c in causes), out
        listed = sorted(f["ProducerTimestamp"].timestamp() for f in list_fragments(server, stream))
        assert len(listed) == n, (len(listed), n, err[-2000:])
        steps = [round(b - a, 3) for a, b in zip(listed, listed[1:])]
        assert all(s == 1.0 for s in steps), steps
        assert abs(listed[0] - started) < 5, (listed[0], started)
        assert packets(get_media(server, stream)) == packets(source.read_bytes())
    finally:
        server.stop()


def test_disk_buffer_survives_a_down_server_and_a_killed_producer(tmp_path):
    """A live ffmpeg pipeline into `put --buffer-dir -` while the server is down: the first
    producer is killed (-9, with its pipeline) at 10 s, a second one starts on the same buffer
    directory, and the server comes up at 20 s. The second producer uploads what the first
    buffered, then its own: ListFragments has them all, in order, a second apart within each
    producer's run; the buffer is empty at the end."""
    port = free_port()
    buffer = tmp_path / "buffer"
    stream = "buffered"

    def producer(seconds):
        ffmpeg = (f"ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=25 -t {seconds} "
                  "-c:v libx264 -preset veryfast -tune zerolatency -g 25 -keyint_min 25 -sc_threshold 0 "
                  "-f matroska -live 1 -cluster_time_limit 1100 -")
        put_cmd = (f"{BIN} put --endpoint http://127.0.0.1:{port} --stream {stream} --create --access-key {AK} "
                   f"--secret-key {SK} --buffer-dir {buffer} -")
        return subprocess.Popen(["bash", "-o", "pipefail", "-c", f"{ffmpeg} | {put_cmd}"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    started = time.time()
    first = producer(40)
    time.sleep(10)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    buffered = sorted((buffer / stream).glob("*.frag"))
    assert len(buffered) >= 7, buffered
    second = producer(30)
    time.sleep(max(0, started + 20 - time.time()))
    data = tmp_path / "data"
    server = Server(data, ["--data-dir", str(data), "--listen", f"127.0.0.1:{port}", "--no-tls", *CRED_ARGS])
    try:
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err[-3000:]
        line = out.strip().splitlines()[-1]
        assert f"{len(buffered)} from the disk buffer" in line, line
        listed = sorted(f["ProducerTimestamp"].timestamp() for f in list_fragments(server, stream))
        assert len(listed) == summary_fragments(out), (len(listed), out)
        firsts, seconds = listed[:len(buffered)], listed[len(buffered):]
        assert [round(t * 1000) for t in firsts] == [int(p.stem) for p in buffered]
        for run in (firsts, seconds):
            assert all(round(b - a, 3) == 1.0 for a, b in zip(run, run[1:])), run
        assert seconds[0] - firsts[-1] > 1.5, "the second producer started after the first was killed"
        assert not list((buffer / stream).glob("*")), "the buffer is empty"
    finally:
        server.stop()


def pictures(data, fmt):
    """A digest of every decoded picture's luma plane, in order."""
    import hashlib
    container = av.open(io.BytesIO(data), format=fmt)
    return [hashlib.sha256(bytes(frame.planes[0])).hexdigest() for frame in container.decode(video=0)]


def picture_times(data):
    """The presentation time (ms) of every decoded picture of an MKV, in output order."""
    container = av.open(io.BytesIO(data), format="matroska")
    return [round(frame.time * 1000) for frame in container.decode(video=0)]


@pytest.mark.parametrize("codec", ["h264", "h264-bframes", "h265", "h265-bframes"])
def test_put_uploads_an_elementary_stream(server, tmp_path, codec):
    """An Annex-B elementary stream from ffmpeg (a key frame each second) uploaded with
    `--format`: GetMedia's video decodes to the same pictures as the stream itself, shown
    40 ms apart in order — with B-frames too (3, pyramid; x265's open GOPs put leading
    pictures after each CRA key frame), whose timestamps come from the pictures' order counts."""
    fmt = codec.split("-")[0]
    source = tmp_path / f"es.{fmt}"
    encoder = {"h264": ["-c:v", "libx264", "-bf", "0"],
               "h264-bframes": ["-c:v", "libx264", "-bf", "3", "-x264-params", "b-adapt=0"],
               "h265": ["-c:v", "libx265", "-x265-params", "bframes=0:log-level=error"],
               "h265-bframes": ["-c:v", "libx265", "-x265-params", "bframes=3:b-adapt=0:log-level=error"]}[codec]
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-t", "6", *encoder, "-g", "25", "-f", fmt.replace("h265", "hevc"), str(source)],
                   check=True, timeout=120)
    stream = f"put-{uuid.uuid4().hex[:8]}"
    r = put(server, stream, source, "--format", fmt, "--fps", "25")
    assert r.returncode == 0, r.stderr
    assert summary_fragments(r.stdout) == 6
    data = get_media(server, stream)
    got = pictures(data, "matroska")
    assert len(got) == 150 and got == pictures(source.read_bytes(), fmt.replace("h265", "hevc"))
    times = picture_times(data)
    assert [b - a for a, b in zip(times, times[1:])] == [40] * 149, times
