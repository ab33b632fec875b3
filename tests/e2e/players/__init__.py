"""Real players for the playback tests (HLS fMP4/TS, DASH, GetClip): the bar is that unmodified
third-party players play what Kinescope serves, so these helpers drive the players themselves
instead of re-implementing what they check.

- play_in_browser(url, "hls"|"dash", ...): hls.js / dash.js (npm, node_modules here) in Debian's
  headless Chromium driven by playwright; the page is served from another origin than the media, as in
  production, so the media server's CORS headers are exercised. Returns a PlayResult.
- check_hls_playlist(text, master=...): npm hls-parser in strict mode.
- check_mpd(text): structural MPD rules + video.js's mpd-parser (see check_mpd for why).
- ffprobe_frames / ffmpeg_plays / gst_plays: the command-line players, each with a timeout.
- StaticServer: a threaded HTTP server with CORS headers, for media a test makes itself.

Everything installs through scripts/install-test-deps (chromium from apt, playwright from PyPI,
`npm ci` here); nothing downloads a browser. Every subprocess and browser wait has a deadline.
"""

import atexit
import dataclasses
import functools
import http.server
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
CHROMIUM = os.environ.get("KINESCOPE_CHROMIUM", "/usr/bin/chromium")
# KINESCOPE_PLAYER_DEBUG=<directory>: hls.js and dash.js log at debug level, and each play_in_browser
# writes its whole browser console (with a timestamp per line) to <directory>/<kind>-<time>.log.
PLAYER_DEBUG = os.environ.get("KINESCOPE_PLAYER_DEBUG")
# TESTING.md's flags; playwright itself adds --headless, --no-sandbox and a --user-data-dir.
CHROMIUM_ARGS = [
    "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
    "--disable-dev-shm-usage",
]
MIME = {
    ".m3u8": "application/vnd.apple.mpegurl", ".mpd": "application/dash+xml", ".m4s": "video/iso.segment",
    ".mp4": "video/mp4", ".ts": "video/mp2t", ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".map": "application/json", ".aac": "audio/aac",
}


def _require(path, what):
    if not pathlib.Path(path).exists():
        raise AssertionError(f"{what} is missing ({path}): run scripts/install-test-deps")


# ---------------------------------------------------------------- static HTTP server (CORS)

class _Handler(http.server.SimpleHTTPRequestHandler):
    cors = True
    protocol_version = "HTTP/1.1"
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME}

    def end_headers(self):
        if self.cors:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_OPTIONS(self):
        self.send_response(204)
        if self.cors:
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "*")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, fmt, *args):
        self.server.requests.append(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}")


class StaticServer:
    """Serves `root` on 127.0.0.1:<free port> from threads; `cors=True` adds
    Access-Control-Allow-Origin: * (what a media server must send for a page of another origin).
    Use as a context manager; `.url(rel)` gives the address of a file; `.requests` logs what was fetched."""

    def __init__(self, root, *, cors=True):
        handler = type("H", (_Handler,), {"cors": cors})
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        self.httpd.daemon_threads = True
        self.httpd.requests = self.requests = []
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def url(self, rel=""):
        return self.base + str(rel).lstrip("/")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- browser playback

