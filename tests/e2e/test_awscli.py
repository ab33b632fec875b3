"""The AWS CLI (`aws kinesisvideo ...`, with its own copy of botocore) drives every control-plane
operation against the real binary, over HTTP and over TLS with `--ca-bundle`."""

import json


def run(server, *args, **kw):
    rc, out, err = server.aws("kinesisvideo", *args, **kw)
    return rc, (json.loads(out) if out.strip() else {}), err


def test_every_operation(server, name):
    _, out, _ = run(server, "create-stream", "--stream-name", name, "--data-retention-in-hours", "2",
                    "--media-type", "video/h264", "--tags", "a=1,b=2")
    arn = out["StreamARN"]
    _, out, _ = run(server, "describe-stream", "--stream-name", name)
    info = out["StreamInfo"]
    assert (info["StreamARN"], info["Status"], info["DataRetentionInHours"]) == (arn, "ACTIVE", 2)
    _, out, _ = run(server, "list-streams", "--stream-name-condition",
                    f"ComparisonOperator=BEGINS_WITH,ComparisonValue={name}")
    assert [s["StreamName"] for s in out["StreamInfoList"]] == [name]
    run(server, "update-stream", "--stream-name", name, "--current-version", info["Version"], "--device-name", "d1")
    _, out, _ = run(server, "describe-stream", "--stream-arn", arn)
    v2 = out["StreamInfo"]["Version"]
    assert out["StreamInfo"]["DeviceName"] == "d1"
    run(server, "update-data-retention", "--stream-name", name, "--current-version", v2,
        "--operation", "INCREASE_DATA_RETENTION", "--data-retention-change-in-hours", "5")
    _, out, _ = run(server, "describe-stream", "--stream-name", name)
    assert out["StreamInfo"]["DataRetentionInHours"] == 7
    run(server, "tag-stream", "--stream-name", name, "--tags", "c=3")
    run(server, "untag-stream", "--stream-arn", arn, "--tag-key-list", "a")
    _, out, _ = run(server, "list-tags-for-stream", "--stream-name", name)
    assert out["Tags"] == {"b": "2", "c": "3"}
    run(server, "tag-resource", "--resource-arn", arn, "--tags", "Key=d,Value=4")
    run(server, "untag-resource", "--resource-arn", arn, "--tag-key-list", "b")
    _, out, _ = run(server, "list-tags-for-resource", "--resource-arn", arn)
    assert out["Tags"] == {"c": "3", "d": "4"}
    _, out, _ = run(server, "get-data-endpoint", "--stream-name", name, "--api-name", "GET_MEDIA")
    assert out["DataEndpoint"] == server.endpoint
    _, out, _ = run(server, "describe-stream", "--stream-name", name)
    run(server, "delete-stream", "--stream-arn", arn, "--current-version", out["StreamInfo"]["Version"])
    rc, _, err = run(server, "describe-stream", "--stream-name", name, check=False)
    assert rc != 0 and "ResourceNotFoundException" in err


def test_error_cases(server, name):
    rc, _, err = run(server, "describe-stream", "--stream-name", name, check=False)
    assert rc != 0 and "(ResourceNotFoundException)" in err
    run(server, "create-stream", "--stream-name", name)
    rc, _, err = run(server, "create-stream", "--stream-name", name, check=False)
    assert rc != 0 and "(ResourceInUseException)" in err
    rc, _, err = run(server, "update-stream", "--stream-name", name, "--current-version", "old", check=False)
    assert rc != 0 and "(VersionMismatchException)" in err
    rc, _, err = run(server, "create-stream", "--stream-name", name + "x", "--data-retention-in-hours", "90000",
                     check=False)
    assert rc != 0 and "(InvalidArgumentException)" in err
    rc, _, err = run(server, "list-streams", sk="wrong-secret", check=False)
    assert rc != 0 and "(InvalidSignatureException)" in err
