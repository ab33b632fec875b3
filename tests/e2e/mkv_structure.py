"""The level-1 element structure of MKV documents (EBML RFC 8794, Matroska RFC 9559), as the
tests compare it with the real service's GetMedia output: per document, the elements of its
Segment in order, with Tags shown as the names of their SimpleTags. An unknown-size Segment
(as KVS sends) ends where the next EBML header begins, an unknown-size Cluster (as producers
send) where the next level-1 element begins. `vint` is the suite's one EBML variable-size
integer reader."""


def vint(b, i, marker=False):
    """An EBML variable-size integer at `b[i]`: (value, length, is the unknown-size value).
    With `marker` the length marker bit is kept (element IDs are written that way)."""
    if not b[i]:
        raise ValueError(f"invalid EBML variable-size integer at byte {i}")
    n = 1
    while not b[i] & (0x80 >> (n - 1)):
        n += 1
    v = b[i] if marker else b[i] & (0xFF >> n)
    for k in range(1, n):
        v = (v << 8) | b[i + k]
    return v, n, (not marker) and v == (1 << (7 * n)) - 1


def elements(b, i, end):
    while i < end:
        eid, n, _ = vint(b, i, True); size, m, _ = vint(b, i + n)
        yield eid, i + n + m, i + n + m + size
        i = i + n + m + size


NAMES = {0x1549A966: "Info", 0x1654AE6B: "Tracks", 0x1254C367: "Tags", 0x1F43B675: "Cluster",
         0x114D9B74: "SeekHead", 0xEC: "Void", 0x1C53BB6B: "Cues", 0xBF: "CRC-32"}
LEVEL_1 = {0x1549A966, 0x1654AE6B, 0x1254C367, 0x1F43B675, 0x114D9B74, 0x1C53BB6B, 0x1043A770,
           0x1941A469, 0x18538067, 0x1A45DFA3}


def tag_names(b, s, e):
    out = []
    for _, ts, te in elements(b, s, e):
        for sid, ss, se in elements(b, ts, te):
            if sid == 0x67C8:
                out += [b[ns:ne].decode() for nid, ns, ne in elements(b, ss, se) if nid == 0x45A3]
    return out


def structure(b):
    """Per MKV document: its level-1 elements in order, Tags as their tag names."""
    docs, i = [], 0
    while i < len(b):
        eid, n, _ = vint(b, i, True); size, m, unknown = vint(b, i + n)
        start = i + n + m
        if eid == 0x18538067:  # Segment: enter it (its size may be unknown)
            i = start
            continue
        if unknown and eid == 0x1F43B675:  # Cluster: its children up to the next level-1 element
            size = 0
            while start + size < len(b) and vint(b, start + size, True)[0] not in LEVEL_1:
                cid, cn, _ = vint(b, start + size, True); csize, cm, _ = vint(b, start + size + cn)
                size += cn + cm + csize
        if eid == 0x1A45DFA3:
            docs.append([])
        else:
            name = NAMES.get(eid, hex(eid))
            if name == "Tags":
                name += "(" + ",".join(t.replace("AWS_KINESISVIDEO_", "") for t in tag_names(b, start, start + size)) + ")"
            docs[-1].append(name)
        i = start + size
    return docs
