#!/usr/bin/env python3
"""Fault-injecting static HTTP/1.1 file server for deltafetch's tests.

Standard library only. Serves the files under --root (GET/HEAD, single
byte ranges, If-Range, strong ETags, keep-alive) and misbehaves on demand
according to a list of rules that can be changed while it runs:

  * --rules FILE: a JSON file, re-read whenever it changes (mtime/size/inode);
  * POST /__control/rules with a JSON body: replaces the current rules.

Whichever was set last is in effect. A rule is an object

  {"match": "<fnmatch glob on the decoded URL path>", "fault": "<name>",
   "count": N,          # optional: only the first N matching requests
   "probability": P,    # optional: apply with probability P (seeded by --seed)
   "ranged": BOOL,      # optional: only requests with (true) / without (false) Range
   "method": "GET",     # optional: only this method
   ...fault parameters}

and the first rule that matches and has a remaining count wins. Either a
list of rules or {"rules": [...]} is accepted. Fault names are listed in
FAULTS below. Control endpoints (neither logged nor counted):

  POST /__control/rules   replace the rules (body: JSON)
  GET  /__control/rules   current rules, with "remaining" counts
  GET  /__control/stats   {"requests", "bytes_sent", "connections", "paths": {...}, ...}
  POST /__control/reset   zero the counters

--log FILE appends one JSON line per request: method, path, range, status,
bytes_sent (body bytes written), fault, plus conn (connection number, to
check keep-alive), query, if_range and header_bytes.
"""

import argparse
import email.utils
import fcntl
import fnmatch
import http.server
import itertools
import json
import os
import posixpath
import random
import select
import signal
import socket
import ssl
import struct
import sys
import termios
import threading
import time
import urllib.parse
import zlib

FAULTS = {
    "stall",                 # headers (and `after` body bytes), then silence for `seconds`
    "stall_before_headers",  # read the request, then say nothing for `seconds`
    "trickle",               # correct response at `rate` bytes per second
    "burst",                 # correct response in bursts of `bytes` bytes, each followed by `seconds` of silence
    "truncate",              # correct headers, connection closed (FIN) after `after` body bytes
    "reset",                 # correct headers, TCP RST after `after` body bytes
    "endless",               # 200 then garbage forever; `length`: declare the real size or not
    "lying_length",          # declares Content-Length `declared`, sends the body + `extra` bytes
    "oversized_length",      # declares Content-Length `declared` (10^15), streams until the client gives up
    "chunked_more",          # chunked encoding carrying `extra` bytes more than the answer
    "ignore_range",          # 200 with the whole file to a ranged request
    "bad_content_range",     # 206 with the literal Content-Range `header` and the requested bytes
    "multipart",             # a single range answered as multipart/byteranges
    "change_etag",           # new ETag every request; If-Range never matches
    "status",                # reply `code` (500, 503, ...), optional `retry_after`
    "redirect_loop",         # 302 to the same path with a growing ?loop=N
    "redirect",              # `code` (302) to `to`; "{path}" in `to` becomes the request path
    "flip",                  # XOR the byte at file offset `offset` with `mask` (0xff)
    "gzip_bomb",             # Content-Encoding: gzip, body inflates to `inflated` (1 GiB) zeros
    "header_flood",          # correct response after `lines` extra header lines of `size` bytes each
}

CHUNK = 64 * 1024
GARBAGE = random.Random(0x5eed).randbytes(CHUNK)  # deterministic junk
STOP = threading.Event()  # set on SIGTERM: ends stalls and endless streams


class ClientGone(Exception):
    """The peer went away (or we cut it off); stop handling this connection."""


# ---------------------------------------------------------------- rules

