"""ListFragments and GetMediaForFragmentList against the real binary (spec §5.1–5.2), driven by
boto3 and the AWS CLI after real uploads: ordered, strongly consistent listings with
pagination, and fragment lists returned as MKV that mkvmerge and ffprobe accept."""

import json
import random
import subprocess
import time

import pytest

from conftest import AK, SK
from putmedia_client import PutMedia
from test_putmedia import MKV, clusters, new_stream


def archived(server, stream):
    ep = server.client().get_data_endpoint(StreamName=stream, APIName="LIST_FRAGMENTS")["DataEndpoint"]
    return server.client("kinesis-video-archived-media", endpoint=ep)


def put(server, stream, data, timecode_type="RELATIVE", start=1_700_000_000.0):
    pm = PutMedia(server, stream, timecode_type, start=start)
    pm.send(data)
    pm.end()
    acks = pm.finish(120)
    assert not [a for a in acks if a["EventType"] == "ERROR"], acks[-3:]
    return [a for a in acks if a["EventType"] == "PERSISTED"]


def ebml(eid, payload):
    size = len(payload)
    return eid + (0x0100000000000000 | size).to_bytes(8, "big") + payload


def synthetic_upload(n, step_ms=100):
    """An MKV with `n` one-frame clusters `step_ms` apart (a tiny fake H.264 track)."""
    head = ebml(b"\x1a\x45\xdf\xa3", ebml(b"\x42\x82", b"matroska"))
    head += b"\x18\x53\x80\x67" + b"\x01\xff\xff\xff\xff\xff\xff\xff"
    head += ebml(b"\x15\x49\xa9\x66", ebml(b"\x2a\xd7\xb1", (1_000_000).to_bytes(4, "big")))
    track = ebml(b"\xd7", b"\x01") + ebml(b"\x83", b"\x01") + ebml(b"\x86", b"V_MPEG4/ISO/AVC")
    head += ebml(b"\x16\x54\xae\x6b", ebml(b"\xae", track))
    body = bytearray(head)
    for i in range(n):
        block = ebml(b"\xa3", b"\x81\x00\x00\x80" + bytes([i % 256]) * 8)
        body += ebml(b"\x1f\x43\xb6\x75", ebml(b"\xe7", (i * step_ms).to_bytes(8, "big")) + block)
    return bytes(body)


