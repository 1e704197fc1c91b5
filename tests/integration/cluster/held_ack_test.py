# SPDX-License-Identifier: GPL-3.0-or-later
"""ABI 1.5 on the wire: a module's tap holds a publisher's acknowledgement
(message_held, ack_release) and publish_routed_durable calls back. The test
module `holdtap` (tests/abi/hold_tap_module.c) keeps every hold until
POST /holdtap/release."""
import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import (ALLOW_ALL, BUILD_DIR, Broker, Client, http_request, main,  # noqa: E402
                     wait_for, wait_port)

TEST_MODULES = os.environ.get("BACKBONE_TEST_MODULE_DIR",
                              os.path.join(BUILD_DIR, "lib/backbone/test-modules"))


def holdtap_broker():
    return Broker(anonymous=ALLOW_ALL, modules=["holdtap"],
                  extra={"module_path": [TEST_MODULES]})


def state(b):
    status, _, body = http_request(b.http_port, "GET", "/holdtap")
    assert status == 200, (status, body)
    return body


def release(b):
    status, _, body = http_request(b.http_port, "POST", "/holdtap/release")
    assert status == 200, (status, body)
    return body["released"]


class HeldAcknowledgements(unittest.TestCase):
    def test_puback_and_pubrec_wait_for_the_module(self):
        with holdtap_broker() as b:
            self.assertTrue(wait_port(b.http_port), b.read_log())
            sub = Client(b, version=5).connect()
            sub.subscribe("held/#", 1)
            pub = Client(b, version=5).connect()
            one = pub.publish("held/1", "a", qos=1, wait=False)
            two = pub.publish("held/2", "b", qos=2, wait=False)
            pub.publish("held/0", "c", qos=0)
            # Delivered at once; only the publisher's acknowledgements wait.
            self.assertEqual(len(sub.wait_messages(3)), 3)
            time.sleep(0.3)
            self.assertFalse(one.is_published())
            self.assertFalse(two.is_published())
            self.assertEqual(state(b), {"held": 2, "given": 2, "unheld": 1})
            self.assertEqual(release(b), 2)
            self.assertTrue(wait_for(lambda: one.is_published() and two.is_published()))
            pub.c.disconnect()
            sub.c.disconnect()

    def test_a_hold_of_a_closed_connection_is_released_harmlessly(self):
        with holdtap_broker() as b:
            self.assertTrue(wait_port(b.http_port), b.read_log())
            gone = Client(b, version=5).connect()
            gone.publish("held/x", "a", qos=1, wait=False)
            wait_for(lambda: state(b)["held"] == 1)
            gone.c.disconnect()
            gone.c.loop_stop()
            time.sleep(0.2)
            self.assertEqual(release(b), 1)
            # The broker goes on holding (and releasing) for others.
            pub = Client(b, version=5).connect()
            info = pub.publish("held/y", "b", qos=1, wait=False)
            wait_for(lambda: state(b)["held"] == 1)
            self.assertEqual(release(b), 1)
            self.assertTrue(wait_for(lambda: info.is_published()))
            pub.c.disconnect()

    def test_publish_routed_durable_calls_back(self):
        with holdtap_broker() as b:
            self.assertTrue(wait_port(b.http_port), b.read_log())
            sub = Client(b, version=5).connect()
            sub.subscribe("holdtap/#", 1)
            status, _, body = http_request(b.http_port, "POST", "/holdtap/routed")
            self.assertEqual((status, body), (200, {"done": True}))
            self.assertEqual(sub.wait_messages(1)[0].payload, b"durable")
            # Routed messages are not handed to the taps again.
            self.assertEqual(state(b), {"held": 0, "given": 0, "unheld": 0})
            sub.c.disconnect()

    def test_with_the_store_both_wait_and_a_restart_keeps_the_routed_message(self):
        """With a state_dir: the PUBACK waits for the store and the module;
        done comes after the persistent session's copy is durable."""
        state_dir = tempfile.mkdtemp(prefix="backbone-held-")
        self.addCleanup(shutil.rmtree, state_dir, True)

        def broker(**ports):
            return Broker(anonymous=ALLOW_ALL, modules=["holdtap"],
                          extra={"module_path": [TEST_MODULES], "state_dir": state_dir},
                          **ports)
        b = broker().start()
        try:
            self.assertTrue(wait_port(b.http_port), b.read_log())
            keeper = Client(b, client_id="keeper", version=4, clean=False).connect()
            keeper.subscribe("holdtap/#", 1)
            keeper.subscribe("held/#", 1)
            keeper.c.disconnect()
            keeper.c.loop_stop()
            pub = Client(b, version=5).connect()
            info = pub.publish("held/s", "stored", qos=1, wait=False)
            wait_for(lambda: state(b)["held"] == 1)
            time.sleep(0.2)
            self.assertFalse(info.is_published())
            self.assertEqual(release(b), 1)
            self.assertTrue(wait_for(lambda: info.is_published()))
            pub.c.disconnect()
            status, _, body = http_request(b.http_port, "POST", "/holdtap/routed")
            self.assertEqual((status, body), (200, {"done": True}))
        finally:
            b.proc.kill()  # no clean shutdown: what is durable is all there is
            b.proc.wait()
            b.log.close()
        with broker(port=b.port, http_port=b.http_port) as b2:
            keeper = Client(b2, client_id="keeper", version=4, clean=False).connect()
            got = sorted(m.payload for m in keeper.wait_messages(2))
            self.assertEqual(got, [b"durable", b"stored"])
            keeper.c.disconnect()

if __name__ == "__main__":
    main()
