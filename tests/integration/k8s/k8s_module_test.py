# SPDX-License-Identifier: GPL-3.0-or-later
"""The k8s module end to end (SPEC §5, §6, §7, §9): backboned against the
stand-in API server tests/k8s/fake_apiserver.py. Client and Topic resources
become logins and topic rules, Secrets hold the tokens, statuses say Ready or
why not, and the watches survive 410 Gone, dropped connections and token
rotation. The broker runs with only the RBAC rights the Helm chart grants."""
import base64
import os
import shutil
import subprocess
import sys
import time
import unittest

from harness import (BACKBONED, SOURCE_DIR, Broker, Client, main, raw_publish, raw_session,
                     read_packet, wait_for, wait_port)

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "k8s"))
from fake_apiserver import FakeApiServer  # noqa: E402

GROUP = "backbone.mortenolsen.pro"
# What the broker's service account may do, and nothing more.
BROKER_RULES = ["list,watch clients,topics,secrets", "create,patch secrets",
                "patch clients/status,topics/status",
                # leader election (on by default) on the Lease in "default"
                {"verbs": ["get", "create", "update"], "apiGroups": ["coordination.k8s.io"],
                 "resources": ["leases"], "namespaces": ["default"]}]
BROKER_TOKEN = "broker-service-account-token-0123456789"
EXAMPLES = os.path.join(SOURCE_DIR, "tests", "k8s", "examples")

SENSOR = [
    {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["sensors/**/data"]},
    {"effect": "allow", "actions": ["mqtt:subscribe", "mqtt:read"], "resources": ["sensors/#"]},
]
PUBLISH_DATA = [{"effect": "allow", "actions": ["mqtt:publish"], "resources": ["data/#"]}]
PUBLISH_OTHER = [{"effect": "allow", "actions": ["mqtt:publish"], "resources": ["other/#"]}]


def client_obj(ns, name, statements):
    return {"apiVersion": f"{GROUP}/v1", "kind": "Client",
            "metadata": {"name": name, "namespace": ns}, "spec": {"statements": statements}}


def topic_obj(ns, name, patterns):
    return {"apiVersion": f"{GROUP}/v1", "kind": "Topic",
            "metadata": {"name": name, "namespace": ns}, "spec": {"patterns": patterns}}


ACCEPTED = (0x00, 0x10)  # success, or "no matching subscribers"


def publish_code(sock, topic, payload, packet_id):
    """A QoS 1 publish; returns the v5 PUBACK reason code and the packet."""
    raw_publish(sock, topic, payload, qos=1, packet_id=packet_id)
    kind, body = read_packet(sock)
    assert kind is not None and kind >> 4 == 4, f"no PUBACK: {kind} {body!r}"
    assert int.from_bytes(body[:2], "big") == packet_id
    return (body[2] if len(body) > 2 else 0), body


