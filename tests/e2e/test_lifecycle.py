"""The server as an operator runs it: first start with no flags, configuration precedence,
restarts, health and metrics, graceful shutdown, and bad input on the wire."""

import json
import os
import pathlib
import signal
import socket
import ssl
import stat
import subprocess
import threading
import time
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
import urllib3
from botocore.config import Config

from conftest import AK, BIN, CRED_ARGS, REGION, SK, Server, signed_headers, start


def signed(server, path, body=b"{}", headers=None, method="POST", sk=SK):
    """A raw request signed like botocore signs it, for the cases no SDK would send."""
    headers = signed_headers(server, path, body, headers, method, sk)
    http = urllib3.PoolManager(ca_certs=server.ca) if server.ca else urllib3.PoolManager()
    return http.request(method, server.endpoint + path, body=body, headers=headers, retries=False)


def kvs_error(resp):
    return resp.status, resp.headers.get("x-amzn-ErrorType"), json.loads(resp.data)


def test_first_start_with_no_flags(tmp_path):
    """`kinescope serve` in an empty directory: generated TLS and credentials, printed, usable."""
    s = Server(tmp_path / "kinescope-data", [], cwd=tmp_path)
    try:
        assert s.endpoint == "https://127.0.0.1:8443"
        data = tmp_path / "kinescope-data"
        assert pathlib.Path(s.ca) == (data / "tls" / "ca.pem").resolve()
        creds = data / "credentials"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        ak, sk = s.banner["Access key"], s.banner["Secret key"]
        assert ak in creds.read_text() and sk in creds.read_text()
        c = s.client(ak=ak, sk=sk)
        assert c.list_streams()["StreamInfoList"] == []
        # The ready-to-paste line works as printed.
        line = s.banner_text.strip().splitlines()[-1].strip()
        assert line.startswith("AWS_ACCESS_KEY_ID=")
        out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PATH=os.path.dirname(os.sys.executable) + ":" + os.environ["PATH"]))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"StreamInfoList": []}
        # Without the CA the certificate is refused: TLS is real.
        with pytest.raises(Exception):
            urllib.request.urlopen(s.endpoint + "/healthz", timeout=5)
        ctx = ssl.create_default_context(cafile=s.ca)
        assert urllib.request.urlopen(s.endpoint + "/healthz", context=ctx, timeout=5).read() == b"ok\n"
    finally:
        assert s.stop() == 0
    # A second start reuses the same credentials and CA.
    ca_before = (tmp_path / "kinescope-data" / "tls" / "ca.pem").read_bytes()
    s2 = Server(tmp_path / "kinescope-data", [], cwd=tmp_path)
    try:
        assert (s2.banner["Access key"], s2.banner["Secret key"]) == (ak, sk)
        assert (tmp_path / "kinescope-data" / "tls" / "ca.pem").read_bytes() == ca_before
    finally:
        s2.stop()


def test_state_survives_restart(tmp_path):
    s = start(tmp_path, *CRED_ARGS, "--no-tls")
    try:
        c = s.client()
        arn = c.create_stream(StreamName="keep", DataRetentionInHours=3, Tags={"t": "1"})["StreamARN"]
        v = c.describe_stream(StreamName="keep")["StreamInfo"]["Version"]
        c.update_data_retention(StreamName="keep", CurrentVersion=v, Operation="INCREASE_DATA_RETENTION",
                                DataRetentionChangeInHours=4)
        before = c.describe_stream(StreamName="keep")["StreamInfo"]
        s.restart()
        c = s.client()
        after = c.describe_stream(StreamName="keep")["StreamInfo"]
        assert after == before and after["StreamARN"] == arn and after["DataRetentionInHours"] == 7
        assert c.list_tags_for_stream(StreamName="keep")["Tags"] == {"t": "1"}
        c.update_stream(StreamName="keep", CurrentVersion=before["Version"], DeviceName="after-restart")
    finally:
        s.stop()


def test_flags_beat_environment_beat_file(tmp_path):
    cfg = tmp_path / "k.toml"
    cfg.write_text('region = "eu-west-1"\naccount_id = "111111111111"\nno_tls = true\n'
                   '[[credentials]]\naccess_key = "FILEKEY"\nsecret_key = "filesecret"\n')
    env = {"KINESCOPE_REGION": "eu-central-1", "KINESCOPE_ACCESS_KEY": AK, "KINESCOPE_SECRET_KEY": SK}
    s = start(tmp_path, "--config", str(cfg), "--account-id", "222222222222", env=env)
    try:
        arn = s.client().create_stream(StreamName="p")["StreamARN"]
        assert arn.startswith("arn:aws:kinesisvideo:eu-central-1:222222222222:stream/p/")
        # Both configured key pairs work.
        assert s.client(ak="FILEKEY", sk="filesecret").list_streams()["StreamInfoList"][0]["StreamName"] == "p"
    finally:
        s.stop()


