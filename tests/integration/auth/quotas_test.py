# SPDX-License-Identifier: GPL-3.0-or-later
"""Quotas per principal (SPEC §6): statements say what a tenant may do, quotas
how much. Each quota is tried both ways (within it, and one step beyond) from
API clients, JWT claims and the broker-wide defaults under limits.principal;
rates pause the publisher without losing a message; refusals are counted in
/metrics by quota and shown in /api/sessions."""
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import (Broker, Client, encode_varint, http_request, main, make_jwt,  # noqa: E402
                     raw_login, raw_ping, raw_publish, read_packet, wait_for)

ADMIN_TOKEN = "admin-token-for-the-quota-tests-0123456"
SECRET = "jwt-secret-for-the-quota-tests-0123456789"
ENV = {"ADMIN_TOKEN": ADMIN_TOKEN, "TOKEN_SECRET": SECRET}
MODULES = ["env", "admin", "jwt", "client", "http-api"]
QUOTA_EXCEEDED, NOT_AUTHORIZED_V3 = 0x97, 5
ALL = [{"effect": "allow", "actions": ["mqtt:*"], "resources": ["q/#"]}]


def subscribe(sock, filters, packet_id=1, version=5):
    body = packet_id.to_bytes(2, "big") + (b"\x00" if version == 5 else b"")
    for f in filters:
        body += len(f).to_bytes(2, "big") + f.encode() + b"\x01"
    sock.sendall(b"\x82" + encode_varint(len(body)) + body)
    kind, ack = read_packet(sock)
    assert kind == 0x90, (kind, ack)
    return list(ack[3:] if version == 5 else ack[2:])


def puback(sock):
    kind, body = read_packet(sock)
    assert kind == 0x40, (kind, body)
    return body[2] if len(body) > 2 else 0


def metric(b, quota):
    code, _, text = http_request(b.http_port, "GET", "/metrics")
    assert code == 200
    m = re.search(r'backbone_quota_exceeded_total\{quota="%s"\} (\d+)' % re.escape(quota), text)
    return int(m.group(1)) if m else 0


