# SPDX-License-Identifier: GPL-3.0-or-later
"""The SDK as a third party uses it: install it, build the example
authenticator out of tree, load it into the installed backboned and log in.
Also: old modules (frozen ABI 1.0, 1.3 and 1.4 headers) load and work; a future
major is refused."""
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import (ALLOW_ALL, BUILD_DIR, SOURCE_DIR, Broker, Client, http_request, main,
                     wait_for, wait_port)

TEST_MODULES = os.environ.get("BACKBONE_TEST_MODULE_DIR", os.path.join(BUILD_DIR, "lib/backbone/test-modules"))


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r


class OutOfTreeModule(unittest.TestCase):
    def test_example_authenticator_built_against_installed_sdk(self):
        tmp = tempfile.mkdtemp(prefix="backbone-sdk-")
        prefix = os.path.join(tmp, "prefix")
        run(["cmake", "--install", BUILD_DIR, "--prefix", prefix])
        for path in ("include/backbone/module_abi.h", "include/backbone/sdk.hpp",
                     "lib/cmake/BackboneSDK/BackboneSDKConfig.cmake", "bin/backboned",
                     "lib/backbone/modules/tcp.so"):
            self.assertTrue(os.path.exists(os.path.join(prefix, path)), path)
        # A copy outside the source tree, configured only against the prefix.
        src = os.path.join(tmp, "file_token_auth")
        shutil.copytree(os.path.join(SOURCE_DIR, "sdk/examples/file_token_auth"), src)
        build = os.path.join(tmp, "build")
        run(["cmake", "-S", src, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}"])
        run(["cmake", "--build", build])
        module = os.path.join(build, "file_token_auth.so")
        self.assertTrue(os.path.exists(module))
        lines = run(["nm", "-D", "--defined-only", module]).stdout.splitlines()
        self.assertEqual([l.split()[-1] for l in lines], ["bb_module_entry"])

        tokens = os.path.join(tmp, "tokens.txt")
        with open(tokens, "w") as f:
            f.write("# token effect action resource\n")
            f.write("example-token-123 allow mqtt:* example/#\n")
        b = Broker(modules=[{"name": "file_token_auth",
                             "settings": {"file": tokens, "name": "filetoken"}}],
                   extra={"module_path": [build]})
        # Run the installed daemon: it must find tcp.so relative to itself.
        import harness
        old = harness.BACKBONED
        harness.BACKBONED = os.path.join(prefix, "bin/backboned")
        try:
            with b:
                c = Client(b, version=5, username="filetoken", password="example-token-123").connect()
                c.subscribe("example/#", 1)
                c.publish("example/x", "hi", qos=1)
                self.assertEqual(c.wait_messages(1)[0].payload, b"hi")
                bad = Client(b, version=5, username="filetoken", password="nope").connect(
                    expect_ok=False)
                self.assertEqual(bad.connack[1], 134)
                self.assertIn(os.path.join(prefix, "lib/backbone/modules/tcp.so"), b.read_log())
        finally:
            harness.BACKBONED = old


class AbiVersions(unittest.TestCase):
    def test_frozen_1_0_module_loads(self):
        with Broker(modules=["frozen"], extra={"module_path": [TEST_MODULES]}) as b:
            Client(b, version=4, username="frozen", password="frozen-ok").connect().disconnect()

    def test_frozen_1_3_http_route_checks_its_own_action(self):
        """A BB_HTTP_AUTH route of a 1.3 module (no declaration in its
        shorter bb_http_route): the kernel authenticates, the module decides."""
        with Broker(modules=["frozen13"], extra={"module_path": [TEST_MODULES]}) as b:
            self.assertTrue(wait_port(b.http_port), b.read_log())

            def get(path, token="frozen-ok"):
                return http_request(b.http_port, "GET", path, token=token, provider="frozen13")
            self.assertEqual(get("/frozen13/a")[::2], (200, {"ok": True}))
            self.assertEqual(get("/frozen13/b")[::2], (403, {
                "error": "forbidden", "message": "checked by the 1.3 module"}))
            self.assertEqual(get("/frozen13/a", token="wrong")[0], 401)
            self.assertNotIn("[frozen13] audit:", b.read_log())  # the kernel did not check

    def test_frozen_1_4_tap_hears_messages_and_holds_no_acknowledgement(self):
        """A message tap of a 1.4 module (its bb_message_tap ends before
        message_held): it hears every message through `message`, and the
        publisher's PUBACK is not held for it."""
        with Broker(modules=["frozen14"], extra={"module_path": [TEST_MODULES]}) as b:
            self.assertTrue(wait_port(b.http_port), b.read_log())
            c = Client(b, version=5, username="frozen14", password="frozen-ok").connect()
            c.publish("frozen14/a", "1", qos=1)  # waits for its PUBACK
            c.publish("frozen14/b", "2", qos=2)
            c.publish("frozen14/c", "3", qos=0)
            c.disconnect()
            status, _, body = http_request(b.http_port, "GET", "/frozen14")
            self.assertEqual(status, 200)
            self.assertEqual(body, {"messages": 3, "qos1": 2, "sessions": 1})

    def test_stripped_module_loads_and_junk_is_refused(self):
        d = tempfile.mkdtemp()
        subprocess.run(["strip", os.path.join(TEST_MODULES, "frozen.so"), "-o",
                        os.path.join(d, "frozen.so")], check=True, timeout=30)
        with open(os.path.join(d, "junk.so"), "w") as f:
            f.write("not an ELF file")
        with Broker(modules=["frozen"], extra={"module_path": [d]}) as b:
            Client(b, version=4, username="frozen", password="frozen-ok").connect().disconnect()
        import harness
        path = os.path.join(d, "c.json")
        with open(path, "w") as f:
            json.dump({"module_path": [d], "modules": ["junk"]}, f)
        r = subprocess.run([harness.BACKBONED, "--config", path, "--check-config"],
                           capture_output=True, text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not a Backbone module (not an ELF file)", r.stderr)

    def test_future_major_refused_with_both_versions(self):
        import harness
        path = os.path.join(tempfile.mkdtemp(), "c.json")
        with open(path, "w") as f:
            json.dump({"module_path": [TEST_MODULES], "modules": ["future_major"]}, f)
        r = subprocess.run([harness.BACKBONED, "--config", path, "--check-config"],
                           capture_output=True, text=True, timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("built for ABI 2.0", r.stderr)
        self.assertIn("this kernel provides ABI 1.", r.stderr)
        listing = subprocess.run([harness.BACKBONED, "--list-modules", "--config", path],
                                 capture_output=True, text=True, timeout=10).stdout
        self.assertIn("built for ABI 2.0", listing)


if __name__ == "__main__":
    main()
