# SPDX-License-Identifier: GPL-3.0-or-later
"""Tenant isolation (SPEC §6), tried as a hostile tenant would: a resumed
session carries nothing its new login may not read, client ids belong to their
principal, revoked credentials publish no will, a management caller grants only
what it holds, '#' does not reach '$' topics, every entry point checks topics
the same way, and sessions restored from the store stay under their
principal's statements. Each test failed on the code before its fix."""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import (ALLOW_ALL, Broker, Client, encode_varint, http_request, main,  # noqa: E402
                     make_jwt, raw_login, raw_ping, raw_publish, raw_session, read_packet,
                     rss_kib, sanitized, wait_for)

ADMIN_TOKEN = "admin-token-for-the-isolation-tests-0123"
SECRET = "jwt-secret-for-the-isolation-tests-0123456789"
ENV = {"ADMIN_TOKEN": ADMIN_TOKEN, "TOKEN_SECRET": SECRET}
MODULES = ["env", "admin", "jwt", "client", "http-api"]
NOT_AUTHORIZED_V5, NOT_AUTHORIZED_V3 = 0x87, 5


def allow(actions, resources):
    return {"effect": "allow", "actions": actions, "resources": resources}


def jwt(sub, *statements):
    return make_jwt(SECRET, {"sub": sub, "statements": list(statements)})


def subscribe_v4(sock, topic, qos=1, packet_id=1):
    t = topic.encode()
    body = packet_id.to_bytes(2, "big") + len(t).to_bytes(2, "big") + t + bytes([qos])
    sock.sendall(b"\x82" + encode_varint(len(body)) + body)
    kind, ack = read_packet(sock)
    assert kind == 0x90, (kind, ack)
    return ack[2]


def admin_publish(b, topic, payload, qos=1, retain=False):
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-u", "admin",
                        "-P", ADMIN_TOKEN, "-q", str(qos), "-t", topic, "-m", payload]
                       + (["-r"] if retain else []), capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr


class Api:
    def __init__(self, b):
        self.b = b

    def __call__(self, method, path, body=None, token=ADMIN_TOKEN, provider="admin"):
        return http_request(self.b.http_port, method, path, body, token=token, provider=provider)

    def sessions(self):
        code, _, body = self("GET", "/api/sessions")
        assert code == 200, body
        return {s["client_id"]: s for s in body}

    def wait_offline(self, client_id):
        assert wait_for(lambda: not self.sessions().get(client_id, {}).get("connected", True))

    def put_client(self, name, *statements):
        code, _, body = self("PUT", f"/api/clients/{name}", {"statements": list(statements)})
        assert code in (200, 201), body
        return body.get("token")


