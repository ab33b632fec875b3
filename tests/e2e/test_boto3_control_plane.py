"""boto3 drives every control-plane operation against the real binary, over plain HTTP and over
TLS with the generated CA, including each error case (spec §2, kinesisvideo.json)."""

import datetime

import botocore.exceptions
import pytest


def error_of(excinfo):
    e = excinfo.value.response
    return e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]


def test_create_describe_list_delete(kvs, name):
    arn = kvs.create_stream(
        StreamName=name, DeviceName="cam-1", MediaType="video/h264,audio/aac",
        DataRetentionInHours=24, KmsKeyId="my-key", Tags={"site": "roof"},
    )["StreamARN"]
    assert arn.startswith(f"arn:aws:kinesisvideo:us-west-2:000000000000:stream/{name}/")
    info = kvs.describe_stream(StreamName=name)["StreamInfo"]
    assert info["StreamARN"] == arn
    assert info["Status"] == "ACTIVE"
    assert info["DeviceName"] == "cam-1"
    assert info["MediaType"] == "video/h264,audio/aac"
    assert info["KmsKeyId"] == "my-key"
    assert info["DataRetentionInHours"] == 24
    assert isinstance(info["CreationTime"], datetime.datetime)
    assert abs(info["CreationTime"].timestamp() - datetime.datetime.now().timestamp()) < 60
    assert kvs.describe_stream(StreamARN=arn)["StreamInfo"] == info
    listed = kvs.list_streams(StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name})
    assert [s["StreamName"] for s in listed["StreamInfoList"]] == [name]
    assert kvs.list_tags_for_stream(StreamName=name)["Tags"] == {"site": "roof"}
    kvs.delete_stream(StreamARN=arn, CurrentVersion=info["Version"])
    with pytest.raises(kvs.exceptions.ResourceNotFoundException) as e:
        kvs.describe_stream(StreamName=name)
    assert error_of(e) == ("ResourceNotFoundException", 404)


