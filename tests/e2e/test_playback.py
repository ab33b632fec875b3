"""HLS, DASH and GetClip against the real binary (spec §5.3–5.5, issue 10), for media uploaded
through PutMedia (H.264 alone; H.264 with B-frames + AAC; H.265): real players count and decode
every uploaded frame through each URL (ffprobe, ffmpeg, GStreamer playbin3; hls.js and dash.js
in headless Chromium for what Chromium decodes), npm hls-parser accepts every playlist in strict
mode and the MPD passes the strict check; session tokens are refused when expired, forged or
stale; the session errors KVS documents; caching and CORS headers; LIVE follows an upload and
ends cleanly when the stream is deleted."""

import base64
import hashlib
import hmac
import pathlib
import subprocess
import threading
import time
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import players
from conftest import AK, CRED_ARGS, REGION, SK, start
from putmedia_client import PutMedia
from test_archived import put, synthetic_upload
from test_putmedia import new_stream

FFMPEG_MKV = ["-f", "matroska", "-live", "1", "-cluster_time_limit", "1100", "-cluster_size_limit", "50000000"]
MEDIA = {
    # 10 s, 1 s GOPs, no B-frames (as cameras send).
    "h264": ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "10", "-c:v", "libx264",
             "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-g", "30",
             "-keyint_min", "30", "-sc_threshold", "0"],
    # 8 s with AAC, as cameras send it.
    "h264_aac": ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i",
                 "sine=frequency=440:sample_rate=44100", "-t", "8", "-c:v", "libx264", "-preset", "veryfast",
                 "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-g", "25", "-keyint_min", "25",
                 "-sc_threshold", "0", "-c:a", "aac", "-ac", "2"],
    # The same with B-frames (composition offsets).
    "h264_b_aac": ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-f", "lavfi", "-i",
                   "sine=frequency=440:sample_rate=44100", "-t", "8", "-c:v", "libx264", "-preset", "veryfast",
                   "-bf", "2", "-pix_fmt", "yuv420p", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
                   "-c:a", "aac", "-ac", "2"],
    # 4 s of H.265 (x265 uses B-frames by default).
    "h265": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "4", "-c:v", "libx265",
             "-pix_fmt", "yuv420p", "-x265-params", "keyint=25:min-keyint=25:scenecut=0:log-level=error"],
}


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("play"), *CRED_ARGS, "--no-tls")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """Each kind of media as an MKV file, with its frame counts as ffprobe reads them."""
    d = tmp_path_factory.mktemp("media")
    out = {}
    for kind, args in MEDIA.items():
        path = d / f"{kind}.mkv"
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args, *FFMPEG_MKV, str(path)], check=True, timeout=120)
        out[kind] = (path, players.ffprobe_frames(str(path)), audio_frames(str(path)) if "aac" in kind else 0)
    return out


@pytest.fixture(scope="module")
def uploaded(srv, media):
    """Each kind of media uploaded to its own stream; (stream, server-time range, frames, audio frames, span)."""
    out = {}
    for kind, (path, frames, audio) in media.items():
        stream = new_stream(srv)
        before = time.time()
        acks = put(srv, stream, path.read_bytes(), start=time.time() - 30)
        assert acks
        out[kind] = (stream, (before - 1, time.time() + 1), frames, audio)
    return out


def audio_frames(url):
    return players.ffprobe_frames(url, stream="a:0")


def archived(server, stream, api):
    ep = server.client().get_data_endpoint(StreamName=stream, APIName=api)["DataEndpoint"]
    return server.client("kinesis-video-archived-media", endpoint=ep)


def hls_url(server, stream, **kw):
    return archived(server, stream, "GET_HLS_STREAMING_SESSION_URL").get_hls_streaming_session_url(
        StreamName=stream, **kw)["HLSStreamingSessionURL"]


def dash_url(server, stream, **kw):
    return archived(server, stream, "GET_DASH_STREAMING_SESSION_URL").get_dash_streaming_session_url(
        StreamName=stream, **kw)["DASHStreamingSessionURL"]


