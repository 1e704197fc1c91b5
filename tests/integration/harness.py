# SPDX-License-Identifier: GPL-3.0-or-later
"""End-to-end test harness: starts the real backboned on free loopback ports
and drives it with real MQTT clients (mosquitto_pub/sub, Paho). Every wait is
bounded."""

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

import paho.mqtt.client as mqtt

BACKBONED = os.environ.get("BACKBONED", "build/bin/backboned")
BUILD_DIR = os.environ.get("BACKBONE_BUILD_DIR", "build")
SOURCE_DIR = os.environ.get("BACKBONE_SOURCE_DIR", ".")

ALLOW_ALL = [{"effect": "allow", "actions": ["*"], "resources": ["**"]}]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    """True once 127.0.0.1:port accepts; False after `timeout`, or at once when
    `proc` (the process that should listen) has exited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Broker:
    """A backboned process with a generated config. Use as a context manager.

    The tests take the defaults. The bench (tests/bench/bench.py) measures
    backboned as it is configured in production, so it passes its own `config`
    (written as is, built around `port`), runs `binary` from its build tree
    behind a `prefix` (taskset), at the default log level (`log_level=None`),
    and keeps config and log as <directory>/<name>.json and .log, appending so
    that restarts of one label keep every log."""

    def __init__(self, anonymous=None, modules=None, limits=None, topics=None, env=None,
                 extra=None, tcp_settings=None, config=None, port=None, http_port=None,
                 binary=None, prefix=(), log_level="debug", workers=None, directory=None,
                 name=None, append_log=False):
        self.port = port if port is not None else free_port()
        self.http_port = http_port if http_port is not None else free_port()
        self.dir = directory or tempfile.mkdtemp(prefix="backbone-e2e-")
        if config is None:
            tcp = {"address": "127.0.0.1", "port": self.port}
            tcp.update(tcp_settings or {})
            mods = modules if modules is not None else []
            config = {"modules": mods + [{"name": "tcp", "settings": tcp}],
                      "http": {"address": "127.0.0.1", "port": self.http_port}}
            if anonymous is not None:
                config["anonymous"] = {"statements": anonymous}
            # Tests log in wrongly on purpose, many times, all from 127.0.0.1: the
            # failed-login back-off is off unless a test sets it.
            config["limits"] = {"login_failures_before_backoff": 1000000, **(limits or {})}
            if topics:
                config["topics"] = topics
            config.update(extra or {})
        self.config = config
        self.config_path = os.path.join(self.dir, (name or "backbone") + ".json")
        # 0600: a bench config holds its jwt secret.
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f)
        self.binary = binary
        self.prefix = list(prefix)
        self.log_level = log_level
        self.workers = workers
        self.append_log = append_log
        self.env = dict(os.environ)
        for k in ("ADMIN_TOKEN", "TOKEN_SECRET", "JWT_SECRET", "TCP_PORT", "HTTP_PORT",
                  "HTTP_ENABLED", "WS_ENABLED", "API_ENABLED", "K8S_ENABLED"):
            self.env.pop(k, None)
        self.env.update(env or {})
        self.log_path = os.path.join(self.dir, (name or "backboned") + ".log")
        self.proc = None

    def command(self):
        # BACKBONED is read here, not at construction: tests swap it (sdk_modules_test).
        cmd = self.prefix + [self.binary or BACKBONED, "--config", self.config_path]
        if self.log_level is not None:
            cmd += ["--log-level", self.log_level]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        return cmd

    def start(self, wait_ports=None):
        """Starts backboned and waits until `port` (or every port of `wait_ports`) accepts."""
        self.log = open(self.log_path, "a" if self.append_log else "w")
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        for port in wait_ports or [self.port]:
            if not wait_port(port, proc=self.proc):
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                raise RuntimeError("backboned did not start listening:\n" + self.read_log())
        return self

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("backboned did not stop on SIGTERM")
        self.log.close()
        return self.proc.returncode

    def reload(self, update=None, text=None):
        """Rewrites the config file (merged with `update`, or raw `text`) and
        sends SIGHUP."""
        with open(self.config_path, "w") as f:
            if text is not None:
                f.write(text)
            else:
                self.config.update(update or {})
                json.dump(self.config, f)
        self.proc.send_signal(signal.SIGHUP)

    def alive(self):
        return self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        rc = self.stop()
        if exc_type is not None:
            sys.stderr.write("---- backboned log ----\n" + self.read_log()[-6000:])
        elif rc != 0:
            raise AssertionError(f"backboned exited with {rc}:\n" + self.read_log()[-6000:])


def pub(broker, topic, message, *args, timeout=10):
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-m", message]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)


def sub_start(broker, topic, *args, count=1, timeout=10):
    """Starts mosquitto_sub in the background; returns the process once it
    has subscribed (-d output shows SUBACK)."""
    cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic, "-C",
           str(count), "-W", str(timeout), "-v", "-d"] + list(args)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 5
    lines = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "received SUBACK" in line:
            proc.pre_lines = lines
            return proc
    proc.kill()
    raise AssertionError("mosquitto_sub did not subscribe: " + "".join(lines))


def sub_finish(proc, timeout=15):
    # Not communicate(): with a timeout it reads the raw fd and would lose
    # what readline() in sub_start already buffered.
    proc.wait(timeout=timeout)
    out = proc.stdout.read()
    lines = [l for l in out.splitlines()
             if not l.startswith("Client ") and not l.startswith("Subscribed (mid")]
    return proc.returncode, lines


class Client:
    """A Paho client with a synchronous face: every call waits, bounded."""

    def __init__(self, broker, client_id="", version=5, username=None, password=None,
                 clean=True, will=None, properties=None, keepalive=60):
        self.version = version
        proto = {5: mqtt.MQTTv5, 4: mqtt.MQTTv311, 3: mqtt.MQTTv31}[version]
        if version == 5:
            self.c = mqtt.Client(client_id=client_id, protocol=proto)
        else:
            self.c = mqtt.Client(client_id=client_id, protocol=proto, clean_session=clean)
        self.clean = clean
        if username is not None:
            self.c.username_pw_set(username, password)
        if will:
            self.c.will_set(**will)
        self.messages = []
        self.connack = None
        self.disconnected = None
        self.acks = {}
        self.subacks = {}
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.append(m)
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = lambda c, u, mid: self.acks.__setitem__(mid, True)
        self.broker = broker
        self.properties = properties
        self.keepalive = keepalive

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack = (flags, rc, props)

    def _on_disconnect(self, c, u, rc, props=None):
        self.disconnected = rc

    def _on_subscribe(self, c, u, mid, granted, props=None):
        self.subacks[mid] = granted

    def connect(self, expect_ok=True, timeout=5):
        kwargs = {"keepalive": self.keepalive}
        if self.version == 5:
            kwargs["clean_start"] = self.clean
            if self.properties is not None:
                kwargs["properties"] = self.properties
        self.c.connect("127.0.0.1", self.broker.port, **kwargs)
        self.c.loop_start()
        wait_for(lambda: self.connack is not None or self.disconnected is not None, timeout)
        if expect_ok:
            assert self.connack is not None, "no CONNACK"
            rc = self.connack[1]
            assert rc == 0, f"CONNACK {rc}"
        return self

    def subscribe(self, topic, qos=0, timeout=5, **kw):
        rc, mid = self.c.subscribe(topic, qos, **kw)
        wait_for(lambda: mid in self.subacks, timeout)
        return self.subacks.get(mid)

    def publish(self, topic, payload, qos=0, retain=False, properties=None, wait=True):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if wait and qos > 0:
            info.wait_for_publish(timeout=5)
        return info

    def wait_messages(self, n, timeout=5):
        wait_for(lambda: len(self.messages) >= n, timeout)
        return self.messages

    def disconnect(self):
        self.c.disconnect()
        self.c.loop_stop()

    def kill(self):
        """Drops the TCP connection without DISCONNECT (to trigger a will)."""
        sock = self.c.socket()
        self.c.loop_stop()  # stops the network thread without a DISCONNECT
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def serve_https(broker):
    """Gives `broker`, not started yet, a fresh self-signed P-256 certificate
    for 127.0.0.1 on its HTTP listener (https and wss); returns an SSL context
    for clients that trusts it."""
    d = tempfile.mkdtemp(prefix="backbone-https-")
    cert, key = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    broker.config["http"].update(tls_cert=cert, tls_key=key)
    with open(broker.config_path, "w") as f:
        json.dump(broker.config, f)
    return ssl.create_default_context(cafile=cert)


def wait_for(predicate, timeout=5.0, step=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def raw_connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    return s


def recv_exact(sock, n, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def connect_packet(client_id=b"raw", version=4, username=None, password=None, keepalive=60):
    flags = 0x02
    payload = len(client_id).to_bytes(2, "big") + client_id
    if username is not None:
        flags |= 0x80
        payload += len(username).to_bytes(2, "big") + username
    if password is not None:
        flags |= 0x40
        payload += len(password).to_bytes(2, "big") + password
    var = b"\x00\x04MQTT" + bytes([version, flags]) + keepalive.to_bytes(2, "big")
    if version == 5:
        var += b"\x00"
    body = var + payload
    return b"\x10" + encode_varint(len(body)) + body


def encode_varint(n):
    out = b""
    while True:
        b = n % 128
        n //= 128
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def main():
    unittest.main(verbosity=2)


def make_jwt(secret, claims, alg="HS256", header=None):
    """An HMAC-signed JWT, built with the standard library only."""
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = {"alg": alg, "typ": "JWT"}
    head.update(header or {})
    signing_input = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg)
    sig = hmac.new(secret.encode(), signing_input.encode(), digest).digest() if digest else b""
    return signing_input + "." + b64(sig)


def read_packet(sock, timeout=5):
    """Reads one MQTT packet: returns (first byte, body) or (None, b"") on EOF."""
    first = recv_exact(sock, 1, timeout)
    if not first:
        return None, b""
    length, shift = 0, 0
    while True:
        b = recv_exact(sock, 1, timeout)
        if not b:
            return None, b""
        length |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            break
    return first[0], recv_exact(sock, length, timeout)


def raw_session(broker, version=5, username=None, password=None, client_id=b"raw"):
    """A raw socket logged in (CONNACK checked)."""
    s = raw_connect(broker)
    s.sendall(connect_packet(client_id, version=version,
                             username=username.encode() if username else None,
                             password=password.encode() if password else None))
    kind, body = read_packet(s)
    assert kind == 0x20 and body[1] == 0, f"CONNACK {kind} {body!r}"
    return s


def raw_publish(sock, topic, payload, qos=1, retain=False, packet_id=1, version=5):
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t
    if qos:
        body += packet_id.to_bytes(2, "big")
    if version == 5:
        body += b"\x00"
    body += payload if isinstance(payload, bytes) else payload.encode()
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    sock.sendall(bytes([first]) + encode_varint(len(body)) + body)


def http_request(port, method, path, body=None, token=None, provider=None, headers=None,
                 timeout=5, tls_context=None):
    """One HTTP(S) request on a fresh connection: (status, headers, JSON or text)."""
    import http.client
    if tls_context is not None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                           context=tls_context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if provider is not None:
        h["X-Auth-Provider"] = provider
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def raw_login(broker, client_id, username=None, password=None, clean=True, version=4,
              session_expiry=None):
    """A raw socket after CONNECT; returns (socket, CONNACK body). `session_expiry`
    (v5) is sent as the Session Expiry Interval property."""
    flags = 0x02 if clean else 0x00
    cid = client_id.encode()
    payload = len(cid).to_bytes(2, "big") + cid
    if username is not None:
        flags |= 0x80
        payload += len(username).to_bytes(2, "big") + username.encode()
    if password is not None:
        flags |= 0x40
        payload += len(password).to_bytes(2, "big") + password.encode()
    var = b"\x00\x04MQTT" + bytes([version, flags]) + (60).to_bytes(2, "big")
    if version == 5:
        props = b"" if session_expiry is None else b"\x11" + session_expiry.to_bytes(4, "big")
        var += encode_varint(len(props)) + props
    body = var + payload
    s = raw_connect(broker)
    s.sendall(b"\x10" + encode_varint(len(body)) + body)
    kind, ack = read_packet(s)
    assert kind == 0x20, f"CONNACK expected, got {kind} {ack!r}"
    return s, ack


def raw_ping(sock, timeout=5):
    """PINGREQ, then every packet up to PINGRESP: what the broker sent before it.
    Returns None when the connection closed first."""
    sock.sendall(b"\xc0\x00")
    packets = []
    while True:
        kind, body = read_packet(sock, timeout)
        if kind is None:
            return None
        if kind == 0xD0:
            return packets
        packets.append((kind, body))


def rss_kib(broker):
    """The broker process's resident memory (VmRSS) in KiB."""
    with open(f"/proc/{broker.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % broker.proc.pid)


def sanitized(broker):
    """True for a backboned built with AddressSanitizer: its quarantine of
    freed memory and its shadow memory make VmRSS say nothing about ours."""
    with open(f"/proc/{broker.proc.pid}/maps") as f:
        return "libasan" in f.read()
