# SPDX-License-Identifier: GPL-3.0-or-later
"""The redis cluster module (SPEC §10): brokers sharing one real Redis server
route each other's messages, share retained messages, hand a client over
from one broker to another, and ride out a Redis restart."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import ALLOW_ALL, Broker, Client  # noqa: E402
from redis_servers import Redis, redis_metrics  # noqa: E402


def kill9(broker):
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    broker.log.close()


def session_expiry(seconds):
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = seconds
    return p


def clustered(redis, anonymous=ALLOW_ALL, settings=None, http_api=False, **kw):
    s = {"address": f"127.0.0.1:{redis.port}", "prefix": "e2e"}
    s.update(settings or {})
    modules = [{"name": "redis", "settings": s}] + (["http-api"] if http_api else [])
    return Broker(anonymous=anonymous, modules=modules, **kw)


def v5_props(**values):
    p = Properties(PacketTypes.PUBLISH)
    for k, v in values.items():
        setattr(p, k, v)
    return p


class ClusterCase(unittest.TestCase):
    """Brokers on one real redis-server (no persistence)."""

    def setUp(self):
        self.redis = Redis().start()
        self.addCleanup(lambda: self.redis.stop())

    def started(self, broker):
        """Starts the broker; it must exit cleanly (0: no sanitizer report) at the end."""
        broker.start()
        self.addCleanup(lambda: self.assertEqual(broker.stop(), 0, broker.read_log()[-3000:]))
        return broker


class RedisCluster(ClusterCase):

    def test_metrics_show_the_links_and_the_frames(self):
        a = self.started(clustered(self.redis, http_api=True))
        b = self.started(clustered(self.redis, http_api=True))
        sub = Client(b, client_id="m-sub").connect()
        sub.subscribe("m/#")
        for i in range(5):
            harness.pub(a, "m/x", f"n{i}")
        sub.wait_messages(5)
        # Reported once a second by the sender thread.
        self.assertTrue(harness.wait_for(
            lambda: redis_metrics(a).get("backbone_redis_frames_sent_total", 0) >= 5
            and redis_metrics(b).get("backbone_redis_frames_received_total", 0) >= 5, 5),
            (redis_metrics(a), redis_metrics(b)))
        m = redis_metrics(a)
        self.assertEqual(m["backbone_redis_sender_connected"], 1)
        self.assertEqual(m["backbone_redis_receiver_connected"], 1)
        self.assertEqual(m["backbone_redis_frames_dropped_total"], 0)
        self.redis.stop()
        self.assertTrue(harness.wait_for(
            lambda: redis_metrics(a)["backbone_redis_receiver_connected"] == 0, 5))
        sub.disconnect()

    def brokers(self, n=2, **kw):
        out = []
        for _ in range(n):
            out.append(self.started(clustered(self.redis, **kw)))
        return out

    def test_messages_reach_subscribers_of_every_broker_with_their_properties(self):
        a, b = self.brokers()
        sub_a = Client(a, client_id="sub-a").connect()
        sub_a.subscribe("t/#", qos=1)
        sub_b = Client(b, client_id="sub-b").connect()
        sub_b.subscribe("t/#", qos=1)
        pub = Client(b, client_id="pub-b").connect()
        props = v5_props(ContentType="text/plain", UserProperty=[("k", "v")],
                         ResponseTopic="reply/here", CorrelationData=b"\x01\x02")
        info = pub.publish("t/one", b"hello", qos=1, properties=props)
        self.assertTrue(info.is_published())
        got = sub_a.wait_messages(1, timeout=5)
        self.assertEqual([(m.topic, m.payload, m.qos) for m in got], [("t/one", b"hello", 1)])
        p = got[0].properties
        self.assertEqual(p.ContentType, "text/plain")
        self.assertEqual(p.UserProperty, [("k", "v")])
        self.assertEqual(p.ResponseTopic, "reply/here")
        self.assertEqual(p.CorrelationData, b"\x01\x02")
        # The publisher's own broker delivers once, and the echo from Redis
        # never comes back to it.
        self.assertEqual(len(sub_b.wait_messages(1)), 1)
        pub.publish("t/two", b"second", qos=0)
        harness.wait_for(lambda: len(sub_a.messages) == 2 and len(sub_b.messages) == 2, 5)
        time.sleep(0.3)
        self.assertEqual([m.payload for m in sub_a.messages], [b"hello", b"second"])
        self.assertEqual([m.payload for m in sub_b.messages], [b"hello", b"second"])
        for c in (sub_a, sub_b, pub):
            c.disconnect()

    def test_an_idle_cluster_uses_no_cpu_after_a_burst(self):
        a, b = self.brokers()
        sub = Client(b, client_id="counter").connect()
        sub.subscribe("burst/#", qos=0)
        pubs = [Client(a, client_id=f"burst-{i}").connect() for i in range(4)]
        for n in range(2000):
            for p in pubs:
                p.publish(f"burst/{n % 7}", b"x" * 32, qos=0, wait=False)
        harness.wait_for(lambda: len(sub.messages) >= 8000, 20)
        time.sleep(0.5)

        def cpu_s(broker):
            with open(f"/proc/{broker.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        before = [cpu_s(x) for x in (a, b)]
        time.sleep(2.0)
        used = [cpu_s(x) - y for x, y in zip((a, b), before)]
        # Idle: a few wake-ups a second at most, never a spinning thread.
        self.assertLess(max(used), 0.2, used)
        for c in pubs + [sub]:
            c.disconnect()

    def test_each_broker_checks_its_readers_and_rules_hold_where_published(self):
        reader = [{"effect": "allow", "actions": ["mqtt:*"], "resources": ["**"]},
                  {"effect": "deny", "actions": ["mqtt:read"], "resources": ["secret/#"]}]
        topics = {"small": {"patterns": [{"pattern": "small/#", "maxMessageSize": 4}]}}
        a = self.started(clustered(self.redis, anonymous=reader))
        b = self.started(clustered(self.redis, topics=topics))
        sub = Client(a, client_id="reader").connect()
        sub.subscribe("#", qos=0)
        pub = Client(b, client_id="writer").connect()
        pub.publish("secret/x", b"hidden", qos=1)
        # Refused by b's rule (0x95); a has no rule, so only b can have stopped it.
        r = harness.pub(b, "small/x", "too long", "-q", "1", "-V", "mqttv5")
        self.assertIn("rejected", b.read_log(), r.stdout + r.stderr)
        pub.publish("open/x", b"visible", qos=1)
        sub.wait_messages(1)
        time.sleep(0.3)
        self.assertEqual([(m.topic, m.payload) for m in sub.messages], [("open/x", b"visible")])
        pub.disconnect()
        sub.disconnect()

    def test_retained_messages_are_shared_and_loaded_by_a_new_broker(self):
        a, b = self.brokers()
        harness.pub(a, "r/kept", "v1", "-r", "-q", "1")
        harness.pub(a, "r/gone", "x", "-r", "-q", "1")
        harness.pub(b, "r/gone", "", "-r", "-q", "1")  # cleared on another broker
        harness.wait_for(lambda: "r/kept" in self.redis.cli("HKEYS", "e2e:retained"), 5)
        self.assertEqual(self.redis.cli("HKEYS", "e2e:retained").split(), ["r/kept"])
        # b got the retained message over the channel.
        p = harness.sub_start(b, "r/#", count=1, timeout=5)
        rc, lines = harness.sub_finish(p)
        self.assertEqual((rc, lines), (0, ["r/kept v1"]))
        # A broker started later loads it from Redis before taking clients.
        (c,) = self.brokers(1)
        self.assertIn("1 retained message(s) loaded", c.read_log())
        p = harness.sub_start(c, "r/#", count=1, timeout=5)
        rc, lines = harness.sub_finish(p)
        self.assertEqual((rc, lines), (0, ["r/kept v1"]))

    def test_a_client_connecting_to_another_broker_takes_its_session_over(self):
        a, b = self.brokers()
        first = Client(a, client_id="roamer").connect()
        second = Client(b, client_id="roamer").connect()
        self.assertTrue(harness.wait_for(lambda: first.disconnected is not None, 5),
                        "the connection on the first broker stayed open")
        self.assertEqual(first.disconnected, 0x8E)  # session taken over
        self.assertIn("taken over by a connection to another broker", a.read_log())
        self.assertIsNone(second.disconnected)
        first.c.loop_stop()
        second.disconnect()

    def test_another_principal_does_not_take_a_client_id_through_another_broker(self):
        secret = "cluster-jwt-secret-0123456789abcdef0123"
        s = {"address": f"127.0.0.1:{self.redis.port}", "prefix": "e2e"}

        def jwt_broker():
            return self.started(Broker(modules=[{"name": "redis", "settings": s}, "env", "jwt"],
                                       env={"TOKEN_SECRET": secret}))

        a, b = jwt_broker(), jwt_broker()
        pubsub = {"effect": "allow", "actions": ["mqtt:*"], "resources": ["roam/#"]}
        alice = harness.make_jwt(secret, {"sub": "alice", "statements": [pubsub]})
        bob = harness.make_jwt(secret, {"sub": "bob", "statements": [pubsub]})
        carol = harness.make_jwt(secret, {"sub": "carol", "statements": [
            pubsub, {"effect": "allow", "actions": ["mqtt:connect"], "resources": ["roam-1"]}]})
        first = Client(a, client_id="roam-1", username="jwt", password=alice).connect()
        intruder = Client(b, client_id="roam-1", username="jwt", password=bob).connect()
        self.assertTrue(harness.wait_for(
            lambda: "client id 'roam-1' of 'alice' (jwt) kept: 'bob' (jwt)" in a.read_log(), 5))
        self.assertIsNone(first.disconnected)
        intruder.disconnect()
        # A principal allowed mqtt:connect on the id takes it over anywhere.
        allowed = Client(b, client_id="roam-1", username="jwt", password=carol).connect()
        self.assertTrue(harness.wait_for(lambda: first.disconnected is not None, 5))
        self.assertEqual(first.disconnected, 0x8E)
        first.c.loop_stop()
        allowed.disconnect()

    def test_brokers_ride_out_a_redis_restart(self):
        a, b = self.brokers()
        sub = Client(a, client_id="patient").connect()
        sub.subscribe("o/#", qos=0)
        self.redis.stop()
        # Without Redis each broker keeps serving its own clients.
        local = Client(a, client_id="local").connect()
        local.publish("o/local", b"still here", qos=1)
        self.assertEqual(sub.wait_messages(1)[0].payload, b"still here")
        self.redis = Redis(port=self.redis.port).start()
        pub = Client(b, client_id="remote").connect()

        def crossed():
            pub.publish("o/remote", b"across", qos=0)
            return harness.wait_for(lambda: any(m.payload == b"across" for m in sub.messages),
                                    0.3)
        self.assertTrue(harness.wait_for(crossed, 15), "no message crossed after the restart")
        self.assertIn("redis receiver: connected to", a.read_log())
        for c in (sub, local, pub):
            c.disconnect()

    def test_a_broker_waits_for_redis_before_taking_clients(self):
        self.redis.stop()
        b = clustered(self.redis)
        log = open(b.log_path, "w")
        proc = subprocess.Popen([harness.BACKBONED, "--config", b.config_path], stdout=log,
                                stderr=subprocess.STDOUT, env=b.env)
        try:
            time.sleep(1.0)
            self.assertFalse(harness.wait_port(b.port, 0.2), "clients accepted without Redis")
            self.redis = Redis(port=self.redis.port).start()
            self.assertTrue(harness.wait_port(b.port, 10), b.read_log())
            self.assertIn("[redis] ready", b.read_log())
        finally:
            proc.terminate()
            self.assertEqual(proc.wait(10), 0)
            log.close()

    def test_password_and_bad_settings(self):
        self.redis.stop()
        self.redis = Redis(password="s3cret-pass").start()
        pw = os.path.join(tempfile.mkdtemp(prefix="backbone-redis-pw-"), "password")
        with open(pw, "w") as f:
            f.write("s3cret-pass\n")
        a, b = self.brokers(settings={"password_file": pw})
        sub = Client(a, client_id="s").connect()
        sub.subscribe("p/#")
        harness.pub(b, "p/x", "authenticated")
        self.assertEqual(sub.wait_messages(1)[0].payload, b"authenticated")
        sub.disconnect()
        for settings, expected in [
            ({"address": "localhost"}, "setting 'address': expected \"host:port\""),
            ({"address": "127.0.0.1:99999"}, "port must be 1-65535"),
            ({"prefix": ""}, "setting 'prefix': expected 1-128 characters"),
            ({"timeout_ms": 0}, "setting 'timeout_ms': expected an integer from 1 to 60000"),
            ({"password_file": "/nonexistent/pw"},
             "setting 'password_file': /nonexistent/pw: no such file"),
            ({"colour": "blue"}, "setting 'colour': unknown key"),
        ]:
            bad = clustered(self.redis, settings=settings)
            r = subprocess.run([harness.BACKBONED, "--config", bad.config_path],
                               capture_output=True, text=True, timeout=20, env=bad.env)
            self.assertNotEqual(r.returncode, 0, settings)
            self.assertIn(expected, r.stdout + r.stderr, settings)
            self.assertNotIn("s3cret", r.stdout + r.stderr)


class AtLeastOnce(unittest.TestCase):
    """QoS 1 crosses brokers at least once (SPEC §10): through the Redis
    stream, acknowledged by the receiving broker only once durable there, so
    neither a Redis restart nor a broker killed with -9 loses an
    acknowledged message."""

    def setUp(self):
        # Redis writes every command to its append-only file before replying:
        # what it accepted survives its own kill -9.
        self.redis = Redis(persistent=True).start()
        self.addCleanup(lambda: self.redis.stop())

    def started(self, broker):
        broker.start()
        self.addCleanup(lambda: broker.proc.poll() is not None or
                        self.assertEqual(broker.stop(), 0, broker.read_log()[-3000:]))
        return broker

    def durable(self, name):
        return clustered(self.redis, http_api=True, extra={
            "state_dir": tempfile.mkdtemp(prefix=f"backbone-e2e-{name}-")})

    def persistent_subscriber(self, broker, expect_present=None):
        sub = Client(broker, client_id="durable-sub", clean=False,
                     properties=session_expiry(3600)).connect()
        if expect_present is not None:
            self.assertEqual(bool(sub.connack[0].get("session present")), expect_present)
        return sub

    def publish_numbered(self, pub, numbers, topic="alo/x"):
        for n in numbers:
            info = pub.publish(topic, str(n).encode(), qos=1)
            self.assertTrue(info.is_published(), f"message {n} not acknowledged")

    def test_messages_for_a_broker_killed_with_9_reach_its_persistent_session(self):
        a = self.started(self.durable("a"))
        b = self.started(self.durable("b"))
        sub = self.persistent_subscriber(b)
        sub.subscribe("alo/#", qos=1)
        pub = Client(a, client_id="alo-pub").connect()
        self.publish_numbered(pub, range(0, 100))
        kill9(b)
        sub.c.loop_stop()
        # Acknowledged by a while b is dead: they wait in the stream for b's group.
        self.publish_numbered(pub, range(100, 200))
        b.start()
        again = self.persistent_subscriber(b, expect_present=True)
        got = {int(m.payload) for m in sub.messages}

        def all_arrived():
            return got | {int(m.payload) for m in again.messages} >= set(range(200))
        self.assertTrue(harness.wait_for(all_arrived, 15),
                        sorted(set(range(200)) - got - {int(m.payload) for m in again.messages}))
        received = len(sub.messages) + len(again.messages)
        sys.stderr.write(f"kill -9 of the receiving broker: 200 sent, 0 lost, "
                         f"{received - 200} duplicate(s)\n")
        for c in (again, pub):
            c.disconnect()

    def test_qos1_crosses_brokers_through_a_redis_kill_and_restart(self):
        a = self.started(self.durable("a"))
        b = self.started(self.durable("b"))
        sub = self.persistent_subscriber(b)
        sub.subscribe("alo/#", qos=1)
        pub = Client(a, client_id="alo-pub").connect()
        self.publish_numbered(pub, range(0, 100))
        self.redis.kill()
        # Redis is away: a acknowledges and keeps the messages for it.
        self.publish_numbered(pub, range(100, 200))
        self.redis = self.redis.restarted()
        self.publish_numbered(pub, range(200, 300))
        self.assertTrue(harness.wait_for(
            lambda: {int(m.payload) for m in sub.messages} >= set(range(300)), 15),
            sorted(set(range(300)) - {int(m.payload) for m in sub.messages}))
        sys.stderr.write(f"Redis kill -9: 300 sent, 0 lost, {len(sub.messages) - 300} "
                         f"duplicate(s)\n")
        for c in (sub, pub):
            c.disconnect()

    def test_the_publishers_ack_waits_for_the_stream(self):
        a = self.started(clustered(self.redis, settings={"timeout_ms": 3000}))
        pub = Client(a, client_id="alo-pub").connect()
        for n in range(3):
            # Acknowledged means in the stream.
            self.assertTrue(pub.publish("alo/x", f"in-stream-{n}".encode(), qos=1).is_published())
            self.assertIn(f"in-stream-{n}", self.redis.cli("XRANGE", "e2e:stream", "-", "+"))
        # A Redis that does not answer: the PUBACK waits for it...
        self.redis.proc.send_signal(signal.SIGSTOP)
        try:
            info = pub.publish("alo/x", b"held", qos=1, wait=False)
            time.sleep(1.0)
            self.assertFalse(info.is_published(), "acknowledged before Redis took it")
        finally:
            self.redis.proc.send_signal(signal.SIGCONT)
        # ...and comes once the stream took it.
        info.wait_for_publish(timeout=5)
        self.assertTrue(info.is_published())
        self.assertIn("held", self.redis.cli("XRANGE", "e2e:stream", "-", "+"))
        # Local subscribers never waited for Redis.
        pub.disconnect()

    def test_garbage_in_the_modules_keys_is_skipped_and_said(self):
        self.redis.cli("SET", "e2e:retained", "not a hash")
        self.redis.cli("XADD", "e2e:stream", "*", "b", "short")
        # What brokers gone long ago left (no entry in the members set) is
        # removed; a broker seen lately keeps its group.
        self.redis.cli("XGROUP", "CREATE", "e2e:stream", "ghost", "$", "MKSTREAM")
        self.redis.cli("HSET", "e2e:shared:ghost", "g/x", "3")
        self.redis.cli("XGROUP", "CREATE", "e2e:stream", "recent", "$", "MKSTREAM")
        self.redis.cli("ZADD", "e2e:members", str(int(time.time() * 1000)), "recent")
        a = self.started(self.durable("a"))
        b = self.started(self.durable("b"))
        self.assertIn("cannot read the retained messages", a.read_log())
        sub = Client(b, client_id="g-sub").connect()
        sub.subscribe("g/#", qos=1)
        # Entries another writer put in the stream: skipped, acknowledged, counted.
        self.redis.cli("XADD", "e2e:stream", "*", "b", "x" * 16 + "\x01\x01\x01\x01junk")
        self.redis.cli("XADD", "e2e:stream", "*", "other", "field")
        pub = Client(a, client_id="g-pub").connect()
        pub.publish("g/ok", b"fine", qos=1)
        self.assertEqual(sub.wait_messages(1)[0].payload, b"fine")
        self.assertTrue(harness.wait_for(
            lambda: redis_metrics(b).get("backbone_redis_entries_skipped_total", 0) >= 2, 5),
            redis_metrics(b))
        self.assertTrue(harness.wait_for(
            lambda: redis_metrics(b).get("backbone_redis_stream_pending", 1) == 0, 5))
        self.assertTrue(harness.wait_for(
            lambda: redis_metrics(b).get("backbone_redis_members", 0) == 3, 5), redis_metrics(b))
        self.assertTrue(harness.wait_for(
            lambda: "ghost" not in self.redis.cli("XINFO", "GROUPS", "e2e:stream"), 5))
        self.assertEqual(self.redis.cli("EXISTS", "e2e:shared:ghost").strip(), "0")
        self.assertIn("recent", self.redis.cli("XINFO", "GROUPS", "e2e:stream"))
        self.assertIn("forgot broker 'ghost'", a.read_log() + b.read_log())
        for c in (sub, pub):
            c.disconnect()


class SharedAcrossBrokers(ClusterCase):
    """A shared subscription group spans the cluster (SPEC §10): each
    message goes to exactly one member, wherever it is connected."""

    def members_known(self, brokers, n):
        """Every broker has heard of `n` brokers with members (their hashes in Redis)."""
        def known():
            return sum(1 for k in self.redis.cli("KEYS", "e2e:shared:*").split()
                       if self.redis.cli("HLEN", k).strip() not in ("", "0")) >= n
        self.assertTrue(harness.wait_for(known, 5), self.redis.cli("KEYS", "*"))
        time.sleep(0.2)  # the frames that told the others travel the stream

    def run_group(self, strategy, publishers_on):
        settings = {"shared_strategy": strategy}
        brokers = [self.started(clustered(self.redis, settings=settings)) for _ in range(3)]
        members = [Client(b, client_id=f"member-{i}").connect() for i, b in enumerate(brokers)]
        for m in members:
            m.subscribe("$share/workers/jobs/#", qos=1)
        self.members_known(brokers, 3)
        pub = Client(brokers[publishers_on], client_id="producer").connect()
        for n in range(300):
            pub.publish("jobs/x", str(n).encode(), qos=1, wait=False)
        got = lambda: sum(len(m.messages) for m in members)
        harness.wait_for(lambda: got() >= 300, 15)
        time.sleep(0.5)  # a duplicate would arrive by then
        payloads = sorted(int(msg.payload) for m in members for msg in m.messages)
        self.assertEqual(payloads, list(range(300)), "lost or duplicated")
        for c in members + [pub]:
            c.disconnect()
        return [len(m.messages) for m in members]

    def test_each_message_reaches_one_member_of_the_cluster_round_robin(self):
        counts = self.run_group("round_robin", publishers_on=0)
        # Spread over the three brokers (round robin over brokers).
        self.assertTrue(all(c >= 80 for c in counts), counts)

    def test_local_strategy_prefers_the_publishers_broker(self):
        counts = self.run_group("local", publishers_on=1)
        self.assertEqual(counts, [0, 300, 0])

    def test_a_group_only_on_another_broker_gets_every_message_once(self):
        a = self.started(clustered(self.redis, http_api=True))
        b = self.started(clustered(self.redis, http_api=True))
        member = Client(b, client_id="lonely").connect()
        member.subscribe("$share/g/only/#", qos=1)
        plain = Client(b, client_id="plain").connect()
        plain.subscribe("only/#", qos=1)
        self.members_known([a, b], 1)
        pub = Client(a, client_id="p").connect()
        for n in range(50):
            pub.publish("only/t", str(n).encode(), qos=1)
        harness.wait_for(lambda: len(member.messages) >= 50 and len(plain.messages) >= 50, 10)
        time.sleep(0.3)
        self.assertEqual(sorted(int(m.payload) for m in member.messages), list(range(50)))
        self.assertEqual(len(plain.messages), 50)
        self.assertTrue(harness.wait_for(
            lambda: redis_metrics(a).get("backbone_redis_shared_chosen_total") == 50
            and redis_metrics(b).get("backbone_redis_shared_served_total") == 50, 5),
            (redis_metrics(a), redis_metrics(b)))
        for c in (member, plain, pub):
            c.disconnect()

    def test_bad_strategy_is_refused(self):
        bad = clustered(self.redis, settings={"shared_strategy": "nearest"})
        r = subprocess.run([harness.BACKBONED, "--config", bad.config_path],
                           capture_output=True, text=True, timeout=20, env=bad.env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("setting 'shared_strategy': expected \"local\", \"round_robin\" or "
                      "\"random\", got \"nearest\"", r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main()