class Quotas(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker(modules=MODULES, env=ENV, limits={
            "max_retained_messages": 50,
            "principal": {"maxSubscriptions": 4}}).start()
        assert wait_for(lambda: http_request(cls.b.http_port, "GET", "/health")[0] == 200)

    @classmethod
    def tearDownClass(cls):
        assert cls.b.stop() == 0, cls.b.read_log()[-4000:]

    def api(self, method, path, body=None):
        return http_request(self.b.http_port, method, path, body, token=ADMIN_TOKEN,
                            provider="admin")

    def client(self, name, quotas, statements=ALL):
        code, _, body = self.api("PUT", f"/api/clients/{name}",
                                 {"statements": statements, "quotas": quotas})
        self.assertIn(code, (200, 201), body)
        return body.get("token")

    def test_max_connections(self):
        token = self.client("conn", {"maxConnections": 2})
        a, ack = raw_login(self.b, "conn-a", "client", token, version=5)
        self.assertEqual(ack[1], 0)
        b, ack = raw_login(self.b, "conn-b", "client", token, version=5)
        self.assertEqual(ack[1], 0)
        _, ack = raw_login(self.b, "conn-c", "client", token, version=5)
        self.assertEqual(ack[1], QUOTA_EXCEEDED)
        _, ack = raw_login(self.b, "conn-c", "client", token, version=4)
        self.assertEqual(ack[1], NOT_AUTHORIZED_V3)
        # Taking over one of its own connections is a reconnect, not a third.
        a2, ack = raw_login(self.b, "conn-a", "client", token, version=5)
        self.assertEqual(ack[1], 0)
        self.assertIsNone(raw_ping(a), "taken over")
        sessions = {s["client_id"]: s for s in self.api("GET", "/api/sessions")[2]}
        self.assertEqual(sessions["conn-b"]["quotas"]["limits"]["maxConnections"], 2)
        self.assertTrue(wait_for(lambda: {s["client_id"]: s for s in self.api(
            "GET", "/api/sessions")[2]}["conn-b"]["quotas"]["connections"] == 2))
        b.close()
        self.assertTrue(wait_for(lambda: raw_login(self.b, "conn-d", "client", token,
                                                   version=5)[1][1] == 0))
        self.assertGreater(metric(self.b, "maxConnections"), 0)
        a2.close()

    def test_max_subscriptions_default_claim_and_live_change(self):
        # The broker-wide default (limits.principal) applies to a token without quotas.
        plain = make_jwt(SECRET, {"sub": "plain", "statements": ALL})
        s, _ = raw_login(self.b, "subs-1", "jwt", plain, version=5)
        codes = subscribe(s, [f"q/{i}" for i in range(5)])
        self.assertEqual(codes, [1, 1, 1, 1, QUOTA_EXCEEDED])
        s.close()
        # A claim raises it for its principal.
        more = make_jwt(SECRET, {"sub": "more", "statements": ALL,
                                 "quotas": {"maxSubscriptions": 6}})
        s, _ = raw_login(self.b, "subs-2", "jwt", more, version=5)
        self.assertEqual(subscribe(s, [f"q/{i}" for i in range(7)]),
                         [1] * 6 + [QUOTA_EXCEEDED])
        s.close()
        # An API client's quotas change live.
        token = self.client("subs", {"maxSubscriptions": 1})
        s, _ = raw_login(self.b, "subs-3", "client", token, version=5)
        self.assertEqual(subscribe(s, ["q/a", "q/b"]), [1, QUOTA_EXCEEDED])
        self.client("subs", {"maxSubscriptions": 3})
        self.assertTrue(wait_for(lambda: subscribe(s, ["q/b"], packet_id=2) == [1]))
        self.assertEqual(subscribe(s, ["q/c", "q/d"], packet_id=3), [1, QUOTA_EXCEEDED])
        s.close()
        # A malformed quota is a 400 naming it, and changes nothing.
        code, _, body = self.api("PUT", "/api/clients/subs",
                                 {"statements": ALL, "quotas": {"maxSubscriptions": -1}})
        self.assertEqual(code, 400, body)
        self.assertIn("maxSubscriptions", body["message"])
        code, _, body = self.api("PUT", "/api/clients/subs",
                                 {"statements": ALL, "quotas": {"maxSubscribers": 1}})
        self.assertEqual(code, 400, body)
        self.assertIn("unknown quota", body["message"])

    def test_max_session_expiry_and_queued_messages(self):
        token = self.client("queue", {"maxSessionExpiry": 10, "maxQueuedMessages": 5})
        s, ack = raw_login(self.b, "queue-1", "client", token, version=5, clean=False,
                           session_expiry=3600)
        self.assertEqual(ack[1], 0)
        self.assertIn(b"\x11\x00\x00\x00\x0a", ack, "CONNACK names the lowered expiry")
        subscribe(s, ["q/queue"])
        s.close()
        self.assertTrue(wait_for(lambda: not {x["client_id"]: x for x in self.api(
            "GET", "/api/sessions")[2]}["queue-1"]["connected"]))
        admin = Client(self.b, "queue-admin", username="admin", password=ADMIN_TOKEN).connect()
        for i in range(12):
            admin.publish("q/queue", f"m{i}", qos=1)
        admin.disconnect()
        sessions = {x["client_id"]: x for x in self.api("GET", "/api/sessions")[2]}
        self.assertEqual(sessions["queue-1"]["queued"], 5)
        self.assertEqual(sessions["queue-1"]["expiry_interval_s"], 10)
        self.assertGreater(metric(self.b, "maxQueuedMessages"), 0)

    def test_retained_quotas_and_broker_cap(self):
        token = self.client("ret", {"maxRetained": 2, "maxRetainedBytes": 100})
        s, _ = raw_login(self.b, "ret-1", "client", token, version=5)
        raw_publish(s, "q/r/1", b"a", qos=1, retain=True, packet_id=1)
        self.assertLess(puback(s), 0x80)
        raw_publish(s, "q/r/2", b"b", qos=1, retain=True, packet_id=2)
        self.assertLess(puback(s), 0x80)
        raw_publish(s, "q/r/3", b"c", qos=1, retain=True, packet_id=3)
        self.assertEqual(puback(s), QUOTA_EXCEEDED)
        raw_publish(s, "q/r/1", b"replaced", qos=1, retain=True, packet_id=4)
        self.assertLess(puback(s), 0x80, "replacing its own is not one more")
        raw_publish(s, "q/r/2", b"x" * 200, qos=1, retain=True, packet_id=5)
        self.assertEqual(puback(s), QUOTA_EXCEEDED, "maxRetainedBytes")
        raw_publish(s, "q/r/2", b"", qos=1, retain=True, packet_id=6)  # clearing frees one
        self.assertLess(puback(s), 0x80)
        raw_publish(s, "q/r/3", b"c", qos=1, retain=True, packet_id=7)
        self.assertLess(puback(s), 0x80)
        # Non-retained messages are not limited by it.
        raw_publish(s, "q/r/4", b"live", qos=1, packet_id=8)
        self.assertLess(puback(s), 0x80)
        s.close()
        # The broker-wide cap holds whoever publishes (the admin too).
        admin = raw_login(self.b, "ret-admin", "admin", ADMIN_TOKEN, version=5)[0]
        refused = 0
        for i in range(60):
            raw_publish(admin, f"cap/{i}", b"x", qos=1, retain=True, packet_id=i + 1)
            refused += puback(admin) == QUOTA_EXCEEDED
        self.assertGreater(refused, 0)
        for i in range(60):
            raw_publish(admin, f"cap/{i}", b"", qos=1, retain=True, packet_id=i + 1)
            puback(admin)
        admin.close()
        self.assertGreater(metric(self.b, "maxRetained"), 0)
        self.assertGreater(metric(self.b, "limits.max_retained_messages"), 0)

    def test_http_publishes_count_against_the_same_quotas(self):
        token = self.client("http", {"publishRate": 1, "publishBurst": 3, "maxRetained": 1})

        def post(topic, retain=False):
            return http_request(self.b.http_port, "POST", "/api/message",
                                {"topic": topic, "payload": "eA==", "retain": retain},
                                token=token, provider="client")

        self.assertEqual(post("q/h/1", retain=True)[0], 200)
        code, _, body = post("q/h/2", retain=True)
        self.assertEqual((code, body["error"]), (429, "quota_exceeded"), body)
        self.assertIn("maxRetained", body["message"])
        codes = [post("q/h/live")[0] for _ in range(4)]
        self.assertIn(429, codes)  # the burst of 3 is spent
        self.assertEqual(codes[0], 200)
        self.assertGreater(metric(self.b, "publishRate"), 0)

    def test_publish_rate_pauses_without_losing(self):
        token = self.client("rate", {"publishRate": 40, "publishBurst": 10})
        sub = Client(self.b, "rate-sub", username="admin", password=ADMIN_TOKEN).connect()
        sub.subscribe("q/rate", qos=1)
        n = 70
        start = time.monotonic()
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.b.port), "-u",
                            "client", "-P", token, "-q", "1", "-t", "q/rate", "-l"],
                           input="\n".join(f"m{i}" for i in range(n)) + "\n",
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        sub.wait_messages(n, timeout=20)
        elapsed = time.monotonic() - start
        self.assertEqual([m.payload.decode() for m in sub.messages], [f"m{i}" for i in range(n)])
        # 60 messages beyond the burst of 10 at 40/s cannot take less than 1.5 s.
        self.assertGreater(elapsed, 1.4)
        self.assertGreater(metric(self.b, "publishRate"), 0)
        sub.disconnect()


