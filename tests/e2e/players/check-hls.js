// Strict HLS playlist check for the e2e tests (players.check_hls_playlist): parses the playlist on
// stdin with npm hls-parser in strict mode, which throws on what RFC 8216 forbids (e.g. an EXTINF
// above EXT-X-TARGETDURATION, a missing EXTM3U, a bad attribute list). Usage: node check-hls.js master|media
// Prints a JSON summary on success; exits 1 with the parser's message on failure.
"use strict";
const HLS = require("hls-parser");

const want = process.argv[2];
let text = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (c) => { text += c; });
process.stdin.on("end", () => {
  try {
    HLS.setOptions({ strictMode: true, silent: true });
    const pl = HLS.parse(text);
    if (want === "master" && !pl.isMasterPlaylist) throw new Error("expected a multivariant (master) playlist, got a media playlist");
    if (want === "media" && pl.isMasterPlaylist) throw new Error("expected a media playlist, got a multivariant (master) playlist");
    const out = { master: pl.isMasterPlaylist, version: pl.version === undefined ? null : pl.version };
    if (pl.isMasterPlaylist) {
      out.variants = pl.variants.map((v) => ({
        uri: v.uri, bandwidth: v.bandwidth, codecs: v.codecs || null,
        resolution: v.resolution || null,
      }));
    } else {
      out.targetDuration = pl.targetDuration;
      out.mediaSequenceBase = pl.mediaSequenceBase === undefined ? null : pl.mediaSequenceBase;
      out.playlistType = pl.playlistType || null;
      out.endlist = !!pl.endlist;
      out.segments = pl.segments.map((s) => ({
        uri: s.uri, duration: s.duration, mediaSequenceNumber: s.mediaSequenceNumber,
        discontinuity: !!s.discontinuity, map: s.map ? s.map.uri : null,
        programDateTime: s.programDateTime ? s.programDateTime.toISOString() : null,
      }));
    }
    process.stdout.write(JSON.stringify(out));
  } catch (e) {
    process.stderr.write(String(e && e.message || e));
    process.exit(1);
  }
});
