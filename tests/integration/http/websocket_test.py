# SPDX-License-Identifier: GPL-3.0-or-later
"""MQTT over WebSocket (SPEC §4, §8) end to end: MQTT.js (npm package mqtt in
tests/integration/mqttjs-npm, installed by scripts/test through
install_npm_test_deps in scripts/lib.sh) and Paho over ws:// with MQTT 3.1.1
and 5.0, messages both ways with TCP clients, subprotocol negotiation, and a
raw WebSocket client for framing: MQTT packets split across frames and
coalesced in one, text frames (1003), unmasked frames (1002), oversized
messages (1009), ping/pong, a broken client next to a healthy one, and a
subscriber that stops reading while a publisher floods."""
import base64
import json
import os
import queue
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import unittest
import urllib.request

import paho.mqtt.client as mqtt

from harness import (Broker, Client, connect_packet, encode_varint, main, pub, serve_https,
                     sub_finish, sub_start, wait_for, wait_port)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration
NPM_DIR = os.path.join(HERE, "mqttjs-npm")
CLIENT_JS = os.path.join(NPM_DIR, "client.js")

ADMIN_TOKEN = "admin-token-for-the-websocket-tests-0123"
ENV = {"ADMIN_TOKEN": ADMIN_TOKEN}
WS_LIMIT = 1024
MODULES = ["env", "admin", {"name": "ws", "settings": {"max_message_size": WS_LIMIT}},
           "http-api"]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def require_npm_deps():
    """Fails (never skips) with what to run when node or MQTT.js is missing or
    older than package-lock.json."""
    fix = ("run `bash -c 'source scripts/lib.sh && install_npm_test_deps'` from the "
           "repository root (scripts/test does), or `npm ci` in " + NPM_DIR)
    if shutil.which("node") is None:
        raise AssertionError("node is not installed (Debian: apt-get install nodejs npm); " + fix)
    if not os.path.isfile(os.path.join(NPM_DIR, "node_modules", "mqtt", "package.json")):
        raise AssertionError("npm package mqtt is not installed; " + fix)

    def versions(path):
        with open(path) as f:
            return {k: v.get("version") for k, v in json.load(f)["packages"].items() if k}
    try:
        stale = (versions(os.path.join(NPM_DIR, "node_modules", ".package-lock.json"))
                 != versions(os.path.join(NPM_DIR, "package-lock.json")))
    except (OSError, ValueError, KeyError):
        stale = True
    if stale:
        raise AssertionError("the npm packages in " + NPM_DIR + " differ from "
                             "package-lock.json; " + fix)


class RawWs:
    """A minimal WebSocket client (RFC 6455) on a plain socket."""

    def __init__(self, port, subprotocol="mqtt", path="/ws", timeout=5, tls=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:  # wss://, `tls` being the client's SSL context
            self.sock = tls.wrap_socket(self.sock, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n")
        self.sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("closed during the handshake: %r" % data)
            data += chunk
        head, _, self.buf = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in lines[1:])}
        self.mqtt = b""  # binary message bytes not yet parsed as MQTT

    def send_frame(self, opcode, payload=b"", fin=True, mask=True):
        first = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            head = bytes([first, (0x80 if mask else 0) | n])
        elif n < 65536:
            head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
        else:
            head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_binary(self, payload):
        self.send_frame(OP_BINARY, payload)

    def _read(self, n, timeout):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=5):
        """(fin, opcode, payload); raises EOFError when the connection ends."""
        b0, b1 = self._read(2, timeout)
        if b1 & 0x80:
            raise AssertionError("the server masked a frame")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2, timeout))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8, timeout))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n, timeout)

    def recv_close(self, timeout=5):
        """The close code the server sends (skipping data frames)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            fin, op, payload = self.recv_frame(max(0.1, deadline - time.time()))
            if op == OP_CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        raise AssertionError("no close frame")

    def recv_packet(self, timeout=5):
        """The next MQTT packet carried by binary messages: (type byte, body)."""
        deadline = time.time() + timeout
        while True:
            parsed = self._parse_mqtt()
            if parsed:
                return parsed
            fin, op, payload = self.recv_frame(max(0.1, deadline - time.time()))
            if op in (OP_BINARY, OP_CONT):
                self.mqtt += payload
            elif op == OP_CLOSE:
                raise EOFError("close frame %r" % payload)
            elif op != OP_PONG:
                raise AssertionError("unexpected opcode %d" % op)

    def _parse_mqtt(self):
        data = self.mqtt
        if len(data) < 2:
            return None
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(data):
                return None
            length |= (data[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not data[i - 1] & 0x80:
                break
        if len(data) < i + length:
            return None
        self.mqtt = data[i + length:]
        return data[0], data[i:i + length]

    def closed_by_peer(self, timeout=5):
        """True once the server closed the TCP connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def mqtt_connect(client_id, version=4):
    return connect_packet(client_id.encode(), version=version, username=b"admin",
                          password=ADMIN_TOKEN.encode())