class TenantIsolation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker(modules=MODULES, env=ENV).start()
        assert wait_for(lambda: http_request(cls.b.http_port, "GET", "/health")[0] == 200)
        cls.api = Api(cls.b)

    @classmethod
    def tearDownClass(cls):
        assert cls.b.stop() == 0, cls.b.read_log()[-4000:]

    # Hole 1: the in-flight window followed the client id, not the login.
    def test_resumed_in_flight_messages_are_checked_against_the_new_login(self):
        wide = jwt("dev", allow(["mqtt:subscribe", "mqtt:read"], ["secret/#", "public/#"]))
        narrow = jwt("dev", allow(["mqtt:subscribe", "mqtt:read"], ["public/#"]))
        s, ack = raw_login(self.b, "dev-1", "jwt", wide, clean=False)
        self.assertEqual(ack[1], 0)
        self.assertEqual(subscribe_v4(s, "secret/#"), 1)
        admin_publish(self.b, "secret/x", "classified")
        kind, _ = read_packet(s)
        self.assertEqual(kind & 0xF0, 0x30)
        s.close()  # never acknowledged: in flight

        # The same login gets it again, DUP set (so the check below can fail).
        s, ack = raw_login(self.b, "dev-1", "jwt", wide, clean=False)
        self.assertEqual(ack[0] & 1, 1)
        packets = raw_ping(s)
        self.assertEqual([k for k, _ in packets], [0x3A], packets)
        self.assertIn(b"classified", packets[0][1])
        s.close()

        # A login that may not read secret/# gets nothing of it, now or later.
        s, ack = raw_login(self.b, "dev-1", "jwt", narrow, clean=False)
        self.assertEqual(ack[0] & 1, 1)
        self.assertEqual(raw_ping(s), [])
        s.close()
        s, _ = raw_login(self.b, "dev-1", "jwt", wide, clean=False)
        self.assertEqual(raw_ping(s), [], "the dropped message was released")
        s.close()

    # Hole 2: any principal could take over another's client id.
    def test_client_ids_belong_to_their_principal(self):
        pubsub = ["mqtt:publish", "mqtt:subscribe", "mqtt:read"]
        alice = jwt("alice", allow(pubsub, ["alice/#"]))
        bob = jwt("bob", allow(pubsub, ["bob/#"]))
        carol = jwt("carol", allow(["mqtt:connect"], ["shared-id"]), allow(pubsub, ["carol/#"]))
        a, ack = raw_login(self.b, "shared-id", "jwt", alice, clean=False)
        self.assertEqual(ack[1], 0)
        _, ack = raw_login(self.b, "shared-id", "jwt", bob)
        self.assertEqual(ack[1], NOT_AUTHORIZED_V3)
        _, ack = raw_login(self.b, "shared-id", "jwt", bob, version=5)
        self.assertEqual(ack[1], NOT_AUTHORIZED_V5)
        self.assertEqual(raw_ping(a), [], "the owner's connection is untouched")

        # Persisted (offline) sessions are held too.
        a.close()
        self.api.wait_offline("shared-id")
        _, ack = raw_login(self.b, "shared-id", "jwt", bob, clean=False)
        self.assertEqual(ack[1], NOT_AUTHORIZED_V3)
        self.assertEqual(self.api.sessions()["shared-id"]["principal"], "alice")

        # mqtt:connect on the client id allows the takeover; the id is then carol's.
        c, ack = raw_login(self.b, "shared-id", "jwt", carol, clean=False)
        self.assertEqual((ack[0] & 1, ack[1]), (1, 0))
        self.assertEqual(self.api.sessions()["shared-id"]["principal"], "carol")
        _, ack = raw_login(self.b, "shared-id", "jwt", alice, clean=False)
        self.assertEqual(ack[1], NOT_AUTHORIZED_V3)
        self.assertEqual(raw_ping(c), [])
        # The same principal takes over its own session as MQTT says.
        c2, ack = raw_login(self.b, "shared-id", "jwt", carol, clean=False)
        self.assertEqual((ack[0] & 1, ack[1]), (1, 0))
        self.assertIsNone(raw_ping(c), "taken over")
        c2.close()

    # Hole 3: a revoked client's will was published under its old statements.
    def test_revocation_discards_the_will(self):
        token = self.api.put_client("willer", allow(["mqtt:publish"], ["wills/#"]))
        watcher = Client(self.b, "will-watcher", username="admin", password=ADMIN_TOKEN).connect()
        watcher.subscribe("wills/#")
        w = Client(self.b, "willer-1", version=4, username="client", password=token,
                   will={"topic": "wills/willer", "payload": "gone"}).connect()
        code, _, _ = self.api("DELETE", "/api/clients/willer")
        self.assertEqual(code, 204)
        self.assertTrue(wait_for(lambda: w.disconnected is not None))
        admin_publish(self.b, "wills/marker", "after", qos=0)
        watcher.wait_messages(1)
        self.assertEqual([m.topic for m in watcher.messages], ["wills/marker"])
        w.c.loop_stop()
        watcher.disconnect()

    def test_revocation_discards_a_delayed_will(self):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        token = self.api.put_client("delayed", allow(["mqtt:publish"], ["dwills/#"]))
        watcher = Client(self.b, "dwill-watcher", username="admin", password=ADMIN_TOKEN).connect()
        watcher.subscribe("dwills/#")
        will_props = Properties(PacketTypes.WILLMESSAGE)
        will_props.WillDelayInterval = 1
        connect_props = Properties(PacketTypes.CONNECT)
        connect_props.SessionExpiryInterval = 60
        w = Client(self.b, "delayed-1", username="client", password=token,
                   properties=connect_props,
                   will={"topic": "dwills/delayed", "payload": "gone",
                         "properties": will_props}).connect()
        w.kill()  # no DISCONNECT: the will waits for its delay
        self.api.wait_offline("delayed-1")
        self.assertEqual(self.api("DELETE", "/api/clients/delayed")[0], 204)
        self.assertTrue(wait_for(lambda: "will of 'delayed-1' discarded" in self.b.read_log()))
        time.sleep(2.5)  # past the delay and the broker's one-second tick: nothing comes
        admin_publish(self.b, "dwills/marker", "after", qos=0)
        watcher.wait_messages(1)
        self.assertEqual([m.topic for m in watcher.messages], ["dwills/marker"])
        watcher.disconnect()

    # Hole 4: delegated administration escalated.
    def test_a_caller_grants_only_what_it_holds(self):
        token = self.api.put_client(
            "team-admin",
            allow(["mgmt:put-client"], ["clients/team-*"]),
            allow(["mgmt:put-topic", "mgmt:delete-topic"], ["topics/team-*"]),
            allow(["mgmt:generate-jwt"], ["jwt"]),
            allow(["mqtt:publish", "mqtt:subscribe", "mqtt:read"], ["team/#"]))

        def as_team(method, path, body=None):
            return self.api(method, path, body, token=token, provider="client")

        code, _, body = as_team("PUT", "/api/clients/team-x",
                                {"statements": [allow(["*"], ["**"])]})
        self.assertEqual(code, 403, body)
        self.assertIn("allow * on **", body["message"])
        self.assertEqual(self.api("GET", "/api/clients/team-x")[0], 404, "nothing was created")
        code, _, body = as_team("PUT", "/api/clients/team-x",
                                {"statements": [allow(["mgmt:list-clients"], ["clients"])]})
        self.assertEqual(code, 403, body)
        code, _, body = as_team("PUT", "/api/clients/team-x",
                                {"statements": [allow(["mqtt:publish"], ["team/x/#"]),
                                                {"effect": "deny", "actions": ["*"],
                                                 "resources": ["**"]}]})
        self.assertEqual(code, 201, body)

        # Topic rules bind every publisher on their patterns.
        code, _, body = as_team("PUT", "/api/topics/team-all",
                                {"patterns": [{"pattern": "**", "maxMessageSize": 0}]})
        self.assertEqual(code, 403, body)
        code, _, body = as_team("PUT", "/api/topics/team-all",
                                {"patterns": [{"matches": ["team/a", "other/#"],
                                               "maxMessageSize": 0}]})
        self.assertEqual(code, 403, body)
        self.assertIn("other/#", body["message"])
        code, _, body = as_team("PUT", "/api/topics/team-rule",
                                {"patterns": [{"pattern": "team/#", "maxMessageSize": 100}]})
        self.assertEqual(code, 201, body)
        # A rule an admin set on topics the caller may not publish to stays.
        code, _, body = self.api("PUT", "/api/topics/team-guard",
                                 {"patterns": [{"pattern": "**", "maxMessageSize": 65536}]})
        self.assertEqual(code, 201, body)
        self.assertEqual(as_team("DELETE", "/api/topics/team-guard")[0], 403)
        self.assertEqual(as_team("PUT", "/api/topics/team-guard",
                                 {"patterns": [{"pattern": "team/#"}]})[0], 403)
        self.assertEqual(self.api("DELETE", "/api/topics/team-guard")[0], 204)
        self.assertEqual(self.api("DELETE", "/api/topics/team-rule")[0], 204)

        code, _, body = as_team("POST", "/api/manage/jwt", {"statements": [allow(["*"], ["**"])]})
        self.assertEqual(code, 403, body)
        code, _, body = as_team("POST", "/api/manage/jwt",
                                {"statements": [allow(["mqtt:publish"], ["team/a"])]})
        self.assertEqual(code, 200, body)
        self.assertIn("audit: provider=client principal=\"team-admin\"", self.b.read_log())

    # Hole 7: '#' matched '$SYS/...'; the HTTP API took topics MQTT refuses.
    def test_hash_does_not_reach_dollar_topics(self):
        tenant = jwt("tenant", allow(["mqtt:publish", "mqtt:subscribe", "mqtt:read"], ["#"]))
        s = raw_session(self.b, version=5, username="jwt", password=tenant, client_id=b"tenant-1")
        raw_publish(s, "$SYS/broker/fake", b"x", qos=1, retain=True)
        kind, body = read_packet(s)
        self.assertEqual((kind, body[2]), (0x40, NOT_AUTHORIZED_V5))
        raw_publish(s, "tenant/ok", b"x", qos=1, packet_id=2)
        kind, body = read_packet(s)
        self.assertEqual(kind, 0x40)
        self.assertLess(body[2] if len(body) > 2 else 0, 0x80)
        s.close()

    def test_api_message_topics_pass_the_mqtt_limits(self):
        topic = "/".join(["level-%03d-%s" % (i, "x" * 6) for i in range(201)])
        self.assertGreater(len(topic), 3000)
        code, _, body = self.api("POST", "/api/message", {"topic": topic, "payload": ""})
        self.assertEqual(code, 400, body)
        self.assertIn("limit", body["message"])
        code, _, body = self.api("POST", "/api/message", {"topic": "a/+", "payload": ""})
        self.assertEqual(code, 400, body)
        code, _, body = self.api("POST", "/api/message", {"topic": "fine/topic", "payload": ""})
        self.assertEqual(code, 200, body)