def test_create_defaults_and_duplicate(kvs, name):
    kvs.create_stream(StreamName=name)
    info = kvs.describe_stream(StreamName=name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 0
    assert "DeviceName" not in info and "MediaType" not in info
    with pytest.raises(kvs.exceptions.ResourceInUseException) as e:
        kvs.create_stream(StreamName=name)
    assert error_of(e) == ("ResourceInUseException", 400)


@pytest.mark.parametrize("kwargs", [
    {"StreamName": "bad name"},
    {"StreamName": "x" * 257},
    {"StreamName": "ok", "DataRetentionInHours": 87601},
    {"StreamName": "ok", "MediaType": "h264"},
    {"StreamName": "ok", "DeviceName": "dev/1"},
])
def test_create_refuses_bad_arguments(server, kwargs):
    # botocore validates some constraints itself; turn that off to reach the server.
    from botocore.config import Config
    import boto3
    c = boto3.client("kinesisvideo", endpoint_url=server.endpoint, region_name="us-west-2",
                     aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                     verify=server.ca or True,
                     config=Config(parameter_validation=False, retries={"max_attempts": 1, "mode": "standard"}))
    with pytest.raises(c.exceptions.InvalidArgumentException) as e:
        c.create_stream(**kwargs)
    assert error_of(e) == ("InvalidArgumentException", 400)


def test_list_streams_pages_in_name_order(kvs, name):
    names = [f"{name}-{i:02d}" for i in range(7)]
    for n in reversed(names):
        kvs.create_stream(StreamName=n)
    seen, token, pages = [], None, 0
    cond = {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name}
    while True:
        kw = {"MaxResults": 3, "StreamNameCondition": cond}
        if token:
            kw["NextToken"] = token
        page = kvs.list_streams(**kw)
        pages += 1
        seen += [s["StreamName"] for s in page["StreamInfoList"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == names and pages == 3
    paginated = [s["StreamName"] for p in kvs.get_paginator("list_streams").paginate(
        StreamNameCondition=cond, PaginationConfig={"PageSize": 2}) for s in p["StreamInfoList"]]
    assert paginated == names
    with pytest.raises(kvs.exceptions.InvalidArgumentException):
        kvs.list_streams(NextToken="!!notatoken!!")


def test_update_stream_checks_version(kvs, name):
    kvs.create_stream(StreamName=name, DeviceName="a")
    v1 = kvs.describe_stream(StreamName=name)["StreamInfo"]["Version"]
    kvs.update_stream(StreamName=name, CurrentVersion=v1, DeviceName="b", MediaType="video/h265")
    info = kvs.describe_stream(StreamName=name)["StreamInfo"]
    assert (info["DeviceName"], info["MediaType"]) == ("b", "video/h265")
    assert info["Version"] != v1
    with pytest.raises(kvs.exceptions.VersionMismatchException) as e:
        kvs.update_stream(StreamName=name, CurrentVersion=v1, DeviceName="c")
    assert error_of(e) == ("VersionMismatchException", 400)
    with pytest.raises(kvs.exceptions.ResourceNotFoundException):
        kvs.update_stream(StreamName=name + "-missing", CurrentVersion=v1)


def test_delete_stream_checks_version_and_needs_arn(kvs, name):
    arn = kvs.create_stream(StreamName=name)["StreamARN"]
    with pytest.raises(kvs.exceptions.VersionMismatchException):
        kvs.delete_stream(StreamARN=arn, CurrentVersion="stale")
    with pytest.raises(kvs.exceptions.InvalidArgumentException):
        kvs.delete_stream(StreamARN="arn:aws:kinesisvideo:us-west-2:000000000000:nonsense")
    kvs.delete_stream(StreamARN=arn)
    with pytest.raises(kvs.exceptions.ResourceNotFoundException):
        kvs.delete_stream(StreamARN=arn)
    # The name is free again, under a new ARN.
    arn2 = kvs.create_stream(StreamName=name)["StreamARN"]
    assert kvs.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"] == arn2


def test_update_data_retention(kvs, name):
    kvs.create_stream(StreamName=name, DataRetentionInHours=2)
    v = kvs.describe_stream(StreamName=name)["StreamInfo"]["Version"]
    kvs.update_data_retention(StreamName=name, CurrentVersion=v, Operation="INCREASE_DATA_RETENTION",
                              DataRetentionChangeInHours=10)
    info = kvs.describe_stream(StreamName=name)["StreamInfo"]
    assert info["DataRetentionInHours"] == 12
    with pytest.raises(kvs.exceptions.InvalidArgumentException):
        kvs.update_data_retention(StreamName=name, CurrentVersion=info["Version"],
                                  Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=13)
    with pytest.raises(kvs.exceptions.VersionMismatchException):
        kvs.update_data_retention(StreamName=name, CurrentVersion=v, Operation="DECREASE_DATA_RETENTION",
                                  DataRetentionChangeInHours=1)
    kvs.update_data_retention(StreamARN=info["StreamARN"], CurrentVersion=info["Version"],
                              Operation="DECREASE_DATA_RETENTION", DataRetentionChangeInHours=12)
    assert kvs.describe_stream(StreamName=name)["StreamInfo"]["DataRetentionInHours"] == 0


def test_stream_tags(kvs, name):
    arn = kvs.create_stream(StreamName=name)["StreamARN"]
    kvs.tag_stream(StreamName=name, Tags={"a": "1", "b": "2"})
    kvs.tag_stream(StreamARN=arn, Tags={"b": "3"})
    assert kvs.list_tags_for_stream(StreamARN=arn)["Tags"] == {"a": "1", "b": "3"}
    kvs.untag_stream(StreamName=name, TagKeyList=["a", "never-set"])
    assert kvs.list_tags_for_stream(StreamName=name)["Tags"] == {"b": "3"}
    with pytest.raises(kvs.exceptions.TagsPerResourceExceededLimitException) as e:
        kvs.tag_stream(StreamName=name, Tags={f"k{i}": "v" for i in range(50)})
    assert error_of(e) == ("TagsPerResourceExceededLimitException", 400)
    assert kvs.list_tags_for_stream(StreamName=name)["Tags"] == {"b": "3"}
    kvs.tag_stream(StreamName=name, Tags={f"k{i}": "v" for i in range(49)})
    assert len(kvs.list_tags_for_stream(StreamName=name)["Tags"]) == 50
    with pytest.raises(kvs.exceptions.ResourceNotFoundException):
        kvs.tag_stream(StreamName=name + "-missing", Tags={"a": "1"})
    with pytest.raises(kvs.exceptions.InvalidResourceFormatException):
        kvs.list_tags_for_stream(StreamARN="arn:aws:kinesisvideo:us-west-2:1:stream/x")


def test_resource_tags(kvs, name):
    arn = kvs.create_stream(StreamName=name)["StreamARN"]
    kvs.tag_resource(ResourceARN=arn, Tags=[{"Key": "team", "Value": "video"}, {"Key": "env", "Value": "ci"}])
    assert kvs.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"team": "video", "env": "ci"}
    kvs.untag_resource(ResourceARN=arn, TagKeyList=["env"])
    assert kvs.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"team": "video"}
    # The tags are the stream's: both APIs see the same set.
    assert kvs.list_tags_for_stream(StreamName=name)["Tags"] == {"team": "video"}
    with pytest.raises(kvs.exceptions.TagsPerResourceExceededLimitException):
        kvs.tag_resource(ResourceARN=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    channel = "arn:aws:kinesisvideo:us-west-2:000000000000:channel/c1/1700000000000"
    with pytest.raises(kvs.exceptions.ResourceNotFoundException):
        kvs.list_tags_for_resource(ResourceARN=channel)


@pytest.mark.parametrize("api", ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
                                 "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL",
                                 "GET_CLIP", "GET_IMAGES"])
def test_get_data_endpoint(server, kvs, name, api):
    kvs.create_stream(StreamName=name)
    ep = kvs.get_data_endpoint(StreamName=name, APIName=api)["DataEndpoint"]
    assert ep == server.endpoint and not ep.endswith("/")
    assert ep.startswith("https://" if server.ca else "http://")
    with pytest.raises(kvs.exceptions.ResourceNotFoundException) as e:
        kvs.get_data_endpoint(StreamName=name + "-missing", APIName=api)
    assert error_of(e) == ("ResourceNotFoundException", 404)


def test_data_plane_clients_reach_the_data_endpoint(server, kvs, name):
    kvs.create_stream(StreamName=name, DataRetentionInHours=1)
    ep = kvs.get_data_endpoint(StreamName=name, APIName="GET_CLIP")["DataEndpoint"]
    archived = server.client("kinesis-video-archived-media", endpoint=ep)
    assert archived.list_fragments(StreamName=name)["Fragments"] == []
    # A clip of an empty range: the modelled error, never a 404 page.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        archived.get_clip(StreamName=name, ClipFragmentSelector={
            "FragmentSelectorType": "SERVER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": 1, "EndTimestamp": 2}})
    assert error_of(e) == ("ResourceNotFoundException", 404)
    # Not implemented yet: a clear, modelled-shape error.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        archived.get_images(StreamName=name, ImageSelectorType="SERVER_TIMESTAMP", StartTimestamp=1,
                            EndTimestamp=2, Format="JPEG")
    assert error_of(e) == ("NotImplementedException", 501)
    assert "not implemented" in e.value.response["Error"]["Message"]


def test_describe_needs_exactly_one_identifier(kvs, name):
    kvs.create_stream(StreamName=name)
    arn = kvs.describe_stream(StreamName=name)["StreamInfo"]["StreamARN"]
    with pytest.raises(kvs.exceptions.InvalidArgumentException):
        kvs.describe_stream()
    with pytest.raises(kvs.exceptions.InvalidArgumentException):
        kvs.describe_stream(StreamName=name, StreamARN=arn)


def test_wrong_secret_and_unknown_key_are_refused(server, name):
    bad = server.client(sk="not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        bad.list_streams()
    assert error_of(e) == ("InvalidSignatureException", 403)
    stranger = server.client(ak="AKIDSTRANGER")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        stranger.list_streams()
    assert error_of(e) == ("UnrecognizedClientException", 403)
    # Nothing was created by refused calls.
    with pytest.raises(botocore.exceptions.ClientError):
        bad.create_stream(StreamName=name)
    assert server.client().list_streams(
        StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": name})["StreamInfoList"] == []


def test_not_implemented_operations_answer_clearly(kvs):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kvs.list_signaling_channels()
    assert error_of(e) == ("NotImplementedException", 501)
