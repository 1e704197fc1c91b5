# SPDX-License-Identifier: GPL-3.0-or-later
"""MQTT 5 features: message expiry, topic aliases, subscription options and
identifiers, user and request/response properties, shared subscriptions,
receive maximum."""
import time
import unittest

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from harness import ALLOW_ALL, Broker, Client, main, wait_for


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


if __name__ == "__main__":
    main()