class Rules:
    def __init__(self, path, seed):
        self.lock = threading.Lock()
        self.path = path
        self.file_key = None
        self.rng = random.Random(seed)
        self.rules = []
        self.remaining = []
        if path:
            self._reload()

    @staticmethod
    def validate(data):
        if isinstance(data, dict):
            data = data.get("rules")
        if not isinstance(data, list):
            raise ValueError("rules must be a list or {\"rules\": [...]}")
        for r in data:
            if not isinstance(r, dict) or not isinstance(r.get("match"), str):
                raise ValueError("each rule needs a string \"match\": %r" % (r,))
            if r.get("fault") not in FAULTS:
                raise ValueError("unknown fault %r" % (r.get("fault"),))
        return data

    def replace(self, rules):
        with self.lock:
            self.rules = rules
            self.remaining = [r.get("count") for r in rules]

    def _reload(self):
        """Re-read --rules if the file changed; keep the old rules if it is mid-write."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.file_key is not None:
                self.file_key = None
                self.rules, self.remaining = [], []
            return
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key == self.file_key:
            return
        try:
            with open(self.path) as f:
                rules = self.validate(json.load(f))
        except (OSError, ValueError) as e:
            print("fault-server: ignoring %s: %s" % (self.path, e), file=sys.stderr)
            return
        self.file_key = key
        self.rules = rules
        self.remaining = [r.get("count") for r in rules]

    def pick(self, method, path, ranged):
        with self.lock:
            if self.path:
                self._reload()
            for i, r in enumerate(self.rules):
                if not fnmatch.fnmatchcase(path, r["match"]):
                    continue
                if "ranged" in r and bool(r["ranged"]) != ranged:
                    continue
                if "method" in r and r["method"] != method:
                    continue
                if self.remaining[i] is not None and self.remaining[i] <= 0:
                    continue
                if "probability" in r and self.rng.random() >= float(r["probability"]):
                    continue
                if self.remaining[i] is not None:
                    self.remaining[i] -= 1
                return r
            return None

    def snapshot(self):
        with self.lock:
            return [dict(r, remaining=n) for r, n in zip(self.rules, self.remaining)]


# ---------------------------------------------------------------- stats & log

class Stats:
    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = 0
            self.bytes_sent = 0
            self.connections = 0
            self.tls_failures = 0
            self.paths = {}
            self.faults = {}

    def new_connection(self):
        with self.lock:
            self.connections += 1
            return self.connections

    def tls_failure(self):
        with self.lock:
            self.tls_failures += 1

    def record(self, entry):
        with self.lock:
            self.requests += 1
            self.bytes_sent += entry["bytes_sent"]
            p = self.paths.setdefault(entry["path"], {"requests": 0, "bytes_sent": 0})
            p["requests"] += 1
            p["bytes_sent"] += entry["bytes_sent"]
            if entry["fault"]:
                self.faults[entry["fault"]] = self.faults.get(entry["fault"], 0) + 1
            if self.log:
                self.log.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "bytes_sent": self.bytes_sent,
                    "connections": self.connections, "tls_failures": self.tls_failures,
                    "paths": json.loads(json.dumps(self.paths)), "faults": dict(self.faults)}


_bombs = {}
_bombs_lock = threading.Lock()


def gzip_bomb(inflated):
    """A gzip member that inflates to `inflated` zero bytes (a multiple of 1 MiB).

    After a full flush the deflate state is reset, so every 1 MiB block of
    zeros compresses to the same bytes: build one and repeat it. Cached."""
    mib = max(1, inflated >> 20)
    with _bombs_lock:
        if mib not in _bombs:
            zeros = bytes(1 << 20)
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
            crc = 0
            for _ in range(mib):
                crc = zlib.crc32(zeros, crc)
            _bombs[mib] = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + block * mib +
                           c.flush(zlib.Z_FINISH) +
                           struct.pack("<II", crc, (mib << 20) & 0xffffffff))
        return _bombs[mib]


def parse_range(value, size):
    """Single byte range -> (start, length), "unsatisfiable", or None (ignore Range)."""
    if not value or not value.startswith("bytes=") or "," in value:
        return None
    first, sep, last = (x.strip() for x in value[6:].partition("-"))
    if not sep or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    try:
        if first == "":  # suffix: the last n bytes
            n = int(last)
            if n == 0 or size == 0:
                return "unsatisfiable"
            n = min(n, size)
            return size - n, n
        a = int(first)
        b = int(last) if last else None
    except ValueError:
        return None
    if b is not None and b < a:
        return None  # invalid: ignore the header
    if a >= size:
        return "unsatisfiable"
    b = size - 1 if b is None else min(b, size - 1)
    return a, b - a + 1


# ---------------------------------------------------------------- handler

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault-server/1"
    timeout = 300  # idle keep-alive connections

    # -- connection setup: TLS handshake in this thread, not the accept loop
    def setup(self):
        self.conn_id = self.server.stats.new_connection()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.server.stats.tls_failure()
                raise ClientGone()
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fault-server: %s - %s\n" % (self.address_string(), fmt % args))

    def flush_headers(self):
        pending = sum(len(b) for b in getattr(self, "_headers_buffer", []))
        self.header_bytes = getattr(self, "header_bytes", 0) + pending
        super().flush_headers()

    # -- low-level output helpers
    def write(self, data):
        """Write body bytes, counting them; raises ClientGone when the peer is gone."""
        try:
            self.wfile.write(data)
        except (OSError, ValueError):
            raise ClientGone()
        self.sent += len(data)

    def pause(self, seconds):
        """Sleep `seconds`, but end early on shutdown or when the client hangs up.
        Returns False unless the full time passed."""
        sock = self.connection
        deadline = time.monotonic() + seconds
        while not STOP.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            try:
                r, _, _ = select.select([sock], [], [], min(left, 0.5))
                if r:  # EOF, reset, or more data we do not care about
                    old = sock.gettimeout()
                    sock.settimeout(0.5)
                    try:
                        if not sock.recv(4096):
                            return False
                    finally:
                        sock.settimeout(old)
            except (ssl.SSLWantReadError, socket.timeout):
                pass
            except (OSError, ValueError):
                return False
        return False

    def send_file(self, f, start, length, rate=None, limit=None, flip=None):
        """Send `length` file bytes from `start` (at most `limit`), optionally paced."""
        f.seek(start)
        todo = length if limit is None else min(length, limit)
        step = CHUNK if not rate else max(1, min(CHUNK, int(rate) // 20))
        t0 = time.monotonic()
        pos, done = start, 0
        while done < todo:
            data = f.read(min(step, todo - done))
            if not data:
                break  # file shrank under us
            if flip and pos <= flip[0] < pos + len(data):
                i = flip[0] - pos
                data = data[:i] + bytes([data[i] ^ flip[1]]) + data[i + 1:]
            self.write(data)
            pos += len(data)
            done += len(data)
            if rate:
                wait = t0 + done / float(rate) - time.monotonic()
                if wait > 0 and STOP.wait(wait):
                    raise ClientGone()
        return done

    def send_bursts(self, f, start, length, burst, seconds):
        """Send `length` file bytes from `start`, `burst` bytes at a time with
        `seconds` of silence after each burst but the last."""
        f.seek(start)
        done = 0
        while done < length:
            data = f.read(min(burst, length - done))
            if not data:
                break  # file shrank under us
            self.write(data)
            done += len(data)
            if done < length and not self.pause(seconds):
                raise ClientGone()
        return done

    def send_garbage_forever(self):
        while not STOP.is_set():
            self.write(GARBAGE)

    def drain_then_reset(self):
        """Abort the connection with a TCP RST once the bytes written so far left."""
        sock = self.connection
        deadline = time.monotonic() + 2
        buf = bytearray(4)
        while time.monotonic() < deadline:
            try:
                fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf)
            except OSError:
                break
            if struct.unpack("i", buf)[0] == 0:
                break
            time.sleep(0.01)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.wfile.close()
            sock.close()
        except OSError:
            pass
        raise ClientGone()

    def simple(self, code, text, headers=()):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.write(body)

    # -- request entry points
    def do_GET(self):
        self.handle_request()

    def do_HEAD(self):
        self.handle_request()

    def do_POST(self):
        if self.path.startswith("/__control/"):
            return self.control()
        self.send_error(405)

    def handle_request(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if path.startswith("/__control/"):
            return self.control()
        self.sent = 0
        self.header_bytes = 0
        rng = self.headers.get("Range")
        rule = self.server.rules.pick(self.command, path, rng is not None)
        fault = rule["fault"] if rule else None
        entry = {"method": self.command, "path": path, "range": rng, "status": None,
                 "bytes_sent": 0, "fault": fault, "conn": self.conn_id, "query": url.query or None,
                 "if_range": self.headers.get("If-Range")}
        self._status = None
        try:
            self.serve(path, url.query, rule or {}, fault)
        except (ClientGone, OSError, ValueError):
            self.close_connection = True  # peer gone, or we cut it off
        finally:
            entry["status"] = self._status
            entry["bytes_sent"] = self.sent
            entry["header_bytes"] = self.header_bytes
            self.server.stats.record(entry)

    def send_response(self, code, message=None):
        self._status = code
        super().send_response(code, message)

    # -- the control endpoint
    def control(self):
        self.sent = self.header_bytes = 0
        what = urllib.parse.urlsplit(self.path).path[len("/__control/"):]
        if self.command == "POST":
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
        answer = None
        try:
            if what == "rules" and self.command == "POST":
                rules = Rules.validate(json.loads(body or b"[]"))
                self.server.rules.replace(rules)
                answer = {"ok": True, "rules": len(rules)}
            elif what == "rules" and self.command in ("GET", "HEAD"):
                answer = self.server.rules.snapshot()
            elif what == "stats" and self.command in ("GET", "HEAD"):
                answer = self.server.stats.snapshot()
            elif what == "reset" and self.command == "POST":
                self.server.stats.reset()
                answer = {"ok": True}
        except ValueError as e:
            return self.simple(400, "bad rules: %s" % e)
        if answer is None:
            return self.simple(404, "no such control endpoint")
        data = (json.dumps(answer, indent=1) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # -- serving files, with or without a fault
    def resolve(self, path):
        """File for a URL path, or None (missing, directory, outside the root)."""
        if "\0" in path:
            return None
        rel = posixpath.normpath("/" + path).lstrip("/")
        full = os.path.realpath(os.path.join(self.server.root, rel))
        root = self.server.root
        if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
            return None
        return full if os.path.isfile(full) else None

    def serve(self, path, query, rule, fault):
        head = self.command == "HEAD"

        # Faults that need no file.
        if fault == "status":
            code = int(rule.get("code", 500))
            extra = [("Retry-After", str(rule["retry_after"]))] if "retry_after" in rule else []
            if code == 408:
                self.close_connection = True
                extra.append(("Connection", "close"))
            return self.simple(code, "injected %d" % code, extra)
        if fault == "redirect_loop":
            n = int(urllib.parse.parse_qs(query).get("loop", ["0"])[0] or 0) + 1
            return self.simple(302, "loop", [("Location", urllib.parse.quote(path) + "?loop=%d" % n)])
        if fault == "redirect":
            to = str(rule.get("to", "/")).replace("{path}", urllib.parse.quote(path))
            return self.simple(int(rule.get("code", 302)), "moved", [("Location", to)])
        if fault == "stall_before_headers":
            self.close_connection = True
            self.pause(float(rule.get("seconds", 3600)))
            raise ClientGone()

        full = self.resolve(path)
        if full is None:
            return self.simple(404, "not found")
        try:
            f = open(full, "rb")
        except OSError:
            return self.simple(404, "not found")
        with f:
            st = os.fstat(f.fileno())
            size = st.st_size
            etag = '"%x-%x"' % (size, st.st_mtime_ns)
            last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            if fault == "change_etag":
                etag = '"%x-%x-%d"' % (size, st.st_mtime_ns, next(self.server.etag_counter))

            # Which bytes a correct server would send.
            rng = parse_range(self.headers.get("Range"), size)
            if_range = self.headers.get("If-Range")
            if rng is not None and if_range is not None:
                if fault == "change_etag" or if_range not in (etag, last_modified):
                    rng = None  # the representation "changed": full body
            if rng == "unsatisfiable" and fault not in ("ignore_range", "bad_content_range"):
                return self.simple(416, "range not satisfiable", [("Content-Range", "bytes */%d" % size)])
            if rng is None or rng == "unsatisfiable" or fault == "ignore_range":
                status, start, length = 200, 0, size
            else:
                status, (start, length) = 206, rng
            content_range = "bytes %d-%d/%d" % (start, start + length - 1, size) if status == 206 else None

            def headers(content_length, **over):
                """Send the status line and normal headers, with overrides."""
                self.send_response(over.get("status", status))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", last_modified)
                ctype = over.get("content_type", "application/octet-stream")
                self.send_header("Content-Type", ctype)
                cr = over.get("content_range", content_range)
                if cr:
                    self.send_header("Content-Range", cr)
                if content_length is not None:
                    self.send_header("Content-Length", str(content_length))
                for k, v in over.get("extra", ()):
                    self.send_header(k, v)
                if fault == "header_flood":
                    size = max(16, int(rule.get("size", 1024)))
                    for i in range(int(rule.get("lines", 1))):
                        name = "X-Flood-%d" % i
                        self.send_header(name, "a" * (size - len(name) - 4))  # "name: value\r\n"
                if over.get("close", content_length is None):
                    self.close_connection = True
                    self.send_header("Connection", "close")
                self.end_headers()

            if fault == "bad_content_range":
                # Correct bytes (the range asked for, else everything), lying header.
                if rng in (None, "unsatisfiable"):
                    start, length = 0, size
                headers(length, status=206, content_range=str(rule.get("header", "bytes 0-10/20")))
                if not head:
                    self.send_file(f, start, length)
                return
            if fault == "multipart":
                if status != 206:
                    headers(length)
                    if not head:
                        self.send_file(f, start, length)
                    return
                boundary = "fault-server-%x" % self.conn_id
                pre = ("--%s\r\nContent-Type: application/octet-stream\r\nContent-Range: %s\r\n\r\n"
                       % (boundary, content_range)).encode()
                post = ("\r\n--%s--\r\n" % boundary).encode()
                headers(len(pre) + length + len(post), content_range=None,
                        content_type="multipart/byteranges; boundary=" + boundary)
                if not head:
                    self.write(pre)
                    self.send_file(f, start, length)
                    self.write(post)
                return
            if fault == "gzip_bomb":
                bomb = gzip_bomb(int(rule.get("inflated", 1 << 30)))
                headers(len(bomb), extra=[("Content-Encoding", "gzip")])
                if not head:
                    self.write(bomb)
                return
            if fault == "endless":
                if rule.get("length"):
                    headers(size, status=200, content_range=None, close=True)
                else:
                    headers(None, status=200, content_range=None)
                if not head:
                    self.send_garbage_forever()
                raise ClientGone()
            if fault == "lying_length":
                headers(int(rule.get("declared", length)), close=True)
                if not head:
                    self.send_file(f, start, length)
                    self.write(GARBAGE[:int(rule.get("extra", 1024))])
                raise ClientGone()
            if fault == "oversized_length":
                headers(int(rule.get("declared", 10 ** 15)), close=True)
                if not head:
                    self.send_file(f, start, length)
                    self.send_garbage_forever()
                raise ClientGone()
            if fault == "chunked_more":
                headers(None, extra=[("Transfer-Encoding", "chunked")], close=False)
                if head:
                    return
                extra = int(rule.get("extra", CHUNK))
                f.seek(start)
                left = length
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        break
                    left -= len(data)
                    self.write(b"%x\r\n%s\r\n" % (len(data), data))
                while extra > 0:
                    data = GARBAGE[:min(extra, CHUNK)]
                    extra -= len(data)
                    self.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.write(b"0\r\n\r\n")
                return

            # Faults on an otherwise correct response.
            headers(length)
            if head:
                if fault == "stall":
                    self.close_connection = True
                    self.pause(float(rule.get("seconds", 3600)))
                    raise ClientGone()
                return
            flip = (int(rule.get("offset", 0)), int(rule.get("mask", 0xff))) if fault == "flip" else None
            if fault == "stall":
                self.send_file(f, start, length, limit=int(rule.get("after", 0)))
                self.close_connection = True
                self.pause(float(rule.get("seconds", 3600)))
                raise ClientGone()
            if fault == "truncate":
                self.send_file(f, start, length, limit=int(rule.get("after", 0)))
                self.close_connection = True
                return
            if fault == "reset":
                self.send_file(f, start, length, limit=int(rule.get("after", 0)))
                self.drain_then_reset()
            if fault == "burst":
                self.send_bursts(f, start, length, max(1, int(rule.get("bytes", 1024))),
                                 float(rule.get("seconds", 1)))
                return
            rate = float(rule.get("rate", 1024)) if fault == "trickle" else None
            self.send_file(f, start, length, rate=rate, flip=flip)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # SIGTERM must not wait for stalled connections
    request_queue_size = 128

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ClientGone, OSError, ValueError)):
            return  # disconnects, resets, failed TLS handshakes: expected here
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="directory to serve")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: a free port (see --port-file)")
    ap.add_argument("--port-file", help="write the port here (atomically) once listening")
    ap.add_argument("--rules", help="JSON rules file, re-read when it changes")
    ap.add_argument("--seed", type=int, default=0, help="seed for rule probabilities")
    ap.add_argument("--log", help="append one JSON line per request")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--tls-ca", help="CA for client certificates")
    ap.add_argument("--require-client-cert", action="store_true")
    ap.add_argument("--verbose", action="store_true", help="access log on stderr")
    args = ap.parse_args()

    if not os.path.isdir(args.root):
        ap.error("--root %s is not a directory" % args.root)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.require_client_cert and not args.tls_ca:
        ap.error("--require-client-cert needs --tls-ca")

    server = Server((args.bind, args.port), Handler)
    server.root = os.path.realpath(args.root)
    server.rules = Rules(args.rules, args.seed)
    server.stats = Stats(args.log)
    server.verbose = args.verbose
    server.etag_counter = itertools.count(1)

    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_ca:
            ctx.load_verify_locations(args.tls_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED if args.require_client_cert else ssl.CERT_OPTIONAL
        # Handshake lazily in the connection's thread (Handler.setup).
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)

    def on_signal(signum, frame):
        STOP.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % server.server_address[1])
        os.replace(tmp, args.port_file)

    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        STOP.set()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