def test_public_url_is_the_data_endpoint_and_in_the_certificate(tmp_path):
    s = start(tmp_path, *CRED_ARGS, "--public-url", "https://kvs.example.test:9443/")
    try:
        assert s.endpoint == "https://kvs.example.test:9443"
    finally:
        s.stop()
    pem = (tmp_path / "data" / "tls" / "server.pem").read_text()
    out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                         capture_output=True, text=True)
    for name in ["DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "DNS:kvs.example.test"]:
        assert name in out.stdout, out.stdout


def test_anonymous_access_is_explicit_and_loopback_only(tmp_path):
    r = subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / "a"), "--listen", "0.0.0.0:0",
                        "--allow-anonymous"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "insecure-allow-anonymous-remote" in r.stderr
    s = start(tmp_path, "--allow-anonymous", "--no-tls", name="anon")
    try:
        assert "ANONYMOUS" in s.banner_text
        unsigned = urllib3.PoolManager().request("POST", s.endpoint + "/listStreams", body=b"{}", retries=False)
        assert unsigned.status == 200
    finally:
        s.stop()


def test_health_ready_metrics_and_request_ids(server):
    http = urllib3.PoolManager(ca_certs=server.ca) if server.ca else urllib3.PoolManager()
    assert http.request("GET", server.endpoint + "/healthz").status == 200
    assert http.request("GET", server.endpoint + "/readyz").status == 200
    server.client().list_streams()
    r = signed(server, "/describeStream", b'{"StreamName":"absent"}')
    assert r.status == 404 and len(r.headers["x-amzn-RequestId"]) == 36
    m = http.request("GET", server.endpoint + "/metrics").data.decode()
    assert 'kinescope_http_requests_total{operation="ListStreams",status="200"}' in m
    assert 'kinescope_http_requests_total{operation="DescribeStream",status="404"}' in m
    assert "kinescope_http_request_duration_seconds_bucket" in m


@pytest.mark.parametrize("path,body,status,error", [
    ("/createStream", b"{not json", 400, "SerializationException"),
    ("/createStream", b"[1,2]", 400, "SerializationException"),
    ("/createStream", b'{"StreamName": 7}', 400, "InvalidArgumentException"),
    ("/createStream", b'{"StreamName": "s", "DataRetentionInHours": "2"}', 400, "InvalidArgumentException"),
    ("/createStream", b'{"StreamName": "s", "Tags": {"k": 1}}', 400, "InvalidArgumentException"),
    ("/listStreams", b'{"MaxResults": 0}', 400, "InvalidArgumentException"),
    ("/getDataEndpoint", b'{"StreamName": "s", "APIName": "NOPE"}', 400, "InvalidArgumentException"),
    ("/describeStream", b"", 400, "InvalidArgumentException"),
    ("/noSuchOperation", b"{}", 404, "UnknownOperationException"),
])
def test_bad_input_gets_kvs_shaped_errors(server, path, body, status, error):
    r = signed(server, path, body)
    got_status, got_error, payload = kvs_error(r)
    assert (got_status, got_error) == (status, error), payload
    assert payload["Message"]
    # The server is unaffected.
    assert server.client().list_streams()["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize("path,body,error,message", [
    ("/getMedia", b'{"StreamName": "s", "StartSelector": {"StartSelectorType": "BOGUS"}}', "InvalidArgumentException",
     "1 validation error detected: Value 'BOGUS' at 'startSelector.startSelectorType' failed to satisfy constraint: "
     "Member must satisfy enum value set: [FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP, NOW, EARLIEST, CONTINUATION_TOKEN]"),
    ("/deleteStream", b"{}", "InvalidArgumentException",
     "1 validation error detected: Value null at 'streamARN' failed to satisfy constraint: Member must not be null"),
    ("/createStream", b'{"StreamName": "a b", "Tags": {}}', "InvalidArgumentException",
     "2 validation errors detected: Value 'a b' at 'streamName' failed to satisfy constraint: "
     "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; "
     "Value '{}' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("/listFragments", b'{"StreamName": "s", "MaxResults": 1001}', "InvalidArgumentException",
     "1 validation error detected: Value '1001' at 'maxResults' failed to satisfy constraint: "
     "Member must have value less than or equal to 1000"),
    ("/untagStream", b'{"StreamARN": "arn:aws:kinesisvideo:us-west-2:1:stream/x", "TagKeyList": ["k"]}',
     "InvalidResourceFormatException",
     "1 validation error detected: Value 'arn:aws:kinesisvideo:us-west-2:1:stream/x' at 'streamARN' failed to satisfy "
     "constraint: Member must satisfy regular expression pattern: "
     "arn:[a-z\\d-]+:kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+"),
])
def test_validation_errors_in_kvs_words(server, path, body, error, message):
    """The model's constraints, reported as KVS reports them (not in the JSON parser's words)."""
    assert kvs_error(signed(server, path, body)) == (400, error, {"Message": message})


