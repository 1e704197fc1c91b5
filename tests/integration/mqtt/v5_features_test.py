# SPDX-License-Identifier: GPL-3.0-or-later
"""MQTT 5 features: message expiry, topic aliases, subscription options and
identifiers, user and request/response properties, shared subscriptions,
receive maximum."""
import os
import time
import unittest

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from harness import (ALLOW_ALL, Broker, Client, connect_packet, main, raw_connect, raw_publish,
                     raw_session, read_packet, wait_for)


def props(kind=PacketTypes.PUBLISH, **values):
    p = Properties(kind)
    for k, v in values.items():
        setattr(p, k, v)
    return p


class V5Features(unittest.TestCase):
    def test_message_expiry(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            p = Client(b, version=5).connect()
            p.publish("exp/short", "gone", qos=1, retain=True, properties=props(MessageExpiryInterval=1))
            p.publish("exp/long", "kept", qos=1, retain=True, properties=props(MessageExpiryInterval=60))
            time.sleep(2.2)
            s = Client(b, version=5).connect()
            s.subscribe("exp/#", 1)
            msgs = s.wait_messages(1)
            time.sleep(0.3)
            self.assertEqual([m.topic for m in s.messages], ["exp/long"])
            # The remaining lifetime is forwarded, lowered by the time spent.
            left = msgs[0].properties.MessageExpiryInterval
            self.assertTrue(55 <= left <= 58, left)

    def test_user_and_request_response_properties(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, version=5).connect()
            s.subscribe("rr/#", 1)
            p = Client(b, version=5).connect()
            pp = props(ResponseTopic="rr/reply", CorrelationData=b"\x01\x02", ContentType="text/plain",
                       PayloadFormatIndicator=1)
            pp.UserProperty = [("k1", "v1"), ("k1", "v2")]
            p.publish("rr/req", "q", qos=1, properties=pp)
            m = s.wait_messages(1)[0]
            self.assertEqual(m.properties.ResponseTopic, "rr/reply")
            self.assertEqual(m.properties.CorrelationData, b"\x01\x02")
            self.assertEqual(m.properties.ContentType, "text/plain")
            self.assertEqual(m.properties.UserProperty, [("k1", "v1"), ("k1", "v2")])

    def test_topic_alias_from_client(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, version=5).connect()
            s.subscribe("alias/#", 0)
            p = Client(b, version=5).connect()
            p.publish("alias/long/topic", "first", qos=1, properties=props(TopicAlias=3))
            p.publish("", "second", qos=1, properties=props(TopicAlias=3))
            msgs = s.wait_messages(2)
            self.assertEqual([(m.topic, m.payload) for m in msgs],
                             [("alias/long/topic", b"first"), ("alias/long/topic", b"second")])

    def test_topic_alias_to_client(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, version=5, properties=props(PacketTypes.CONNECT, TopicAliasMaximum=5)).connect()
            s.subscribe("ta/#", 0)
            p = Client(b, version=5).connect()
            for i in range(3):
                p.publish("ta/x", str(i), qos=1)
            msgs = s.wait_messages(3)
            # The first delivery sets the alias, the next ones use it alone.
            self.assertEqual([m.topic for m in msgs], ["ta/x", "", ""])
            aliases = {m.properties.TopicAlias for m in msgs}
            self.assertEqual(len(aliases), 1)
            self.assertTrue(1 <= aliases.pop() <= 5)

    def test_no_local_and_retain_as_published(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            c = Client(b, version=5).connect()
            c.subscribe("nl/#", options=SubscribeOptions(qos=1, noLocal=True))
            other = Client(b, version=5).connect()
            other.subscribe("nl/#", options=SubscribeOptions(qos=1, retainAsPublished=True))
            c.publish("nl/x", "mine", qos=1, retain=True)
            self.assertEqual(other.wait_messages(1)[0].retain, 1)
            time.sleep(0.3)
            self.assertEqual(c.messages, [])

    def test_retain_handling(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            p = Client(b, version=5).connect()
            p.publish("rh/x", "r", qos=1, retain=True)
            never = Client(b, version=5).connect()
            never.subscribe("rh/#", options=SubscribeOptions(qos=1, retainHandling=2))
            once = Client(b, version=5).connect()
            once.subscribe("rh/#", options=SubscribeOptions(qos=1, retainHandling=1))
            once.subscribe("rh/#", options=SubscribeOptions(qos=1, retainHandling=1))
            time.sleep(0.5)
            self.assertEqual(never.messages, [])
            self.assertEqual(len(once.messages), 1)

    def test_subscription_identifiers(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = Client(b, version=5).connect()
            s.subscribe("sid/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7))
            s.subscribe("sid/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=9))
            p = Client(b, version=5).connect()
            p.publish("sid/a", "x", qos=1)
            m = s.wait_messages(1)[0]
            time.sleep(0.3)
            self.assertEqual(len(s.messages), 1)
            self.assertEqual(sorted(m.properties.SubscriptionIdentifier), [7, 9])

    def test_shared_subscription(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            members = [Client(b, version=5).connect() for _ in range(3)]
            for m in members:
                self.assertEqual(m.subscribe("$share/g1/jobs/#", 1)[0].value, 1)
            plain = Client(b, version=4).connect()
            plain.subscribe("jobs/#", 1)
            p = Client(b, version=5).connect()
            for i in range(30):
                p.publish("jobs/x", str(i), qos=1)
            self.assertTrue(wait_for(lambda: sum(len(m.messages) for m in members) == 30, 5))
            self.assertTrue(all(len(m.messages) > 0 for m in members))
            self.assertEqual(len(plain.wait_messages(30)), 30)

    def test_server_limits_in_connack(self):
        with Broker(anonymous=ALLOW_ALL, limits={"receive_maximum": 10, "max_keep_alive": 30}) as b:
            c = Client(b, version=5, keepalive=0).connect()
            p = c.connack[2]
            self.assertEqual(p.ReceiveMaximum, 10)
            self.assertEqual(p.ServerKeepAlive, 30)
            self.assertTrue(p.MaximumPacketSize > 0)

    def test_assigned_client_identifier(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            c = Client(b, client_id="", version=5).connect()
            self.assertTrue(c.connack[2].AssignedClientIdentifier.startswith("bb-"))


class LastWords(unittest.TestCase):
    """A connection the broker ends with a reason is half-closed and drained,
    so a peer still writing reads the reason instead of a reset."""

    def flood_then_read(self, sock, packets):
        # Written in full before anything is read, as a client that pipelines:
        # with a reset it fails with a broken pipe and never reads the reason.
        sock.settimeout(10)
        sock.sendall(b"".join(packets))
        got = []
        while True:
            kind, body = read_packet(sock, timeout=10)
            if kind is None:
                return got
            got.append((kind, body))

    def test_client_over_receive_maximum_reads_disconnect_0x93(self):
        with Broker(anonymous=ALLOW_ALL, limits={"receive_maximum": 2}) as b:
            for attempt in range(3):
                s = raw_session(b, client_id=b"flood%d" % attempt)
                packets = []
                for i in range(1, 10000):  # 20 MB: more than the sockets buffer
                    topic = b"t"
                    body = (len(topic).to_bytes(2, "big") + topic + i.to_bytes(2, "big") + b"\x00"
                            + b"x" * 2000)
                    packets.append(b"\x34" + bytes([(len(body) & 0x7F) | 0x80, len(body) >> 7])
                                   + body)
                got = self.flood_then_read(s, packets)
                s.close()
                self.assertEqual([k for k, _ in got], [0x50, 0x50, 0xE0])
                self.assertEqual(got[-1][1][0], 0x93)
            self.assertTrue(b.alive())

    def test_refused_connect_reaches_a_client_that_keeps_writing(self):
        with Broker() as b:  # no anonymous statements: refused
            s = raw_connect(b)
            junk = [connect_packet(b"refused", version=5)] + [b"\xc0\x00" * 10_000_000]
            got = self.flood_then_read(s, junk)
            s.close()
            self.assertEqual(got[0][0], 0x20)
            self.assertEqual(got[0][1][1], 0x87)

    def test_a_peer_that_never_closes_is_let_go(self):
        with Broker(anonymous=ALLOW_ALL, limits={"receive_maximum": 1}) as b:
            def sockets():
                fds, n = f"/proc/{b.proc.pid}/fd", 0
                for f in os.listdir(fds):
                    try:
                        n += os.readlink(os.path.join(fds, f)).startswith("socket:")
                    except FileNotFoundError:  # closed meanwhile
                        pass
                return n
            before = sockets()
            s = raw_session(b)
            for i in (1, 2):
                raw_publish(s, "t", b"x", qos=2, packet_id=i)
            kinds = []
            while True:
                kind, _ = read_packet(s, timeout=10)
                if kind is None:  # the broker's FIN, after its DISCONNECT
                    break
                kinds.append(kind)
            self.assertEqual(kinds, [0x50, 0xE0])
            # This peer neither closes nor writes: the broker lets its socket
            # go once the linger is over.
            self.assertTrue(wait_for(lambda: sockets() == before, timeout=10))
            s.close()


if __name__ == "__main__":
    main()
