# SPDX-License-Identifier: GPL-3.0-or-later
"""The embedded store (SPEC §10): retained messages and persistent sessions
(subscriptions, queued and in-flight QoS 1/2 messages) survive a restart,
kill -9 included; acknowledged messages are never lost."""

import os
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import ALLOW_ALL, Broker, Client, encode_varint, read_packet, recv_exact  # noqa: E402,F401


def broker(state, **extra):
    cfg = {"state_dir": state}
    cfg.update(extra)
    return Broker(anonymous=ALLOW_ALL, extra=cfg)


def kill9(b):
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(10)
    b.log.close()


def publish_acked(b, topic, messages, qos=1, retain=False, version="mqttv311"):
    """Publishes with mosquitto_pub, which returns once each QoS 1/2 message
    is acknowledged."""
    for m in messages:
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", version,
                            "-q", str(qos), "-t", topic, "-m", m] + (["-r"] if retain else []),
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr


def raw_connect_persistent(b, client_id):
    """A v3.1.1 raw connection with clean session 0; returns (socket, session present)."""
    s = harness.raw_connect(b)
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x00" + (60).to_bytes(2, "big") + len(cid).to_bytes(2, "big") + cid
    s.sendall(b"\x10" + encode_varint(len(body)) + body)
    kind, ack = read_packet(s)
    assert kind == 0x20 and ack[1] == 0, (kind, ack)
    return s, ack[0] & 1


def raw_subscribe(s, topic, qos=1, packet_id=1):
    t = topic.encode()
    body = packet_id.to_bytes(2, "big") + len(t).to_bytes(2, "big") + t + bytes([qos])
    s.sendall(b"\x82" + encode_varint(len(body)) + body)
    kind, _ = read_packet(s)
    assert kind == 0x90, kind


def read_publishes(s, n):
    """The next n PUBLISH packets as (packet id, topic, payload), not acknowledged."""
    out = []
    while len(out) < n:
        kind, body = read_packet(s)
        assert kind is not None, f"connection closed after {len(out)} of {n} messages"
        if kind >> 4 != 3:
            continue
        qos = (kind >> 1) & 3
        tlen = int.from_bytes(body[:2], "big")
        topic = body[2:2 + tlen].decode()
        pos = 2 + tlen
        pid = 0
        if qos:
            pid = int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
        out.append((pid, topic, body[pos:].decode()))
    return out


def puback(s, pid):
    s.sendall(b"\x40\x02" + pid.to_bytes(2, "big"))


def raw_disconnect(s):
    """DISCONNECT, then wait for the broker to close: everything sent before it was handled."""
    s.sendall(b"\xe0\x00")
    s.settimeout(10)
    while s.recv(4096):
        pass
    s.close()


def raw_ping(s):
    """PINGREQ/PINGRESP: every packet sent before it has been handled."""
    s.sendall(b"\xc0\x00")
    while True:
        kind, _ = read_packet(s)
        assert kind is not None, "connection closed while waiting for PINGRESP"
        if kind == 0xD0:
            return


