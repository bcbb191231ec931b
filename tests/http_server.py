#!/usr/bin/env python3
"""http_server.py - a loopback HTTP server with faults on demand, for tests/test_fetch.c.

usage: http_server.py PAYLOAD_FILE [CERT_PEM KEY_PEM]

Binds 127.0.0.1 on an ephemeral port, prints the port on stdout (one line) and serves the
bytes of PAYLOAD_FILE under /MODE/ANYTHING, over HTTPS when given a certificate and its key,
where MODE picks the behaviour:

  ok                      200, or 206 for "Range: bytes=N-" (416 when N is past the end)
  norange                 200 with the whole payload, Range ignored
  truncate                announces the full Content-Length, sends half, closes
  truncate-once           the first request to this path as truncate, later ones as ok
  truncate-once-norange   the first request as truncate, later ones as norange
  stall                   sends 16 KiB, then sleeps 30 s (past any low-speed limit)
  stall-once              the first request as stall, later ones as ok
  404                     404 Not Found
  500                     500 on every request
  500-once                500 on the first request to this path, then ok
  wrong                   200 with as many bytes, but every 1024th byte inverted
  big                     200 with the payload twice (Content-Length says so)
  big-nolength            the payload twice with no Content-Length (ends at close)
  slow                    the payload in 10 pieces 0.1 s apart (about one second)
  redirect                302 to the rest of the path: /redirect/ok/x -> /ok/x
  loop                    302 to itself, forever

POST (tests/test_report.c, `qfleet report --post`): /ok/NAME answers 200 and keeps the body,
which GET /posted/NAME returns (404 before); /500/NAME answers 500; /stall/NAME reads the body
and then sleeps 30 s without answering; anything else is 400.

/count/PATH answers "REQUESTS RANGED" in text: how many requests PATH got and how many of
them carried a Range header. Counts are per full path, so each test uses its own file name.
The server exits when its stdin closes (the test holds the other end), so it never outlives
the test that started it, even one that crashed.
"""
import http.server
import os
import ssl
import sys
import threading
import time

PAYLOAD = b""
POSTED = {}                             # NAME -> body of the last POST /ok/NAME
COUNTS = {}
COUNTS_LOCK = threading.Lock()


