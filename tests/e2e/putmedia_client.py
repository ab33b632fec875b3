"""A PutMedia client over a raw socket, signing like the KVS C producer does (spec §1.2): Host
without the port, `connection`, `transfer-encoding` and `user-agent` signed, payload hash of the
empty string. It sends the body in chunks and reads ACK lines while it sends, so a test can
hold the final chunk back until an ACK arrives (what the official SDK does)."""

import datetime
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time

from conftest import AK, REGION, SK

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sign(headers, host, ak=AK, sk=SK, when=None):
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    headers = {**headers, "host": host, "x-amz-date": amz_date}
    names = sorted(k.lower() for k in headers if k.lower() not in ("authorization", "content-type", "content-length"))
    lower = {k.lower(): " ".join(str(v).split()) for k, v in headers.items()}
    canonical = "\n".join(["POST", "/putMedia", "", *(f"{n}:{lower[n]}" for n in names), "", ";".join(names), EMPTY_SHA256])
    scope = f"{date}/{REGION}/kinesisvideo/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + sk).encode()
    for part in (date, REGION, "kinesisvideo", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    return headers


class PutMedia:
    def __init__(self, server, stream, timecode_type="RELATIVE", start=None, sk=SK, extra=None):
        host, port = server.endpoint.split("://")[1].rsplit(":", 1)
        raw = socket.create_connection((host, int(port)), timeout=30)
        if server.ca:
            raw = ssl.create_default_context(cafile=server.ca).wrap_socket(raw, server_hostname=host)
        self.sock = raw
        headers = {
            "connection": "keep-alive",
            "transfer-encoding": "chunked",
            "user-agent": "kinescope-tests/1.0",
            "x-amzn-stream-name": stream,
            "x-amzn-fragment-timecode-type": timecode_type,
            "x-amzn-producer-start-timestamp": f"{start if start is not None else time.time():.3f}",
            "x-amzn-fragment-acknowledgment-required": "1",
            **(extra or {}),
        }
        headers = sign(headers, host, sk=sk)  # Host without the port, as the C producer sends it
        head = "POST /putMedia HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += "content-type: application/json\r\nExpect: 100-continue\r\n\r\n"
        self.sock.sendall(head.encode())
        self.status = None
        self.acks = []
        self.ack_times = []
        self.done = threading.Event()
        self.cond = threading.Condition()
        self._buf = b""
        self._read_status()
        self.reader = threading.Thread(target=self._read_acks, daemon=True)

    def _read_line(self):
        while b"\r\n" not in self._buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self._buf += data
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _read_status(self):
        # 100 Continue comes first (the test checks it), then the final status may come only
        # after the first body bytes: start sending without it.
        self.sock.settimeout(5)
        try:
            line = self._read_line()
            self.continued = line.startswith(b"HTTP/1.1 100")
            if self.continued:
                self._read_line()  # blank line after 100 Continue
            else:
                self.status = int(line.split()[1])
                self._read_headers()
        except socket.timeout:
            self.continued = False
        self.sock.settimeout(30)

    def _read_headers(self):
        self.headers = {}
        while True:
            line = self._read_line()
            if not line:
                return
            k, v = line.decode().split(":", 1)
            self.headers[k.strip().lower()] = v.strip()

    def start_reading(self):
        self.reader.start()

    def _read_acks(self):
        try:
            while self.status in (None, 100):
                # A 100 Continue slower than _read_status waited for is skipped here.
                line = self._read_line()
                self.status = int(line.split()[1])
                self._read_headers()
            if self.status != 200:
                self.error_body = self._buf
                return
            pending = b""
            while True:
                size = int(self._read_line(), 16)
                if size == 0:
                    break
                while len(self._buf) < size + 2:
                    data = self.sock.recv(65536)
                    if not data:
                        raise EOFError
                    self._buf += data
                chunk, self._buf = self._buf[:size], self._buf[size + 2:]
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    with self.cond:
                        self.acks.append(json.loads(line))
                        self.ack_times.append(time.time())
                        self.cond.notify_all()
        except (EOFError, OSError):
            pass
        finally:
            with self.cond:
                self.done.set()
                self.cond.notify_all()

    def send(self, data, chunk=65536, pace=0.0):
        for i in range(0, len(data), chunk):
            part = data[i:i + chunk]
            try:
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            except OSError:
                return False
            if pace:
                time.sleep(pace)
        return True

    def end(self):
        try:
            self.sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass

    def wait_for(self, predicate, timeout=30):
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.acks) or self.done.is_set(), timeout) and predicate(self.acks)

    def finish(self, timeout=30):
        self.done.wait(timeout)
        self.sock.close()
        return self.acks