@dataclasses.dataclass
class PlayResult:
    """What the browser saw. Times are seconds; `times` holds (seconds since the page's script
    started, video.currentTime) each time currentTime changed."""
    url: str
    kind: str
    player: str = ""
    started_after_s: float | None = None   # page script start -> currentTime > 0 while playing
    start_position: float | None = None    # currentTime where playback started (after a seek to the live edge)
    times: list = dataclasses.field(default_factory=list, repr=False)
    ended: bool = False              # the <video> fired 'ended'
    reached_end: bool = False        # currentTime got to the (finite) duration, 'ended' or not
    errors: list = dataclasses.field(default_factory=list)     # fatal player errors, video element errors, page errors
    warnings: list = dataclasses.field(default_factory=list)   # non-fatal player errors (hls.js retries...)
    frames_differ: bool = False      # the two screenshots of <video> differ in some pixels
    first_frame_blank: bool = True   # the first screenshot is one flat colour
    differing_pixels: float = 0.0    # fraction of pixels that differ between the two screenshots
    video_size: tuple = (0, 0)
    duration: float | None = None    # video.duration; -1 for an unbounded (live) stream
    events: list = dataclasses.field(default_factory=list, repr=False)     # media/player events (time, name, detail)
    console: list = dataclasses.field(default_factory=list, repr=False)    # browser console, page errors, failed requests
    screenshots: list = dataclasses.field(default_factory=list, repr=False)  # PNG bytes
    wall_s: float = 0.0              # the whole call, browser launch included

    @property
    def advanced_s(self):
        """How far currentTime moved from where playback started (a live player's initial seek from 0 to
        the live edge is no advance); from the first sample if it never started."""
        if not self.times:
            return 0.0
        start = self.start_position if self.start_position is not None else self.times[0][1]
        return self.times[-1][1] - start

    def report(self):
        return "\n".join([
            f"{self.player} playing {self.url}: started after {self.started_after_s} s at {self.start_position}, advanced {self.advanced_s:.2f} s, "
            f"ended={self.ended}, reached_end={self.reached_end}, size={self.video_size}, duration={self.duration}, frames_differ={self.frames_differ} "
            f"({self.differing_pixels:.3f}), first_frame_blank={self.first_frame_blank}, wall {self.wall_s:.1f} s",
            "errors: " + json.dumps(self.errors, indent=1),
            "warnings: " + json.dumps(self.warnings[:30], indent=1),
            "currentTime samples: " + json.dumps(self.times[:12] + (["..."] if len(self.times) > 24 else []) + self.times[-12:]),
            "events: " + json.dumps(self.events[-60:]),
            "browser console:\n  " + "\n  ".join(self.console[-120:]),
        ])

    def assert_played(self, *, start_within=3.0, min_advance=1.0, expect_end=False, size=None, frames=True):
        """The usual assertions, with the whole report (console log included) on failure."""
        problems = []
        if self.errors:
            problems.append(f"player errors: {self.errors}")
        if self.started_after_s is None:
            problems.append("playback never started")
        elif self.started_after_s > start_within:
            problems.append(f"playback started after {self.started_after_s:.2f} s (> {start_within} s)")
        if self.advanced_s < min_advance:
            problems.append(f"currentTime advanced {self.advanced_s:.2f} s (< {min_advance} s)")
        # dash.js 5 on a busy machine sometimes sits at currentTime == duration re-seeking there every
        # 200 ms instead of ending the MediaSource, so 'ended' never fires: reaching the end counts.
        if expect_end and not (self.ended or self.reached_end):
            problems.append("the video never ended")
        if size and tuple(self.video_size) != tuple(size):
            problems.append(f"video size {self.video_size} != {size}")
        if frames and not self.frames_differ:
            problems.append("the two screenshots of the video are identical")
        if frames and self.first_frame_blank:
            problems.append("the first screenshot is blank (one flat colour)")
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + self.report())
        return self


def _png_pixels(png):
    """Decodes a PNG to an RGB numpy array with PyAV (already a test dependency)."""
    import av
    with av.open(io.BytesIO(png), format="png_pipe") as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


def _compare(a_png, b_png):
    import numpy as np
    a, b = _png_pixels(a_png), _png_pixels(b_png)
    blank = bool(a.reshape(-1, 3).std(axis=0).max() < 2.0)
    if a.shape != b.shape:
        return True, 1.0, blank
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2) > 16
    frac = float(diff.mean())
    return frac > 0.001, frac, blank


_page_server = None
_page_lock = threading.Lock()


def _page_base():
    """One page server per test process, serving this folder (player.html + node_modules) without CORS."""
    global _page_server
    with _page_lock:
        if _page_server is None:
            _page_server = StaticServer(HERE, cors=False)
            atexit.register(_page_server.close)
        return _page_server.base


