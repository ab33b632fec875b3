"""Self-test of the playback harness (tests/e2e/players) without Kinescope: ffmpeg writes HLS (fMP4
and TS) and DASH into a temp dir, a local threaded HTTP server with CORS headers serves them, and
the same helpers the server's playback tests use must see them play — and must report what a
broken server would do (missing CORS, a bad playlist, a bad MPD) as failures. If this file fails,
the playback tests' verdicts about the server mean nothing.
"""

import pathlib
import subprocess
import time

import pytest

import players

SECONDS = 6   # VOD length; 30 fps, so 180 frames
FRAMES = SECONDS * 30
SOURCE = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440"]
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac"]


def ffmpeg(*args, timeout=60):
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args], check=True, timeout=timeout)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """VOD media made once per module, served with CORS: {name: (url, kind)} plus the server."""
    root = tmp_path_factory.mktemp("players-media")
    for d in ("fmp4", "ts", "dash"):
        (root / d).mkdir()
    vod = [*SOURCE, "-t", str(SECONDS), *H264, "-g", "60", "-keyint_min", "60", "-sc_threshold", "0"]
    ffmpeg(*vod, "-f", "hls", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod", "-hls_time", "2",
           str(root / "fmp4" / "index.m3u8"))
    ffmpeg(*vod, "-f", "hls", "-hls_playlist_type", "vod", "-hls_time", "2", str(root / "ts" / "index.m3u8"))
    ffmpeg(*vod, "-f", "dash", "-seg_duration", "2", str(root / "dash" / "manifest.mpd"))
    with players.StaticServer(root) as srv:
        yield {
            "root": root, "server": srv,
            "hls-fmp4": (srv.url("fmp4/index.m3u8"), "hls"),
            "hls-ts": (srv.url("ts/index.m3u8"), "hls"),
            "dash": (srv.url("dash/manifest.mpd"), "dash"),
        }


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A live (sliding-window) HLS fMP4 playlist that a real-time ffmpeg keeps appending to."""
    root = tmp_path_factory.mktemp("players-live")
    log = open(root / "ffmpeg.log", "w")
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-re", *SOURCE, "-t", "40", *H264,
         "-tune", "zerolatency", "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
         "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_list_size", "6",
         "-hls_flags", "temp_file+delete_segments+program_date_time", str(root / "live.m3u8")],
        stdout=subprocess.DEVNULL, stderr=log)
    try:
        playlist = root / "live.m3u8"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # hls.js starts 3 target durations behind the live edge
            if playlist.exists() and playlist.read_text().count("#EXTINF") >= 3:
                break
            assert proc.poll() is None, (root / "ffmpeg.log").read_text()
            time.sleep(0.1)
        else:
            pytest.fail("the live ffmpeg wrote no 3 segments in 15 s")
        with players.StaticServer(root) as srv:
            yield srv.url("live.m3u8"), playlist
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.mark.parametrize("name", ["hls-fmp4", "hls-ts", "dash"])
def test_vod_plays_to_the_end_in_chromium(media, name, tmp_path):
    url, kind = media[name]
    r = players.play_in_browser(url, kind, seconds=3, expect_end=True, screenshot_dir=tmp_path)
    r.assert_played(start_within=3.0, min_advance=SECONDS - 1, expect_end=True, size=(640, 360))
    assert r.duration == pytest.approx(SECONDS, abs=0.2), r.report()
    # ffmpeg's TS starts video a few frames after audio; hls.js then skips that gap (a non-fatal warning).
    assert not [w for w in r.warnings if "bufferSeekOverHole" not in w], r.report()


def test_live_hls_plays_in_chromium(live):
    url, _ = live
    r = players.play_in_browser(url, "hls", live=True, seconds=4)
    r.assert_played(start_within=3.0, min_advance=2.5, size=(640, 360))
    assert not r.ended, r.report()
    assert ["level_loaded", "live"] in [e[1:] for e in r.events], r.report()  # hls.js took it as live


def test_missing_cors_is_a_failure(media):
    """A media server without Access-Control-Allow-Origin must fail the browser test, not pass it."""
    with players.StaticServer(media["root"], cors=False) as srv:
        r = players.play_in_browser(srv.url("fmp4/index.m3u8"), "hls", seconds=2, start_timeout=8)
    assert r.started_after_s is None and r.errors, r.report()
    with pytest.raises(AssertionError, match="never started"):
        r.assert_played()


def test_playlists_pass_strict_checks(media, live):
    root = media["root"]
    fmp4 = players.check_hls_playlist((root / "fmp4" / "index.m3u8").read_text(), master=False)
    assert fmp4["endlist"] and fmp4["playlistType"] == "VOD" and fmp4["version"] >= 6
    assert [s["map"] for s in fmp4["segments"]] == ["init.mp4"] * 3
    ts = players.check_hls_playlist((root / "ts" / "index.m3u8").read_text(), master=False)
    assert sum(s["duration"] for s in ts["segments"]) == pytest.approx(SECONDS, abs=0.1)
    lv = players.check_hls_playlist(live[1].read_text(), master=False)
    assert not lv["endlist"] and lv["playlistType"] is None and lv["segments"][0]["programDateTime"]
    mpd = players.check_mpd((root / "dash" / "manifest.mpd").read_text(), url=media["dash"][0])
    assert mpd["video"][0]["resolution"] == {"width": 640, "height": 360}
    assert mpd["video"][0]["duration"] == pytest.approx(SECONDS, abs=0.1)


def test_checks_reject_bad_playlists(media):
    with pytest.raises(AssertionError, match="target duration"):
        players.check_hls_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:2.5,\na.ts\n#EXT-X-ENDLIST\n",
                                   master=False)
    with pytest.raises(AssertionError, match="master"):
        players.check_hls_playlist((media["root"] / "ts" / "index.m3u8").read_text(), master=True)
    good = (media["root"] / "dash" / "manifest.mpd").read_text()
    for bad, why in [
        (good.replace('minBufferTime="', 'minBufferTime="1'), "xs:duration"),
        (good.replace('type="static"', 'type="dynamic"'), "availabilityStartTime"),
        (good.replace(' bandwidth="', ' bw="'), "bandwidth"),
        (good.replace("</MPD>", ""), "well-formed"),
        (good.replace("$RepresentationID$", "$RepId$"), "identifier"),
        (good.replace('<S t="0" d="', '<S t="0" x="'), "S@d"),
    ]:
        with pytest.raises(AssertionError, match=why):
            players.check_mpd(bad)


@pytest.mark.parametrize("name", ["hls-fmp4", "hls-ts", "dash"])
def test_command_line_players(media, name):
    url, _ = media[name]
    assert players.ffprobe_frames(url) == FRAMES
    assert players.ffmpeg_plays(url) == (0, "")
    for playbin in ("playbin3", "playbin"):
        rc, out = players.gst_plays(url, playbin)
        assert rc == 0, out
    rc, out = players.gst_plays(url.replace(pathlib.Path(url).name, "missing.m3u8"))
    assert rc != 0 and "404" in out