class SlowReaders(unittest.TestCase):
    def test_a_client_that_never_reads_is_not_read(self):
        """PINGREQs (or QoS 1 PUBLISHes) from a client that never reads its
        answers made the broker buffer every answer: memory grew with what
        the client sent until the slow-consumer timeout cut it."""
        with Broker(anonymous=ALLOW_ALL) as b:
            s, _ = raw_login(b, "never-reads")
            s.settimeout(0.2)
            baseline = rss_kib(b)
            flood = b"\xc0\x00" * 32768
            sent = 0
            deadline = time.time() + 3
            while time.time() < deadline:
                try:
                    sent += s.send(flood)
                except socket.timeout:
                    pass
            grown = rss_kib(b) - baseline
            s.close()
            # Once its socket and the transport's buffer (1 MiB) are full,
            # nothing more is read: a few MiB at most.
            self.assertLess(sent, 16 * 1024 * 1024, "the broker kept reading")
            if not sanitized(b):
                self.assertLess(grown, 8 * 1024, f"VmRSS grew {grown} KiB")


class RestoredSessions(unittest.TestCase):
    """Hole 8: sessions restored from the store delivered without a read check
    and were out of reach of revocations until their client reconnected."""

    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="backbone-isolation-")
        self.token = "config-client-token-0123456789abcdef"

    def tearDown(self):
        shutil.rmtree(self.state, ignore_errors=True)

    def broker(self, statements):
        client = {"name": "client", "settings": {"clients": {"dev": {
            "token_sha256": hashlib.sha256(self.token.encode()).hexdigest(),
            "statements": statements}}}}
        b = Broker(modules=["env", "admin", "jwt", client, "http-api"], env=ENV,
                   extra={"state_dir": self.state})
        b.start()
        assert wait_for(lambda: http_request(b.http_port, "GET", "/health")[0] == 200)
        return b, Api(b)

    def test_restored_sessions_stay_under_their_principal(self):
        b, api = self.broker([allow(["mqtt:subscribe", "mqtt:read"], ["data/#"])])
        s, ack = raw_login(b, "dev-1", "client", self.token, clean=False)
        self.assertEqual(ack[1], 0)
        self.assertEqual(subscribe_v4(s, "data/#"), 1)
        s.close()
        api.wait_offline("dev-1")
        self.assertEqual(b.stop(), 0)

        # Restarted with narrower statements for the same client: the restored
        # session is under them before any client connects.
        b, api = self.broker([allow(["mqtt:subscribe", "mqtt:read"], ["data/public/#"])])
        try:
            session = api.sessions()["dev-1"]
            self.assertEqual((session["provider"], session["principal"]), ("client", "dev"))
            self.assertEqual(session["subscriptions"], [], "data/# is no longer allowed")
            admin_publish(b, "data/secret/x", "classified")
            self.assertEqual(api.sessions()["dev-1"]["queued"], 0)
            # Another principal cannot take the restored client id.
            mallory = jwt("mallory", allow(["mqtt:*"], ["data/#"]))
            _, ack = raw_login(b, "dev-1", "jwt", mallory, clean=False)
            self.assertEqual(ack[1], NOT_AUTHORIZED_V3)
        finally:
            self.assertEqual(b.stop(), 0)

        # Removed from the config while the broker was down: its restored
        # session ends at start.
        client = {"name": "client", "settings": {"clients": {}}}
        b = Broker(modules=["env", "admin", "jwt", client, "http-api"], env=ENV,
                   extra={"state_dir": self.state})
        b.start()
        try:
            assert wait_for(lambda: http_request(b.http_port, "GET", "/health")[0] == 200)
            self.assertNotIn("dev-1", Api(b).sessions())
        finally:
            self.assertEqual(b.stop(), 0)


