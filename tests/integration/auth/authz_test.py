# SPDX-License-Identifier: GPL-3.0-or-later
"""Authorization with statements carried by JWTs (SPEC §5, §6)."""
import time
import unittest

import paho.mqtt.client as mqtt

from harness import (Broker, Client, main, make_jwt, pub, raw_publish, raw_session, read_packet,
                     sub_finish, sub_start, wait_for)

SECRET = "e2e-test-secret-0123456789"
JWT = {"name": "jwt", "settings": {"secret": SECRET}}


def token(statements, **claims):
    body = {"sub": "tester", "statements": statements}
    body.update(claims)
    return make_jwt(SECRET, body)


SENSOR = [
    {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["sensors/**/data"]},
    {"effect": "allow", "actions": ["mqtt:subscribe", "mqtt:read"], "resources": ["sensors/#"]},
    {"effect": "deny", "actions": ["mqtt:read"], "resources": ["sensors/secret/#"]},
    {"effect": "disallow", "actions": ["mqtt:publish"], "resources": ["sensors/locked/data"]},
]
ALL = [{"effect": "allow", "actions": ["*"], "resources": ["*"]}]


def client(b, statements, version=5, **kw):
    return Client(b, version=version, username="jwt", password=token(statements), **kw)


class Statements(unittest.TestCase):
    def test_publish_allowed_and_denied_v5(self):
        with Broker(modules=[JWT]) as b:
            watcher = client(b, ALL).connect()
            watcher.subscribe("sensors/#", 1)
            c = client(b, SENSOR).connect()
            results = {}

            def on_publish(cl, ud, mid, rc=None, props=None):
                results[mid] = rc
            c.c.on_publish = on_publish
            ok = c.publish("sensors/a/b/data", "1", qos=1)
            denied = c.publish("sensors/a/cmd", "2", qos=1)
            locked = c.publish("sensors/locked/data", "3", qos=1)
            msgs = watcher.wait_messages(1)
            time.sleep(0.3)
            self.assertEqual([m.topic for m in watcher.messages], ["sensors/a/b/data"])
            self.assertTrue(denied.is_published() and locked.is_published())
            self.assertIn("denied", b.read_log())

    def test_v311_publish_denied_is_acked_and_dropped(self):
        with Broker(modules=[JWT]) as b:
            watcher = client(b, ALL).connect()
            watcher.subscribe("#", 1)
            c = client(b, SENSOR, version=4).connect()
            info = c.publish("other/topic", "x", qos=1)
            self.assertTrue(info.is_published())
            time.sleep(0.3)
            self.assertEqual(watcher.messages, [])
            self.assertIsNone(c.disconnected)

    def test_suback_codes_per_filter(self):
        with Broker(modules=[JWT]) as b:
            for version, refused in ((5, 0x87), (4, 0x80)):
                c = client(b, SENSOR, version=version).connect()
                rc, mid = c.c.subscribe([("sensors/+/x", 1), ("other/#", 1), ("#", 0),
                                         ("sensors/#", 0)])
                self.assertTrue(wait_for(lambda: mid in c.subacks))
                codes = [g if isinstance(g, int) else g.value for g in c.subacks[mid]]
                self.assertEqual(codes, [1, refused, refused, 0])

    def test_read_checked_per_message_including_retained(self):
        with Broker(modules=[JWT]) as b:
            admin = client(b, ALL).connect()
            admin.publish("sensors/secret/x", "retained-secret", qos=1, retain=True)
            admin.publish("sensors/open/x", "retained-open", qos=1, retain=True)
            c = client(b, SENSOR).connect()
            c.subscribe("sensors/#", 1)
            admin.publish("sensors/secret/y", "live-secret", qos=1)
            admin.publish("sensors/open/y", "live-open", qos=1)
            c.wait_messages(2)
            time.sleep(0.3)
            self.assertEqual(sorted(m.payload for m in c.messages),
                             [b"live-open", b"retained-open"])

    def test_will_authorized_at_connect(self):
        with Broker(modules=[JWT]) as b:
            c = client(b, SENSOR, will={"topic": "not/allowed", "payload": "x"}).connect(
                expect_ok=False)
            self.assertEqual(c.connack[1], 135)

    def test_bad_tokens(self):
        with Broker(modules=[JWT]) as b:
            cases = {
                "wrong secret": make_jwt("other-secret", {"statements": ALL}),
                "alg none": make_jwt(SECRET, {"statements": ALL}, alg="none"),
                "expired": token(ALL, exp=int(time.time()) - 3600),
                "garbage": "not.a.jwt",
            }
            for name, tok in cases.items():
                c = Client(b, version=5, username="jwt", password=tok).connect(expect_ok=False)
                self.assertEqual(c.connack[1], 134, name)
            self.assertNotIn(cases["wrong secret"], b.read_log())

    def test_session_cut_when_token_expires(self):
        with Broker(modules=[JWT]) as b:
            c = Client(b, version=5, username="jwt",
                       password=token(ALL, exp=int(time.time()) + 2)).connect()
            self.assertTrue(wait_for(lambda: c.disconnected is not None, 6))

    def test_mosquitto_clients_with_jwt(self):
        with Broker(modules=[JWT]) as b:
            tok = token(SENSOR)
            s = sub_start(b, "sensors/#", "-u", "jwt", "-P", tok, "-V", "mqttv5")
            r = pub(b, "sensors/x/data", "ok", "-u", "jwt", "-P", tok, "-V", "mqttv5", "-q", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sub_finish(s)[1], ["sensors/x/data ok"])
            r = pub(b, "elsewhere", "no", "-u", "jwt", "-P", tok, "-V", "mqttv5", "-q", "1")
            self.assertIn("not authorized", (r.stderr + r.stdout).lower())


class TopicRules(unittest.TestCase):
    TOPICS = {"sensor-topics": {"patterns": [
        {"pattern": "sensors/**/data", "maxMessageSize": 16, "allowedQoS": [0, 1],
         "retain": False, "schema": {"type": "object", "required": ["value"]}}]}}

    def test_reason_codes(self):
        with Broker(modules=[JWT], topics=self.TOPICS) as b:
            watcher = client(b, ALL).connect()
            watcher.subscribe("sensors/#", 2)
            sock = raw_session(b, 5, "jwt", token(ALL))
            cases = [("sensors/a/data", '{"value": 1}', 1, False, 0),
                     ("sensors/a/data", '{"value": 1, "pad": "xxxxxxxx"}', 1, False, 0x95),
                     ("sensors/a/data", '{"value": 1}', 1, True, 0x9A),
                     ("sensors/a/data", '{"value": 1}', 2, False, 0x9B),
                     ("sensors/a/data", '{"other": 1}', 1, False, 0x99),
                     ("sensors/a/data", 'not json', 1, False, 0x99),
                     ("sensors/a/other", 'anything goes here, no rule', 1, False, 0)]
            for i, (topic, payload, qos, retain, expected) in enumerate(cases, start=1):
                raw_publish(sock, topic, payload, qos=qos, retain=retain, packet_id=i)
                kind, body = read_packet(sock)
                self.assertEqual(kind >> 4, 4 if qos == 1 else 5, (topic, payload))
                self.assertEqual(int.from_bytes(body[:2], "big"), i)
                code = body[2] if len(body) > 2 else 0
                self.assertEqual(code, expected, (topic, payload, qos, retain))
                if expected >= 0x80:
                    self.assertIn(b"sensor-topics", body)  # reason string names the rule
            watcher.wait_messages(2)
            time.sleep(0.3)
            self.assertEqual(len(watcher.messages), 2)


if __name__ == "__main__":
    main()