def on_demand(rng):
    return {"PlaybackMode": "ON_DEMAND",
            "HLSFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                    "TimestampRange": {"StartTimestamp": rng[0], "EndTimestamp": rng[1]}}}


def dash_on_demand(rng):
    return {"PlaybackMode": "ON_DEMAND",
            "DASHFragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP",
                                     "TimestampRange": {"StartTimestamp": rng[0], "EndTimestamp": rng[1]}}}


def get(url, headers=None):
    """(status, headers, body) of a GET, errors included."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def base(url):
    return url.rsplit("/", 1)[0] + "/"


def media_playlists(master_url):
    """The media playlist URLs a master playlist links (stream line and renditions)."""
    _, _, text = get(master_url)
    text = text.decode()
    urls = [line for line in text.splitlines() if line and not line.startswith("#")]
    urls += [part.split('URI="')[1].split('"')[0] for part in text.splitlines() if 'URI="' in part]
    return text, [base(master_url) + u for u in urls]


def clip(server, stream, rng, path):
    c = archived(server, stream, "GET_CLIP")
    resp = c.get_clip(StreamName=stream, ClipFragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": rng[0], "EndTimestamp": rng[1]}})
    assert resp["ContentType"] == "video/mp4"
    with open(path, "wb") as f:
        for chunk in resp["Payload"].iter_chunks():
            f.write(chunk)
    return str(path)


@pytest.mark.parametrize("kind", list(MEDIA))
def test_every_url_plays_every_frame(srv, uploaded, kind, tmp_path):
    stream, rng, frames, audio = uploaded[kind]
    urls = {
        "hls-fmp4": hls_url(srv, stream, **on_demand(rng)),
        "hls-ts": hls_url(srv, stream, ContainerFormat="MPEG_TS", **on_demand(rng)),
        "dash": dash_url(srv, stream, **dash_on_demand(rng)),
        "clip": clip(srv, stream, rng, tmp_path / "clip.mp4"),
    }
    for what, url in urls.items():
        assert players.ffprobe_frames(url) == frames, what
        if audio:
            assert audio_frames(url) == audio, what
        rc, err = players.ffmpeg_plays(url, args=())
        assert rc == 0 and not err.strip(), (what, err)
        uri = pathlib.Path(url).as_uri() if what == "clip" else url
        rc, err = players.gst_plays(uri, playbin="playbin3")
        assert rc == 0, (what, err)
    # Playlists: strict syntax, and segment durations add up to the uploaded span (no drift).
    master, media_urls = media_playlists(urls["hls-fmp4"])
    players.check_hls_playlist(master, master=True)
    if audio:
        assert 'AUDIO="audio"' in master and "mp4a.40.2" in master and 'GROUP-ID="audio",NAME="audio"' in master
    for u in media_urls:
        status, _, text = get(u)
        assert status == 200
        text = text.decode()
        players.check_hls_playlist(text, master=False)
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
        if "TrackNumber=1" in u:
            extinf = sum(float(line[8:].rstrip(",")) for line in text.splitlines() if line.startswith("#EXTINF:"))
            fps = 30 if kind == "h264" else 25
            assert abs(extinf - frames / fps) <= 1 / fps + 1e-3, (extinf, frames / fps)
    _, ts_media = media_playlists(urls["hls-ts"])
    for u in ts_media:
        players.check_hls_playlist(get(u)[2].decode(), master=False)
    players.check_mpd(get(urls["dash"])[2].decode(), url=urls["dash"])


@pytest.mark.parametrize("kind,mode", [("h264", "hls"), ("h264_aac", "hls"), ("h264_aac", "dash"),
                                       ("h264_aac", "hls-ts"), ("h264_b_aac", "dash"),
                                       ("h264_b_aac", "hls-on-discontinuity")])
def test_browser_plays_on_demand_to_the_end(srv, uploaded, kind, mode):
    """Default session parameters (DiscontinuityMode ALWAYS for server timestamps), except for
    B-frames in HLS: hls.js re-anchors every discontinuity on its first decode time and leaves
    one-frame holes between B-frame segments, so that session marks only real discontinuities."""
    stream, rng, _, _ = uploaded[kind]
    if mode == "dash":
        url = dash_url(srv, stream, **dash_on_demand(rng))
    else:
        extra = {"hls-ts": {"ContainerFormat": "MPEG_TS"},
                 "hls-on-discontinuity": {"DiscontinuityMode": "ON_DISCONTINUITY"}}.get(mode, {})
        url = hls_url(srv, stream, **on_demand(rng), **extra)
    r = players.play_in_browser(url, "dash" if mode == "dash" else "hls", expect_end=True, seconds=5)
    r.assert_played(expect_end=True, size=(640, 360), min_advance=5)


def test_caching_and_cors(srv, uploaded):
    stream, rng, _, _ = uploaded["h264"]
    url = hls_url(srv, stream, **on_demand(rng))
    _, media_urls = media_playlists(url)
    status, headers, text = get(media_urls[0])
    assert status == 200 and headers["Cache-Control"] == "no-cache"
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    lines = text.decode().splitlines()
    segment = base(url) + next(line for line in lines if line.startswith("getMP4MediaFragment"))
    init = base(url) + next(line for line in lines if line.startswith("#EXT-X-MAP")).split('URI="')[1].rstrip('"')
    for u in (segment, init):
        status, headers, body = get(u)
        assert status == 200 and body
        assert "immutable" in headers["Cache-Control"] and headers["ETag"].startswith('"')
        assert int(headers["Content-Length"]) == len(body)
        status, headers2, body2 = get(u, {"If-None-Match": headers["ETag"]})
        assert status == 304 and not body2
        assert get(u, {"If-None-Match": '"other"'})[0] == 200
    # Errors are KVS-shaped and readable cross-origin too.
    status, headers, body = get(segment.replace("FragmentNumber=", "FragmentNumber=9"))
    assert status == 404 and headers["x-amzn-ErrorType"] == "ResourceNotFoundException", body
    assert headers["Access-Control-Allow-Origin"] == "*"
    req = urllib.request.Request(segment, method="OPTIONS", headers={"Origin": "http://example.com",
                                                                      "Access-Control-Request-Method": "GET"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204 and "GET" in r.headers["Access-Control-Allow-Methods"]


def forge(server, token, **changes):
    """A token re-signed with the server's own secret after changing fields of its payload."""
    payload_b64, _ = token.split(".")
    payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)).decode().split("|")
    fields = ["version", "protocol", "stream", "arn", "mode", "kind", "start", "end", "container",
              "discontinuity", "display_ts", "display_fn", "max", "created", "expires", "anchor"]
    for k, v in changes.items():
        payload[fields.index(k)] = str(v)
    raw = "|".join(payload).encode()
    secret = (server.data_dir / "session-secret").read_bytes()
    tag = hmac.new(secret, raw, hashlib.sha256).digest()
    enc = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
    return enc(raw) + "." + enc(tag)


