# SPDX-License-Identifier: GPL-3.0-or-later
"""Publish/subscribe with mosquitto_pub/sub and Paho: QoS 0/1/2, retained,
wildcards and $-topics, in MQTT 3.1.1 and 5.0."""
import time
import unittest

from harness import ALLOW_ALL, Broker, Client, main, pub, sub_finish, sub_start, wait_for


class MosquittoClients(unittest.TestCase):
    def test_qos_levels_both_versions(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            for version in ("mqttv311", "mqttv5", "mqttv31"):
                for qos in ("0", "1", "2"):
                    s = sub_start(b, "a/+/c", "-V", version, "-q", qos)
                    r = pub(b, "a/b/c", f"{version}-{qos}", "-V", version, "-q", qos)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    rc, lines = sub_finish(s)
                    self.assertEqual(rc, 0)
                    self.assertEqual(lines, [f"a/b/c {version}-{qos}"])

    def test_retained(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            self.assertEqual(pub(b, "r/1", "one", "-r", "-q", "1").returncode, 0)
            self.assertEqual(pub(b, "r/2", "two", "-r").returncode, 0)
            s = sub_start(b, "r/#", count=2)
            rc, lines = sub_finish(s)
            self.assertEqual(sorted(lines), ["r/1 one", "r/2 two"])
            # An empty retained message clears it.
            self.assertEqual(pub(b, "r/1", "", "-r").returncode, 0)
            s = sub_start(b, "r/#", count=1)
            self.assertEqual(sub_finish(s)[1], ["r/2 two"])


class PahoClients(unittest.TestCase):
    def test_wildcards_and_dollar_topics(self):
        with Broker(anonymous=ALLOW_ALL, limits={"sys_interval_s": 0}) as b:
            c = Client(b, version=4).connect()
            c.subscribe("#", 0)
            c.subscribe("+/x", 0)
            p = Client(b, version=4).connect()
            p.publish("$private/x", "hidden", qos=1)
            p.publish("a/x", "visible", qos=1)
            msgs = c.wait_messages(1)
            time.sleep(0.3)
            # One copy per session even with two matching subscriptions.
            self.assertEqual([(m.topic, m.payload) for m in c.messages], [("a/x", b"visible")])
            d = Client(b, version=4).connect()
            d.subscribe("$private/#", 0)
            p.publish("$private/x", "seen", qos=1)
            self.assertEqual(d.wait_messages(1)[0].payload, b"seen")

    def test_qos2_exactly_once_many(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, version=5).connect()
            s.subscribe("q2/#", 2)
            p = Client(b, version=5).connect()
            for i in range(200):
                p.publish("q2/t", str(i), qos=2, wait=False)
            msgs = s.wait_messages(200, timeout=10)
            time.sleep(0.3)
            self.assertEqual([int(m.payload) for m in s.messages], list(range(200)))
            self.assertTrue(all(m.qos == 2 for m in msgs))

    def test_qos_downgrade(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, version=4).connect()
            s.subscribe("d", 1)
            p = Client(b, version=4).connect()
            p.publish("d", "x", qos=2)
            self.assertEqual(s.wait_messages(1)[0].qos, 1)

    def test_sys_statistics(self):
        with Broker(anonymous=ALLOW_ALL, limits={"sys_interval_s": 1}) as b:
            c = Client(b, version=4).connect()
            c.subscribe("$SYS/broker/uptime", 0)
            self.assertTrue(wait_for(lambda: c.messages, 5))
            self.assertTrue(c.messages[0].payload.isdigit())


if __name__ == "__main__":
    main()