class ModuleLoading(unittest.TestCase):
    """Code others than the owner could replace never runs in the broker, and
    an installed binary never loads modules from the tree it was built in."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="backbone-modules-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.build = os.path.dirname(os.path.dirname(os.path.abspath(
            os.environ.get("BACKBONED", "build/bin/backboned"))))

    def run_broker(self, exe, config, *args):
        path = os.path.join(self.dir, "backbone.json")
        with open(path, "w") as f:
            json.dump(config, f)
        return subprocess.run([exe, "--config", path] + list(args), capture_output=True,
                              text=True, timeout=20)

    def test_a_writable_module_directory_is_refused(self):
        modules = os.path.join(self.dir, "modules")
        os.mkdir(modules)
        shutil.copy(os.path.join(self.build, "lib/backbone/modules/admin.so"), modules)
        os.chmod(modules, 0o777)
        exe = os.environ.get("BACKBONED", "build/bin/backboned")
        r = self.run_broker(exe, {"module_path": [modules], "modules": ["admin"]},
                            "--list-modules")
        self.assertIn("writable by its group or by others", r.stdout + r.stderr)
        os.chmod(modules, 0o755)
        r = self.run_broker(exe, {"module_path": [modules], "modules": ["admin"]},
                            "--list-modules")
        self.assertIn(os.path.join(modules, "admin.so"), r.stdout)
        self.assertNotIn("writable", r.stdout + r.stderr)

    def test_an_installed_binary_does_not_search_the_build_tree(self):
        bin_dir = os.path.join(self.dir, "bin")
        os.mkdir(bin_dir)
        exe = os.path.join(bin_dir, "backboned")
        shutil.copy(os.environ.get("BACKBONED", "build/bin/backboned"), exe)
        r = self.run_broker(exe, {}, "--list-modules")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(self.build, r.stdout)
        self.assertEqual(r.stdout.strip(), "")


if __name__ == "__main__":
    main()