def play_in_browser(url, kind, *, live=False, seconds=5.0, expect_end=False, start_timeout=15.0,
                    end_slack=10.0, screenshot_dir=None, ignore_https_errors=False):
    """Plays `url` with hls.js (kind="hls"), dash.js (kind="dash") or a plain <video src> (kind="file")
    in headless Chromium.

    Waits up to `start_timeout` s for playback to start, then watches it for `seconds` of wall time;
    with `expect_end`, keeps watching until 'ended' (at most the video's duration + `end_slack`).
    Takes a screenshot of <video> soon after the start and another one at least 1 s of media later.
    Never raises for what the player did: the PlayResult says it (call .assert_played()); raises
    only when the harness itself cannot run. `screenshot_dir` keeps the PNGs for a person to look at.
    `ignore_https_errors=True` lets Chromium fetch from a server whose certificate it cannot verify
    (Kinescope's generated CA is not in Chromium's trust store); CORS is still enforced."""
    from playwright.sync_api import sync_playwright
    assert kind in ("hls", "dash", "file"), kind
    _require(CHROMIUM, "Debian's chromium")
    _require(NODE_MODULES / "hls.js" / "dist" / "hls.min.js", "npm hls.js")
    _require(NODE_MODULES / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js", "npm dashjs")
    wall0 = time.monotonic()
    page_url = _page_base() + "player.html?" + urllib.parse.urlencode(
        {"kind": kind, "src": url, "live": "1" if live else "0", **({"debug": "1"} if PLAYER_DEBUG else {})})
    res = PlayResult(url=url, kind=kind)
    profile = tempfile.mkdtemp(prefix="kinescope-chromium-")
    state = {}
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 640, "height": 360}, ignore_https_errors=ignore_https_errors, timeout=30_000)
            try:
                ctx.set_default_timeout(15_000)
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.on("console", lambda m: res.console.append(
                    f"{time.monotonic() - wall0:.3f} [{m.type}] {m.text}" if PLAYER_DEBUG else f"[{m.type}] {m.text}"))
                page.on("pageerror", lambda e: res.console.append(f"[pageerror] {e}"))
                page.on("requestfailed", lambda r: res.console.append(f"[requestfailed] {r.url} {r.failure}"))
                page.on("response", lambda r: r.status >= 400 and res.console.append(f"[http {r.status}] {r.url}"))
                page.goto(page_url, wait_until="load", timeout=20_000)
                video = page.locator("#v")

                def poll():
                    kin = page.evaluate("() => window.kin ? JSON.parse(JSON.stringify(window.kin)) : null")
                    if kin is None:
                        raise AssertionError("player.html did not run (no window.kin):\n" + "\n".join(res.console))
                    state.update(kin)
                    return state

                deadline = time.monotonic() + start_timeout
                while time.monotonic() < deadline:
                    s = poll()
                    if s["startedAfter"] is not None or s["errors"] or s["ended"]:
                        break
                    time.sleep(0.1)
                if state.get("startedAfter") is not None and not state.get("errors"):
                    shot_at = None
                    watch_start, ct_start = time.monotonic(), state["currentTime"]
                    at_end_since = None
                    while True:
                        s = poll()
                        now = time.monotonic()
                        if shot_at is None and s["currentTime"] > 0.2:
                            res.screenshots.append(video.screenshot(timeout=10_000))
                            shot_at = s["currentTime"]
                        elif len(res.screenshots) == 1 and (s["currentTime"] >= shot_at + 1.0 or s["ended"]):
                            res.screenshots.append(video.screenshot(timeout=10_000))
                        if s["errors"] or s["ended"]:
                            break
                        at_end = bool(s["duration"] and s["duration"] > 0 and s["currentTime"] >= s["duration"] - 0.05)
                        at_end_since = (at_end_since or now) if at_end else None
                        if at_end_since and now - at_end_since > 1.5:
                            break  # at the end without 'ended' (see assert_played)
                        until = watch_start + seconds
                        if expect_end:  # the rest of the media at 1x, plus slack for stalls and the end
                            dur = s["duration"] if s["duration"] and s["duration"] > 0 else 0.0
                            until = max(until, watch_start + max(0.0, dur - ct_start) + end_slack)
                        if now >= until:
                            break
                        time.sleep(0.2)
                    if len(res.screenshots) == 1:
                        res.screenshots.append(video.screenshot(timeout=10_000))
                poll()
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    res.player = state.get("player") or ""
    res.started_after_s = state.get("startedAfter")
    res.start_position = state.get("startPosition")
    res.times = [tuple(t) for t in state.get("samples", [])]
    res.ended = bool(state.get("ended"))
    res.errors = list(state.get("errors", [])) + [c for c in res.console if c.startswith("[pageerror]")]
    res.warnings = list(state.get("warnings", []))
    res.events = state.get("events", [])
    res.video_size = (state.get("width", 0), state.get("height", 0))
    res.duration = state.get("duration")
    res.reached_end = bool(res.ended or (res.duration and res.duration > 0 and res.times
                                         and res.times[-1][1] >= res.duration - 0.05))
    if len(res.screenshots) == 2:
        res.frames_differ, res.differing_pixels, res.first_frame_blank = _compare(*res.screenshots)
    if screenshot_dir:
        for i, png in enumerate(res.screenshots):
            pathlib.Path(screenshot_dir, f"{kind}-shot{i}.png").write_bytes(png)
    res.wall_s = time.monotonic() - wall0
    if PLAYER_DEBUG:
        pathlib.Path(PLAYER_DEBUG).mkdir(parents=True, exist_ok=True)
        log = pathlib.Path(PLAYER_DEBUG, f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
        log.write_text(res.report() + "\n\nwhole browser console:\n" + "\n".join(res.console) + "\n")
    return res


# ---------------------------------------------------------------- playlist / manifest checks

def _node(script, args, stdin, timeout=30):
    _require(NODE_MODULES, "tests/e2e/players/node_modules")
    node = shutil.which("node") or "/usr/bin/node"
    r = subprocess.run([node, str(HERE / script), *args], input=stdin, capture_output=True, text=True,
                       timeout=timeout, cwd=HERE)
    return r.returncode, r.stdout, r.stderr


def check_hls_playlist(text, *, master):
    """Parses an HLS playlist with npm hls-parser in strict mode; raises AssertionError with the
    parser's message when it is rejected or is not of the expected kind (master=True: multivariant).
    Returns the parser's summary: for a media playlist {targetDuration, mediaSequenceBase, playlistType,
    endlist, version, segments: [{uri, duration, mediaSequenceNumber, discontinuity, map, programDateTime}]};
    for a master {version, variants: [{uri, bandwidth, codecs, resolution}]}."""
    rc, out, err = _node("check-hls.js", ["master" if master else "media"], text)
    if rc != 0:
        raise AssertionError(f"hls-parser (strict) rejects the playlist: {err.strip()}\n--- playlist ---\n{text}")
    return json.loads(out)


_MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
_XS_DURATION = re.compile(r"-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
_XS_DATETIME = re.compile(r"-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
_UINT = re.compile(r"\d+$")
_DURATION_ATTRS = {"mediaPresentationDuration", "minimumUpdatePeriod", "minBufferTime", "timeShiftBufferDepth",
                   "suggestedPresentationDelay", "maxSegmentDuration", "maxSubsegmentDuration", "start", "duration"}
_DATETIME_ATTRS = {"availabilityStartTime", "availabilityEndTime", "publishTime"}
_COMMON = {"FramePacking", "AudioChannelConfiguration", "ContentProtection", "OutputProtection", "EssentialProperty",
           "SupplementalProperty", "InbandEventStream", "Switching", "RandomAccess", "GroupLabel", "Label",
           "ProducerReferenceTime", "ContentPopularityRate", "Resync"}
_SEG = {"SegmentBase", "SegmentList", "SegmentTemplate"}
_CHILDREN = {  # the DASH-namespace children the MPD schema (ISO/IEC 23009-1, 5th ed.) allows
    "MPD": {"ProgramInformation", "BaseURL", "Location", "PatchLocation", "ServiceDescription", "InitializationSet",
            "InitializationGroup", "PresentationGroup", "Period", "Metrics", "EssentialProperty",
            "SupplementalProperty", "UTCTiming", "LeapSecondInformation"},
    "Period": {"BaseURL", "AssetIdentifier", "EventStream", "ServiceDescription", "ContentProtection",
               "AdaptationSet", "Subset", "SupplementalProperty", "EmptyAdaptationSet", "GroupLabel",
               "Preselection"} | _SEG,
    "AdaptationSet": _COMMON | _SEG | {"Accessibility", "Role", "Rating", "Viewpoint", "ContentComponent",
                                       "BaseURL", "Representation"},
    "Representation": _COMMON | _SEG | {"BaseURL", "ExtendedBandwidth", "SubRepresentation"},
}
_TEMPLATE_ID = re.compile(r"\$(RepresentationID|Number|Time|Bandwidth|SubNumber)(%0\d+d)?\$|\$\$")


def _mpd_rules(text):
    """What the MPD XSD and the DASH-IF conformance rules say about the parts Kinescope writes."""
    errs = []
    try:
        root = ET.fromstring(text.encode() if isinstance(text, str) else text)  # expat: strict well-formedness
    except ET.ParseError as e:
        return [f"not well-formed XML: {e}"], None
    q = lambda n: f"{{{_MPD_NS}}}{n}"  # noqa: E731
    if root.tag != q("MPD"):
        return [f"root element is {root.tag}, not {{{_MPD_NS}}}MPD"], None
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        local = el.tag.split("}")[-1]
        for a, v in el.attrib.items():
            if a in _DURATION_ATTRS and not _XS_DURATION.match(v):
                errs.append(f"{local}@{a}={v!r} is not an xs:duration")
            if a in _DATETIME_ATTRS and not _XS_DATETIME.match(v):
                errs.append(f"{local}@{a}={v!r} is not an xs:dateTime")
        if local in _CHILDREN:
            for c in el:
                if isinstance(c.tag, str) and c.tag.startswith(f"{{{_MPD_NS}}}") and \
                        c.tag.split("}")[-1] not in _CHILDREN[local]:
                    errs.append(f"{c.tag.split('}')[-1]} is not allowed in {local}")
    a = root.attrib
    for req in ("profiles", "minBufferTime"):
        if req not in a:
            errs.append(f"MPD@{req} is required")
    typ = a.get("type", "static")
    if typ not in ("static", "dynamic"):
        errs.append(f"MPD@type={typ!r}")
    if typ == "dynamic":
        for req in ("availabilityStartTime", "publishTime"):
            if req not in a:
                errs.append(f"a dynamic MPD needs MPD@{req}")
    else:
        if "timeShiftBufferDepth" in a:
            errs.append("a static MPD must not have MPD@timeShiftBufferDepth")
        if "minimumUpdatePeriod" in a:
            errs.append("a static MPD must not have MPD@minimumUpdatePeriod")
        if "mediaPresentationDuration" not in a and not all("duration" in p.attrib for p in root.iter(q("Period"))):
            errs.append("a static MPD needs MPD@mediaPresentationDuration (or every Period@duration)")
    periods = root.findall(q("Period"))
    if not periods:
        errs.append("no Period")
    ids = [p.get("id") for p in periods if p.get("id") is not None]
    if len(ids) != len(set(ids)):
        errs.append(f"duplicate Period@id {ids}")
    for p in periods:
        p_seg = any(p.find(q(s)) is not None for s in _SEG)
        rep_ids = []
        sets = p.findall(q("AdaptationSet"))
        if not sets:
            errs.append(f"Period {p.get('id')} has no AdaptationSet")
        for s in sets:
            reps = s.findall(q("Representation"))
            if not reps:
                errs.append(f"AdaptationSet {s.get('id')} has no Representation")
            s_seg = p_seg or any(s.find(q(x)) is not None for x in _SEG)
            for r in reps:
                rid = r.get("id")
                where = f"Representation {rid!r}"
                if rid is None or re.search(r"\s", rid):
                    errs.append(f"{where}: @id is required and has no whitespace")
                rep_ids.append(rid)
                if not _UINT.match(r.get("bandwidth", "")):
                    errs.append(f"{where}: @bandwidth is required (unsignedInt)")
                if not (r.get("mimeType") or s.get("mimeType")):
                    errs.append(f"{where}: @mimeType on neither the Representation nor its AdaptationSet")
                if not (r.get("codecs") or s.get("codecs")):
                    errs.append(f"{where}: @codecs on neither the Representation nor its AdaptationSet")
                if not (s_seg or any(r.find(q(x)) is not None for x in _SEG) or r.find(q("BaseURL")) is not None):
                    errs.append(f"{where}: no SegmentBase/SegmentList/SegmentTemplate/BaseURL")
        if len(rep_ids) != len(set(rep_ids)):
            errs.append(f"duplicate Representation@id in Period {p.get('id')}: {rep_ids}")
    for t in root.iter(q("SegmentTemplate")):
        for a_name in ("timescale", "startNumber", "presentationTimeOffset"):
            if a_name in t.attrib and not _UINT.match(t.get(a_name)):
                errs.append(f"SegmentTemplate@{a_name}={t.get(a_name)!r} is not an unsigned integer")
        for a_name in ("media", "initialization"):
            v = t.get(a_name)
            if v is not None and "$" in _TEMPLATE_ID.sub("", v):
                errs.append(f"SegmentTemplate@{a_name}={v!r} has an unknown $identifier$")
        if "$Time$" in (t.get("media") or "") and t.find(q("SegmentTimeline")) is None:
            errs.append("SegmentTemplate@media uses $Time$ without a SegmentTimeline")
        if t.get("media") and t.find(q("SegmentTimeline")) is None and "duration" not in t.attrib:
            errs.append("SegmentTemplate without SegmentTimeline needs @duration")
        for st in t.iter(q("S")):
            if not _UINT.match(st.get("d", "")):
                errs.append(f"S@d={st.get('d')!r}: required unsigned integer")
            if "t" in st.attrib and not _UINT.match(st.get("t")):
                errs.append(f"S@t={st.get('t')!r} is not an unsigned integer")
            if "r" in st.attrib and not re.match(r"-?\d+$", st.get("r")):
                errs.append(f"S@r={st.get('r')!r} is not an integer")
    return errs, root


def check_mpd(text, *, url="http://127.0.0.1/manifest.mpd"):
    """A strict MPD check; raises AssertionError listing every problem. Returns mpd-parser's summary
    {dynamic, duration, video: [{id, codecs, bandwidth, resolution, segments, duration, firstUri, init}], audio: [...]}.

    Why this combination: no npm or PyPI package ships the MPD XML schema (DASH-MPD.xsd) — the PyPI
    parsers (mpegdash, mpd-inspector) and npm ones (mpd-parser, @liveinstantly/dash-mpd-parser) carry no
    XSD, and the DASH-IF conformance validator is a web service, not a package — and no parser found
    there rejects invalid MPDs: they all read what they can. So, (1) expat parses the XML strictly and
    _mpd_rules checks what the XSD and the DASH-IF (Schematron) MPD rules require of the elements an
    MPD like ours has: namespace, required attributes, xs:duration/xs:dateTime/integer lexical forms,
    allowed child elements, static/dynamic rules, unique ids, segment addressing; and (2) video.js's
    mpd-parser, a player's own DASH parser independent of dash.js (which play_in_browser runs), must
    resolve it to video with segments whose durations add up to the presentation's."""
    errs, _ = _mpd_rules(text)
    summary = None
    if not any(e.startswith("not well-formed") for e in errs):
        rc, out, err = _node("check-mpd.js", [url], text)
        if rc != 0:
            errs.append(f"mpd-parser rejects it: {err.strip()}")
        else:
            summary = json.loads(out)
            if not summary["video"] and not summary["audio"]:
                errs.append("mpd-parser finds no playable representation")
            for p in summary["video"] + summary["audio"]:
                if p["segments"] == 0:
                    errs.append(f"mpd-parser resolves no segment for representation {p['id']}")
                elif not summary["dynamic"] and summary["duration"] and \
                        abs(p["duration"] - summary["duration"]) > max(1.0, 0.05 * summary["duration"]):
                    errs.append(f"representation {p['id']}: segments add up to {p['duration']:.3f} s, "
                                f"the presentation lasts {summary['duration']:.3f} s")
    if errs:
        raise AssertionError("MPD check failed:\n  " + "\n  ".join(errs) + "\n--- MPD ---\n" + text)
    return summary


# ---------------------------------------------------------------- command-line players

def ffprobe_frames(url, stream="v:0", timeout=120):
    """Frames that ffprobe decodes from `stream` of `url` (0 if it reads none); raises with ffprobe's
    stderr when it fails."""
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-count_frames",
                        "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", url],
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError(f"ffprobe failed ({r.returncode}) on {url}: {r.stderr}")
    vals = [v for v in r.stdout.split() if v.strip().isdigit()]
    return int(vals[0]) if vals else 0


def ffmpeg_plays(url, *, args=("-map", "0:v:0"), timeout=120):
    """Decodes `url` end to end with ffmpeg (`ffmpeg -v error -i URL -map 0:v:0 -f null -`):
    (returncode, stderr); rc 0 with empty stderr is a clean decode. 124 on timeout."""
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-i", url, *args, "-f", "null", "-"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stderr
    except subprocess.TimeoutExpired as e:
        return 124, f"timed out after {timeout} s: {e.stderr or ''}"


def gst_plays(url, playbin="playbin3", timeout=60):
    """Plays `url` with GStreamer's playbin3 (or "playbin") into fakesinks as fast as it decodes:
    (returncode, output). rc 0 = reached end of stream without an error; 124 = timed out."""
    _require(shutil.which("gst-launch-1.0") or "/usr/bin/gst-launch-1.0", "gst-launch-1.0")
    cmd = ["gst-launch-1.0", "--no-fault", playbin, f"uri={url}",
           "video-sink=fakesink sync=false", "audio-sink=fakesink sync=false"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        out, _ = p.communicate()
        return 124, f"timed out after {timeout} s\n{out}"
    out = re.sub(r"(buffering\.\.\. +\d+% +)+", "buffering... ", out)  # one line per percent otherwise
    # gst-launch exits 0 on some errors raised while prerolling; its output says ERROR then.
    rc = p.returncode if p.returncode != 0 or "ERROR" not in out else 1
    if rc == 0 and "Got EOS" not in out:
        rc = 1  # stopped without reaching the end of the stream
    return rc, out