class Store(unittest.TestCase):
    def setUp(self):
        self.state = tempfile.mkdtemp(prefix="backbone-store-e2e-")

    def test_retained_messages_survive_kill_9(self):
        first = broker(self.state).start()
        try:
            publish_acked(first, "keep/a", ["alpha"], retain=True)
            publish_acked(first, "keep/b", ["beta"], retain=True)
            publish_acked(first, "keep/b", [""], retain=True)  # cleared
            publish_acked(first, "keep/c", ["gamma"], qos=0, retain=True)
            publish_acked(first, "keep/a", ["alpha-2"], qos=2, retain=True)
        finally:
            kill9(first)
        with broker(self.state) as second:
            p = harness.sub_start(second, "keep/#", count=2, timeout=10)
            rc, lines = harness.sub_finish(p)
            self.assertEqual(rc, 0, lines)
            self.assertEqual(sorted(lines), ["keep/a alpha-2", "keep/c gamma"])
        self.assertEqual(os.stat(os.path.join(self.state, "kernel", "store.log")).st_mode & 0o777,
                         0o600)

    def test_queued_messages_of_a_persistent_session_survive_kill_9(self):
        first = broker(self.state).start()
        try:
            c = Client(first, client_id="keeper", version=4, clean=False).connect()
            c.subscribe("q/#", qos=1)
            c.disconnect()
            publish_acked(first, "q/x", [f"m{i}" for i in range(20)])
            # kill -9 right after the last PUBACK: acknowledged means durable.
        finally:
            kill9(first)
        second = broker(self.state).start()
        try:
            # A raw client: its PUBACKs and DISCONNECT leave in this order.
            s, present = raw_connect_persistent(second, "keeper")
            self.assertEqual(present, 1)
            got = read_publishes(s, 20)
            self.assertEqual([g[2] for g in got], [f"m{i}" for i in range(20)])
            self.assertTrue(all(g[1] == "q/x" for g in got))
            for pid, _, _ in got:
                puback(s, pid)
            # Still subscribed after the restart.
            publish_acked(second, "q/y", ["live"])
            live = read_publishes(s, 1)
            self.assertEqual(live[0][1:], ("q/y", "live"))
            puback(s, live[0][0])
            raw_disconnect(s)
        finally:
            self.assertEqual(second.stop(), 0)
        # Everything was acknowledged: nothing is sent again.
        with broker(self.state) as third:
            s, present = raw_connect_persistent(third, "keeper")
            self.assertEqual(present, 1)
            s.settimeout(1.0)
            with self.assertRaises(OSError):  # socket.timeout: no PUBLISH arrives
                s.recv(1)
            s.close()

    def test_v5_session_expiry_and_qos2_survive_a_restart(self):
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        first = broker(self.state).start()
        try:
            c = Client(first, client_id="v5-keeper", version=5, clean=False,
                       properties=props).connect()
            c.subscribe("v5/#", qos=2)
            c.disconnect()
            publish_acked(first, "v5/t", ["exactly-once"], qos=2, version="mqttv5")
        finally:
            kill9(first)
        with broker(self.state) as second:
            c = Client(second, client_id="v5-keeper", version=5, clean=False,
                       properties=props).connect()
            self.assertEqual(c.connack[0]["session present"], 1)
            msgs = c.wait_messages(1, timeout=10)
            self.assertEqual([(m.payload, m.qos) for m in msgs], [(b"exactly-once", 2)])
            self.assertFalse(harness.wait_for(lambda: len(c.messages) > 1, 0.5))
            c.disconnect()

    def test_unacknowledged_in_flight_messages_are_sent_again(self):
        first = broker(self.state).start()
        try:
            s, present = raw_connect_persistent(first, "slow")
            self.assertEqual(present, 0)
            raw_subscribe(s, "f/#")
            publish_acked(first, "f/t", ["one", "two", "three"])
            got = read_publishes(s, 3)
            self.assertEqual([g[2] for g in got], ["one", "two", "three"])
            puback(s, got[0][0])  # only the first is acknowledged
            raw_ping(s)
            harness.wait_for(lambda: False, 0.3)  # the writer thread's turn
        finally:
            kill9(first)
        with broker(self.state) as second:
            s, present = raw_connect_persistent(second, "slow")
            self.assertEqual(present, 1)
            again = read_publishes(s, 2)
            self.assertEqual([g[2] for g in again], ["two", "three"])
            for pid, _, _ in again:
                puback(s, pid)
            s.close()

    def test_clean_start_and_unsubscribe_are_remembered(self):
        with broker(self.state) as first:
            c = Client(first, client_id="tidy", version=4, clean=False).connect()
            c.subscribe("a/#", qos=1)
            c.subscribe("b/#", qos=1)
            c.c.unsubscribe("b/#")
            harness.wait_for(lambda: False, 0.3)
            c.disconnect()
            gone = Client(first, client_id="gone", version=4, clean=False).connect()
            gone.subscribe("a/#", qos=1)
            gone.disconnect()
            # A clean session ends the stored one.
            Client(first, client_id="gone", version=4, clean=True).connect().disconnect()
        with broker(self.state) as second:
            publish_acked(second, "b/x", ["not subscribed"])
            publish_acked(second, "a/x", ["subscribed"])
            c = Client(second, client_id="tidy", version=4, clean=False).connect()
            self.assertEqual(c.connack[0]["session present"], 1)
            self.assertEqual([m.payload for m in c.wait_messages(1)], [b"subscribed"])
            self.assertFalse(harness.wait_for(lambda: len(c.messages) > 1, 0.5))
            c.disconnect()
            g = Client(second, client_id="gone", version=4, clean=False).connect()
            self.assertEqual(g.connack[0]["session present"], 0)
            g.disconnect()

    def test_periodic_durability_keeps_acknowledged_messages_across_kill_9(self):
        first = broker(self.state, store={"durability": "periodic",
                                          "flush_interval_ms": 50}).start()
        try:
            c = Client(first, client_id="p", version=4, clean=False).connect()
            c.subscribe("p/#", qos=1)
            c.disconnect()
            publish_acked(first, "p/t", ["a", "b"])
        finally:
            kill9(first)
        with broker(self.state, store={"durability": "periodic"}) as second:
            c = Client(second, client_id="p", version=4, clean=False).connect()
            self.assertEqual([m.payload for m in c.wait_messages(2)], [b"a", b"b"])
            c.disconnect()

    def test_store_settings_are_checked_and_the_store_can_be_off(self):
        bad = broker(self.state, store={"durability": "fast"})
        r = subprocess.run([harness.BACKBONED, "--config", bad.config_path, "--check-config"],
                           capture_output=True, text=True, timeout=20, env=bad.env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("store.durability", r.stderr)
        with broker(self.state, store={"enabled": False}) as off:
            publish_acked(off, "r/x", ["kept only in memory"], retain=True)
        self.assertFalse(os.path.exists(os.path.join(self.state, "kernel", "store.log")))

    def test_store_metrics_are_served(self):
        b = Broker(anonymous=ALLOW_ALL, modules=["http-api"], extra={"state_dir": self.state})
        with b:
            publish_acked(b, "keep/m", ["x"], retain=True)
            with urllib.request.urlopen(f"http://127.0.0.1:{b.http_port}/metrics",
                                        timeout=5) as r:
                metrics = r.read().decode()
        values = {}
        for line in metrics.splitlines():
            if line.startswith("backbone_store_"):
                name, value = line.split()
                values[name] = float(value)
        self.assertGreaterEqual(values["backbone_store_records_total"], 1)
        self.assertGreaterEqual(values["backbone_store_syncs_total"], 1)
        self.assertGreater(values["backbone_store_log_bytes"], 0)
        self.assertEqual(values["backbone_store_write_errors_total"], 0)
        self.assertIn("backbone_store_sync_seconds_total", values)

    def test_a_corrupt_log_tail_is_dropped_with_a_warning(self):
        with broker(self.state) as first:
            publish_acked(first, "keep/a", ["alpha"], retain=True)
        with open(os.path.join(self.state, "kernel", "store.log"), "ab") as f:
            f.write(b"\x10\x00\x00\x00torn")
        second = broker(self.state).start()
        try:
            p = harness.sub_start(second, "keep/#", count=1, timeout=10)
            rc, lines = harness.sub_finish(p)
            self.assertEqual(lines, ["keep/a alpha"])
        finally:
            second.stop()
        self.assertIn("do not form a valid record", second.read_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
