# SPDX-License-Identifier: GPL-3.0-or-later
"""Signals and service-manager integration: SIGTERM/SIGINT shut down
gracefully (MQTT 5 clients get DISCONNECT 0x8B, exit 0, quickly), SIGHUP
reloads without dropping connections, and the sd_notify(3) messages systemd's
Type=notify relies on (READY, RELOADING, STOPPING), on path and abstract
sockets. An unreadable config file stops start-up with one line. (There is no
state directory yet: backboned persists nothing, so there is no state-dir case.)"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import uuid

from harness import (ALLOW_ALL, Broker, Client, main, raw_session, read_packet, recv_exact,
                     wait_for)

DISCONNECT = 0xE0
SERVER_SHUTTING_DOWN = 0x8B


def stop_timed(broker, sig=signal.SIGTERM, timeout=10):
    """Sends `sig`; returns (exit code, seconds until the process exited)."""
    t0 = time.monotonic()
    broker.proc.send_signal(sig)
    rc = broker.proc.wait(timeout)
    return rc, time.monotonic() - t0


class Shutdown(unittest.TestCase):
    def check_shutdown(self, sig):
        with Broker(anonymous=ALLOW_ALL) as b:
            v5 = [raw_session(b, version=5, client_id=f"v5-{i}".encode()) for i in range(3)]
            v4 = raw_session(b, version=4, client_id=b"v4")
            paho = Client(b, version=5, client_id="paho").connect()
            paho.subscribe("x/#", 1)
            rc, elapsed = stop_timed(b, sig)
            self.assertEqual(rc, 0, b.read_log()[-3000:])
            self.assertLess(elapsed, 3.0)
            for s in v5:
                kind, body = read_packet(s)
                self.assertEqual(kind, DISCONNECT)
                self.assertEqual(body[0], SERVER_SHUTTING_DOWN)
                self.assertEqual(recv_exact(s, 1, timeout=2), b"")  # then closed
                s.close()
            # MQTT 3.1.1 has no server DISCONNECT: the connection just closes.
            self.assertEqual(recv_exact(v4, 1, timeout=2), b"")
            v4.close()
            self.assertTrue(wait_for(lambda: paho.disconnected is not None, 2))
            paho.c.loop_stop()
            log = b.read_log()
            self.assertIn("shutting down", log)
            self.assertIn("stopped", log)

    def test_sigterm_disconnects_clients_and_exits_0(self):
        self.check_shutdown(signal.SIGTERM)

    def test_sigint_disconnects_clients_and_exits_0(self):
        self.check_shutdown(signal.SIGINT)


class Reload(unittest.TestCase):
    """auth/clients_reload_test covers what a reload changes; here: what it
    must not touch, the live connections and their subscriptions."""

    def test_connections_survive_reload(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            sub5 = Client(b, version=5, client_id="sub5").connect()
            sub4 = Client(b, version=4, client_id="sub4").connect()
            self.assertEqual(sub5.subscribe("keep/#", 1)[0], 1)
            self.assertEqual(sub4.subscribe("keep/#", 1)[0], 1)
            pub = Client(b, version=5, client_id="pub").connect()
            pub.publish("keep/a", "before", qos=1)
            sub5.wait_messages(1)
            sub4.wait_messages(1)
            for i in range(3):
                b.reload({"topics": {"keep-rule": {"patterns": [
                    {"pattern": "keep/limited", "maxMessageSize": 8 + i}]}}})
                self.assertTrue(wait_for(
                    lambda: b.read_log().count("SIGHUP: reloaded") == i + 1, 5))
            pub.publish("keep/b", "after", qos=1)
            for c in (sub5, sub4):
                self.assertEqual([m.payload for m in c.wait_messages(2)], [b"before", b"after"])
                self.assertIsNone(c.disconnected)
            self.assertIsNone(pub.disconnected)
            # The reloaded rule applies to a client connected before the
            # reload (3.1.1: acknowledged and dropped; Paho 1.6 cannot parse
            # the MQTT 5 PUBACK 0x95).
            sub4.publish("keep/limited", "x" * 64, qos=1)
            self.assertTrue(wait_for(lambda: "payload exceeds 10 bytes" in b.read_log(), 5))
            pub.publish("keep/b", "last", qos=1)
            self.assertEqual(sub5.wait_messages(3)[-1].payload, b"last")
            self.assertNotIn(b"x" * 64, [m.payload for m in sub5.messages])
            for c in (sub5, sub4, pub):
                c.disconnect()

    def test_unreadable_config_on_reload_keeps_connections(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            c = Client(b, version=5).connect()
            c.subscribe("keep/#", 1)
            os.rename(b.config_path, b.config_path + ".moved")
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "reload failed" in b.read_log(), 5))
            self.assertIn("cannot read the config file", b.read_log())
            os.rename(b.config_path + ".moved", b.config_path)
            c.publish("keep/x", "still here", qos=1)
            self.assertEqual(c.wait_messages(1)[0].payload, b"still here")
            self.assertIsNone(c.disconnected)
            c.disconnect()


class StartupErrors(unittest.TestCase):
    def test_unreadable_config_file(self):
        import harness
        missing = os.path.join(tempfile.mkdtemp(), "missing.json")
        r = subprocess.run([harness.BACKBONED, "--config", missing], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stderr.strip().splitlines(),
                         [f"backboned: {missing}: cannot read the config file"])


class NotifySocket:
    """The receiving end of sd_notify(3): an AF_UNIX datagram socket."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"backbone-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.env = "@" + name
        else:
            self.dir = tempfile.mkdtemp(prefix="backbone-notify-")
            path = os.path.join(self.dir, "notify")
            self.sock.bind(path)
            self.env = path
        self.sock.settimeout(10)

    def receive(self):
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def close(self):
        self.sock.close()


