# SPDX-License-Identifier: GPL-3.0-or-later
"""Config-file clients (hashed tokens), SIGHUP reload and live statement
changes (SPEC §6: within one second)."""
import hashlib
import time
import unittest

from harness import ALLOW_ALL, Broker, Client, main, wait_for

TOKEN_A = "token-of-client-a-0123456789"
TOKEN_B = "token-of-client-b-0123456789"


def sha(t):
    return hashlib.sha256(t.encode()).hexdigest()


def clients_module(a_statements, with_b=True):
    clients = {"client-a": {"token_sha256": sha(TOKEN_A), "statements": a_statements}}
    if with_b:
        clients["client-b"] = {"token_sha256": sha(TOKEN_B), "statements": ALLOW_ALL}
    return {"name": "client", "settings": {"clients": clients}}


READ_ALL = [{"effect": "allow", "actions": ["mqtt:subscribe", "mqtt:read", "mqtt:publish"],
             "resources": ["data/#"]}]
READ_PUBLIC = [{"effect": "allow", "actions": ["mqtt:subscribe", "mqtt:read"],
                "resources": ["data/public/#"]}]


class Clients(unittest.TestCase):
    def test_login_with_hashed_token(self):
        with Broker(modules=[clients_module(READ_ALL)]) as b:
            Client(b, username="client", password=TOKEN_A).connect().disconnect()
            bad = Client(b, username="client", password="nope").connect(expect_ok=False)
            self.assertEqual(bad.connack[1], 134)
            self.assertNotIn(TOKEN_A, b.read_log())

    def test_live_statement_change_prunes_subscriptions(self):
        with Broker(modules=[clients_module(READ_ALL)]) as b:
            a = Client(b, username="client", password=TOKEN_A).connect()
            a.subscribe("data/#", 1)
            writer = Client(b, username="client", password=TOKEN_B).connect()
            writer.publish("data/secret/x", "before", qos=1)
            a.wait_messages(1)
            b.reload({"modules": [clients_module(READ_PUBLIC)] + b.config["modules"][1:]})
            self.assertTrue(wait_for(lambda: "no longer allowed" in b.read_log(), 2))
            writer.publish("data/secret/x", "after", qos=1)
            writer.publish("data/public/x", "public", qos=1)
            time.sleep(0.5)
            # The data/# subscription is gone; nothing more arrives.
            self.assertEqual([m.payload for m in a.messages], [b"before"])
            self.assertIsNone(a.disconnected)
            # The new statements allow data/public/# again.
            a.subscribe("data/public/#", 1)
            writer.publish("data/public/y", "again", qos=1)
            self.assertEqual(a.wait_messages(2)[-1].payload, b"again")

    def test_removed_client_is_disconnected(self):
        with Broker(modules=[clients_module(READ_ALL)]) as b:
            bee = Client(b, username="client", password=TOKEN_B).connect()
            b.reload({"modules": [clients_module(READ_ALL, with_b=False)] + b.config["modules"][1:]})
            self.assertTrue(wait_for(lambda: bee.disconnected is not None, 2))
            again = Client(b, username="client", password=TOKEN_B).connect(expect_ok=False)
            self.assertEqual(again.connack[1], 134)

    def test_invalid_reload_keeps_running_config(self):
        with Broker(modules=[clients_module(READ_ALL)]) as b:
            b.reload(text="{ this is not json")
            self.assertTrue(wait_for(lambda: "reload failed" in b.read_log(), 2))
            Client(b, username="client", password=TOKEN_A).connect().disconnect()
            self.assertTrue(b.alive())

    def test_anonymous_statements_reload(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            c = Client(b).connect()
            c.subscribe("x/#", 0)
            b.reload({"anonymous": {"statements": READ_PUBLIC}})
            self.assertTrue(wait_for(lambda: "no longer allowed" in b.read_log(), 2))


if __name__ == "__main__":
    main()
