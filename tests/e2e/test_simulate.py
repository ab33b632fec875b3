"""`kinescope simulate` (issue 14): simulated devices upload real H.264 through the resilient
uploader. What they upload decodes, frame for frame, as the embedded key-frame group does, through
GetMedia, HLS and GetClip; and when the server is killed and restarted under them they reconnect,
count why, and every fragment they made is stored exactly once."""

import io
import json
import pathlib
import subprocess
import time

import av
import numpy
import pytest

from conftest import AK, BIN, CRED_ARGS, SK, Server, start
from test_put import free_port, kill_and_restart, list_fragments

GOP = pathlib.Path(__file__).parents[2] / "devices" / "assets" / "gop-640x360-25fps.h264"


def simulate(endpoint, prefix, *flags, timeout=120):
    r = subprocess.run([BIN, "simulate", "--endpoint", endpoint, "--access-key", AK, "--secret-key", SK,
                        "--prefix", prefix, "--json", *flags], capture_output=True, text=True, timeout=timeout)
    return r.returncode, json.loads(r.stdout), r.stderr


def images(container):
    """Every decoded picture of the first video stream, as arrays; fails on a decoding error."""
    return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def archived(server, stream, api):
    ep = server.client().get_data_endpoint(StreamName=stream, APIName=api)["DataEndpoint"]
    return server.client("kinesis-video-archived-media", endpoint=ep)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("simulate"), *CRED_ARGS, "--no-tls")
    yield s
    s.stop()


def test_simulated_video_plays_back_frame_for_frame(srv):
    """Two devices, 4 s of 1 s fragments at 1 Mbit/s (frames padded with filler NAL units).
    GetMedia, an HLS session and GetClip each decode to 4 × the GOP's first 25 pictures,
    pixel for pixel as decoding the embedded GOP itself gives them."""
    prefix = f"sim-play-{time.time_ns()}"
    before = time.time()
    rc, report, err = simulate(srv.endpoint, prefix, "--streams", "2", "--duration-secs", "4",
                               "--bitrate", "1000000")
    assert rc == 0, (report, err)
    assert report["fragments_made"] == report["fragments_persisted"] == 8, report
    assert report["fragments_dropped"] == 0 and report["reconnects"] == 0 and not report["errors"], report
    assert report["persisted_latency_ms"]["n"] == 8
    # 1 Mbit/s: 5,000 bytes a frame, the IDR picture's own size or more.
    stream = f"{prefix}-0"
    assert sum(f["FragmentSizeInBytes"] for f in list_fragments(srv, stream)) > 4 * 25 * 5_000

    with av.open(str(GOP), format="h264") as c:
        gop = images(c)[:25]
    expected = gop * 4

    ep = srv.client().get_data_endpoint(StreamName=stream, APIName="GET_MEDIA")["DataEndpoint"]
    mkv = srv.client("kinesis-video-media", endpoint=ep).get_media(
        StreamName=stream, StartSelector={"StartSelectorType": "EARLIEST"})["Payload"].read()
    with av.open(io.BytesIO(mkv), format="matroska") as c:
        got = images(c)
    assert len(got) == len(expected)
    assert all(numpy.array_equal(a, b) for a, b in zip(got, expected)), "GetMedia pictures differ"

    rng = {"StartTimestamp": before - 1, "EndTimestamp": time.time() + 1}
    url = archived(srv, stream, "GET_HLS_STREAMING_SESSION_URL").get_hls_streaming_session_url(
        StreamName=stream, PlaybackMode="ON_DEMAND",
        HLSFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng},
    )["HLSStreamingSessionURL"]
    with av.open(url) as c:
        got = images(c)
    assert len(got) == len(expected)
    assert all(numpy.array_equal(a, b) for a, b in zip(got, expected)), "HLS pictures differ"

    clip = archived(srv, stream, "GET_CLIP").get_clip(
        StreamName=stream,
        ClipFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": rng},
    )["Payload"].read()
    with av.open(io.BytesIO(clip), format="mp4") as c:
        got = images(c)
    assert len(got) == len(expected)
    assert all(numpy.array_equal(a, b) for a, b in zip(got, expected)), "GetClip pictures differ"


def test_simulated_devices_ride_out_server_restarts(tmp_path):
    """Three devices upload 14 s; the server is killed (-9) at about 4 s and 9 s and restarted
    2 s later each time. Every device reconnects, the report counts the reconnections by cause,
    nothing is dropped (the devices buffer), and each stream lists every fragment made exactly
    once, a second apart."""
    port = free_port()
    data = tmp_path / "data"
    server = Server(data, ["--data-dir", str(data), "--listen", f"127.0.0.1:{port}", "--no-tls", *CRED_ARGS])
    try:
        sim = subprocess.Popen([BIN, "simulate", "--endpoint", server.endpoint, "--access-key", AK,
                                "--secret-key", SK, "--prefix", "cam", "--streams", "3", "--duration-secs", "14",
                                "--bitrate", "500000", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.time()
        kill_and_restart(server, started, (4, 9))
        out, err = sim.communicate(timeout=120)
        report = json.loads(out)
        assert sim.returncode == 0, (report, err[-2000:])
        assert report["fragments_made"] == report["fragments_persisted"] == 3 * 14, report
        assert report["fragments_dropped"] == 0 and not report["failures_by_cause"], report
        assert report["reconnects"] >= 6, report
        assert sum(report["retries_by_cause"].values()) == report["reconnects"], report
        for i in range(3):
            listed = sorted(f["ProducerTimestamp"].timestamp() for f in list_fragments(server, f"cam-{i}"))
            assert len(listed) == 14, (i, listed)
            assert all(round(b - a, 3) == 1.0 for a, b in zip(listed, listed[1:])), listed
    finally:
        server.stop()


def test_simulate_refuses_fragments_longer_than_the_gop(srv):
    r = subprocess.run([BIN, "simulate", "--endpoint", srv.endpoint, "--access-key", AK, "--secret-key", SK,
                        "--fragment-ms", "20000"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "500 frames per fragment asked, but the embedded key-frame group has 250" in r.stderr