def wrong_bytes(data):
    b = bytearray(data)
    for i in range(0, len(b), 1024):
        b[i] ^= 0xFF
    return bytes(b)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"   # one request per connection: a close ends every body

    def log_message(self, fmt, *args):
        if os.environ.get("QF_HTTP_SERVER_LOG"):
            sys.stderr.write("http_server: " + (fmt % args) + "\n")

    def count(self):
        ranged = 1 if self.headers.get("Range") else 0
        with COUNTS_LOCK:
            n, r = COUNTS.get(self.path, (0, 0))
            COUNTS[self.path] = (n + 1, r + ranged)
            return n + 1

    def send_body(self, code, body, length=None, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        if length is not None:
            self.send_header("Content-Length", str(length))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        return body

    def write(self, data):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def serve_ok(self, ranges=True):
        rng = self.headers.get("Range", "")
        if ranges and rng.startswith("bytes=") and rng.endswith("-"):
            try:
                start = int(rng[6:-1])
            except ValueError:
                start = -1
            if start >= len(PAYLOAD):
                self.send_body(416, b"", 0, [("Content-Range", "bytes */%d" % len(PAYLOAD))])
                return
            if start >= 0:
                part = PAYLOAD[start:]
                self.send_body(206, b"", len(part), [
                    ("Content-Range", "bytes %d-%d/%d" % (start, len(PAYLOAD) - 1,
                                                          len(PAYLOAD))),
                    ("Accept-Ranges", "bytes")])
                self.write(part)
                return
        extra = [("Accept-Ranges", "bytes")] if ranges else []
        self.send_body(200, b"", len(PAYLOAD), extra)
        self.write(PAYLOAD)

    def truncate(self):
        self.send_body(200, b"", len(PAYLOAD))
        self.write(PAYLOAD[: len(PAYLOAD) // 2])
        self.close_connection = True

    def stall(self):
        self.send_body(200, b"", len(PAYLOAD))
        self.write(PAYLOAD[:16384])
        time.sleep(30)

    def do_GET(self):
        parts = self.path.split("/", 2)     # "", MODE, REST
        mode = parts[1] if len(parts) > 1 else ""
        rest = parts[2] if len(parts) > 2 else ""
        if mode == "posted":
            with COUNTS_LOCK:
                body = POSTED.get(rest)
            if body is None:
                self.send_body(404, b"", 0)
            else:
                self.send_body(200, b"", len(body))
                self.write(body)
            return
        if mode == "count":
            with COUNTS_LOCK:
                n, r = COUNTS.get("/" + rest, (0, 0))
            text = ("%d %d\n" % (n, r)).encode()
            self.send_body(200, b"", len(text))
            self.write(text)
            return
        n = self.count()
        if mode == "ok":
            self.serve_ok()
        elif mode == "norange":
            self.serve_ok(ranges=False)
        elif mode == "truncate":
            self.truncate()
        elif mode == "truncate-once":
            self.truncate() if n == 1 else self.serve_ok()
        elif mode == "truncate-once-norange":
            self.truncate() if n == 1 else self.serve_ok(ranges=False)
        elif mode == "stall":
            self.stall()
        elif mode == "stall-once":
            self.stall() if n == 1 else self.serve_ok()
        elif mode == "404":
            self.send_body(404, b"", 0)
        elif mode == "500":
            self.send_body(500, b"", 0)
        elif mode == "500-once":
            self.send_body(500, b"", 0) if n == 1 else self.serve_ok()
        elif mode == "wrong":
            data = wrong_bytes(PAYLOAD)
            self.send_body(200, b"", len(data))
            self.write(data)
        elif mode == "big":
            self.send_body(200, b"", 2 * len(PAYLOAD))
            self.write(PAYLOAD + PAYLOAD)
        elif mode == "big-nolength":
            self.send_body(200, b"", None)
            self.write(PAYLOAD + PAYLOAD)
        elif mode == "slow":
            self.send_body(200, b"", len(PAYLOAD))
            step = (len(PAYLOAD) + 9) // 10
            for i in range(0, len(PAYLOAD), step):
                self.write(PAYLOAD[i:i + step])
                time.sleep(0.1)
        elif mode == "redirect":
            self.send_body(302, b"", 0, [("Location", "/" + rest)])
        elif mode == "loop":
            self.send_body(302, b"", 0, [("Location", self.path)])
        else:
            self.send_body(400, b"", 0)


    def do_POST(self):
        parts = self.path.split("/", 2)     # "", MODE, NAME
        mode = parts[1] if len(parts) > 1 else ""
        name = parts[2] if len(parts) > 2 else ""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if mode == "ok":
            with COUNTS_LOCK:
                POSTED[name] = body
            self.send_body(200, b"", 2)
            self.write(b"ok")
        elif mode == "500":
            self.send_body(500, b"", 0)
        elif mode == "stall":
            time.sleep(30)
        else:
            self.send_body(400, b"", 0)


def main():
    global PAYLOAD
    if len(sys.argv) not in (2, 4):
        sys.stderr.write("usage: http_server.py PAYLOAD_FILE [CERT_PEM KEY_PEM]\n")
        return 2
    with open(sys.argv[1], "rb") as f:
        PAYLOAD = f.read()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if len(sys.argv) == 4:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        # A client that refuses the certificate fails the handshake inside accept(), which
        # socketserver treats as a failed accept (SSLError is an OSError) and carries on.
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True        # a stalled handler must not hold up the exit
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sys.stdout.write("%d\n" % server.server_address[1])
    sys.stdout.flush()
    sys.stdin.read()                    # until the test closes its end (or dies)
    os._exit(0)                         # without waiting for stalled handlers


if __name__ == "__main__":
    sys.exit(main())