class BrokerWideLimits(unittest.TestCase):
    def test_failed_logins_back_off_per_address(self):
        with Broker(modules=["env", "admin"], env=ENV, limits={
                "login_failures_before_backoff": 3, "login_backoff_max_ms": 2000}) as b:
            for _ in range(4):
                self.assertEqual(raw_login(b, "guess", "admin", "wrong")[1][1], 4)
            # Now even the right token waits (v5: server busy, v3.1.1: unavailable).
            self.assertEqual(raw_login(b, "guess", "admin", ADMIN_TOKEN, version=5)[1][1], 0x89)
            self.assertEqual(raw_login(b, "guess", "admin", ADMIN_TOKEN)[1][1], 3)
            self.assertIn("login refused for", b.read_log())
            # The back-off ends on its own, and a success clears the count.
            self.assertTrue(wait_for(
                lambda: raw_login(b, "guess", "admin", ADMIN_TOKEN)[1][1] == 0, timeout=5))
            self.assertEqual(raw_login(b, "guess", "admin", "wrong")[1][1], 4)
            self.assertEqual(raw_login(b, "guess", "admin", ADMIN_TOKEN)[1][1], 0)

    def test_offline_sessions_are_capped(self):
        with Broker(modules=["env", "admin", "http-api"], env=ENV,
                    limits={"max_offline_sessions": 2}) as b:
            def sessions():
                code, _, body = http_request(b.http_port, "GET", "/api/sessions",
                                             token=ADMIN_TOKEN, provider="admin")
                return {x["client_id"]: x["connected"] for x in body}

            for i in range(3):
                s, ack = raw_login(b, f"offline-{i}", "admin", ADMIN_TOKEN, clean=False)
                self.assertEqual(ack[1], 0)
                s.close()
                self.assertTrue(wait_for(lambda: not sessions().get(f"offline-{i}", False)))
            self.assertEqual(sessions(), {"offline-0": False, "offline-1": False})
            self.assertIn("limits.max_offline_sessions", b.read_log())

if __name__ == "__main__":
    main()