def subscribe_packet(topic, packet_id, qos=0, version=4):
    t = topic.encode()
    body = packet_id.to_bytes(2, "big") + (b"\x00" if version == 5 else b"")
    body += len(t).to_bytes(2, "big") + t + bytes([qos])
    return b"\x82" + encode_varint(len(body)) + body


def publish_packet(topic, payload, qos=0, packet_id=1, version=4):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + (packet_id.to_bytes(2, "big") if qos else b"")
    body += (b"\x00" if version == 5 else b"") + payload
    return bytes([0x30 | (qos << 1)]) + encode_varint(len(body)) + body


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class MqttJs:
    """node client.js: commands on stdin, JSON events on stdout."""

    def __init__(self, port, version, client_id):
        opts = {"url": f"ws://127.0.0.1:{port}/ws", "protocolVersion": version,
                "username": "admin", "password": ADMIN_TOKEN, "clientId": client_id,
                "timeoutMs": 20000}
        self.proc = subprocess.Popen(["node", CLIENT_JS, json.dumps(opts)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=NPM_DIR)
        self.events = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                self.events.put({"event": "garbage", "line": line})
        self.events.put({"event": "exit"})

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def expect(self, kind, timeout=10):
        deadline = time.time() + timeout
        while True:
            try:
                e = self.events.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                raise AssertionError(f"MQTT.js: no '{kind}' event in {timeout} s")
            if e["event"] == kind:
                return e
            if e["event"] in ("error", "exit", "timeout", "garbage"):
                err = self.proc.stderr.read() if e["event"] == "exit" else ""
                raise AssertionError(f"MQTT.js: {e} while waiting for '{kind}' {err}")

    def finish(self):
        try:
            self.send(cmd="end")
            self.expect("end")
            self.assert_exit(0)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(5)
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                f.close()

    def assert_exit(self, code):
        rc = self.proc.wait(10)
        assert rc == code, f"MQTT.js exited with {rc}"


def paho_ws(port, version, client_id):
    proto = {5: mqtt.MQTTv5, 4: mqtt.MQTTv311}[version]
    kw = {} if version == 5 else {"clean_session": True}
    c = mqtt.Client(client_id=client_id, protocol=proto, transport="websockets", **kw)
    c.ws_set_options(path="/ws")
    c.username_pw_set("admin", ADMIN_TOKEN)
    state = {"connack": None, "subacks": [], "messages": [], "disconnected": None}
    c.on_connect = lambda cl, u, f, rc, p=None: state.__setitem__("connack", rc)
    c.on_subscribe = lambda cl, u, mid, granted, p=None: state["subacks"].append(mid)
    c.on_message = lambda cl, u, m: state["messages"].append(m)
    c.on_disconnect = lambda cl, u, rc, p=None: state.__setitem__("disconnected", rc)
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    assert wait_for(lambda: state["connack"] is not None, 5), "no CONNACK over WebSocket"
    assert int(getattr(state["connack"], "value", state["connack"])) == 0, state["connack"]
    return c, state


class WebSocket(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker(modules=MODULES, env=ENV).start()
        assert wait_port(cls.b.http_port), cls.b.read_log()
        cls.port = cls.b.http_port

    @classmethod
    def tearDownClass(cls):
        rc = cls.b.stop()
        assert rc == 0, f"backboned exited with {rc}:\n" + cls.b.read_log()[-4000:]

    def tcp_client(self, client_id, version=5):
        return Client(self.b, client_id=client_id, version=version, username="admin",
                      password=ADMIN_TOKEN).connect()

    def ws_connections(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith('backbone_transport_connections{transport="ws"}'):
                    return int(float(line.split()[-1]))
        return 0

    # --- MQTT.js ---

    def test_mqttjs_both_ways(self):
        require_npm_deps()
        for version in (4, 5):
            with self.subTest(protocolVersion=version):
                js = MqttJs(self.port, version, f"mqttjs-v{version}")
                try:
                    self.assertEqual(js.expect("connect")["reasonCode"], 0)
                    js.send(cmd="subscribe", topic=f"js{version}/in/#", qos=1)
                    self.assertEqual(js.expect("subscribed")["granted"], [1])
                    r = pub(self.b, f"js{version}/in/a", "from tcp", "-q", "1", "-u", "admin",
                            "-P", ADMIN_TOKEN, "-V", "mqttv311")
                    self.assertEqual(r.returncode, 0, r.stderr)
                    m = js.expect("message")
                    self.assertEqual((m["topic"], m["payload"], m["qos"]),
                                     (f"js{version}/in/a", "from tcp", 1))
                    sub = sub_start(self.b, f"js{version}/out/#", "-u", "admin", "-P",
                                    ADMIN_TOKEN, "-q", "1", "-V", "mqttv5")
                    js.send(cmd="publish", topic=f"js{version}/out/b", payload="from mqtt.js",
                            qos=1)
                    js.expect("published")
                    rc, lines = sub_finish(sub)
                    sub.stdout.close()
                    self.assertEqual((rc, lines), (0, [f"js{version}/out/b from mqtt.js"]))
                    js.finish()
                finally:
                    if js.proc.poll() is None:
                        js.proc.kill()
                        js.proc.wait(5)
        self.assertIn("'mqttjs-v5' connected as admin via admin (v5,", self.b.read_log())
        self.assertIn("'mqttjs-v4' connected as admin via admin (v4,", self.b.read_log())

    def test_mqttjs_bad_password_is_refused(self):
        require_npm_deps()
        opts = {"url": f"ws://127.0.0.1:{self.port}/ws", "protocolVersion": 5,
                "username": "admin", "password": "wrong", "timeoutMs": 10000}
        r = subprocess.run(["node", CLIENT_JS, json.dumps(opts)], input="", capture_output=True,
                           text=True, timeout=20, cwd=NPM_DIR)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('"event":"error"', r.stdout)

    # --- Paho over WebSocket ---

    def test_paho_websockets_both_ways(self):
        for version in (4, 5):
            with self.subTest(version=version):
                tcp = self.tcp_client(f"paho-tcp-{version}")
                ws, state = paho_ws(self.port, version, f"paho-ws-{version}")
                try:
                    ws.subscribe(f"pw{version}/in", 1)
                    self.assertTrue(wait_for(lambda: state["subacks"], 5))
                    tcp.subscribe(f"pw{version}/out", 1)
                    tcp.publish(f"pw{version}/in", b"\x00tcp to ws\xff", qos=1)
                    self.assertTrue(wait_for(lambda: state["messages"], 5))
                    self.assertEqual(state["messages"][0].payload, b"\x00tcp to ws\xff")
                    big = os.urandom(900)  # close to the 1024-byte message limit
                    ws.publish(f"pw{version}/out", big, qos=1).wait_for_publish(5)
                    self.assertEqual(tcp.wait_messages(1)[0].payload, big)
                finally:
                    ws.disconnect()
                    ws.loop_stop()
                    tcp.disconnect()

    # --- subprotocols ---

    def test_subprotocols(self):
        for offered, chosen in (("mqtt", "mqtt"), ("mqttv3.1", "mqttv3.1"),
                                ("foo, mqtt", "mqtt"), ("MQTT", "mqtt")):
            ws = RawWs(self.port, subprotocol=offered)
            try:
                self.assertEqual(ws.status, 101, offered)
                self.assertEqual(ws.headers.get("sec-websocket-protocol"), chosen)
                ws.send_binary(mqtt_connect("sp-" + str(len(offered))))
                kind, body = ws.recv_packet()
                self.assertEqual((kind, body), (0x20, b"\x00\x00"))
            finally:
                ws.close()
        for offered in ("", "wamp", "mqttv5, chat"):
            ws = RawWs(self.port, subprotocol=offered)
            try:
                self.assertEqual(ws.status, 400, offered)
            finally:
                ws.close()

    # --- framing ---

    def test_packets_split_across_frames_and_coalesced(self):
        ws = RawWs(self.port)
        try:
            # CONNECT in three binary messages, one byte first.
            connect = mqtt_connect("framing", version=5)
            ws.send_binary(connect[:1])
            ws.send_binary(connect[1:7])
            ws.send_binary(connect[7:])
            kind, body = ws.recv_packet()
            self.assertEqual((kind, body[:2]), (0x20, b"\x00\x00"))
            # SUBSCRIBE fragmented within one message (continuation frames).
            sub = subscribe_packet("frames/#", 1, qos=1, version=5)
            ws.send_frame(OP_BINARY, sub[:3], fin=False)
            ws.send_frame(OP_CONT, sub[3:8], fin=False)
            ws.send_frame(OP_PING, b"mid-message ping")  # control frames may interleave
            ws.send_frame(OP_CONT, sub[8:], fin=True)
            fin, op, payload = ws.recv_frame()
            while op != OP_PONG:
                ws.mqtt += payload
                fin, op, payload = ws.recv_frame()
            self.assertEqual(payload, b"mid-message ping")
            kind, body = ws.recv_packet()
            self.assertEqual((kind, body), (0x90, b"\x00\x01\x00\x01"))
            # Three packets in one frame, the last one split into the next.
            p1 = publish_packet("frames/a", b"one", qos=1, packet_id=7, version=5)
            p2 = b"\xc0\x00"  # PINGREQ
            p3 = publish_packet("frames/b", b"two", qos=0, version=5)
            ws.send_binary(p1 + p2 + p3[:4])
            ws.send_binary(p3[4:])
            seen = []
            for _ in range(4):  # PUBACK, PINGRESP, and both messages back
                kind, body = ws.recv_packet()
                seen.append(kind & 0xF0)
            self.assertEqual(sorted(seen), [0x30, 0x30, 0x40, 0xD0])
            # A ping frame gets a pong with the same payload.
            ws.send_frame(OP_PING, b"are you there")
            fin, op, payload = ws.recv_frame()
            self.assertEqual((op, payload), (OP_PONG, b"are you there"))
        finally:
            ws.close()

    def assert_closed_with(self, ws, code):
        self.assertEqual(ws.recv_close(), code)
        ws.send_frame(OP_CLOSE, struct.pack("!H", code))
        self.assertTrue(ws.closed_by_peer(5))

    def test_text_frame_closes_with_1003(self):
        ws = RawWs(self.port)
        try:
            ws.send_binary(mqtt_connect("text-frame"))
            self.assertEqual(ws.recv_packet()[0], 0x20)
            ws.send_frame(OP_TEXT, b"PINGREQ")
            self.assert_closed_with(ws, 1003)
        finally:
            ws.close()
        self.assertTrue(wait_for(lambda: "text-frame" not in self.sessions(), 3),
                        "the MQTT connection of a closed WebSocket stays open")
        # A text frame that is not even UTF-8: 1007.
        ws = RawWs(self.port)
        try:
            ws.send_frame(OP_TEXT, b"\xc0\x00")
            self.assertEqual(ws.recv_close(), 1007)
        finally:
            ws.close()

    def test_unmasked_frame_closes_with_1002(self):
        ws = RawWs(self.port)
        try:
            ws.send_binary(mqtt_connect("unmasked"))
            self.assertEqual(ws.recv_packet()[0], 0x20)
            ws.send_frame(OP_BINARY, b"\xc0\x00", mask=False)
            self.assert_closed_with(ws, 1002)
        finally:
            ws.close()

    def test_reserved_opcode_closes_with_1002(self):
        ws = RawWs(self.port)
        try:
            ws.send_frame(0x3, b"x")
            self.assert_closed_with(ws, 1002)
        finally:
            ws.close()

    def test_oversized_message_closes_with_1009(self):
        ws = RawWs(self.port)
        try:
            ws.send_binary(mqtt_connect("oversized"))
            self.assertEqual(ws.recv_packet()[0], 0x20)
            ws.send_binary(publish_packet("big/x", b"y" * 100))  # under the limit: fine
            ws.send_binary(publish_packet("big/x", b"y" * (WS_LIMIT + 10)))
            self.assert_closed_with(ws, 1009)
        finally:
            ws.close()
        # Fragments adding up over the limit are refused the same way.
        ws = RawWs(self.port)
        try:
            ws.send_binary(mqtt_connect("oversized-2"))
            self.assertEqual(ws.recv_packet()[0], 0x20)
            big = publish_packet("big/y", b"z" * 1300)
            ws.send_frame(OP_BINARY, big[:600], fin=False)
            ws.send_frame(OP_CONT, big[600:], fin=True)
            self.assertEqual(ws.recv_close(), 1009)
        finally:
            ws.close()

    def test_mqtt_protocol_error_over_websocket(self):
        ws = RawWs(self.port)
        try:
            ws.send_binary(b"\x10\x03\x00\x01\x00")  # a truncated CONNECT: malformed
            with self.assertRaises(EOFError):
                ws.recv_packet()
        finally:
            ws.close()

    def test_broken_client_does_not_affect_another(self):
        good, state = paho_ws(self.port, 5, "healthy-ws")
        tcp = self.tcp_client("healthy-tcp")
        try:
            good.subscribe("healthy/#", 1)
            self.assertTrue(wait_for(lambda: state["subacks"], 5))
            broken = []
            for i, garbage in enumerate((b"\x00" * 10, b"\xff" * 64,
                                         b"\x82\xff" + b"\x7f" * 8)):
                ws = RawWs(self.port)
                ws.sock.sendall(garbage)
                broken.append(ws)
            half = RawWs(self.port)
            half.send_binary(mqtt_connect("half-open")[:5])  # and then silence
            broken.append(half)
            tcp.publish("healthy/x", "still fine", qos=1)
            self.assertTrue(wait_for(lambda: state["messages"], 5))
            self.assertEqual(state["messages"][0].payload, b"still fine")
            for ws in broken:
                ws.sock.shutdown(socket.SHUT_RDWR)
                ws.close()
            tcp.publish("healthy/y", "after the chaos", qos=1)
            self.assertTrue(wait_for(lambda: len(state["messages"]) == 2, 5))
            self.assertIsNone(state["disconnected"])
        finally:
            good.disconnect()
            good.loop_stop()
            tcp.disconnect()
        self.assertTrue(self.b.alive())

    def test_stalled_subscriber_does_not_explode_memory(self):
        ws = RawWs(self.port)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            ws.send_binary(mqtt_connect("stalled-sub"))
            self.assertEqual(ws.recv_packet()[0], 0x20)
            ws.send_binary(subscribe_packet("flood/#", 1, qos=1))
            self.assertEqual(ws.recv_packet()[0], 0x90)
            # From now on the subscriber reads nothing.
            publisher = self.tcp_client("flooder")
            pid = self.b.proc.pid
            base = rss_kb(pid)
            payload = b"f" * 800
            sent = 0
            deadline = time.time() + 4
            while time.time() < deadline and sent < 20000:
                publisher.publish("flood/x", payload, qos=1, wait=False)
                sent += 1
                if sent % 500 == 0:
                    time.sleep(0.01)
            time.sleep(0.5)
            grown = rss_kb(pid) - base
            self.assertTrue(self.b.alive())
            # 20000 x 800 bytes would be 16 MB if everything were buffered
            # several times over; the in-flight window and queue limits bound it.
            # (ASan keeps freed memory in quarantine: a looser bound there.)
            with open(f"/proc/{pid}/maps") as f:
                limit_mb = 512 if "libasan" in f.read() else 64
            self.assertLess(grown, limit_mb * 1024,
                            f"RSS grew by {grown} kB after {sent} messages")
            publisher.disconnect()
        finally:
            ws.close()
        # The broker still serves.
        c = self.tcp_client("after-flood")
        c.disconnect()

    def sessions(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/sessions",
                                     headers={"Authorization": "Bearer " + ADMIN_TOKEN,
                                              "X-Auth-Provider": "admin"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return [s["client_id"] for s in json.loads(r.read()) if s.get("connected")]

    def test_zz_no_websocket_left_open(self):
        # Every WebSocket of the tests above is gone: none left counted.
        self.assertTrue(wait_for(lambda: self.ws_connections() == 0, 5),
                        f"{self.ws_connections()} WebSocket MQTT connection(s) still open: "
                        f"{self.sessions()}")


def binary_frame_unmasked_key(payload):
    """A client binary frame with a zero mask key: the bytes need no masking
    work, so megabytes can be built quickly."""
    n = len(payload)
    if n < 126:
        head = bytes([0x82, 0x80 | n])
    elif n < 65536:
        head = bytes([0x82, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\x00\x00\x00\x00" + payload


class WebSocketLastWords(unittest.TestCase):
    """A WebSocket whose MQTT connection the broker ends with a reason is
    closed with a close frame, its write side shut and its input drained, so a
    peer still writing reads the reason instead of a reset."""

    MODULES = ["env", "admin", {"name": "ws", "settings": {"max_message_size": 1 << 20}}]

    def flood_past_receive_maximum(self, broker, tls=None):
        for attempt in range(3):
            ws = RawWs(broker.http_port, timeout=10, tls=tls)
            try:
                ws.send_binary(mqtt_connect(f"wsflood{attempt}", version=5))
                kind, body = ws.recv_packet(timeout=10)
                self.assertEqual((kind, body[1]), (0x20, 0))
                # 20 MB of QoS 2 PUBLISH past Receive Maximum, written in full
                # before anything is read, as a client that pipelines.
                flood = b"".join(
                    binary_frame_unmasked_key(publish_packet("t", b"x" * 2000, qos=2,
                                                             packet_id=i, version=5))
                    for i in range(1, 10000))
                ws.sock.settimeout(10)
                ws.sock.sendall(flood)
                kinds, reason = [], None
                while True:
                    try:
                        kind, body = ws.recv_packet(timeout=10)
                    except (EOFError, ssl.SSLEOFError):
                        break
                    kinds.append(kind)
                    if kind == 0xE0:
                        reason = body[0]
                self.assertEqual(kinds, [0x50, 0x50, 0xE0])
                self.assertEqual(reason, 0x93)
            finally:
                ws.close()
        self.assertTrue(broker.alive())

    def test_client_over_receive_maximum_reads_disconnect_0x93(self):
        with Broker(modules=self.MODULES, env=ENV, limits={"receive_maximum": 2}) as b:
            self.flood_past_receive_maximum(b)

    def test_wss_client_over_receive_maximum_reads_disconnect_0x93(self):
        b = Broker(modules=self.MODULES, env=ENV, limits={"receive_maximum": 2})
        tls = serve_https(b)
        with b:
            self.flood_past_receive_maximum(b, tls)

if __name__ == "__main__":
    main()
