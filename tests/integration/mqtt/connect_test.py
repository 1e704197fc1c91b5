# SPDX-License-Identifier: GPL-3.0-or-later
"""CONNECT, authentication outcomes, command line and configuration errors."""
import json
import os
import subprocess
import tempfile
import time
import unittest

from harness import (ALLOW_ALL, BACKBONED, Broker, Client, connect_packet, free_port, main, pub,
                     raw_connect, recv_exact, sub_finish, sub_start, wait_for)

ADMIN = {"name": "admin", "settings": {"token": "s3cret-admin-token"}}


def run_backboned(*args, env=None, timeout=10):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([BACKBONED, *args], capture_output=True, text=True, timeout=timeout,
                          env=e)


def write_config(obj_or_text):
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
    return path


class CommandLine(unittest.TestCase):
    def test_version(self):
        r = run_backboned("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"backboned \d+\.\d+\.\d+ \(module ABI 1\.\d+\)")

    def test_help(self):
        r = run_backboned("--help")
        self.assertEqual(r.returncode, 0)
        for flag in ("--config", "--check-config", "--list-modules", "--log-level", "--log-format"):
            self.assertIn(flag, r.stdout)

    def test_list_modules(self):
        r = run_backboned("--list-modules")
        self.assertEqual(r.returncode, 0)
        for name in ("tcp", "admin", "jwt", "env"):
            self.assertRegex(r.stdout, rf"(?m)^{name}\s+\S+\s+ABI 1\.\d+")

    def test_check_config_ok(self):
        path = write_config({"anonymous": {"statements": ALLOW_ALL},
                             "modules": [{"name": "tcp", "settings": {"port": 0}}]})
        r = run_backboned("--config", path, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def assert_config_error(self, cfg, *needles):
        path = write_config(cfg)
        r = run_backboned("--config", path, "--check-config")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.returncode < 128, True, "crashed: " + r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)
        return r

    def test_bad_json_names_line(self):
        self.assert_config_error('{\n  "modules": [\n    "tcp",\n  ]\n}', ":4:", "invalid JSON")

    def test_unknown_top_level_key(self):
        self.assert_config_error({"moduls": []}, "setting 'moduls': unknown key")

    def test_unknown_module(self):
        self.assert_config_error({"modules": ["nosuchmodule"]}, "modules[0]", "nosuchmodule",
                                 "not found")

    def test_wrong_type_in_limits(self):
        self.assert_config_error({"limits": {"max_packet_size": "big"}}, "limits.max_packet_size")

    def test_unknown_module_setting(self):
        self.assert_config_error({"modules": [{"name": "tcp", "settings": {"prot": 1}}]},
                                 "setting 'prot': unknown key")

    def test_invalid_statement(self):
        self.assert_config_error({"anonymous": {"statements": [{"effect": "maybe",
                                                                "actions": ["*"],
                                                                "resources": ["#"]}]}},
                                 "anonymous")

    def test_port_in_use_exits_nonzero(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            path = write_config({"modules": [{"name": "tcp", "settings": {
                "address": "127.0.0.1", "port": b.port}}], "anonymous": {"statements": ALLOW_ALL}})
            r = run_backboned("--config", path)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(f"cannot listen on 127.0.0.1:{b.port}", r.stderr)

    def test_env_invalid_port(self):
        path = write_config({"modules": ["env", {"name": "tcp", "settings": {"port": 0}}]})
        r = run_backboned("--config", path, "--check-config", env={"TCP_PORT": "abc"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("TCP_PORT", r.stderr)

    def test_log_format_json(self):
        path = write_config({"anonymous": {"statements": ALLOW_ALL},
                             "modules": [{"name": "tcp", "settings": {"port": 0}}]})
        r = run_backboned("--config", path, "--check-config", "--log-format", "json")
        self.assertEqual(r.returncode, 0)
        for line in r.stderr.splitlines():
            json.loads(line)


class Authentication(unittest.TestCase):
    def test_anonymous_refused_by_default(self):
        with Broker(modules=[ADMIN]) as b:
            for version, code in ((4, 5), (5, 135)):
                c = Client(b, version=version).connect(expect_ok=False)
                self.assertTrue(wait_for(lambda: c.connack is not None))
                self.assertEqual(c.connack[1], code)

    def test_admin_token(self):
        with Broker(modules=[ADMIN]) as b:
            c = Client(b, version=5, username="admin", password="s3cret-admin-token").connect()
            c.disconnect()
            for version, code in ((4, 4), (5, 134)):
                c = Client(b, version=version, username="admin", password="wrong").connect(
                    expect_ok=False)
                self.assertEqual(c.connack[1], code)
            log = b.read_log()
            self.assertNotIn("s3cret-admin-token", log)

    def test_unknown_provider(self):
        with Broker(modules=[ADMIN]) as b:
            c = Client(b, version=5, username="nosuch", password="x").connect(expect_ok=False)
            self.assertEqual(c.connack[1], 134)

    def test_env_admin_token_and_mosquitto_clients(self):
        with Broker(modules=["env", "admin"], env={"ADMIN_TOKEN": "from-env-token"}) as b:
            s = sub_start(b, "demo/#", "-u", "admin", "-P", "from-env-token")
            r = pub(b, "demo/x", "hello", "-u", "admin", "-P", "from-env-token")
            self.assertEqual(r.returncode, 0, r.stderr)
            rc, lines = sub_finish(s)
            self.assertEqual(lines, ["demo/x hello"])


class ProtocolErrors(unittest.TestCase):
    def test_first_packet_not_connect_closes(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = raw_connect(b)
            s.sendall(b"\xc0\x00")  # PINGREQ before CONNECT
            self.assertEqual(recv_exact(s, 1), b"")
            self.assertTrue(b.alive())

    def test_garbage_does_not_disturb_others(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            good = Client(b, version=5).connect()
            good.subscribe("t/#", 1)
            for junk in (b"\xff" * 100, b"\x10\xff\xff\xff\xff\x7f", b"\x10\x05\x00\x04MQT",
                         os.urandom(3000)):
                s = raw_connect(b)
                s.sendall(junk)
                s.close()
            good.publish("t/1", "still here", qos=1)
            self.assertEqual(len(good.wait_messages(1)), 1)
            self.assertTrue(b.alive())

    def test_unsupported_protocol_version(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = raw_connect(b)
            s.sendall(connect_packet(version=9))
            self.assertEqual(recv_exact(s, 4), b"\x20\x02\x00\x01")

    def test_oversized_packet_refused_before_buffering(self):
        with Broker(anonymous=ALLOW_ALL, limits={"max_packet_size": 1024}) as b:
            c = Client(b, version=5).connect()
            c.publish("big", b"x" * 4096, qos=0, wait=False)
            self.assertTrue(wait_for(lambda: c.disconnected is not None))
            # Before authentication the budget is smaller still.
            s = raw_connect(b)
            s.sendall(b"\x10\xff\xff\x03")  # announces a 64 KiB CONNECT
            self.assertEqual(recv_exact(s, 1), b"")

    def test_connect_timeout(self):
        with Broker(anonymous=ALLOW_ALL, limits={"connect_timeout_ms": 300}) as b:
            s = raw_connect(b)
            t0 = time.time()
            self.assertEqual(recv_exact(s, 1, timeout=5), b"")
            self.assertLess(time.time() - t0, 3)

    def test_keepalive_timeout(self):
        with Broker(anonymous=ALLOW_ALL) as b:
            s = raw_connect(b)
            s.sendall(connect_packet(keepalive=1))
            self.assertEqual(recv_exact(s, 4), b"\x20\x02\x00\x00")
            t0 = time.time()
            self.assertEqual(recv_exact(s, 1, timeout=5), b"")
            self.assertGreater(time.time() - t0, 1.0)


if __name__ == "__main__":
    main()
