# SPDX-License-Identifier: GPL-3.0-or-later
"""Persistent sessions, session expiry, takeover and will messages."""
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from harness import (ALLOW_ALL, Broker, Client, connect_packet, main, raw_connect, recv_exact,
                     wait_for)


def connect_props(expiry):
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = expiry
    return p


class PersistentSessions(unittest.TestCase):
    def test_v311_queued_while_offline(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, "persist311", version=4, clean=False).connect()
            s.subscribe("p/#", 1)
            s.disconnect()
            p = Client(b, version=4).connect()
            for i in range(5):
                p.publish("p/x", str(i), qos=1)
            s2 = Client(b, "persist311", version=4, clean=False).connect()
            self.assertEqual(s2.connack[0]["session present"], 1)
            msgs = s2.wait_messages(5)
            self.assertEqual([m.payload for m in msgs], [str(i).encode() for i in range(5)])

    def test_v5_session_expiry(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, "exp5", version=5, clean=True, properties=connect_props(1)).connect()
            s.subscribe("e/#", 1)
            s.disconnect()
            again = Client(b, "exp5", version=5, clean=False, properties=connect_props(1)).connect()
            self.assertEqual(again.connack[0]["session present"], 1)
            again.disconnect()
            time.sleep(2.5)
            gone = Client(b, "exp5", version=5, clean=False, properties=connect_props(1)).connect()
            self.assertEqual(gone.connack[0]["session present"], 0)

    def test_clean_start_discards(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, "clean5", version=5, properties=connect_props(60)).connect()
            s.subscribe("c/#", 1)
            s.disconnect()
            fresh = Client(b, "clean5", version=5, clean=True,
                           properties=connect_props(60)).connect()
            self.assertEqual(fresh.connack[0]["session present"], 0)

    def test_takeover(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            first = raw_connect(b)
            first.sendall(connect_packet(b"same-id", version=5))
            header = recv_exact(first, 2)
            self.assertEqual(header[0], 0x20)
            recv_exact(first, header[1])
            second = Client(b, "same-id", version=5).connect()
            # Server DISCONNECT with reason 0x8E (session taken over).
            packet = recv_exact(first, 3)
            self.assertEqual(packet[0], 0xE0)
            self.assertEqual(packet[2], 0x8E)
            second.subscribe("x", 0)
            second.publish("x", "ok", qos=1)
            self.assertEqual(second.wait_messages(1)[0].payload, b"ok")


class Wills(unittest.TestCase):
    def test_will_on_abnormal_close_not_on_clean(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            w = Client(b, version=4).connect()
            w.subscribe("will/#", 1)
            dying = Client(b, "dying", version=4,
                           will={"topic": "will/dying", "payload": "gone", "qos": 1}).connect()
            dying.kill()
            self.assertEqual(w.wait_messages(1)[0].payload, b"gone")
            polite = Client(b, "polite", version=4,
                            will={"topic": "will/polite", "payload": "gone", "qos": 1}).connect()
            polite.disconnect()
            time.sleep(0.5)
            self.assertEqual(len(w.messages), 1)

    def test_will_delay_v5(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            w = Client(b, version=5).connect()
            w.subscribe("wd/#", 1)
            wp = Properties(PacketTypes.WILLMESSAGE)
            wp.WillDelayInterval = 2
            dying = Client(b, "delayed", version=5, properties=connect_props(30),
                           will={"topic": "wd/x", "payload": "late", "qos": 1,
                                 "properties": wp}).connect()
            t0 = time.time()
            dying.kill()
            self.assertTrue(w.wait_messages(1, timeout=6))
            self.assertGreaterEqual(time.time() - t0, 1.5)

    def test_will_cancelled_by_reconnect(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            w = Client(b, version=5).connect()
            w.subscribe("wc/#", 1)
            wp = Properties(PacketTypes.WILLMESSAGE)
            wp.WillDelayInterval = 2
            dying = Client(b, "back", version=5, properties=connect_props(30),
                           will={"topic": "wc/x", "payload": "late", "qos": 1,
                                 "properties": wp}).connect()
            dying.kill()
            Client(b, "back", version=5, clean=False, properties=connect_props(30)).connect()
            time.sleep(3)
            self.assertEqual(w.messages, [])


if __name__ == "__main__":
    main()
