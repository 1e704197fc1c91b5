# SPDX-License-Identifier: GPL-3.0-or-later
"""Chaos (SPEC §10): three brokers joined by the redis module, QoS 1 traffic
between persistent sessions spread over all of them, and a random broker
killed with -9 (then restarted on its state directory) every few seconds.
Every message a publisher had acknowledged must reach its subscriber at
least once; duplicates are counted and reported."""

import os
import random
import signal
import sys
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import ALLOW_ALL, Broker  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from redis_servers import Redis  # noqa: E402

BROKERS = 3
CHAOS_S = float(os.environ.get("BACKBONE_CHAOS_SECONDS", "12"))


class Peer:
    """A Paho client bound to one broker that reconnects by itself, keeping
    its persistent session (clean start 0, one hour of expiry)."""

    def __init__(self, broker, client_id):
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.c.reconnect_delay_set(0.05, 0.3)
        self.lock = threading.Lock()
        self.received = []   # payloads, duplicates included
        self.sent = {}       # mid -> payload, until acknowledged
        self.acked = set()
        self.early = set()  # mids acknowledged before publish() recorded them
        self.c.on_message = lambda c, u, m: self._received(m.payload)
        self.c.on_publish = lambda c, u, mid: self._acked(mid)
        self.c.on_connect = lambda c, u, f, rc, p=None: self.on_connect(rc)
        self.topic = None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.c.connect_async("127.0.0.1", broker.port, clean_start=False, properties=props)
        self.c.loop_start()

    def on_connect(self, rc):
        if rc == 0 and self.topic:
            self.c.subscribe(self.topic, qos=1)

    def _received(self, payload):
        with self.lock:
            self.received.append(payload.decode())

    def _acked(self, mid):
        # Paho calls this holding its own lock: never call into Paho under
        # self.lock (publish() does not), or the two threads deadlock.
        with self.lock:
            payload = self.sent.pop(mid, None)
            if payload is None:
                self.early.add(mid)  # acknowledged before publish() recorded it
            else:
                self.acked.add(payload)

    def publish(self, topic, payload):
        info = self.c.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                self.acked.add(payload)
            else:
                self.sent[info.mid] = payload

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Chaos(unittest.TestCase):
    def test_no_acknowledged_message_is_lost_when_brokers_are_killed(self):
        redis = Redis(persistent=True).start()
        self.addCleanup(redis.stop)
        settings = {"address": f"127.0.0.1:{redis.port}", "prefix": "chaos"}
        brokers = []
        for i in range(BROKERS):
            b = Broker(anonymous=ALLOW_ALL, modules=[{"name": "redis", "settings": settings}],
                       extra={"state_dir": tempfile.mkdtemp(prefix=f"backbone-chaos-{i}-")})
            brokers.append(b.start())
        self.addCleanup(lambda: [b.stop() for b in brokers if b.proc.poll() is None])
        subs = []
        for i, b in enumerate(brokers):
            s = Peer(b, f"chaos-sub-{i}")
            s.topic = f"chaos/{i}"
            subs.append(s)
        self.assertTrue(harness.wait_for(
            lambda: all(s.c.is_connected() for s in subs), 10))
        for s in subs:
            s.on_connect(0)
        time.sleep(0.5)  # the subscriptions are in place
        pubs = [Peer(b, f"chaos-pub-{i}") for i, b in enumerate(brokers)]
        self.assertTrue(harness.wait_for(lambda: all(p.c.is_connected() for p in pubs), 10))

        stop = threading.Event()
        kills = []

        def killer():
            rnd = random.Random(int(os.environ.get("BACKBONE_CHAOS_SEED", "7")))
            while not stop.wait(rnd.uniform(1.5, 3.0)):
                i = rnd.randrange(BROKERS)
                b = brokers[i]
                b.proc.send_signal(signal.SIGKILL)
                b.proc.wait(10)
                b.log.close()
                kills.append(i)
                time.sleep(0.3)
                b.append_log = True
                b.start()

        k = threading.Thread(target=killer)
        k.start()
        n = 0
        deadline = time.monotonic() + CHAOS_S
        while time.monotonic() < deadline:
            for j, p in enumerate(pubs):
                target = (j + 1 + n % (BROKERS - 1)) % BROKERS  # always another broker
                p.publish(f"chaos/{target}", f"{j}:{target}:{n}")
            n += 1
            time.sleep(0.01)
        stop.set()
        k.join()
        # Publishers get their last acknowledgements; subscribers catch up.
        harness.wait_for(lambda: all(not p.sent for p in pubs), 20)
        acked = {}
        for p in pubs:
            with p.lock:
                for payload in p.acked:
                    acked.setdefault(int(payload.split(":")[1]), set()).add(payload)

        def missing():
            out = []
            for i, s in enumerate(subs):
                with s.lock:
                    got = set(s.received)
                out += sorted(acked.get(i, set()) - got)
            return out
        harness.wait_for(lambda: not missing(), 30)
        total = sum(len(v) for v in acked.values())
        duplicates = sum(len(s.received) - len(set(s.received)) for s in subs)
        sys.stderr.write(f"chaos: {len(kills)} kill(s) {kills}, {total} acknowledged messages, "
                         f"{len(missing())} lost, {duplicates} duplicate(s)\n")
        self.assertGreaterEqual(len(kills), 3)
        self.assertGreater(total, 300)
        self.assertEqual(missing()[:20], [], [b.read_log()[-2000:] for b in brokers])
        for c in subs + pubs:
            c.close()


if __name__ == "__main__":
    harness.main()