def test_tokens_refused_when_expired_forged_or_stale(srv, uploaded, media):
    stream, rng, _, _ = uploaded["h264"]
    url = hls_url(srv, stream, **on_demand(rng))
    token = url.split("SessionToken=")[1]
    assert get(url)[0] == 200
    # Expired (re-signed with the real secret, so only the expiry is wrong).
    expired = url.replace(token, forge(srv, token, expires=int(time.time() * 1000) - 1))
    status, headers, body = get(expired)
    assert status == 401 and headers["x-amzn-ErrorType"] == "NotAuthorizedException", body
    assert b"expired" in body
    # Tampered: one changed character of the payload, or of the signature.
    for i in (10, len(token) - 3):
        bad = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        status, headers, _ = get(url.replace(token, bad))
        assert status == 401 and headers["x-amzn-ErrorType"] == "NotAuthorizedException"
    status, headers, _ = get(url.replace(token, ""))
    assert status == 401 and headers["x-amzn-ErrorType"] == "NotAuthorizedException"
    # An HLS token on the DASH path.
    status, headers, _ = get(url.replace("/hls/v1/getHLSMasterPlaylist.m3u8", "/dash/v1/getDASHManifest.mpd"))
    assert status == 401
    # A stream deleted and created again under the same name is another stream.
    name = new_stream(srv)
    put(srv, name, media["h264"][0].read_bytes(), start=time.time() - 30)
    old = hls_url(srv, name, **on_demand((time.time() - 60, time.time() + 1)))
    kvs = srv.client()
    kvs.delete_stream(StreamARN=kvs.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"])
    kvs.create_stream(StreamName=name, DataRetentionInHours=2)
    put(srv, name, media["h264"][0].read_bytes(), start=time.time() - 30)
    status, headers, body = get(old)
    assert status == 404 and headers["x-amzn-ErrorType"] == "ResourceNotFoundException", body


def test_session_requests_refused_as_kvs_refuses_them(srv, uploaded, tmp_path):
    stream, rng, _, _ = uploaded["h264"]
    now = time.time()

    def code(fn, **kw):
        with pytest.raises(ClientError) as e:
            fn(srv, stream, **kw)
        return e.value.response["Error"]["Code"]

    sel = lambda s, e: {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": s, "EndTimestamp": e}}
    assert code(hls_url, PlaybackMode="ON_DEMAND", HLSFragmentSelector=sel(now - 90_000, now)) == "InvalidArgumentException"
    assert code(hls_url, PlaybackMode="ON_DEMAND", HLSFragmentSelector=sel(now, now - 10)) == "InvalidArgumentException"
    assert code(hls_url, PlaybackMode="LIVE", HLSFragmentSelector=sel(now - 10, now)) == "InvalidArgumentException"
    assert code(dash_url, PlaybackMode="ON_DEMAND", DASHFragmentSelector=sel(now - 90_000, now)) == "InvalidArgumentException"
    # No fragments in range; LIVE on a stream silent for 30 s.
    assert code(hls_url, PlaybackMode="ON_DEMAND", HLSFragmentSelector=sel(now - 7200, now - 3600)) == "ResourceNotFoundException"
    empty = new_stream(srv)
    assert code(lambda s, _, **kw: hls_url(s, empty, **kw)) == "ResourceNotFoundException"
    # Retention 0.
    none = new_stream(srv, retention=0)
    assert code(lambda s, _, **kw: hls_url(s, none, **kw)) == "NoDataRetentionException"
    # Track 1 without codec private data; track 1 not H.264/H.265.
    bare = new_stream(srv)
    put(srv, bare, synthetic_upload(5), start=time.time() - 5)
    assert code(lambda s, _, **kw: hls_url(s, bare, **kw),
                **on_demand((now - 60, time.time() + 1))) == "MissingCodecPrivateDataException"
    mjpeg = tmp_path / "mjpeg.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "2",
                    "-c:v", "mjpeg", *FFMPEG_MKV, str(mjpeg)], check=True, timeout=60)
    other = new_stream(srv)
    put(srv, other, mjpeg.read_bytes(), start=time.time() - 5)
    assert code(lambda s, _, **kw: hls_url(s, other, **kw),
                **on_demand((now - 60, time.time() + 1))) == "UnsupportedStreamMediaTypeException"
    # GetClip: the 24 h limit and an inverted range.
    c = archived(srv, stream, "GET_CLIP")
    for s, e in ((now - 90_000, now), (now, now - 10)):
        with pytest.raises(ClientError) as err:
            c.get_clip(StreamName=stream, ClipFragmentSelector=sel(s, e))
        assert err.value.response["Error"]["Code"] == "InvalidArgumentException"


