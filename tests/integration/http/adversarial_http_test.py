# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile HTTP and WebSocket clients against the broker's memory (SPEC §8,
§11 limits): a WebSocket that pings and never reads is cut once its send
budget is spent; a WebSocket that never sends CONNECT is closed after the
CONNECT timeout even while its output is stuck; /api/* requests are
authenticated on their headers, so a bad token gets 401 before its body is
read; bodies of unauthenticated requests share one budget (503 beyond it);
and the process's resident memory (VmRSS) returns near its baseline once the
hostile connections are gone."""
import base64
import concurrent.futures
import json
import os
import socket
import ssl
import threading
import time
import unittest
import urllib.request

from harness import Broker, main, rss_kib, sanitized, serve_https, wait_for

ADMIN_TOKEN = "admin-token-for-the-adversarial-tests-0123"
ENV = {"ADMIN_TOKEN": ADMIN_TOKEN}
MODULES = ["env", "admin", "ws", "http-api"]
MIB = 1024 * 1024

# One masked ping with the largest control payload (125 bytes) and a zero
# mask key, so the payload needs no masking work here.
PING = b"\x89\xfd\x00\x00\x00\x00" + b"p" * 125


def assert_rss_bounded(test, broker, baseline, peak, peak_margin_kib):
    """VmRSS peaked less than `peak_margin_kib` above `baseline` and comes
    back within 8 MiB of it (not checked under AddressSanitizer)."""
    if sanitized(broker):
        print("AddressSanitizer build: VmRSS not checked")
        return
    test.assertLess(peak - baseline, peak_margin_kib,
                    f"VmRSS grew by more than {peak_margin_kib // 1024} MiB")
    test.assertTrue(wait_for(lambda: rss_kib(broker) - baseline < 8 * 1024, 10),
                    f"VmRSS {rss_kib(broker)} KiB stays above baseline {baseline} + 8 MiB")


def metric(broker, name, labels, tls=None):
    """The value of one sample of GET /metrics (0 when absent); `tls`: the
    client's SSL context for https."""
    url = f"{'https' if tls else 'http'}://127.0.0.1:{broker.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5, context=tls) as r:
        text = r.read().decode()
    prefix = name + "{" + labels + "} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    return 0


def ws_connections(broker, tls=None):
    return metric(broker, "backbone_transport_connections", 'transport="ws"', tls)


def upgrade(broker, rcvbuf=None, tls=None):
    """A socket past a WebSocket handshake on /ws (wss:// with `tls`, an SSL
    context). A small receive buffer makes a peer that does not read fill
    the server's queue quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", broker.http_port))
    if tls:
        sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing after the handshake is consumed
        if not chunk:
            raise AssertionError("closed during the handshake: %r" % head)
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_response(sock, timeout=5):
    """(status, headers, body) of one HTTP response; never waits for EOF."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("closed before a response: %r" % data)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("closed within a response body")
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def closed_by_server(sock, timeout=5):
    """True once the server ends the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def api_head(path, length, token="wrong-token", provider="admin", method="POST"):
    auth = f"Authorization: Bearer {token}\r\nX-Auth-Provider: {provider}\r\n" if token else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


class RssSampler:
    """Samples the broker's VmRSS every 20 ms in the background; `peak` is
    the largest value seen."""

    def __init__(self, broker):
        self.broker, self.peak, self._stop = broker, rss_kib(broker), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.broker))

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        return self.peak


def settled_rss(broker):
    """VmRSS once it stops moving (two samples 200 ms apart within 64 KiB)."""
    last = rss_kib(broker)
    for _ in range(25):
        time.sleep(0.2)
        now = rss_kib(broker)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


class WebSocketTest(unittest.TestCase):
    def test_ping_flood_without_reading_is_cut(self):
        """Pongs count against the WebSocket's send budget: peers that ping
        and never read are cut, or no longer read once their output backs up
        (the MQTT connection pauses reading while its transport is above its
        high watermark), and memory returns to its baseline."""
        flooders = 8
        with Broker(modules=MODULES, env=ENV, limits={"connect_timeout_ms": 60000}) as b:
            upgrade(b).close()  # the first WebSocket's one-time allocations
            self.assertTrue(wait_for(lambda: ws_connections(b) == 0, 5))
            baseline = settled_rss(b)
            socks = [upgrade(b, rcvbuf=4096) for _ in range(flooders)]
            sampler = RssSampler(b)
            deadline = time.time() + 20

            def flood(sock):
                """How the flood ended: "cut", "blocked" (the server stopped
                reading) or "grew" (VmRSS grew past 512 MiB)."""
                batch = PING * 512
                sock.settimeout(2)
                try:
                    while time.time() < deadline:
                        if sampler.peak - baseline > 512 * 1024:
                            return "grew"
                        sock.sendall(batch)
                except (ConnectionResetError, BrokenPipeError):
                    return "cut"
                except socket.timeout:
                    return "blocked"
                return "not cut in 20 s"

            with concurrent.futures.ThreadPoolExecutor(flooders) as pool:
                ends = list(pool.map(flood, socks))
            peak = sampler.stop()
            for sock in socks:
                sock.close()
            print(f"\nping flood ({flooders} WebSockets): VmRSS baseline {baseline} KiB, "
                  f"peak {peak} KiB (+{(peak - baseline) / 1024:.1f} MiB)")
            self.assertEqual([e for e in ends if e not in ("cut", "blocked")], [],
                             f"VmRSS +{(peak - baseline) // 1024} MiB")
            self.assertTrue(wait_for(lambda: ws_connections(b) == 0, 5))
            assert_rss_bounded(self, b, baseline, peak, 64 * 1024)
            print(f"ping flood: VmRSS after {rss_kib(b)} KiB; ends {ends}")
            if "cut" in ends:
                self.assertIn("send budget", b.read_log())

    def test_websocket_without_connect_is_closed(self):
        """The CONNECT timeout runs from the upgrade: a silent WebSocket is
        closed with a close frame, and one whose output is stuck (it pinged
        but never reads) is cut all the same."""
        with Broker(modules=MODULES, env=ENV, limits={"connect_timeout_ms": 1000}) as b:
            silent = upgrade(b)
            started = time.time()
            silent.settimeout(5)
            frame = silent.recv(4)
            self.assertEqual(frame[:2], b"\x88\x02", frame)  # close frame
            self.assertTrue(closed_by_server(silent, 5))
            self.assertLess(time.time() - started, 4.5)
            silent.close()
            self.assertTrue(wait_for(lambda: ws_connections(b) == 0, 5))

            stuck = upgrade(b, rcvbuf=4096)
            stuck.settimeout(5)
            # 4 MB of pongs: more than the kernel's socket buffers take (about
            # 2.8 MB on loopback), and what they leave below the send budget.
            stuck.sendall(PING * 32000)
            started = time.time()
            self.assertEqual(ws_connections(b), 1)
            self.assertTrue(wait_for(lambda: ws_connections(b) == 0, 8),
                            "a WebSocket whose output is stuck outlived the CONNECT timeout")
            print(f"\nstuck WebSocket closed {time.time() - started:.1f} s after its last ping")
            stuck.close()

    def test_frames_after_a_closing_frame_are_not_parsed(self):
        """A binary frame whose MQTT bytes are malformed closes the WebSocket
        from inside the frame loop; the frames read with it are dropped, and
        stale bytes of an earlier read are never taken for a frame (they once
        were, unmasking past the end of the buffer)."""
        with Broker(modules=MODULES, env=ENV) as b:
            sock = upgrade(b)
            # Read 1: a ping whose payload, unmasked in place, leaves at
            # buffer offset 18 the header of a 262 000-byte binary frame.
            stale = b"\x82\xff" + (262000).to_bytes(8, "big") + b"\xff" * 4
            payload = b"s" * 12 + stale + b"s" * (125 - 12 - len(stale))
            key = b"\x5a\xa5\x3c\xc3"
            masked = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
            sock.sendall(b"\x89\xfd" + key + masked)
            sock.settimeout(5)
            pong = b""
            while len(pong) < 2 + 125:
                chunk = sock.recv(4096)
                self.assertTrue(chunk, "closed instead of answering the ping")
                pong += chunk
            self.assertEqual(pong[:2], b"\x8a\x7d")
            # Read 2: 12 bytes of binary frame with a malformed MQTT remaining
            # length (closes the MQTT connection), then an empty ping: the
            # next offset, 18, is where read 1 left the stale header.
            bad_mqtt = b"\x10\xff\xff\xff\xff\x01"
            sock.sendall(b"\x82\x86\x00\x00\x00\x00" + bad_mqtt + b"\x89\x80\x00\x00\x00\x00")
            self.assertTrue(closed_by_server(sock, 5))
            sock.close()
            self.assertTrue(wait_for(lambda: ws_connections(b) == 0, 5))
            self.assertTrue(b.alive(), "backboned died:\n" + b.read_log()[-3000:])
            with urllib.request.urlopen(f"http://127.0.0.1:{b.http_port}/health", timeout=5) as r:
                self.assertEqual(r.status, 200)

    def test_wss_peer_that_does_not_read_is_closed(self):
        """wss://: pings without reading block the WebSocket's reads (Beast
        answers one ping at a time); the CONNECT timeout then closes it even
        though its close frame cannot be written."""
        b = Broker(modules=MODULES, env=ENV, limits={"connect_timeout_ms": 1000})
        tls = serve_https(b)
        with b:
            self.assertTrue(wait_for(lambda: ws_connections(b, tls) == 0, 5))
            baseline = settled_rss(b)
            sock = upgrade(b, rcvbuf=4096, tls=tls)
            sampler = RssSampler(b)
            sock.settimeout(2)
            end, deadline = "not blocked in 10 s", time.time() + 10
            try:
                while time.time() < deadline:
                    sock.sendall(PING * 512)
            except socket.timeout:
                end = "blocked"
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                end = "cut"
            self.assertIn(end, ("blocked", "cut"))
            self.assertTrue(wait_for(lambda: ws_connections(b, tls) == 0, 8),
                            "a wss:// WebSocket that does not read outlived the CONNECT timeout")
            peak = sampler.stop()
            sock.close()
            print(f"\nwss ping flood: {end}; VmRSS baseline {baseline} KiB, peak {peak} KiB")
            assert_rss_bounded(self, b, baseline, peak, 32 * 1024)


class HttpTest(unittest.TestCase):
    def test_api_is_authenticated_before_the_body(self):
        """401 on the headers, without waiting for the announced body; the
        connection then closes (its unread body rules out keep-alive)."""
        with Broker(modules=MODULES, env=ENV) as b:
            for token in ("wrong-token", None):
                sock = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
                sock.sendall(api_head("/api/message", MIB, token=token))
                status, headers, _ = read_response(sock, timeout=3)
                self.assertEqual(status, 401)
                self.assertEqual(headers.get("connection"), "close")
                # What the client still sends is read and discarded, then EOF.
                sock.sendall(b"x" * 65536)
                self.assertTrue(closed_by_server(sock, 5))
                sock.close()
            # A valid token still gets its body read and handled.
            body = b'{"topic": "t/1", "payload": "aGk=", "qos": 0, "retain": false}'
            sock = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
            sock.sendall(api_head("/api/message", len(body), token=ADMIN_TOKEN) + body)
            status, headers, reply = read_response(sock)
            self.assertEqual(status, 200, reply)
            self.assertNotEqual(headers.get("connection"), "close")
            sock.sendall(api_head("/api/message", len(body), token=ADMIN_TOKEN) + body)
            self.assertEqual(read_response(sock)[0], 200)  # kept alive
            sock.close()

    def test_401_flood_memory_returns_to_baseline(self):
        """200 keep-alive requests with 1 MiB bodies answered 401: the bodies
        are never buffered, and VmRSS is back near the baseline after."""
        with Broker(modules=MODULES, env=ENV) as b:
            request = api_head("/api/message", MIB) + b"{" + b" " * (MIB - 2) + b"}"
            baseline = settled_rss(b)
            sampler = RssSampler(b)
            socks = []

            def one(_):
                s = socket.create_connection(("127.0.0.1", b.http_port), timeout=10)
                socks.append(s)
                s.sendall(request)
                return read_response(s, timeout=10)[0]

            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(one, range(200)))
            during = rss_kib(b)
            for s in socks:
                s.close()
            peak = sampler.stop()
            self.assertEqual(statuses, [401] * 200)
            assert_rss_bounded(self, b, baseline, peak, 64 * 1024)
            print(f"\n401 flood: VmRSS baseline {baseline} KiB, peak {peak} KiB "
                  f"(+{(peak - baseline) / 1024:.1f} MiB), with 200 connections open "
                  f"{during} KiB, after {rss_kib(b)} KiB")

    def test_last_chunk_split_across_reads(self):
        """A chunked body whose last chunk arrives in pieces ("0\\r\\n", "\\r",
        "\\n") is a legal request; Beast before 1.86 asserted on it, which
        aborted a build with assertions (found by fuzz_http_request)."""
        with Broker(modules=MODULES, env=ENV) as b:
            sock = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            head = b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            pieces = [head + b"0\r\n", b"\r", b"\n"]
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.2)  # separate reads on the server: nothing to wait for
            self.assertEqual(read_response(sock)[0], 200)
            sock.close()
            self.assertTrue(b.alive())

    def test_unauthenticated_budget(self):
        """Bodies of requests not (yet) authenticated share
        http.max_unauthenticated_bytes: beyond it, 503 and close."""
        b = Broker(modules=MODULES, env=ENV)
        b.config["http"].update({"max_unauthenticated_bytes": 256 * 1024,
                                 "max_body_bytes": 200 * 1024})
        with open(b.config_path, "w") as f:
            json.dump(b.config, f)
        with b:
            def health(body_sent, length=100000):
                s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
                s.sendall(api_head("/health", length, token=None, method="GET") + body_sent)
                return s

            # Two requests announce 100 000 bytes each and send only part:
            # held (no answer while their body is incomplete), and counted.
            holders = []
            for _ in range(2):
                holders.append(health(b"x" * 1000))
                holders[-1].settimeout(0.3)
                self.assertRaises(socket.timeout, holders[-1].recv, 1)

            def refused():
                s = health(b"")
                try:
                    status, headers, body = read_response(s, timeout=0.5)
                except socket.timeout:
                    return False  # the holders are not counted yet: this one waits
                finally:
                    s.close()
                self.assertEqual(status, 503, body)
                self.assertEqual(headers.get("connection"), "close")
                return True
            self.assertTrue(wait_for(refused, 5), "no 503 beyond the budget")
            holders.pop().close()

            def fits():
                s = health(b"x" * 100000)
                try:
                    return read_response(s, timeout=3)[0] == 200
                finally:
                    s.close()
            self.assertTrue(wait_for(fits, 5), "the budget was not given back")
            for s in holders:
                s.close()


if __name__ == "__main__":
    main()
