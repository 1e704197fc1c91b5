# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile JSON end to end: nesting far deeper than anything the broker reads
(API bodies, the config file at start-up and on SIGHUP, PUBLISH payloads
checked against a JSON Schema) is refused with a reason, and the broker keeps
serving."""
import http.client
import json
import os
import subprocess
import tempfile
import unittest

from harness import (BACKBONED, Broker, main, raw_publish, raw_session, read_packet, wait_for,
                     wait_port)

ADMIN_TOKEN = "admin-token-for-the-adversarial-json-tests"
ENV = {"ADMIN_TOKEN": ADMIN_TOKEN}
MODULES = ["env", "admin", "client", "http-api"]
LIMIT = "nested deeper than 64 levels"
PAYLOAD_FORMAT_INVALID, NO_SUBSCRIBERS = 0x99, 0x10
# uniqueItems compares items recursively, along their whole depth.
UNIQUE_RULE = {"patterns": [{"pattern": "unique/#", "schema": {"uniqueItems": True}}]}
OBJECT_RULE = {"patterns": [{"pattern": "object/#", "schema": {"type": "object"}}]}


def deep(depth):
    return "[" * depth + "]" * depth


def request(port, method, path, body):
    """One admin request: (status, JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={
            "Authorization": "Bearer " + ADMIN_TOKEN, "X-Auth-Provider": "admin",
            "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


class DeepJson(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker(modules=MODULES, env=ENV, anonymous=[
            {"effect": "allow", "actions": ["mqtt:*"], "resources": ["**"]}],
            topics={"unique": UNIQUE_RULE, "object": OBJECT_RULE})
        cls.b.start()
        assert wait_port(cls.b.http_port), cls.b.read_log()

    @classmethod
    def tearDownClass(cls):
        rc = cls.b.stop()
        assert rc == 0, f"backboned exited with {rc}:\n" + cls.b.read_log()[-4000:]

    def assert_serving(self):
        self.assertTrue(self.b.alive(), self.b.read_log()[-4000:])
        code, body = request(self.b.http_port, "GET", "/api/clients", None)
        self.assertEqual(code, 200, body)

    def assert_refused(self, method, path, body):
        self.assertGreaterEqual(len(body), 40000)
        code, answer = request(self.b.http_port, method, path, body)
        self.assertEqual(code, 400, answer)
        self.assertEqual(answer["error"], "bad_request")
        self.assertIn(LIMIT, answer["message"])
        self.assert_serving()

    def test_deep_client_body(self):
        self.assert_refused("PUT", "/api/clients/deep", '{"statements": ' + deep(20000) + "}")

    def test_deep_topic_body(self):
        self.assert_refused("PUT", "/api/topics/deep", '{"patterns": ' + deep(20000) + "}")

    def test_deep_statement_inside_an_object(self):
        body = '{"statements": [{"effect": "allow", "actions": ' + deep(20000) + "}]}"
        self.assert_refused("PUT", "/api/clients/deep", body)

    def publish(self, topic, payload):
        """PUBACK's reason code and reason string."""
        s = raw_session(self.b, client_id=b"deep-" + topic.encode())
        try:
            raw_publish(s, topic, payload, qos=1)
            kind, ack = read_packet(s, timeout=20)
            self.assertEqual(kind, 0x40, f"PUBACK expected: {kind} {ack!r}")
            reason = ack[2] if len(ack) > 2 else 0
            # Properties: a one-byte length here, then the reason string (0x1F).
            props = ack[4:4 + ack[3]] if len(ack) > 3 else b""
            text = props[3:].decode() if props[:1] == b"\x1f" else ""
            return reason, text
        finally:
            s.close()

    def test_deep_payload_against_a_schema(self):
        item = deep(50000)
        reason, text = self.publish("unique/a", "[" + item + "," + item + "]")
        self.assertEqual(reason, PAYLOAD_FORMAT_INVALID)
        self.assertIn("payload is " + LIMIT, text)
        self.assertEqual(self.publish("object/a", deep(100000))[0], PAYLOAD_FORMAT_INVALID)
        self.assertIn(self.publish("unique/a", "[[1],[2]]"), [(0, ""), (NO_SUBSCRIBERS, "")])
        self.assert_serving()

    def test_sighup_with_a_deep_config_keeps_the_running_one(self):
        with open(self.b.config_path) as f:
            good = f.read()
        schema = '{"items": ' * 20000 + "{}" + "}" * 20000
        bad = good.replace('"topics": {', '"topics": {"deep": {"patterns": [{"pattern": "d", '
                           '"schema": ' + schema + "}]}, ", 1)
        self.assertNotEqual(bad, good)
        try:
            self.b.reload(text=bad)
            self.assertTrue(wait_for(lambda: "reload failed" in self.b.read_log(), timeout=10),
                            self.b.read_log()[-4000:])
            self.assertIn(LIMIT, self.b.read_log())
            self.assert_serving()
            self.assertEqual(self.publish("unique/a", "[1,1]")[0], PAYLOAD_FORMAT_INVALID)
        finally:
            with open(self.b.config_path, "w") as f:
                f.write(good)


class DeepConfig(unittest.TestCase):
    def run_with(self, text, *args):
        with tempfile.TemporaryDirectory(prefix="backbone-e2e-") as d:
            path = os.path.join(d, "backbone.json")
            with open(path, "w") as f:
                f.write(text)
            return subprocess.run([BACKBONED, "--config", path, *args], capture_output=True,
                                  text=True, timeout=60)

    def assert_refused(self, text):
        for args in (["--check-config"], []):
            r = self.run_with(text, *args)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertGreater(r.returncode, 0, "crashed: " + r.stderr[-2000:])
            self.assertIn("backbone.json: " + LIMIT, r.stderr)

    def test_deep_module_settings(self):
        self.assert_refused('{"modules": [{"name": "tcp", "settings": {"address": '
                            + deep(20000) + "}}]}")

    def test_deep_topic_schema(self):
        self.assert_refused('{"topics": {"t": {"patterns": [{"pattern": "a", "schema": '
                            + '{"items": ' * 20000 + "{}" + "}" * 20000 + "}]}}}")


if __name__ == "__main__":
    main()
