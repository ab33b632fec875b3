"""A PutMedia client over a raw socket, signing like the KVS C producer does (spec §1.2): Host
without the port, `connection`, `transfer-encoding` and `user-agent` signed, payload hash of the
empty string. It sends the body in chunks and reads ACK lines while it sends — in one thread,
with select(), because an SSL socket must not be read and written from two threads at once —
so a test can hold the final chunk back until an ACK arrives (what the official SDK does)."""

import datetime
import hashlib
import hmac
import json
import select
import socket
import ssl
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
        self.continued = False
        self.headers = {}
        self.acks = []
        self.ack_times = []
        self.done = False
        self._raw = b""
        self._body = b""
        self._in_body = False
        # 100 Continue comes first; the final status may come only after the first body bytes.
        deadline = time.time() + 5
        while not self.continued and self.status is None and time.time() < deadline and not self.done:
            self._pump(0.1)
        self.sock.setblocking(False)

    # -- reading, all in the caller's thread

    def _pump(self, timeout):
        """Reads whatever arrives within `timeout` and parses it."""
        if self.done:
            return
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        if not pending and not select.select([self.sock], [], [], timeout)[0]:
            return
        while True:
            try:
                data = self.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError, socket.timeout):
                break
            except OSError:
                data = b""
            if not data:
                self.done = True
                break
            self._feed(data)
            if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                break

    def _feed(self, data):
        self._raw += data
        while not self._in_body and b"\r\n\r\n" in self._raw:
            head, self._raw = self._raw.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            status = int(lines[0].split()[1])
            if status == 100:
                self.continued = True
                continue
            self.status = status
            self.headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
            self._in_body = True
            if status != 200:
                self.error_body = self._raw
                self.done = True
                return
        while self._in_body and b"\r\n" in self._raw:
            size_line, rest = self._raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                self.done = True
                return
            if len(rest) < size + 2:
                return
            self._body += rest[:size]
            self._raw = rest[size + 2:]
            while b"\n" in self._body:
                line, self._body = self._body.split(b"\n", 1)
                self.acks.append(json.loads(line))
                self.ack_times.append(time.time())

    # -- writing

    def _write(self, buf):
        view = memoryview(buf)
        while view:
            if self.done and self.status not in (None, 200):
                return False
            readable, writable, _ = select.select([self.sock], [self.sock], [], 30)
            if readable:
                self._pump(0)
            if writable:
                try:
                    n = self.sock.send(view[:65536])
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                    continue
                except OSError:
                    return False
                view = view[n:]
        return True

    def send(self, data, chunk=65536, pace=0.0):
        for i in range(0, len(data), chunk):
            part = data[i:i + chunk]
            if not self._write(b"%x\r\n%s\r\n" % (len(part), part)):
                return False
            if pace:
                end = time.time() + pace
                while time.time() < end:
                    self._pump(end - time.time())
        return True

    def end(self):
        self._write(b"0\r\n\r\n")

    def wait_for(self, predicate, timeout=30):
        deadline = time.time() + timeout
        while not predicate(self.acks) and not self.done and time.time() < deadline:
            self._pump(min(0.2, max(0.0, deadline - time.time())))
        return predicate(self.acks)

    def finish(self, timeout=30):
        deadline = time.time() + timeout
        while not self.done and time.time() < deadline:
            self._pump(min(0.2, max(0.0, deadline - time.time())))
        self.sock.close()
        return self.acks
