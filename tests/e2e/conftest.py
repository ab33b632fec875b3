"""End-to-end harness: starts the real `kinescope` binary on loopback and hands out real clients
(boto3, the AWS CLI) pointed at it by endpoint only.

The binary is $KINESCOPE_BIN, else target/debug/kinescope (scripts/test builds it first).

With $KINESCOPE_E2E_POSTGRES set to a PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test),
every server that start() starts gets `--catalog` on a database of its own, created through that
URL with psql and dropped when the session ends (scripts/test runs a subset of the suites so).
Unset, nothing changes: each server has its SQLite catalog in its data directory.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import time
import uuid

import boto3
import pytest
from botocore.config import Config

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("KINESCOPE_BIN", str(ROOT / "target" / "debug" / "kinescope"))
AK = "AKIDEXAMPLE"
SK = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-west-2"
PG_ADMIN = os.environ.get("KINESCOPE_E2E_POSTGRES")
PG_DATABASES = []


class Server:
    """A running `kinescope serve` and what its start-up banner said."""

    def __init__(self, data_dir, args=(), cwd=None, env=None):
        self.data_dir = pathlib.Path(data_dir)
        self.args = list(args)
        self.cwd = cwd
        self.env = env
        self.proc = None
        self.banner = {}
        self.start()

    def start(self):
        assert os.path.exists(BIN), f"build the server first: {BIN} is missing"
        cmd = [BIN, "serve", *self.args]
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}-{uuid.uuid4().hex[:6]}.log", "w+")
        env = dict(os.environ, **(self.env or {}))
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                self.log.seek(0)
                raise RuntimeError(f"server exited ({self.proc.wait()}): {self.log.read()}")
            lines.append(line)
            if line.strip() == "Try:":
                lines.append(self.proc.stdout.readline())
                break
        self.banner_text = "".join(lines)
        for line in lines:
            m = re.match(r"\s+([A-Za-z ]+):\s+(.*)$", line)
            if m:
                self.banner[m.group(1)] = m.group(2).strip()
        self.endpoint = self.banner["Endpoint"]
        self.ca = self.banner.get("Trust CA")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            finally:
                self.proc.stdout.close()
                self.log.close()
        return self.proc.returncode if self.proc else None

    def restart(self):
        self.stop()
        self.start()

    def client(self, service="kinesisvideo", ak=AK, sk=SK, endpoint=None):
        return boto3.client(
            service,
            endpoint_url=endpoint or self.endpoint,
            region_name=REGION,
            aws_access_key_id=ak,
            aws_secret_access_key=sk,
            verify=self.ca if self.ca else True,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def aws(self, *args, ak=AK, sk=SK, check=True):
        """Runs the AWS CLI against this server; returns (rc, stdout, stderr)."""
        cli = shutil.which("aws") or str(pathlib.Path(os.sys.executable).parent / "aws")
        cmd = [cli, "--endpoint-url", self.endpoint, "--region", REGION, "--output", "json"]
        if self.ca:
            cmd += ["--ca-bundle", self.ca]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ak, AWS_SECRET_ACCESS_KEY=sk, AWS_MAX_ATTEMPTS="1")
        env.pop("AWS_PROFILE", None)
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, env=env, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed: {r.stderr}")
        return r.returncode, r.stdout, r.stderr


def signed_headers(server, path, body=b"{}", headers=None, method="POST", sk=SK):
    """The headers botocore's SigV4Auth signs for `body` (as boto3 does: no
    x-amz-content-sha256), for raw requests no SDK would send."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method=method, url=server.endpoint + path, data=body,
                     headers={"Content-Type": "application/json", **(headers or {})})
    SigV4Auth(Credentials(AK, sk), "kinesisvideo", REGION).add_auth(req)
    return dict(req.headers.items())


def psql(sql):
    subprocess.run(["psql", PG_ADMIN, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, timeout=60)


def fresh_pg_catalog():
    """A new, empty PostgreSQL database for one server: its --catalog URL."""
    db = "kinescope_e2e_" + uuid.uuid4().hex[:12]
    psql(f"CREATE DATABASE {db}")
    PG_DATABASES.append(db)
    base, _, query = PG_ADMIN.partition("?")
    url = base.rsplit("/", 1)[0] + "/" + db
    return url + ("?" + query if query else "")


def pg_catalog(server):
    """The server's --catalog URL if it is PostgreSQL, else None (its catalog is DATA_DIR/catalog.db)."""
    args = server.args
    url = args[args.index("--catalog") + 1] if "--catalog" in args else ""
    return url if url.startswith("postgres") else None


def psql_rows(url, sql, *params):
    """Rows of a query as tuples of strings; `?` placeholders take `params`, quoted by psql."""
    parts = sql.split("?")
    sql = "".join(p + (f":'p{i}'" if i < len(params) else "") for i, p in enumerate(parts))
    cmd = ["psql", url, "-v", "ON_ERROR_STOP=1", "-AtF", "\x1f", "-f", "-"]
    for i, v in enumerate(params):
        cmd[2:2] = ["-v", f"p{i}={v}"]
    out = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=True, timeout=60).stdout
    return [tuple(line.split("\x1f")) for line in out.splitlines() if line]


def fragment_path(server, key):
    """The file holding a catalog row's `object_key`: a fragment-log segment (`log/<n>`) or an
    object of the default file:// store."""
    if key.startswith("log/"):
        return server.data_dir / "log" / f"{key[4:]}.seg"
    return server.data_dir / "media" / key


def stored_fragment(server, key, offset, length):
    """The bytes a catalog row points at, read from the data directory (not through the server)."""
    with open(fragment_path(server, key), "rb") as f:
        f.seek(int(offset))
        return f.read(int(length))


def leftovers(server):
    """Files a refused or abandoned fragment must not leave: partial objects and log spill files."""
    return [*(server.data_dir / "media").rglob("*.partial"), *(server.data_dir / "log" / "spill").glob("*")]


def pytest_sessionfinish(session, exitstatus):
    for db in PG_DATABASES:
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def start(tmp_path, *args, name="data", **kw):
    data = tmp_path / name
    catalog = ["--catalog", fresh_pg_catalog()] if PG_ADMIN else []
    return Server(data, ["--data-dir", str(data), "--listen", "127.0.0.1:0", *catalog, *args], **kw)


CRED_ARGS = ["--access-key", AK, "--secret-key", SK]


@pytest.fixture(scope="module", params=["http", "https"])
def server(request, tmp_path_factory):
    """One server per module and transport: plain HTTP and TLS with the generated CA."""
    tmp = tmp_path_factory.mktemp(request.param)
    tls = ["--no-tls"] if request.param == "http" else []
    s = start(tmp, *CRED_ARGS, *tls)
    yield s
    assert s.stop() == 0


@pytest.fixture
def kvs(server):
    return server.client()


@pytest.fixture
def name():
    return "s-" + uuid.uuid4().hex[:12]
