# SPDX-License-Identifier: GPL-3.0-or-later
"""The HTTP listener and the REST API end to end (SPEC §3, §5, §8): every
endpoint and error code with real HTTP requests, the OpenAPI document against
the routes served, JWTs and API clients logging in over MQTT, /api/message
through the authorization and topic-rule pipeline, sessions kicked, metrics
that move, audit lines without tokens, hostile input (bad request lines, huge
headers and bodies, a stalled client), HTTP/API switched off from the
environment, HTTPS and wss://."""
import base64
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from harness import (Broker, Client, connect_packet, encode_varint, http_request, main, pub,
                     raw_connect, raw_publish, raw_session, read_packet, sub_finish, sub_start,
                     wait_for, wait_port)

ADMIN_TOKEN = "admin-token-for-the-http-api-tests-0123"
SECRET = "jwt-secret-for-the-http-api-tests-0123456789"
ENV = {"ADMIN_TOKEN": ADMIN_TOKEN, "TOKEN_SECRET": SECRET}
MODULES = ["env", "admin", "jwt", "client", "ws", "http-api"]
MAX_BODY = 4096
REQUEST_TIMEOUT_MS = 1000
SMALL_RULE = {"patterns": [{"pattern": "limited/#", "maxMessageSize": 8}]}

NOT_AUTHORIZED, BAD_CREDENTIALS, ADMIN_ACTION = 0x87, 0x86, 0x98

# Every route the server answers, as the OpenAPI document must name it.
ROUTES = {
    "/health": {"get"}, "/ready": {"get"}, "/metrics": {"get"}, "/ws": {"get"},
    "/api/message": {"post"}, "/api/stats": {"get"}, "/api/openapi.json": {"get"},
    "/api/topics": {"get"}, "/api/topics/{name}": {"get", "put", "delete"},
    "/api/sessions": {"get"}, "/api/sessions/{clientId}": {"delete"},
    "/api/clients": {"get"}, "/api/clients/{name}": {"get", "put", "delete"},
    "/api/manage/jwt": {"post"},
}


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def request(port, method, path, body=None, token=ADMIN_TOKEN, provider="admin", headers=None,
            tls_context=None, timeout=5):
    """One HTTP request as the admin by default: (status, headers, JSON or text)."""
    return http_request(port, method, path, body, token=token, provider=provider,
                        headers=headers, timeout=timeout, tls_context=tls_context)


