# SPDX-License-Identifier: GPL-3.0-or-later
"""The redis cluster module with Redis Sentinel: brokers find the master
through three real redis-sentinel processes (quorum 2), keep routing each
other's messages after the master is killed and a replica promoted, and
follow a failover whose old master stays up. Bad sentinel settings stop
start-up with one line."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import ALLOW_ALL, Broker, Client  # noqa: E402
from redis_servers import Redis, Sentinel, redis_metrics  # noqa: E402

NAME = "e2e-master"


def sentinel_broker(sentinels, settings=None):
    s = {"sentinels": [f"127.0.0.1:{x.port}" for x in sentinels], "master_name": NAME,
         "prefix": "e2e", "timeout_ms": 500}
    s.update(settings or {})
    return Broker(anonymous=ALLOW_ALL, modules=[{"name": "redis", "settings": s}, "http-api"])


class RedisSentinel(unittest.TestCase):
    def setUp(self):
        self.master = Redis().start()
        self.addCleanup(lambda: self.master.stop())
        self.replica = Redis(replicaof=self.master.port).start()
        self.addCleanup(lambda: self.replica.stop())
        self.sentinels = [Sentinel(self.master.port, name=NAME).start() for _ in range(3)]
        for s in self.sentinels:
            self.addCleanup(s.stop)
        # Before any failover can happen the replica must be in sync and every
        # sentinel must know the replica and the two other sentinels.
        self.assertTrue(harness.wait_for(
            lambda: "master_link_status:up" in self.replica.cli("INFO", "replication"), 15))

        def known():
            return all(s.cli("SENTINEL", "replicas", NAME).count(str(self.replica.port)) > 0
                       and s.cli("SENTINEL", "sentinels", NAME).count("127.0.0.1") == 2
                       for s in self.sentinels)
        self.assertTrue(harness.wait_for(known, 20, 0.2), "the sentinels did not find each other")

    def started(self, broker):
        broker.start()
        self.addCleanup(lambda: self.assertEqual(broker.stop(), 0, broker.read_log()[-3000:]))
        return broker

    def crossing(self, a, b, payload, timeout):
        """True once a message published on b reaches a subscriber on a (the
        publication is repeated: messages sent while the brokers reconnect
        are lost, at most once)."""
        sub = Client(a, client_id="sub-" + payload).connect()
        sub.subscribe("f/#", qos=0)
        pub = Client(b, client_id="pub-" + payload).connect()

        def crossed():
            pub.publish("f/x", payload.encode(), qos=0)
            return harness.wait_for(
                lambda: any(m.payload == payload.encode() for m in sub.messages), 0.3)
        ok = harness.wait_for(crossed, timeout)
        sub.disconnect()
        pub.disconnect()
        return ok

    def connected(self, *brokers):
        def up():
            return all(redis_metrics(x).get("backbone_redis_sender_connected") == 1
                       and redis_metrics(x).get("backbone_redis_receiver_connected") == 1
                       for x in brokers)
        return harness.wait_for(up, 10, 0.2)

    def failed_over(self, timeout=30):
        """True once every sentinel names the replica as the master."""
        return harness.wait_for(lambda: all(s.master_port_now() == self.replica.port
                                            for s in self.sentinels), timeout, 0.2)

    def test_brokers_follow_the_master_when_it_dies(self):
        a = self.started(sentinel_broker(self.sentinels))
        b = self.started(sentinel_broker(self.sentinels))
        harness.pub(a, "f/kept", "retained", "-r", "-q", "1")
        self.assertTrue(self.crossing(a, b, "before", 10), "no message crossed")
        self.assertTrue(self.connected(a, b))
        killed = time.time()
        self.master.kill()
        self.assertTrue(self.failed_over(), [s.cli("SENTINEL", "master", NAME) for s in self.sentinels])
        promoted = time.time()
        self.assertTrue(self.crossing(a, b, "after", 20), "no message crossed after the failover")
        print(f"replica promoted {promoted - killed:.1f}s after the kill, messages crossing again "
              f"{time.time() - killed:.1f}s after it", file=sys.stderr)
        self.assertTrue(self.crossing(b, a, "back", 10))
        self.assertTrue(self.connected(a, b), (redis_metrics(a), redis_metrics(b)))
        want = f"connected to 127.0.0.1:{self.replica.port} (master '{NAME}' via sentinel)"
        for x in (a, b):
            self.assertIn("redis sender: " + want, x.read_log())
            self.assertIn("redis receiver: " + want, x.read_log())
        # The retained message was replicated before the failover.
        self.assertIn("f/kept", self.replica.cli("HKEYS", "e2e:retained"))

    def test_brokers_leave_an_old_master_that_stays_up(self):
        a = self.started(sentinel_broker(self.sentinels))
        b = self.started(sentinel_broker(self.sentinels))
        self.assertTrue(self.crossing(a, b, "before", 10), "no message crossed")
        # A failover the old master survives: the sentinels demote it only
        # some seconds later; the brokers must not wait for that.
        started = time.time()
        self.assertIn("OK", self.sentinels[0].cli("SENTINEL", "failover", NAME))
        self.assertTrue(self.failed_over())
        self.assertTrue(self.crossing(a, b, "after", 20), "no message crossed after the failover")
        for x in (a, b):
            self.assertTrue(harness.wait_for(
                lambda: f"redis sender: connected to 127.0.0.1:{self.replica.port}" in x.read_log()
                and f"redis receiver: connected to 127.0.0.1:{self.replica.port}" in x.read_log(),
                10), x.read_log()[-3000:])
            self.assertIn(f"master '{NAME}' moved from 127.0.0.1:{self.master.port} to "
                          f"127.0.0.1:{self.replica.port}", x.read_log())
        self.assertTrue(self.connected(a, b))
        # The brokers talk to the new master only.
        clients = [c for c in self.master.cli("CLIENT", "LIST").splitlines()
                   if "name=sentinel-" not in c and "cmd=client|list" not in c]
        self.assertEqual(clients, [])
        print(f"followed the failover in {time.time() - started:.1f}s", file=sys.stderr)

    def test_no_acknowledged_message_is_lost_when_the_master_dies_mid_traffic(self):
        # wait_replicas: a publisher is acknowledged once the replica has its message.
        settings = {"wait_replicas": 1}
        a = self.started(sentinel_broker(self.sentinels, settings))
        b = self.started(sentinel_broker(self.sentinels, settings))
        self.assertTrue(self.crossing(a, b, "before", 10), "no message crossed")
        sub = Client(a, client_id="failover-sub").connect()
        sub.subscribe("m/#", qos=1)
        time.sleep(0.3)  # the subscription is in place
        pub = Client(b, client_id="failover-pub").connect()
        sent = []
        for n in range(400):
            sent.append((n, pub.publish("m/x", str(n).encode(), qos=1, wait=False)))
            if n == 150:
                self.master.kill()
            time.sleep(0.005)
        self.assertTrue(self.failed_over())
        self.assertTrue(harness.wait_for(lambda: all(i.is_published() for _, i in sent), 30))
        acked = {n for n, i in sent if i.is_published()}
        got = lambda: {int(m.payload) for m in sub.messages}
        harness.wait_for(lambda: acked <= got(), 30)
        print(f"master killed mid-traffic: {len(acked)} acknowledged, "
              f"{len(acked - got())} lost, {len(sub.messages) - len(got())} duplicate(s)",
              file=sys.stderr)
        self.assertEqual(sorted(acked - got()), [])
        self.assertEqual(redis_metrics(b).get("backbone_redis_unreplicated_batches_total"), 0)
        sub.disconnect()
        pub.disconnect()

    def test_wait_replicas_holds_the_ack_until_replicas_have_it(self):
        # Two replicas wanted, one exists: each batch waits half of timeout_ms
        # (500) for WAIT.
        a = self.started(sentinel_broker(self.sentinels, {"wait_replicas": 2}))
        pub = Client(a, client_id="wait-pub").connect()
        started = time.monotonic()
        self.assertTrue(pub.publish("w/x", b"1", qos=1).is_published())
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        self.assertTrue(harness.wait_for(
            lambda: redis_metrics(a).get("backbone_redis_unreplicated_batches_total", 0) >= 1, 5))
        self.assertIn("replica(s) within 250 ms (2 wanted)", a.read_log())
        self.assertNotIn("redis sender: lost", a.read_log())  # WAIT answered in time
        pub.disconnect()


class SentinelSettings(unittest.TestCase):
    def test_bad_settings_stop_start_up_with_one_line(self):
        for settings, expected in [
            ({"sentinels": ["127.0.0.1:26379"], "address": "127.0.0.1:6379"},
             "setting 'address': not with 'sentinels'"),
            ({"sentinels": []}, "setting 'sentinels': must not be empty"),
            ({"sentinels": ["127.0.0.1:26379", "sentinel-b"]},
             "setting 'sentinels[1]': expected \"host:port\", got \"sentinel-b\""),
            ({"sentinels": ["127.0.0.1:0"]}, "setting 'sentinels[0]': port must be 1-65535"),
            ({"sentinels": [f"h{i}:1" for i in range(17)]}, "setting 'sentinels': expected 1-16"),
            ({"sentinels": "127.0.0.1:26379"}, "setting 'sentinels': expected an array of strings"),
            ({"sentinels": ["127.0.0.1:1"], "master_name": ""},
             "setting 'master_name': expected a non-empty string"),
            ({"sentinels": ["127.0.0.1:1"], "sentinel_password_file": "/nonexistent/pw"},
             "setting 'sentinel_password_file': /nonexistent/pw: no such file"),
        ]:
            s = {"master_name": NAME, "prefix": "e2e"}
            s.update(settings)
            bad = Broker(anonymous=ALLOW_ALL, modules=[{"name": "redis", "settings": s}])
            r = subprocess.run([harness.BACKBONED, "--config", bad.config_path],
                               capture_output=True, text=True, timeout=20, env=bad.env)
            self.assertNotEqual(r.returncode, 0, settings)
            self.assertIn(expected, r.stdout + r.stderr, settings)
        for settings, expected in [
            ({"master_name": NAME}, "setting 'master_name': needs 'sentinels'"),
            ({"sentinel_password_file": "/x"}, "setting 'sentinel_password_file': needs 'sentinels'"),
        ]:
            bad = Broker(anonymous=ALLOW_ALL, modules=[{"name": "redis", "settings": settings}])
            r = subprocess.run([harness.BACKBONED, "--config", bad.config_path],
                               capture_output=True, text=True, timeout=20, env=bad.env)
            self.assertNotEqual(r.returncode, 0, settings)
            self.assertIn(expected, r.stdout + r.stderr, settings)


if __name__ == "__main__":
    harness.main()
