// Second, independent parse of an MPD for the e2e tests (players.check_mpd): video.js's mpd-parser (the
// DASH parser of a shipping player) resolves the MPD on stdin into playlists and segment lists. It throws on
// XML it cannot parse and on segment addressing it cannot resolve; the Python side asserts the result is
// playable (segments, durations). Usage: node check-mpd.js MANIFEST_URL. Prints a JSON summary.
"use strict";
const { parse } = require("mpd-parser");

const manifestUri = process.argv[2] || "http://127.0.0.1/manifest.mpd";
let text = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => { text += c; });
process.stdin.on("end", () => {
  try {
    const m = parse(text, { manifestUri, NOW: Date.now(), clientOffset: 0 });
    const summary = (p) => ({
      id: p.attributes && p.attributes.NAME, codecs: p.attributes && p.attributes.CODECS || null,
      bandwidth: p.attributes && p.attributes.BANDWIDTH, resolution: p.attributes && p.attributes.RESOLUTION || null,
      segments: (p.segments || []).length,
      duration: (p.segments || []).reduce((a, s) => a + (s.duration || 0), 0),
      firstUri: p.segments && p.segments[0] ? p.segments[0].resolvedUri : null,
      init: p.segments && p.segments[0] && p.segments[0].map ? p.segments[0].map.resolvedUri : null,
    });
    const audio = [];
    for (const group of Object.values(m.mediaGroups && m.mediaGroups.AUDIO || {})) {
      for (const r of Object.values(group)) for (const p of r.playlists || []) audio.push(summary(p));
    }
    process.stdout.write(JSON.stringify({
      dynamic: m.endList === false, duration: m.duration === undefined ? null : m.duration,
      minimumUpdatePeriod: m.minimumUpdatePeriod === undefined ? null : m.minimumUpdatePeriod,
      video: (m.playlists || []).map(summary), audio,
    }));
  } catch (e) {
    process.stderr.write(String(e && e.message || e));
    process.exit(1);
  }
});