def raw_http(port, data, timeout=5):
    """Sends raw bytes; returns everything the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(raw):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    return int(m.group(1)) if m else None


def parse_metrics(text):
    """{(name, frozenset(labels)): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        name, _, labels = key.partition("{")
        pairs = frozenset(re.findall(r'(\w+)="([^"]*)"', labels))
        out[(name, pairs)] = float(value)
    return out


def metric(metrics, name, **labels):
    want = set(labels.items())
    return sum(v for (n, l), v in metrics.items() if n == name and want <= set(l))


def raw_subscribe(sock, topic, packet_id=1, qos=0):
    t = topic.encode()
    body = packet_id.to_bytes(2, "big") + b"\x00" + len(t).to_bytes(2, "big") + t + bytes([qos])
    sock.sendall(b"\x82" + encode_varint(len(body)) + body)
    kind, body = read_packet(sock)
    assert kind == 0x90, f"SUBACK expected, got {kind} {body!r}"
    return body[3]  # packet id (2), properties length (1, empty), reason


def puback_reason(sock):
    kind, body = read_packet(sock)
    assert kind == 0x40, f"PUBACK expected, got {kind} {body!r}"
    return body[2] if len(body) > 2 else 0


def ws_upgrade(port, path="/ws", subprotocol="mqtt", tls_context=None):
    """A WebSocket opening handshake; returns the raw response head."""
    key = b64(os.urandom(16))
    head = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    if subprotocol:
        head += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall((head + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


class HttpApi(unittest.TestCase):
    """One broker for the endpoints; tests use distinct topics and names."""

    tokens = []  # every token seen: none may appear in the log

    @classmethod
    def setUpClass(cls):
        cls.b = Broker(modules=MODULES, env=ENV, topics={"small": SMALL_RULE},
                       extra={"http": {"address": "127.0.0.1", "port": 0,
                                       "max_body_bytes": MAX_BODY,
                                       "request_timeout_ms": REQUEST_TIMEOUT_MS}})
        cls.b.config["http"]["port"] = cls.b.http_port
        with open(cls.b.config_path, "w") as f:
            json.dump(cls.b.config, f)
        cls.b.start()
        assert wait_port(cls.b.http_port), cls.b.read_log()
        cls.port = cls.b.http_port
        cls.tokens.append(ADMIN_TOKEN)

    @classmethod
    def tearDownClass(cls):
        rc = cls.b.stop()
        assert rc == 0, f"backboned exited with {rc}:\n" + cls.b.read_log()[-4000:]

    def api(self, method, path, body=None, **kw):
        return request(self.port, method, path, body, **kw)

    def assert_error(self, result, status, *needles):
        code, headers, body = result
        self.assertEqual(code, status, body)
        self.assertIsInstance(body, dict, body)
        self.assertEqual(set(body), {"error", "message"}, body)
        self.assertTrue(headers.get("content-type", "").startswith("application/json"))
        for n in needles:
            self.assertIn(n, body["message"])
        return body

    def mint(self, statements, **fields):
        code, _, body = self.api("POST", "/api/manage/jwt", {"statements": statements, **fields})
        self.assertEqual(code, 200, body)
        self.tokens.append(body["jwt"])
        return body["jwt"]

    def metrics(self):
        code, headers, text = self.api("GET", "/metrics", token=None, provider=None)
        self.assertEqual(code, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain"))
        return parse_metrics(text)

    # --- health, readiness, errors of the listener ---

    def test_health_and_ready(self):
        self.assertEqual(self.api("GET", "/health", token=None, provider=None)[::2],
                         (200, {"status": "ok"}))
        self.assertEqual(self.api("GET", "/ready", token=None, provider=None)[::2],
                         (200, {"status": "ready"}))

    def test_unknown_path_and_wrong_method(self):
        self.assert_error(self.api("GET", "/nope"), 404, "/nope")
        self.assert_error(self.api("GET", "/api/nope"), 404)
        self.assert_error(self.api("GET", "/api/manage/other"), 404)
        for method, path, allow in (("POST", "/health", "GET"), ("DELETE", "/api/stats", "GET"),
                                    ("GET", "/api/message", "POST"),
                                    ("PATCH", "/api/clients/x", "GET, PUT, DELETE"),
                                    ("PUT", "/api/sessions/x", "GET, DELETE")):
            result = self.api(method, path, body="{}" if method != "GET" else None)
            self.assert_error(result, 405)
            self.assertEqual(result[1].get("allow"), allow, (method, path))
        # Methods the route serves but not on this resource: 405 from the module.
        for method, path, allow in (("DELETE", "/api/topics", "GET"),
                                    ("PUT", "/api/clients", "GET"),
                                    ("GET", "/api/sessions/someone", "DELETE"),
                                    ("DELETE", "/api/sessions", "GET")):
            result = self.api(method, path, body="{}" if method == "PUT" else None)
            self.assert_error(result, 405)
            self.assertEqual(result[1].get("allow"), allow, (method, path))

    def test_authentication_required(self):
        for path in ("/api/stats", "/api/openapi.json", "/api/clients", "/api/topics",
                     "/api/sessions"):
            self.assert_error(self.api("GET", path, token=None, provider=None), 401)
        self.assert_error(self.api("GET", "/api/stats", provider=None), 401)
        self.assert_error(self.api("GET", "/api/stats", token=None), 401)
        self.assert_error(self.api("GET", "/api/stats", token="wrong-token"), 401)
        self.assert_error(self.api("GET", "/api/stats", provider="no-such-provider"), 401)
        self.assert_error(self.api("GET", "/api/stats", token=None,
                                   headers={"Authorization": "Basic " + b64("admin:x")}), 401)
        self.assert_error(self.api("GET", "/api/stats", token="forged.jwt.token",
                                   provider="jwt"), 401)
        self.assert_error(self.api("POST", "/api/message", {"topic": "x"}, token=None), 401)
        # The admin token on the jwt provider is not a JWT.
        self.assert_error(self.api("GET", "/api/stats", provider="jwt"), 401)
        self.assertEqual(self.api("GET", "/api/stats")[0], 200)

    def test_management_actions_are_checked_per_resource(self):
        token = self.mint([
            {"effect": "allow", "actions": ["mgmt:get-client", "mgmt:put-client"],
             "resources": ["clients/team-*"]},
            {"effect": "allow", "actions": ["mgmt:list-topics"], "resources": ["topics"]},
            {"effect": "allow", "actions": ["mgmt:get-topic"], "resources": ["topics/small"]},
        ])

        def call(method, path, body=None):
            return self.api(method, path, body, token=token, provider="jwt")
        self.assertEqual(call("GET", "/api/clients/team-a")[0], 404)  # allowed, absent
        code, _, created = call("PUT", "/api/clients/team-a", {"statements": []})
        self.assertEqual(code, 201, created)
        self.tokens.append(created["token"])
        self.assertEqual(call("GET", "/api/topics")[0], 200)
        self.assertEqual(call("GET", "/api/topics/small")[0], 200)
        self.assertEqual(call("GET", "/api/openapi.json")[0], 200)  # authenticated only
        denied = [("GET", "/api/clients/other"), ("PUT", "/api/clients/other"),
                  ("DELETE", "/api/clients/team-a"), ("GET", "/api/clients"),
                  ("GET", "/api/topics/other"), ("PUT", "/api/topics/small"),
                  ("DELETE", "/api/topics/small"), ("GET", "/api/stats"),
                  ("GET", "/api/sessions"), ("DELETE", "/api/sessions/anyone"),
                  ("POST", "/api/manage/jwt")]
        for method, path in denied:
            body = {"statements": []} if method in ("PUT", "POST") else None
            self.assert_error(call(method, path, body), 403)
        log = self.b.read_log()
        self.assertIn('action=mgmt:delete-client target="clients/team-a" result=denied', log)
        self.assertIn('action=mgmt:list-sessions target="sessions" result=denied', log)
        self.assertIn('action=mgmt:put-client target="clients/team-a" result=created', log)
        self.assertRegex(log, r"audit: provider=jwt principal=\S+ peer=127\.0\.0\.1:\d+ "
                              r"action=mgmt:read-stats target=\"stats\" result=denied")

    def test_the_kernel_checks_the_declared_action_on_the_derived_resource(self):
        """A scope just too narrow: exactly mgmt:get-topic on topics/narrow-a."""
        for name in ("narrow-a", "narrow-b"):
            self.assertIn(self.api("PUT", "/api/topics/" + name,
                                   {"patterns": [{"pattern": name + "/#"}]})[0], (200, 201))
        token = self.mint([{"effect": "allow", "actions": ["mgmt:get-topic"],
                            "resources": ["topics/narrow-a"]}], sub="narrow")

        def call(method, path):
            return self.api(method, path, token=token, provider="jwt")
        before = self.metrics()
        code, _, body = call("GET", "/api/topics/narrow-a")
        self.assertEqual(code, 200, body)
        self.assertEqual(body["name"], "narrow-a")
        for method, path, action, resource in (
                ("GET", "/api/topics/narrow-b", "mgmt:get-topic", "topics/narrow-b"),
                ("GET", "/api/topics", "mgmt:list-topics", "topics"),
                ("GET", "/api/topics/", "mgmt:list-topics", "topics"),
                ("GET", "/api/topics/narrow-a/../narrow-b", "mgmt:get-topic",
                 "topics/narrow-a/../narrow-b"),
                ("GET", "/api/topics/narrow-a%2Fx", "mgmt:get-topic", "topics/narrow-a/x"),
                ("DELETE", "/api/topics/narrow-a", "mgmt:delete-topic", "topics/narrow-a")):
            body = self.assert_error(call(method, path), 403)
            self.assertEqual(body, {"error": "forbidden",
                                    "message": f"not allowed: {action} on {resource}"},
                             (method, path))
        self.assertEqual(self.api("GET", "/api/topics/narrow-a")[0], 200)  # not deleted
        after = self.metrics()
        self.assertEqual(metric(after, "backbone_authz_denials_total", action="mgmt:get-topic")
                         - metric(before, "backbone_authz_denials_total",
                                  action="mgmt:get-topic"), 3)
        self.assertIn('action=mgmt:delete-topic target="topics/narrow-a" result=denied',
                      self.b.read_log())
        for name in ("narrow-a", "narrow-b"):
            self.assertEqual(self.api("DELETE", "/api/topics/" + name)[0], 204)

    def test_openapi_security_and_actions_come_from_the_declarations(self):
        code, _, doc = self.api("GET", "/api/openapi.json")
        self.assertEqual(code, 200)
        paths = doc["paths"]
        for path, method, action in (
                ("/api/topics", "get", "mgmt:list-topics"),
                ("/api/topics/{name}", "delete", "mgmt:delete-topic"),
                ("/api/sessions/{clientId}", "delete", "mgmt:kick-session"),
                ("/api/stats", "get", "mgmt:read-stats"),
                ("/api/clients/{name}", "put", "mgmt:put-client"),
                ("/api/manage/jwt", "post", "mgmt:generate-jwt")):
            op = paths[path][method]
            self.assertTrue(op["description"].startswith(
                f"Requires the management action '{action}'."), (path, op["description"]))
            self.assertEqual(op["security"], [{"bearer": [], "provider": []}])
            self.assertEqual(set(op["responses"]) >= {"401", "403"}, True, (path, method))
        self.assertNotIn("management action", paths["/api/message"]["post"]["description"])

    # --- /api/manage/jwt ---

    def test_minted_jwt_logs_in_over_mqtt_with_its_statements(self):
        token = self.mint([{"effect": "allow",
                            "actions": ["mqtt:publish", "mqtt:subscribe", "mqtt:read"],
                            "resources": ["jwtzone/#"]}], sub="minted-user",
                          exp=int(time.time()) + 600)
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        self.assertEqual(payload["sub"], "minted-user")
        sub = sub_start(self.b, "jwtzone/#", "-u", "jwt", "-P", token, "-V", "mqttv5")
        r = pub(self.b, "jwtzone/a", "from-admin", "-u", "admin", "-P", ADMIN_TOKEN)
        self.assertEqual(r.returncode, 0, r.stderr)
        rc, lines = sub_finish(sub)
        sub.stdout.close()
        self.assertEqual((rc, lines), (0, ["jwtzone/a from-admin"]))
        # Exactly its statements: another topic is refused both ways.
        s = raw_session(self.b, 5, "jwt", token, client_id=b"minted-raw")
        try:
            self.assertEqual(raw_subscribe(s, "elsewhere/#"), NOT_AUTHORIZED)
            self.assertEqual(raw_subscribe(s, "jwtzone/x", packet_id=2), 0)
            raw_publish(s, "elsewhere/x", "no", qos=1, packet_id=3)
            self.assertEqual(puback_reason(s), NOT_AUTHORIZED)
            raw_publish(s, "jwtzone/x", "yes", qos=1, packet_id=4)
            kinds = set()
            for _ in range(2):  # our own message comes back and the PUBACK
                kind, body = read_packet(s)
                kinds.add(kind & 0xF0)
                if kind == 0x40:
                    self.assertEqual(body[2] if len(body) > 2 else 0, 0)
            self.assertEqual(kinds, {0x30, 0x40})
        finally:
            s.close()
        self.assertIn("as minted-user via jwt", self.b.read_log())

    def test_mint_errors(self):
        stmts = [{"effect": "allow", "actions": ["mqtt:read"], "resources": ["x"]}]
        self.assert_error(self.api("POST", "/api/manage/jwt", {}), 400, "statements")
        self.assert_error(self.api("POST", "/api/manage/jwt", {"statements": "all"}), 400,
                          "statements")
        self.assert_error(self.api("POST", "/api/manage/jwt",
                                   {"statements": [{"effect": "maybe", "actions": ["*"],
                                                    "resources": ["*"]}]}), 400, "statements")
        self.assert_error(self.api("POST", "/api/manage/jwt",
                                   {"statements": stmts, "exp": int(time.time()) - 10}), 400, "exp")
        self.assert_error(self.api("POST", "/api/manage/jwt",
                                   {"statements": stmts, "exp": "tomorrow"}), 400, "exp")
        self.assert_error(self.api("POST", "/api/manage/jwt", {"statements": stmts, "x": 1}),
                          400, "'x'")
        self.assert_error(self.api("POST", "/api/manage/jwt", "[1, 2"), 400)
        self.assert_error(self.api("POST", "/api/manage/jwt", [stmts]), 400)
        self.assert_error(self.api("POST", "/api/manage/jwt",
                                   b'{"statements": [], "sub": "\xff\xfe"}'), 400)

    # --- /api/message ---

    def test_message_delivered_with_qos_and_retain(self):
        watcher = Client(self.b, client_id="msg-watcher", username="admin",
                         password=ADMIN_TOKEN).connect()
        try:
            watcher.subscribe("msg/#", qos=2)
            data = b"bin\x00\xffary"
            code, _, body = self.api("POST", "/api/message",
                                     {"topic": "msg/one", "payload": b64(data), "qos": 1,
                                      "retain": True})
            self.assertEqual((code, body), (200, {"success": True}))
            code, _, body = self.api("POST", "/api/message", {"topic": "msg/two"})
            self.assertEqual(code, 200, body)
            msgs = watcher.wait_messages(2)
            got = {m.topic: m for m in msgs}
            self.assertEqual(got["msg/one"].payload, data)
            self.assertEqual(got["msg/one"].qos, 1)
            self.assertEqual(got["msg/two"].payload, b"")
            self.assertEqual(got["msg/two"].qos, 0)
        finally:
            watcher.disconnect()
        # Retained: a later subscriber gets it with the retain flag.
        late = Client(self.b, client_id="msg-late", username="admin",
                      password=ADMIN_TOKEN).connect()
        try:
            late.subscribe("msg/one", qos=1)
            m = late.wait_messages(1)[0]
            self.assertEqual((m.payload, m.retain, m.qos), (data, True, 1))
        finally:
            late.disconnect()
        self.assertEqual(self.api("POST", "/api/message",
                                  {"topic": "msg/one", "payload": "", "retain": True})[0], 200)

    def test_message_refused_by_statements_and_topic_rules(self):
        before = self.metrics()
        token = self.mint([{"effect": "allow", "actions": ["mqtt:publish"],
                            "resources": ["msgauth/allowed", "limited/#"]}])
        ok = self.api("POST", "/api/message", {"topic": "msgauth/allowed", "payload": b64("x")},
                      token=token, provider="jwt")
        self.assertEqual(ok[0], 200, ok)
        self.assert_error(self.api("POST", "/api/message",
                                   {"topic": "msgauth/other", "payload": b64("x")},
                                   token=token, provider="jwt"), 403, "mqtt:publish")
        body = self.assert_error(self.api("POST", "/api/message",
                                          {"topic": "limited/x", "payload": b64("123456789")},
                                          token=token, provider="jwt"), 422)
        self.assertEqual(body["error"], "rejected_by_topic_rule")
        self.assertIn("small", body["message"])
        self.assertEqual(self.api("POST", "/api/message",
                                  {"topic": "limited/x", "payload": b64("12345678")},
                                  token=token, provider="jwt")[0], 200)
        after = self.metrics()
        self.assertEqual(metric(after, "backbone_authz_denials_total", action="mqtt:publish")
                         - metric(before, "backbone_authz_denials_total", action="mqtt:publish"),
                         1)
        self.assertEqual(metric(after, "backbone_topic_rule_rejections_total", rule="small")
                         - metric(before, "backbone_topic_rule_rejections_total", rule="small"), 1)

    def test_message_bad_fields(self):
        cases = [({"payload": b64("x")}, "topic"), ({"topic": ""}, "topic"),
                 ({"topic": 5}, "topic"), ({"topic": "a/#"}, "topic"),
                 ({"topic": "a/+/b"}, "topic"),
                 ({"topic": "a", "payload": "not base64!"}, "payload"),
                 ({"topic": "a", "payload": 12}, "payload"),
                 ({"topic": "a", "qos": 3}, "qos"), ({"topic": "a", "qos": "1"}, "qos"),
                 ({"topic": "a", "qos": -1}, "qos"),
                 ({"topic": "a", "retain": "yes"}, "retain"),
                 ({"topic": "a", "extra": 1}, "extra")]
        for body, field in cases:
            result = self.api("POST", "/api/message", body)
            self.assert_error(result, 400, field)
            self.assertIn(f"'{field}'", result[2]["message"], body)
        self.assert_error(self.api("POST", "/api/message", "{\"topic\": "), 400, "JSON")
        self.assert_error(self.api("POST", "/api/message", "[]"), 400, "object")
        self.assert_error(self.api("POST", "/api/message", ""), 400)
        # Invalid UTF-8 inside a JSON string.
        self.assert_error(self.api("POST", "/api/message", b'{"topic": "bad\xc3\x28"}'), 400)

    # --- /api/clients ---

    def test_clients_lifecycle(self):
        name = "sensor-1"
        stmts = [{"effect": "allow", "actions": ["mqtt:publish", "mqtt:subscribe", "mqtt:read"],
                  "resources": ["clientzone/#"]}]
        self.assert_error(self.api("GET", f"/api/clients/{name}"), 404)
        code, _, created = self.api("PUT", f"/api/clients/{name}", {"statements": stmts})
        self.assertEqual(code, 201, created)
        self.assertEqual((created["name"], created["statements"]), (name, stmts))
        token = created["token"]
        self.tokens.append(token)
        self.assertGreaterEqual(len(token), 40)
        code, _, again = self.api("PUT", f"/api/clients/{name}", {"statements": stmts})
        self.assertEqual(code, 200, again)
        self.assertNotIn("token", again)
        code, _, got = self.api("GET", f"/api/clients/{name}")
        self.assertEqual(code, 200)
        self.assertEqual((got["name"], got["statements"]), (name, stmts))
        self.assertNotIn("token", json.dumps(got))
        code, _, listed = self.api("GET", "/api/clients")
        self.assertIn(name, [c["name"] for c in listed])
        self.assertNotIn(token, json.dumps(listed))

        # The token logs in as username=client, with the statements.
        r = pub(self.b, "clientzone/a", "hello", "-u", "client", "-P", token, "-q", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        s = raw_session(self.b, 5, "client", token, client_id=b"api-client-raw")
        raw_publish(s, "notclientzone/a", "no", qos=1)
        self.assertEqual(puback_reason(s), NOT_AUTHORIZED)

        # Rotation: the old token stops working (its session is cut), a new one does.
        code, _, rotated = self.api("PUT", f"/api/clients/{name}?rotate=true",
                                    {"statements": stmts})
        self.assertEqual(code, 200, rotated)
        new_token = rotated["token"]
        self.tokens.append(new_token)
        self.assertNotEqual(new_token, token)
        kind, _ = read_packet(s, timeout=3)
        self.assertIn(kind, (0xE0, None))
        s.close()
        self.assert_login_refused("client", token)

        # DELETE cuts the live session and the token is refused.
        s = raw_session(self.b, 5, "client", new_token, client_id=b"api-client-raw2")
        self.assertEqual(self.api("DELETE", f"/api/clients/{name}")[0], 204)
        kind, body = read_packet(s, timeout=3)
        self.assertIn(kind, (0xE0, None), body)
        if kind == 0xE0:
            self.assertGreaterEqual(body[0], 0x80)
        s.close()
        self.assert_login_refused("client", new_token)
        self.assert_error(self.api("GET", f"/api/clients/{name}"), 404)
        self.assert_error(self.api("DELETE", f"/api/clients/{name}"), 404)
        log = self.b.read_log()
        self.assertIn(f'action=mgmt:delete-client target="clients/{name}" result=ok', log)
        self.assertIn(f'target="clients/{name}" result=replaced, token rotated', log)

    def assert_login_refused(self, user, password):
        s = raw_connect(self.b)
        try:
            s.sendall(connect_packet(b"refused", version=5, username=user.encode(),
                                     password=password.encode()))
            kind, body = read_packet(s)
            self.assertEqual(kind, 0x20)
            self.assertEqual(body[1], BAD_CREDENTIALS)
        finally:
            s.close()

    def test_clients_bad_input(self):
        self.assert_error(self.api("PUT", "/api/clients/bad%20name", {"statements": []}), 400,
                          "name")
        self.assert_error(self.api("PUT", "/api/clients/ok-name", {}), 400, "statements")
        self.assert_error(self.api("PUT", "/api/clients/ok-name", {"statements": {}}), 400,
                          "statements")
        self.assert_error(self.api("PUT", "/api/clients/ok-name",
                                   {"statements": [{"effect": "allow", "actions": ["*"]}]}), 400)
        self.assert_error(self.api("PUT", "/api/clients/ok-name",
                                   {"statements": [], "token": "mine"}), 400, "token")
        self.assert_error(self.api("PUT", "/api/clients/ok-name", "nope"), 400)
        self.assert_error(self.api("GET", "/api/clients/ok-name"), 404)

    # --- /api/topics ---

    def test_topics_lifecycle(self):
        rule = {"patterns": [{"pattern": "ruled/#", "maxMessageSize": 3}]}
        self.assert_error(self.api("GET", "/api/topics/ruled"), 404)
        code, _, body = self.api("PUT", "/api/topics/ruled", rule)
        self.assertEqual(code, 201, body)
        self.assertEqual(self.api("GET", "/api/topics/ruled")[::2],
                         (200, {"name": "ruled", "spec": rule}))
        self.assertIn({"name": "ruled", "spec": rule}, self.api("GET", "/api/topics")[2])
        self.assertEqual(self.api("POST", "/api/message",
                                  {"topic": "ruled/a", "payload": b64("abcd")})[0], 422)
        # An invalid rule is refused with the reason; the old one stays.
        for bad, reason in (({"patterns": [{"pattern": "ruled/#", "allowedQoS": [7]}]},
                             "patterns[0].allowedQoS"),
                            ({"patterns": [{"pattern": "ruled/#", "schema": {"type": 12}}]},
                             "patterns[0].schema"),
                            ({"patterns": "ruled/#"}, "patterns")):
            self.assert_error(self.api("PUT", "/api/topics/ruled", bad), 400, "'ruled'", reason)
        self.assert_error(self.api("PUT", "/api/topics/ruled", {"rules": []}), 400, "rules")
        self.assert_error(self.api("PUT", "/api/topics/ruled", {}), 400, "patterns")
        self.assertEqual(self.api("GET", "/api/topics/ruled")[2]["spec"], rule)
        self.assertEqual(self.api("POST", "/api/message",
                                  {"topic": "ruled/a", "payload": b64("abcd")})[0], 422)
        wider = {"patterns": [{"pattern": "ruled/#", "maxMessageSize": 10}]}
        self.assertEqual(self.api("PUT", "/api/topics/ruled", wider)[0], 200)
        self.assertEqual(self.api("POST", "/api/message",
                                  {"topic": "ruled/a", "payload": b64("abcd")})[0], 200)
        self.assertEqual(self.api("DELETE", "/api/topics/ruled")[0], 204)
        self.assert_error(self.api("GET", "/api/topics/ruled"), 404)
        self.assert_error(self.api("DELETE", "/api/topics/ruled"), 404)
        self.assertEqual(self.api("POST", "/api/message",
                                  {"topic": "ruled/a", "payload": b64("x" * 50)})[0], 200)
        log = self.b.read_log()
        self.assertIn('action=mgmt:put-topic target="topics/ruled" result=created', log)
        self.assertIn('action=mgmt:put-topic target="topics/ruled" result=refused', log)
        self.assertIn('action=mgmt:delete-topic target="topics/ruled" result=ok', log)

    # --- /api/sessions, /api/stats ---

    def test_sessions_list_and_kick(self):
        s = raw_session(self.b, 5, "admin", ADMIN_TOKEN, client_id=b"kick-me")
        try:
            code, _, sessions = self.api("GET", "/api/sessions")
            self.assertEqual(code, 200)
            mine = [x for x in sessions if x["client_id"] == "kick-me"]
            self.assertEqual(len(mine), 1, sessions)
            self.assertTrue(mine[0]["connected"])
            self.assertEqual((mine[0]["provider"], mine[0]["protocol"]), ("admin", "5.0"))
            self.assertEqual(self.api("DELETE", "/api/sessions/kick-me")[0], 204)
            kind, body = read_packet(s, timeout=3)
            self.assertEqual((kind, body[:1]), (0xE0, bytes([ADMIN_ACTION])))
        finally:
            s.close()
        self.assertTrue(wait_for(lambda: "kick-me" not in
                                 [x["client_id"] for x in self.api("GET", "/api/sessions")[2]],
                                 3))
        self.assert_error(self.api("DELETE", "/api/sessions/kick-me"), 404)
        self.assert_error(self.api("DELETE", "/api/sessions/never-seen"), 404)
        self.assertIn('action=mgmt:kick-session target="sessions/kick-me" result=ok',
                      self.b.read_log())

    def test_paho_sees_the_kick(self):
        c = Client(self.b, client_id="kick-paho", username="admin",
                   password=ADMIN_TOKEN).connect()
        self.assertEqual(self.api("DELETE", "/api/sessions/kick-paho")[0], 204)
        self.assertTrue(wait_for(lambda: c.disconnected is not None, 3))
        self.assertEqual(int(getattr(c.disconnected, "value", c.disconnected)), ADMIN_ACTION)
        c.c.loop_stop()

    def test_stats(self):
        code, _, stats = self.api("GET", "/api/stats")
        self.assertEqual(code, 200)
        for key in ("connections", "sessions", "subscriptions", "retained", "messages", "bytes",
                    "transports", "providers", "uptime_s"):
            self.assertIn(key, stats)
        self.assertEqual(set(stats["messages"]) >= {"in", "out"}, True)
        self.assertEqual(set(stats["bytes"]) >= {"in", "out"}, True)

    # --- OpenAPI ---

    def test_openapi_lists_every_route(self):
        code, _, doc = self.api("GET", "/api/openapi.json")
        self.assertEqual(code, 200)
        self.assertTrue(doc["openapi"].startswith("3."))
        served = {p: {m for m in item if m in ("get", "put", "post", "delete", "patch")}
                  for p, item in doc["paths"].items()}
        self.assertEqual(served, ROUTES)
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method not in ROUTES.get(path, ()):
                    continue
                if path.startswith("/api/"):
                    self.assertIn("security", op, (path, method))
                    self.assertIn("401", op["responses"])
        self.assertIn("101", doc["paths"]["/ws"]["get"]["responses"])
        for ref in ("Unauthorized", "Forbidden", "BadRequest"):
            self.assertIn(ref, doc["components"]["responses"])
        # Every documented operation answers (no 404/405) on the real server.
        for path, methods in ROUTES.items():
            concrete = path.replace("{name}", "small").replace("{clientId}", "nobody")
            for method in methods:
                if path == "/ws":
                    status = status_of(ws_upgrade(self.port))
                    self.assertEqual(status, 101)
                    continue
                if method in ("put", "delete") and path != "/api/sessions/{clientId}":
                    continue  # exercised elsewhere; keep the shared rules intact
                status, _, answer = self.api(method.upper(), concrete,
                                             "{}" if method in ("put", "post") else None)
                self.assertNotEqual(status, 405, (method, concrete))
                if status == 404:  # the module's "no such ...", not the listener's
                    self.assertNotIn("no such resource", answer["message"], (method, concrete))

    # --- metrics ---

    def test_metrics_move(self):
        before = self.metrics()
        self.assertGreaterEqual(metric(before, "backbone_uptime_seconds"), 0)
        c = Client(self.b, client_id="metrics-tcp", username="admin",
                   password=ADMIN_TOKEN).connect()
        w = mqtt.Client(client_id="metrics-ws", protocol=mqtt.MQTTv311, transport="websockets")
        w.ws_set_options(path="/ws")
        w.username_pw_set("admin", ADMIN_TOKEN)
        connected = []
        w.on_connect = lambda *a: connected.append(a[3])
        w.connect("127.0.0.1", self.port, keepalive=30)
        w.loop_start()
        try:
            self.assertTrue(wait_for(lambda: connected, 5))
            self.assertEqual(connected, [0])
            bad = raw_connect(self.b)
            bad.sendall(connect_packet(b"metrics-bad", version=5, username=b"admin",
                                       password=b"wrong"))
            self.assertEqual(read_packet(bad)[1][1], BAD_CREDENTIALS)
            bad.close()
            s = raw_session(self.b, 5, "jwt", self.mint(
                [{"effect": "allow", "actions": ["mqtt:subscribe"], "resources": ["m/#"]}]),
                client_id=b"metrics-deny")
            raw_publish(s, "m/x", "no", qos=1)
            self.assertEqual(puback_reason(s), NOT_AUTHORIZED)
            self.assertEqual(raw_subscribe(s, "other/#", packet_id=2), NOT_AUTHORIZED)
            s.close()
            c.publish("metrics/x", "payload", qos=1)
            info = w.publish("metrics/y", "payload", qos=1)
            info.wait_for_publish(timeout=5)
            self.assertTrue(info.is_published())
            self.assertEqual(self.api("POST", "/api/message",
                                      {"topic": "limited/m", "payload": b64("x" * 20)})[0], 422)
            after = self.metrics()
        finally:
            w.disconnect()
            w.loop_stop()
            c.disconnect()

        def delta(name, **labels):
            return metric(after, name, **labels) - metric(before, name, **labels)
        self.assertGreaterEqual(metric(after, "backbone_transport_connections", transport="ws"), 1)
        self.assertGreaterEqual(metric(after, "backbone_transport_connections", transport="tcp"),
                                1)
        for t in ("tcp", "ws"):
            self.assertGreaterEqual(delta("backbone_transport_connections_total", transport=t), 1)
            self.assertGreaterEqual(delta("backbone_transport_messages_received_total",
                                          transport=t), 1)
            self.assertGreater(delta("backbone_transport_bytes_received_total", transport=t), 0)
            self.assertGreater(delta("backbone_transport_bytes_sent_total", transport=t), 0)
        self.assertGreaterEqual(delta("backbone_auth_logins_total", provider="admin",
                                      result="allow"), 2)
        self.assertGreaterEqual(delta("backbone_auth_logins_total", provider="admin",
                                      result="deny"), 1)
        self.assertGreaterEqual(delta("backbone_auth_logins_total", provider="jwt",
                                      result="allow"), 1)
        self.assertGreaterEqual(delta("backbone_auth_latency_seconds_bucket", provider="admin",
                                      le="+Inf"), 3)
        self.assertGreaterEqual(delta("backbone_auth_latency_seconds_count", provider="admin"), 3)
        self.assertGreaterEqual(delta("backbone_authz_denials_total", action="mqtt:publish"), 1)
        self.assertGreaterEqual(delta("backbone_authz_denials_total", action="mqtt:subscribe"), 1)
        self.assertEqual(delta("backbone_topic_rule_rejections_total", rule="small"), 1)
        # The ws gauge goes back down once the WebSocket client is gone.
        self.assertTrue(wait_for(lambda: metric(self.metrics(), "backbone_transport_connections",
                                                transport="ws") == 0, 3))

    # --- hostile input ---

    def test_malformed_request_line(self):
        for garbage in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + os.urandom(64),
                        b"GET /health HTTP/1.1\r\nBad Header Line\r\n\r\n"):
            out = raw_http(self.port, garbage, timeout=3)
            self.assertIn(status_of(out), (400, None), out[:200])
        out = raw_http(self.port, b"GARBAGE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(out), 404, out)  # an unknown method on an unknown path
        out = raw_http(self.port, b"BREW\x01 / HTTP/1.1\r\n\r\n")
        self.assertEqual(status_of(out), 400, out)
        self.assertIn(b'"error":"bad_request"', out)
        self.assertEqual(self.api("GET", "/health")[0], 200)

    def test_huge_header_gets_431(self):
        code, _, body = self.api("GET", "/health", headers={"X-Big": "a" * 20000})
        self.assertEqual(code, 431, body)
        out = raw_http(self.port, b"GET /health HTTP/1.1\r\nHost: x\r\n" +
                       b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(300)) + b"\r\n")
        self.assertEqual(status_of(out), 431)
        self.assertEqual(self.api("GET", "/health")[0], 200)

    def test_body_over_limit_gets_413(self):
        big = json.dumps({"topic": "x", "payload": b64(b"z" * MAX_BODY)})
        self.assert_error(self.api("POST", "/api/message", big), 413, str(MAX_BODY))
        # Announced by Content-Length, never sent.
        out = raw_http(self.port, b"POST /api/message HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 100000000\r\n\r\n{")
        self.assertEqual(status_of(out), 413)
        # Chunked, over the limit (authenticated: the body of an
        # unauthenticated /api request is never read, it gets 401).
        chunk = b"a" * 3000
        head = (b"POST /api/message HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                ADMIN_TOKEN.encode() + b"\r\nX-Auth-Provider: admin\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        out = raw_http(self.port, head + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 2 +
                       b"0\r\n\r\n")
        self.assertEqual(status_of(out), 413)
        # Just under the limit is fine.
        body = json.dumps({"topic": "under/limit", "payload": b64(b"z" * 2000)})
        self.assertLess(len(body), MAX_BODY)
        self.assertEqual(self.api("POST", "/api/message", body)[0], 200)

    def test_stalled_client_is_dropped_while_others_are_served(self):
        stalled = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            stalled.sendall(b"POST /api/message HTTP/1.1\r\nHost: x\r\nContent-Le")
            started = time.time()
            # Served meanwhile, promptly.
            for _ in range(5):
                t0 = time.time()
                self.assertEqual(self.api("GET", "/health")[0], 200)
                self.assertLess(time.time() - t0, 2)
            stalled.settimeout(5)
            try:
                rest = stalled.recv(4096)
                while rest and status_of(rest) is not None:
                    rest = stalled.recv(4096)  # a 408 may come first; then the close
            except ConnectionResetError:
                rest = b""
            elapsed = time.time() - started
            self.assertEqual(rest, b"")
            self.assertGreaterEqual(elapsed, REQUEST_TIMEOUT_MS / 1000 * 0.8)
            self.assertLess(elapsed, REQUEST_TIMEOUT_MS / 1000 + 2)
        finally:
            stalled.close()
        # A half-sent body is cut off the same way.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(b"POST /api/message HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            t0 = time.time()
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            self.assertLess(time.time() - t0, REQUEST_TIMEOUT_MS / 1000 + 2)
            self.assertNotEqual(status_of(data), 200)
        finally:
            s.close()

    def test_keep_alive_serves_several_requests(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            for path in ("/health", "/ready", "/nope", "/health"):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 404 if path == "/nope" else 200)
        finally:
            conn.close()

    def test_ws_route_refuses_plain_http_and_bad_subprotocols(self):
        code, headers, body = self.api("GET", "/ws", token=None, provider=None)
        self.assertEqual(code, 426, body)
        self.assertEqual(headers.get("upgrade", "").lower(), "websocket")
        self.assertEqual(status_of(ws_upgrade(self.port, subprotocol=None)), 400)
        self.assertEqual(status_of(ws_upgrade(self.port, subprotocol="wamp")), 400)
        self.assertEqual(status_of(ws_upgrade(self.port, subprotocol="mqttv3.1")), 101)
        self.assertEqual(status_of(ws_upgrade(self.port, subprotocol="chat, mqtt")), 101)
        # An upgrade on a plain route is refused.
        self.assertEqual(status_of(ws_upgrade(self.port, path="/health")), 400)
        self.assertEqual(status_of(ws_upgrade(self.port, path="/nowhere")), 404)

    # --- the log ---

    def test_zz_audit_lines_never_contain_tokens(self):
        self.api("GET", "/api/clients")
        self.api("GET", "/api/stats", token="a-wrong-token-that-must-not-be-logged")
        self.tokens.append("a-wrong-token-that-must-not-be-logged")
        log = self.b.read_log()
        self.assertRegex(log, r"audit: provider=admin principal=\"?admin\"? peer=127\.0\.0\.1:\d+ "
                              r"action=mgmt:generate-jwt target=\"[^\"]+\" result=ok")
        for token in self.tokens:
            self.assertNotIn(token, log)
            self.assertNotIn(token[:24], log)
        self.assertNotIn(SECRET, log)


class HttpSwitches(unittest.TestCase):
    """HTTP_ENABLED / API_ENABLED from the environment (env module first)."""

    def test_http_disabled(self):
        with Broker(modules=MODULES, env=dict(ENV, HTTP_ENABLED="false")) as b:
            time.sleep(0.3)
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", b.http_port), timeout=1).close()
            r = pub(b, "still/tcp", "x", "-u", "admin", "-P", ADMIN_TOKEN)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_api_disabled(self):
        with Broker(modules=MODULES, env=dict(ENV, API_ENABLED="false")) as b:
            self.assertTrue(wait_port(b.http_port))
            for method, path in (("GET", "/api/stats"), ("GET", "/api/openapi.json"),
                                 ("GET", "/api/clients"), ("POST", "/api/manage/jwt"),
                                 ("POST", "/api/message"), ("GET", "/api/sessions")):
                self.assertEqual(request(b.http_port, method, path, "{}")[0], 404, path)
            self.assertEqual(request(b.http_port, "GET", "/health")[0], 200)
            self.assertEqual(request(b.http_port, "GET", "/metrics")[0], 200)
            self.assertEqual(status_of(ws_upgrade(b.http_port)), 101)
            # MQTT over that WebSocket works.
            w = mqtt.Client(client_id="api-off-ws", protocol=mqtt.MQTTv5, transport="websockets")
            w.ws_set_options(path="/ws")
            w.username_pw_set("admin", ADMIN_TOKEN)
            got = []
            w.on_connect = lambda c, u, f, rc, p=None: got.append(rc)
            w.connect("127.0.0.1", b.http_port)
            w.loop_start()
            try:
                self.assertTrue(wait_for(lambda: got, 5))
                self.assertEqual(int(getattr(got[0], "value", got[0])), 0)
            finally:
                w.disconnect()
                w.loop_stop()


class Readiness(unittest.TestCase):
    def test_ready_is_503_while_a_module_is_not_ready(self):
        # An OpenID provider whose discovery URL never answers: the oidc
        # module stays not ready until its fetch times out.
        hang = socket.socket()
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/.well-known/openid-configuration"
        oidc = {"name": "oidc", "settings": {"discovery_url": url, "client_id": "x",
                                             "allow_http": True, "http_timeout_ms": 2500}}
        b = Broker(modules=["env", "admin", oidc, "http-api"], env=ENV)
        starter = threading.Thread(target=b.start)
        starter.start()
        try:
            self.assertTrue(wait_port(b.http_port))
            code, _, body = request(b.http_port, "GET", "/ready", token=None, provider=None)
            self.assertEqual(code, 503, body)
            self.assertEqual(body["status"], "not ready")
            self.assertIn("oidc", body["waiting"])
            self.assertEqual(request(b.http_port, "GET", "/health")[0], 200)
            starter.join(15)
            self.assertTrue(wait_for(lambda: request(b.http_port, "GET", "/ready")[0] == 200,
                                     10))
        finally:
            starter.join(15)
            hang.close()
            b.stop()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Https(unittest.TestCase):
    def test_https_and_wss(self):
        d = tempfile.mkdtemp(prefix="backbone-https-")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=server", cwd=d)
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
                cwd=d)
        ca = os.path.join(d, "ca.crt")
        b = Broker(modules=MODULES, env=ENV)
        b.config["http"].update(tls_cert=os.path.join(d, "server.crt"),
                                tls_key=os.path.join(d, "server.key"))
        with open(b.config_path, "w") as f:
            json.dump(b.config, f)
        with b:
            self.assertTrue(wait_port(b.http_port))
            ctx = ssl.create_default_context(cafile=ca)
            self.assertEqual(request(b.http_port, "GET", "/health", tls_context=ctx)[::2],
                             (200, {"status": "ok"}))
            code, _, stats = request(b.http_port, "GET", "/api/stats", tls_context=ctx)
            self.assertEqual(code, 200, stats)
            # Plain HTTP on the TLS port gets nowhere; the server carries on.
            self.assertIsNone(status_of(raw_http(b.http_port, b"GET /health HTTP/1.1\r\n\r\n",
                                                 timeout=3)))
            # wss:// MQTT with Paho, messages both ways with a TCP client.
            tcp = Client(b, client_id="https-tcp", username="admin",
                         password=ADMIN_TOKEN).connect()
            tcp.subscribe("secure/from-ws", 1)
            w = mqtt.Client(client_id="https-wss", protocol=mqtt.MQTTv5, transport="websockets")
            w.ws_set_options(path="/ws")
            w.tls_set(ca_certs=ca)
            w.username_pw_set("admin", ADMIN_TOKEN)
            events = {"connack": None, "suback": None, "messages": []}
            w.on_connect = lambda c, u, f, rc, p=None: events.__setitem__("connack", rc)
            w.on_subscribe = lambda c, u, mid, granted, p=None: events.__setitem__("suback", 1)
            w.on_message = lambda c, u, m: events["messages"].append(m)
            w.connect("127.0.0.1", b.http_port)
            w.loop_start()
            try:
                self.assertTrue(wait_for(lambda: events["connack"] is not None, 5))
                self.assertEqual(int(getattr(events["connack"], "value", events["connack"])), 0)
                w.subscribe("secure/to-ws", 1)
                self.assertTrue(wait_for(lambda: events["suback"], 5))
                tcp.publish("secure/to-ws", "over tcp", qos=1)
                self.assertTrue(wait_for(lambda: events["messages"], 5))
                self.assertEqual(events["messages"][0].payload, b"over tcp")
                w.publish("secure/from-ws", "over wss", qos=1).wait_for_publish(5)
                self.assertEqual(tcp.wait_messages(1)[0].payload, b"over wss")
            finally:
                w.disconnect()
                w.loop_stop()
                tcp.disconnect()


if __name__ == "__main__":
    main()