def raw_socket(server):
    host, port = server.endpoint.split("://")[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    if server.ca:
        sock = ssl.create_default_context(cafile=server.ca).wrap_socket(sock, server_hostname=host)
    return sock


def test_oversized_bodies_are_refused_before_they_are_read(server):
    # Unsigned: refused before the body, whatever its size (issue 9).
    sock = raw_socket(server)
    sock.sendall(b"POST /createStream HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{")
    resp = sock.recv(65536).decode()
    sock.close()
    assert resp.startswith("HTTP/1.1 403"), resp
    # Signed headers with an oversized body: refused before it is read.
    head = "".join(f"{k}: {v}\r\n" for k, v in signed_headers(server, "/createStream").items()
                   if k.lower() != "content-length").encode()
    sock = raw_socket(server)
    sock.sendall(b"POST /createStream HTTP/1.1\r\n" + head + b"Content-Length: 100000000\r\n\r\n{")
    resp = sock.recv(65536).decode()
    sock.close()
    assert resp.startswith("HTTP/1.1 413"), resp
    assert "x-amzn-errortype: requestentitytoolargeexception" in resp.lower()
    # A body without a declared length is bounded while it is read.
    sock = raw_socket(server)
    sock.sendall(b"POST /createStream HTTP/1.1\r\n" + head + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"{" + b" " * (1 << 16)
    try:
        for _ in range(20):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server may stop reading once it has answered
    resp = sock.recv(65536).decode()
    sock.close()
    assert resp.startswith("HTTP/1.1 413"), resp
    assert server.client().list_streams()["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_wrong_method_and_unsigned_requests(server):
    r = signed(server, "/listStreams", b"", method="GET")
    assert kvs_error(r)[:2] == (405, "MethodNotAllowedException")
    http = urllib3.PoolManager(ca_certs=server.ca) if server.ca else urllib3.PoolManager()
    r = http.request("POST", server.endpoint + "/listStreams", body=b"{}", retries=False)
    assert kvs_error(r)[:2] == (403, "MissingAuthenticationTokenException")


def test_expired_signature_is_refused(server):
    """A request signed 10 minutes ago, with its own matching date, is outside the window."""
    req = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/listStreams", data=b"{}",
                                         headers={"Content-Type": "application/json"})
    auth = botocore.auth.SigV4Auth(botocore.credentials.Credentials(AK, SK), "kinesisvideo", REGION)
    import datetime
    import unittest.mock
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=past.replace(tzinfo=None)):
        auth.add_auth(req)
    http = urllib3.PoolManager(ca_certs=server.ca) if server.ca else urllib3.PoolManager()
    r = http.request("POST", server.endpoint + "/listStreams", body=b"{}", headers=dict(req.headers), retries=False)
    status, err, body = kvs_error(r)
    assert (status, err) == (403, "InvalidSignatureException")
    assert body["message"].startswith("Signature expired")


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path):
    s = start(tmp_path, *CRED_ARGS, "--no-tls")
    # A slow client: headers now, body later. The server must let it finish after SIGTERM.
    host, port = s.endpoint.removeprefix("http://").split(":")
    body = b'{"StreamName": "late"}'
    req = botocore.awsrequest.AWSRequest(method="POST", url=s.endpoint + "/createStream", data=body,
                                         headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(AK, SK), "kinesisvideo", REGION).add_auth(req)
    head = f"POST /createStream HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head.encode())
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # New connections are refused while the old one finishes.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2)
    sock.sendall(body)
    resp = sock.recv(4096).decode()
    assert resp.startswith("HTTP/1.1 200"), resp
    sock.close()
    assert s.proc.wait(30) == 0
    # The stream created during shutdown is there after a restart.
    s.start()
    try:
        assert s.client().describe_stream(StreamName="late")["StreamInfo"]["Status"] == "ACTIVE"
    finally:
        s.stop()
