# SPDX-License-Identifier: GPL-3.0-or-later
"""The state directory: checked at start-up, and clients and topic rules
created through the HTTP API survive a restart (kill -9 included)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import Broker, wait_port  # noqa: E402

ADMIN = "state-admin-token-0123456789abcdef"
MODULES = ["env", "admin", "client", "http-api"]


def api(broker, method, path, body=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{broker.http_port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + ADMIN, "X-Auth-Provider": "admin"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def publish(broker, topic, message, user, password, qos=1):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "5",
                           "-q", str(qos), "-t", topic, "-m", message, "-u", user, "-P", password],
                          capture_output=True, text=True, timeout=10)


class StateDirectory(unittest.TestCase):
    def test_unwritable_state_directory_stops_start_up(self):
        if os.geteuid() == 0:
            target = "/sys"  # root writes anywhere else; sysfs refuses new files
        else:
            target = tempfile.mkdtemp(prefix="backbone-ro-")
            os.chmod(target, 0o500)
        b = Broker(modules=MODULES, env={"ADMIN_TOKEN": ADMIN}, extra={"state_dir": target})
        r = subprocess.run([harness.BACKBONED, "--config", b.config_path], capture_output=True,
                           text=True, timeout=20, env=b.env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"backboned: state_dir '{target}': not writable:", r.stderr)

    def test_state_directory_that_is_a_file_stops_start_up(self):
        path = tempfile.mkstemp(prefix="backbone-state-file-")[1]
        b = Broker(modules=MODULES, env={"ADMIN_TOKEN": ADMIN}, extra={"state_dir": path})
        r = subprocess.run([harness.BACKBONED, "--config", b.config_path], capture_output=True,
                           text=True, timeout=20, env=b.env)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"state_dir '{path}': not a directory", r.stderr)

    def test_api_clients_and_topics_survive_a_restart(self):
        state = os.path.join(tempfile.mkdtemp(prefix="backbone-state-"), "nested", "state")
        first = Broker(modules=MODULES, env={"ADMIN_TOKEN": ADMIN},
                       extra={"state_dir": state})
        with first:
            self.assertTrue(wait_port(first.http_port))
            status, body = api(first, "PUT", "/api/clients/keeper", {"statements": [
                {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["kept/#"]}]})
            self.assertEqual(status, 201)
            token = body["token"]
            status, _ = api(first, "PUT", "/api/topics/small",
                            {"patterns": [{"pattern": "kept/#", "maxMessageSize": 4}]})
            self.assertEqual(status, 201)
        self.assertEqual(os.stat(state).st_mode & 0o777, 0o750)
        self.assertEqual(os.stat(os.path.join(state, "client", "clients.json")).st_mode & 0o777,
                         0o600)
        with open(os.path.join(state, "client", "clients.json")) as f:
            self.assertNotIn(token, f.read())

        # The same state directory, killed hard this time.
        second = Broker(modules=MODULES, env={"ADMIN_TOKEN": ADMIN},
                        extra={"state_dir": state})
        second.start()
        try:
            self.assertTrue(wait_port(second.http_port))
            ok = publish(second, "kept/a", "tiny", "client", token)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            publish(second, "kept/a", "too large", "client", token)
            with urllib.request.urlopen(f"http://127.0.0.1:{second.http_port}/metrics",
                                        timeout=5) as r:
                metrics = r.read().decode()
            # Refused (0x95) by the restored topic rule.
            self.assertIn('backbone_topic_rule_rejections_total{rule="small"} 1', metrics)
            self.assertEqual(api(second, "GET", "/api/topics/small")[0], 200)
            status, body = api(second, "DELETE", "/api/clients/keeper")
            self.assertEqual(status, 204)
        finally:
            second.proc.send_signal(signal.SIGKILL)
            second.proc.wait(10)
            second.log.close()

        third = Broker(modules=MODULES, env={"ADMIN_TOKEN": ADMIN}, extra={"state_dir": state})
        with third:
            self.assertTrue(wait_port(third.http_port))
            self.assertEqual(api(third, "GET", "/api/clients/keeper")[0], 404)
            refused = publish(third, "kept/a", "tiny", "client", token)
            self.assertNotEqual(refused.returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