class K8s(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = FakeApiServer().start()
        cls.api.set_token(BROKER_TOKEN, BROKER_RULES, user="system:serviceaccount:backbone:broker")
        cls.kubeconfig = cls.api.kubeconfig_for(BROKER_TOKEN)

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def setUp(self):
        # A namespace per test: the tests share the API server.
        self.ns = "t-" + self._testMethodName.replace("_", "-")[5:40].strip("-")
        self.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}})

    # ---- helpers

    def module(self, **settings):
        s = {"kubeconfig": self.kubeconfig, "namespaces": [self.ns], "watch_timeout_s": 30,
             "backoff_initial_ms": 50, "backoff_max_ms": 500}
        s.update(settings)
        return {"name": "k8s", "settings": s}

    def broker(self, **settings):
        return Broker(modules=[self.module(**settings)])

    def token_of(self, name, timeout=10):
        found = {}

        def check():
            s = self.api.get("", "secrets", self.ns, name + "-secret")
            if s and s.get("data", {}).get("token"):
                found["token"] = base64.b64decode(s["data"]["token"]).decode()
                return True
            return False
        self.assertTrue(wait_for(check, timeout), f"no Secret {name}-secret")
        return found["token"]

    def login_token(self, b, name):
        """The token of Client `name` once the broker accepts it: the API
        server stores the Secret a moment before the broker hears back."""
        token = self.token_of(name)
        self.assertTrue(wait_for(lambda: self.connack(b, token) == 0, 5), b.read_log()[-3000:])
        return token

    def ready(self, plural, name):
        obj = self.api.get(GROUP, plural, self.ns, name) or {}
        for c in obj.get("status", {}).get("conditions", []):
            if c.get("type") == "Ready":
                return c
        return {}

    def set_spec(self, plural, name, spec):
        obj = self.api.get(GROUP, plural, self.ns, name)
        obj["spec"] = spec
        obj.pop("status", None)
        self.api.apply(obj)

    def connack(self, b, password):
        c = Client(b, username="k8s", password=password).connect(expect_ok=False)
        rc = c.connack[1] if c.connack else None
        c.disconnect()
        return rc

    # ---- tests

    def test_kubectl_client_login_and_statements(self):
        kubectl = shutil.which("kubectl")
        env = dict(os.environ, KUBECONFIG=self.api.kubeconfig)
        for f in ("client.yaml", "topic.yaml"):
            with open(os.path.join(EXAMPLES, f)) as src:
                text = src.read().replace("namespace: production", f"namespace: {self.ns}")
            if kubectl:
                r = subprocess.run([kubectl, "apply", "-f", "-"], input=text, text=True,
                                   capture_output=True, env=env, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
            else:
                import yaml
                self.api.create(yaml.safe_load(text))
        with self.broker() as b:
            token = self.login_token(b, "sensor-client")
            self.assertGreaterEqual(len(token), 32)
            secret = self.api.get("", "secrets", self.ns, "sensor-client-secret")
            owner = secret["metadata"]["ownerReferences"][0]
            self.assertEqual((owner["kind"], owner["name"], owner["controller"]),
                             ("Client", "sensor-client", True))
            sock = raw_session(b, 5, "k8s", token)
            self.assertIn(publish_code(sock, "sensors/a/data", '{"v":1}', 1)[0], ACCEPTED)
            self.assertEqual(publish_code(sock, "other/a", "x", 2)[0], 0x87)
            # The Topic of the example: at most 1024 bytes on sensors/**/data.
            code, body = publish_code(sock, "sensors/a/data", "x" * 2000, 3)
            self.assertEqual(code, 0x95)
            self.assertIn(f"{self.ns}/sensor-topics".encode(), body)
            sock.close()
            self.assertEqual(self.connack(b, "not-the-token"), 134)
            self.assertTrue(wait_for(lambda: self.ready("clients", "sensor-client").get("status")
                                     == "True", 5))
            self.assertEqual(self.ready("topics", "sensor-topics").get("status"), "True")
            obj = self.api.get(GROUP, "clients", self.ns, "sensor-client")
            self.assertEqual(obj["status"]["observedGeneration"], obj["metadata"]["generation"])
            self.assertNotIn(token, b.read_log())

    def test_statement_change_applies_live(self):
        self.api.create(client_obj(self.ns, "live", PUBLISH_DATA))
        with self.broker() as b:
            token = self.login_token(b, "live")
            sock = raw_session(b, 5, "k8s", token)
            self.assertIn(publish_code(sock, "data/x", "1", 1)[0], ACCEPTED)
            self.assertEqual(publish_code(sock, "other/x", "1", 2)[0], 0x87)
            self.set_spec("clients", "live", {"statements": PUBLISH_OTHER})
            changed = time.time()
            packet = [2]

            def switched():
                packet[0] += 1
                return publish_code(sock, "data/x", "1", packet[0])[0] == 0x87
            self.assertTrue(wait_for(switched, 3, step=0.05))
            self.assertLess(time.time() - changed, 2.0)
            self.assertIn(publish_code(sock, "other/x", "1", 100)[0], ACCEPTED)
            sock.close()
            self.assertTrue(wait_for(lambda: self.ready("clients", "live").get("observedGeneration")
                                     == 2, 5))

    def test_deleted_client_is_cut(self):
        self.api.create(client_obj(self.ns, "gone", SENSOR))
        with self.broker() as b:
            token = self.login_token(b, "gone")
            c = Client(b, username="k8s", password=token).connect()
            self.api.delete(GROUP, "clients", self.ns, "gone")
            self.assertTrue(wait_for(lambda: c.disconnected is not None, 3))
            self.assertEqual(self.connack(b, token), 134)

    def test_invalid_specs_are_reported_and_grant_nothing(self):
        self.api.create(topic_obj(self.ns, "small", [{"pattern": "sensors/#", "maxMessageSize": 8}]))
        # Valid for the CRD schema, refused by the broker.
        self.api.create(topic_obj(self.ns, "broken", [{"pattern": "a/#", "matches": ["b/#"]}]))
        self.api.create(client_obj(self.ns, "empty-actions",
                                   [{"effect": "allow", "actions": [], "resources": ["x"]}]))
        self.api.create(client_obj(self.ns, "writer", [{"effect": "allow", "actions": ["*"],
                                                        "resources": ["**"]}]))
        with self.broker() as b:
            self.assertTrue(wait_for(lambda: self.ready("topics", "broken").get("status") == "False",
                                     5))
            cond = self.ready("topics", "broken")
            self.assertEqual(cond["reason"], "InvalidSpec")
            self.assertIn("exactly one of", cond["message"])
            self.assertTrue(wait_for(
                lambda: self.ready("clients", "empty-actions").get("reason") == "InvalidSpec", 5))
            self.assertIn("actions", self.ready("clients", "empty-actions")["message"])
            forbidden = self.token_of("empty-actions")
            self.assertTrue(wait_for(lambda: self.connack(b, forbidden) == 135, 5))
            # The valid rule is in force.
            sock = raw_session(b, 5, "k8s", self.login_token(b, "writer"))
            code, body = publish_code(sock, "sensors/t", "more than eight bytes", 1)
            self.assertEqual(code, 0x95)
            self.assertIn(f"{self.ns}/small".encode(), body)
            self.assertIn(publish_code(sock, "sensors/t", "short", 2)[0], ACCEPTED)
            sock.close()

    def test_relist_after_410_drops_what_was_deleted_meanwhile(self):
        self.api.create(client_obj(self.ns, "stays", SENSOR))
        self.api.create(client_obj(self.ns, "goes", SENSOR))
        with self.broker() as b:
            goes = self.login_token(b, "goes")
            stays = self.login_token(b, "stays")
            c = Client(b, username="k8s", password=goes).connect()
            # Watches fail for a while; meanwhile "goes" is deleted and the
            # history compacted: only a fresh list can tell.
            self.api.fail(r"/clients$", code=500, count=3, method="GET")
            self.api.drop_watches(graceful=False)
            self.api.delete(GROUP, "clients", self.ns, "goes")
            self.api.compact()
            self.assertTrue(wait_for(lambda: "410 Gone" in b.read_log(), 10), b.read_log()[-3000:])
            self.assertTrue(wait_for(lambda: c.disconnected is not None, 5))
            self.assertEqual(self.connack(b, goes), 134)
            self.assertEqual(self.connack(b, stays), 0)

    def test_watch_drop_reconnects(self):
        with self.broker() as b:
            self.assertTrue(self.api.wait_for_watches(3))
            self.api.drop_watches(graceful=False)
            self.api.create(client_obj(self.ns, "after-drop", SENSOR))
            token = self.token_of("after-drop")
            self.assertTrue(wait_for(lambda: self.connack(b, token) == 0, 5))
            self.assertTrue(self.api.wait_for_watches(3))

    def test_transports_wait_for_the_first_sync(self):
        limited = "limited-token-without-clients-0123456789"
        self.api.set_token(limited, ["list,watch topics,secrets"], user="system:serviceaccount:x:y")
        b = Broker(modules=[self.module(kubeconfig=self.api.kubeconfig_for(limited))])
        b.log = open(b.log_path, "w")
        b.proc = subprocess.Popen([BACKBONED, "--config", b.config_path, "--log-level", "debug"],
                                  stdout=b.log, stderr=subprocess.STDOUT, env=b.env)
        try:
            self.assertTrue(wait_for(lambda: "403" in b.read_log(), 10), b.read_log())
            # Listing Clients is forbidden: no client may connect yet.
            self.assertFalse(wait_port(b.port, timeout=1.5))
            self.assertTrue(b.alive())
            self.api.set_token(limited, BROKER_RULES, user="system:serviceaccount:x:y")
            self.assertTrue(wait_port(b.port, timeout=10), b.read_log()[-3000:])
        finally:
            self.assertEqual(b.stop(), 0)

    def test_in_cluster_token_rotation(self):
        sa = os.path.join(self.api.directory, "sa-" + self.ns)
        os.makedirs(sa)
        shutil.copy(os.path.join(self.api.directory, "serviceaccount", "ca.crt"), sa)
        first, second = "rotation-token-one-0123456789", "rotation-token-two-0123456789"
        self.api.set_token(first, BROKER_RULES, user="system:serviceaccount:rot:a")
        with open(os.path.join(sa, "token"), "w") as f:
            f.write(first)
        b = Broker(modules=[{"name": "k8s", "settings": {
            "service_account_dir": sa, "namespaces": [self.ns], "backoff_initial_ms": 50,
            "backoff_max_ms": 500}}], env=self.api.in_cluster_env())
        b.env.pop("KUBECONFIG", None)
        with b:
            self.assertIn("in-cluster", b.read_log())
            # The kubelet rotates the projected token: a new file, the old
            # token stops working.
            self.api.set_token(second, BROKER_RULES, user="system:serviceaccount:rot:a")
            with open(os.path.join(sa, "token.new"), "w") as f:
                f.write(second)
            os.replace(os.path.join(sa, "token.new"), os.path.join(sa, "token"))
            self.api.remove_token(first)
            self.api.drop_watches(graceful=False)
            self.api.create(client_obj(self.ns, "rotated", SENSOR))
            token = self.token_of("rotated")
            self.assertTrue(wait_for(lambda: self.connack(b, token) == 0, 10), b.read_log()[-3000:])

    def test_enabled_by_environment(self):
        self.api.create(client_obj(self.ns, "from-env", SENSOR))
        b = Broker(modules=[{"name": "env"}],
                   env={"K8S_ENABLED": "true", "KUBECONFIG": self.kubeconfig})
        with b:
            token = self.token_of("from-env")
            self.assertTrue(wait_for(lambda: self.connack(b, token) == 0, 5), b.read_log()[-3000:])


if __name__ == "__main__":
    main()