def test_list_fragments_is_ordered_complete_and_immediately_consistent(server):
    stream = new_stream(server)
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    cl = clusters(data)
    before = time.time()
    persisted = put(server, stream, data, start=1_700_000_000.25)
    after = time.time()
    c = archived(server, stream)
    # Listed by the very next call, in producer-timestamp order, every field right.
    out = c.list_fragments(StreamName=stream, FragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": 1_700_000_000, "EndTimestamp": 1_700_000_010}})
    frags = out["Fragments"]
    assert [f["FragmentNumber"] for f in frags] == [a["FragmentNumber"] for a in persisted]
    for f, (o, e, tc) in zip(frags, cl):
        assert f["FragmentSizeInBytes"] == e - o
        assert abs(f["ProducerTimestamp"].timestamp() - (1_700_000_000.25 + tc / 1000)) < 0.0015
        assert before - 1 <= f["ServerTimestamp"].timestamp() <= after + 1
        assert 1000 <= f["FragmentLengthInMilliseconds"] <= 2000 or f is frags[-1]
    assert "NextToken" not in out
    # Ranges are inclusive and by the chosen clock.
    one = c.list_fragments(StreamName=stream, FragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": 1_700_000_001.8 + 0.25, "EndTimestamp": 1_700_000_001.8 + 0.25}})
    assert [f["FragmentNumber"] for f in one["Fragments"]] == [persisted[1]["FragmentNumber"]]
    none = c.list_fragments(StreamName=stream, FragmentSelector={
        "FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": 1_000_000_000, "EndTimestamp": 1_000_000_001}})
    assert none["Fragments"] == []
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.list_fragments(StreamName=stream + "-missing")
    with pytest.raises(c.exceptions.InvalidArgumentException):
        c.list_fragments(StreamName=stream, NextToken="bm90IGEgdG9rZW4=")


def test_pagination_over_2000_fragments(server):
    stream = new_stream(server)
    persisted = put(server, stream, synthetic_upload(2000))
    assert len(persisted) == 2000
    c = archived(server, stream)
    pages = c.get_paginator("list_fragments").paginate(
        StreamName=stream,
        FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                          "TimestampRange": {"StartTimestamp": time.time() - 3600, "EndTimestamp": time.time() + 60}},
        PaginationConfig={"PageSize": 333})
    numbers, sizes = [], []
    for page in pages:
        assert len(page["Fragments"]) <= 333
        numbers += [f["FragmentNumber"] for f in page["Fragments"]]
    assert numbers == [a["FragmentNumber"] for a in persisted], "each exactly once, in order"
    by_producer = [f["ProducerTimestamp"] for p in c.get_paginator("list_fragments").paginate(
        StreamName=stream,
        FragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
                          "TimestampRange": {"StartTimestamp": 1_700_000_000, "EndTimestamp": 1_700_000_200}},
        PaginationConfig={"PageSize": 1000}) for f in p["Fragments"]]
    assert len(by_producer) == 2000 and by_producer == sorted(by_producer)

    # A random subset, in a random order: exactly those come back, in that order.
    subset = random.Random(7).sample(numbers, 50)
    payload = c.get_media_for_fragment_list(StreamName=stream, Fragments=subset)
    assert payload["ContentType"] == "video/webm"
    data = payload["Payload"].read()
    got = []
    i = 0
    while True:
        i = data.find(b"AWS_KINESISVIDEO_FRAGMENT_NUMBER", i)
        if i < 0:
            break
        j = data.find(b"\x44\x87", i) + 2  # TagString
        size = int.from_bytes(data[j:j + 4], "big") & 0x0FFFFFFF
        got.append(data[j + 4:j + 4 + size].decode())
        i = j
    assert got == subset
    assert len(clusters(data)) == 50


def test_fragment_lists_decode_and_unknown_numbers_are_refused(server, tmp_path):
    stream = new_stream(server)
    data = (MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv").read_bytes()
    persisted = put(server, stream, data)
    c = archived(server, stream)
    numbers = [a["FragmentNumber"] for a in persisted]
    body = c.get_media_for_fragment_list(StreamName=stream, Fragments=numbers)["Payload"].read()
    out = tmp_path / "list.mkv"
    out.write_bytes(body)
    info = json.loads(subprocess.run(["mkvmerge", "-J", str(out)], capture_output=True, text=True).stdout)
    assert info["errors"] == [] and len(info["tracks"]) == 2
    packets = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=stream_index", "-of", "csv=p=0", str(out)],
                             capture_output=True, text=True, check=True).stdout.split()
    source = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "packet=stream_index", "-of", "csv=p=0",
                             str(MKV / "producer-c-1.6.4_h264_aac_putmedia.mkv")],
                            capture_output=True, text=True, check=True).stdout.split()
    assert len(packets) == len(source)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_media_for_fragment_list(StreamName=stream, Fragments=[numbers[0], "99999999999999999999"])
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        # Another stream's fragment is not this stream's.
        other = new_stream(server)
        c.get_media_for_fragment_list(StreamName=other, Fragments=[numbers[0]])


def test_aws_cli_lists_and_fetches(server, tmp_path):
    stream = new_stream(server)
    persisted = put(server, stream, (MKV / "kvssink-3.6.0_h264_putmedia.mkv").read_bytes(), "ABSOLUTE")
    rc, out, err = server.aws("kinesis-video-archived-media", "list-fragments", "--stream-name", stream)
    listed = json.loads(out)["Fragments"]
    assert sorted(f["FragmentNumber"] for f in listed) == [a["FragmentNumber"] for a in persisted]
    target = tmp_path / "cli.mkv"
    server.aws("kinesis-video-archived-media", "get-media-for-fragment-list", str(target), "--stream-name", stream,
               "--fragments", *[a["FragmentNumber"] for a in persisted])
    info = json.loads(subprocess.run(["mkvmerge", "-J", str(target)], capture_output=True, text=True).stdout)
    assert info["errors"] == [] and info["container"]["recognized"]