class SdNotify(unittest.TestCase):
    def check_protocol(self, abstract):
        n = NotifySocket(abstract)
        try:
            b = Broker(anonymous=ALLOW_ALL, env={"NOTIFY_SOCKET": n.env})
            with b:
                # READY=1 only once the transports accept clients.
                self.assertEqual(n.receive().get("READY"), "1")
                Client(b, version=5).connect().disconnect()
                b.proc.send_signal(signal.SIGHUP)
                reloading = n.receive()
                self.assertEqual(reloading.get("RELOADING"), "1")
                usec = int(reloading["MONOTONIC_USEC"])
                self.assertLessEqual(abs(usec / 1e6 - time.monotonic()), 5)
                self.assertEqual(n.receive().get("READY"), "1")
                self.assertTrue(wait_for(lambda: "SIGHUP: reloaded" in b.read_log(), 5))
                rc, _ = stop_timed(b)
                self.assertEqual(rc, 0)
                self.assertEqual(n.receive().get("STOPPING"), "1")
        finally:
            n.close()

    def test_path_socket(self):
        self.check_protocol(abstract=False)

    def test_abstract_socket(self):
        self.check_protocol(abstract=True)

    def test_failed_reload_is_ready_again(self):
        n = NotifySocket()
        try:
            with Broker(anonymous=ALLOW_ALL, env={"NOTIFY_SOCKET": n.env}) as b:
                self.assertEqual(n.receive().get("READY"), "1")
                b.reload(text="{ not json")
                self.assertEqual(n.receive().get("RELOADING"), "1")
                self.assertEqual(n.receive().get("READY"), "1")
                self.assertTrue(b.alive())
        finally:
            n.close()

    def test_missing_notify_socket_is_harmless(self):
        path = os.path.join(tempfile.mkdtemp(), "nobody-listens")
        with Broker(anonymous=ALLOW_ALL, env={"NOTIFY_SOCKET": path}) as b:
            Client(b, version=5).connect().disconnect()
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "SIGHUP: reloaded" in b.read_log(), 5))
            self.assertTrue(b.alive())


if __name__ == "__main__":
    main()