def test_awscli_gets_a_session_url(srv, uploaded):
    stream, rng, _, _ = uploaded["h264"]
    out = srv.aws("kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", stream,
                  "--playback-mode", "ON_DEMAND", "--hls-fragment-selector",
                  f"FragmentSelectorType=SERVER_TIMESTAMP,TimestampRange={{StartTimestamp={rng[0]},EndTimestamp={rng[1]}}}")
    url = __import__("json").loads(out[1])["HLSStreamingSessionURL"]
    assert url.startswith(srv.endpoint + "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=")
    assert get(url)[0] == 200


class Producer(threading.Thread):
    """Uploads an MKV at real-time pace (one 1 s fragment per second) in the background."""

    def __init__(self, server, stream, data, pace):
        super().__init__(daemon=True)
        self.pm = PutMedia(server, stream, start=time.time())
        self.data, self.pace = data, pace
        self.error = None

    def wait_persisted(self, count=1, timeout=30):
        """Until `count` fragments are PERSISTED (the upload's own thread reads the ACKs)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if sum(a["EventType"] == "PERSISTED" for a in list(self.pm.acks)) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing PERSISTED: {self.pm.acks}")

    def run(self):
        try:
            self.pm.send(self.data, chunk=16384, pace=self.pace)
            self.pm.end()
            self.pm.finish(60)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def live_media(tmp_path, seconds):
    path = tmp_path / "live.mkv"
    subprocess.run(["ffmpeg", "-v", "error", *MEDIA["h264"][:4], "-t", str(seconds), *MEDIA["h264"][6:],
                    *FFMPEG_MKV, str(path)], check=True, timeout=120)
    data = path.read_bytes()
    return data, seconds / (len(data) / 16384)


def test_live_follows_the_upload_then_404_after_delete(srv, tmp_path):
    stream = new_stream(srv)
    data, pace = live_media(tmp_path, 20)
    producer = Producer(srv, stream, data, pace)
    producer.start()
    producer.wait_persisted()
    url = hls_url(srv, stream, PlaybackMode="LIVE")
    master, media_urls = media_playlists(url)
    players.check_hls_playlist(master, master=True)
    seen, sequences = set(), []
    deadline = time.time() + 8
    while time.time() < deadline:
        text = get(media_urls[0])[2].decode()
        players.check_hls_playlist(text, master=False)
        assert "#EXT-X-ENDLIST" not in text
        seq = int(next(line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])
        frags = [line.split("FragmentNumber=")[1] for line in text.splitlines() if "FragmentNumber=" in line]
        # Media sequence numbers are stable: a fragment keeps its number across reloads.
        sequences.append((seq, frags))
        seen.update(frags)
        time.sleep(0.5)
    assert len(seen) >= 7, seen
    numbering = {}
    for seq, frags in sequences:
        for i, f in enumerate(frags):
            assert numbering.setdefault(f, seq + i) == seq + i
    # A blocking reload for the next media sequence number returns once it is PERSISTED.
    seq, frags = sequences[-1]
    text = get(media_urls[0])[2].decode()
    seq = int(next(line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])
    n = len([line for line in text.splitlines() if "FragmentNumber=" in line])
    t0 = time.time()
    text = get(media_urls[0] + f"&_HLS_msn={seq + n}")[2].decode()
    waited = time.time() - t0
    last_seq = int(next(line for line in text.splitlines() if line.startswith("#EXT-X-MEDIA-SEQUENCE:")).split(":")[1])
    assert last_seq + len([line for line in text.splitlines() if "FragmentNumber=" in line]) > seq + n, text
    assert waited < 3, waited
    # DeleteStream during the session: the next playlist request is a clean 404.
    kvs = srv.client()
    kvs.delete_stream(StreamARN=kvs.describe_stream(StreamName=stream)["StreamInfo"]["StreamARN"])
    status, headers, body = get(media_urls[0])
    assert status == 404 and headers["x-amzn-ErrorType"] == "ResourceNotFoundException", body
    producer.join(60)


@pytest.mark.parametrize("kind", ["hls", "dash"])
def test_browser_plays_live_while_a_producer_uploads(srv, tmp_path, kind):
    stream = new_stream(srv)
    data, pace = live_media(tmp_path, 25)
    producer = Producer(srv, stream, data, pace)
    producer.start()
    producer.wait_persisted()
    url = (hls_url(srv, stream, PlaybackMode="LIVE") if kind == "hls"
           else dash_url(srv, stream, PlaybackMode="LIVE"))
    r = players.play_in_browser(url, kind, live=True, seconds=8)
    r.assert_played(start_within=3, min_advance=3, size=(640, 360))
    producer.join(60)
    assert producer.error is None


def test_live_replay_adds_fragments_at_real_time_pace(srv, uploaded):
    stream, rng, _, _ = uploaded["h264"]
    url = hls_url(srv, stream, PlaybackMode="LIVE_REPLAY", MaxMediaPlaylistFragmentResults=100,
                  HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                       "TimestampRange": {"StartTimestamp": rng[0]}})
    _, media_urls = media_playlists(url)
    counts = []
    for _ in range(3):
        text = get(media_urls[0])[2].decode()
        players.check_hls_playlist(text, master=False)
        counts.append(text.count("#EXTINF"))
        time.sleep(1.2)
    assert counts[0] < counts[-1], counts


def test_clip_plays_in_a_plain_video_element(srv, uploaded, tmp_path):
    stream, rng, _, _ = uploaded["h264_aac"]
    clip(srv, stream, rng, tmp_path / "clip.mp4")
    with players.StaticServer(tmp_path) as files:
        r = players.play_in_browser(files.url("clip.mp4"), "file", expect_end=True, seconds=5)
    r.assert_played(expect_end=True, size=(640, 360), min_advance=5)


def test_audio_only_streams_play(srv, tmp_path):
    path = tmp_path / "aac.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6",
                    "-c:a", "aac", "-ac", "2", *FFMPEG_MKV, str(path)], check=True, timeout=60)
    frames = audio_frames(str(path))
    stream = new_stream(srv)
    before = time.time()
    put(srv, stream, path.read_bytes(), start=time.time() - 30)
    rng = (before - 1, time.time() + 1)
    url = hls_url(srv, stream, **on_demand(rng))
    master, media_urls = media_playlists(url)
    players.check_hls_playlist(master, master=True)
    assert 'CODECS="mp4a.40.2"' in master and "RESOLUTION" not in master and "EXT-X-MEDIA" not in master
    for u in (url, hls_url(srv, stream, ContainerFormat="MPEG_TS", **on_demand(rng)),
              dash_url(srv, stream, **dash_on_demand(rng)), clip(srv, stream, rng, tmp_path / "a.mp4")):
        assert audio_frames(u) == frames, u
        rc, err = players.ffmpeg_plays(u, args=())
        assert rc == 0 and not err.strip(), (u, err)


def test_display_options_and_producer_timestamps(srv, uploaded):
    stream, rng, frames, _ = uploaded["h264"]
    fragments = archived(srv, stream, "LIST_FRAGMENTS").list_fragments(
        StreamName=stream, FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                                             "TimestampRange": {"StartTimestamp": rng[0], "EndTimestamp": rng[1]}})
    fragments = sorted(fragments["Fragments"], key=lambda f: f["ProducerTimestamp"])
    first, last = fragments[0]["ProducerTimestamp"], fragments[-1]["ProducerTimestamp"]
    # PRODUCER_TIMESTAMP (DiscontinuityMode defaults to NEVER), with program date-times.
    url = hls_url(srv, stream, PlaybackMode="ON_DEMAND", DisplayFragmentTimestamp="ALWAYS",
                  HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                                       "TimestampRange": {"StartTimestamp": first, "EndTimestamp": last}})
    _, media_urls = media_playlists(url)
    text = get(media_urls[0])[2].decode()
    parsed = players.check_hls_playlist(text, master=False)
    assert "#EXT-X-DISCONTINUITY\n" not in text
    dates = [line.split(":", 1)[1] for line in text.splitlines() if line.startswith("#EXT-X-PROGRAM-DATE-TIME:")]
    assert len(dates) == len(fragments), parsed
    assert dates[0] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first.timestamp())) + \
        f".{int(round(first.timestamp() * 1000)) % 1000:03d}Z"
    assert players.ffprobe_frames(url) == frames
    # DASH: kvs:fn and kvs:ts on every segment.
    mpd = get(dash_url(srv, stream, DisplayFragmentNumber="ALWAYS", DisplayFragmentTimestamp="ALWAYS",
                       **dash_on_demand(rng)))[2].decode()
    players.check_mpd(mpd)
    for f in fragments:
        assert f'kvs:fn="{f["FragmentNumber"]}"' in mpd
    assert mpd.count("kvs:ts=") == len(fragments)
