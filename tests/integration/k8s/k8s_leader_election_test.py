# SPDX-License-Identifier: GPL-3.0-or-later
"""Several replicas of the k8s module (modules/config/k8s, "Several
replicas"): two backboned against the stand-in API server
tests/k8s/fake_apiserver.py elect a leader on a coordination.k8s.io Lease.
Only the leader writes (token Secrets, statuses), as the API server's request
log shows per service account; both serve logins. Killed with SIGKILL, the
leader's Lease expires and the other takes over; stopped with SIGTERM, it
releases the Lease and the other takes over at once."""
import base64
import os
import re
import sys
import time
import unittest

from harness import SOURCE_DIR, Broker, Client, http_request, main, wait_for

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "k8s"))
from fake_apiserver import FakeApiServer  # noqa: E402

GROUP = "backbone.mortenolsen.pro"
LEASES = "coordination.k8s.io"
LEASE_NS = "default"
# The chart's rights: the resources everywhere, the Lease in its own namespace.
BROKER_RULES = ["list,watch clients,topics,secrets", "create,patch secrets",
                "patch clients/status,topics/status",
                {"verbs": ["get", "create", "update"], "apiGroups": [LEASES],
                 "resources": ["leases"], "namespaces": [LEASE_NS]}]
USERS = {"a": "system:serviceaccount:backbone:pod-a", "b": "system:serviceaccount:backbone:pod-b"}
STATEMENTS = [{"effect": "allow", "actions": ["mqtt:publish"], "resources": ["data/#"]}]


class LeaderElection(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.api = FakeApiServer().start()
        cls.kubeconfigs = {}
        for who, user in USERS.items():
            token = f"broker-{who}-service-account-token-0123456789"
            cls.api.set_token(token, BROKER_RULES, user=user)
            cls.kubeconfigs[who] = cls.api.kubeconfig_for(token)

    @classmethod
    def tearDownClass(cls):
        cls.api.stop()

    def setUp(self):
        self.ns = "t-" + self._testMethodName.replace("_", "-")[5:40].strip("-")
        self.api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.ns}})
        self.lease = "backbone-" + self.ns
        self.brokers = []

    def tearDown(self):
        for b in self.brokers:
            if b.proc and b.proc.poll() is None:
                b.proc.kill()
                b.proc.wait()
                b.log.close()

    # ---- helpers

    def broker(self, who, lease_duration_s, identity_setting):
        election = {"lease_name": self.lease, "namespace": LEASE_NS,
                    "lease_duration_s": lease_duration_s, "renew_deadline_ms": 2000,
                    "retry_period_ms": 250}
        env = {"POD_NAME": "pod-" + who}
        if identity_setting:
            # the setting wins over POD_NAME
            election["identity"] = "pod-" + who
            env["POD_NAME"] = "not-" + who
        s = {"kubeconfig": self.kubeconfigs[who], "namespaces": [self.ns], "watch_timeout_s": 30,
             "backoff_initial_ms": 50, "backoff_max_ms": 500, "leader_election": election}
        b = Broker(modules=[{"name": "k8s", "settings": s}, "http-api"], env=env,
                   name="backboned-" + who)
        b.start()
        self.brokers.append(b)
        return b

    def holder(self):
        lease = self.api.get(LEASES, "leases", LEASE_NS, self.lease) or {}
        return (lease.get("spec") or {}).get("holderIdentity")

    def wait_holder(self, identity, timeout, logs=()):
        ok = wait_for(lambda: self.holder() == identity, timeout, step=0.05)
        self.assertTrue(ok, f"holder {self.holder()!r}, not {identity!r}\n" +
                        "\n".join(b.read_log()[-3000:] for b in logs))

    def add_client(self, name):
        self.api.create({"apiVersion": f"{GROUP}/v1", "kind": "Client",
                         "metadata": {"name": name, "namespace": self.ns},
                         "spec": {"statements": STATEMENTS}})

    def wait_ready(self, name, timeout=10, logs=()):
        def ready():
            c = self.api.get(GROUP, "clients", self.ns, name) or {}
            return any(x.get("type") == "Ready" and x.get("status") == "True"
                       for x in (c.get("status") or {}).get("conditions", []))
        self.assertTrue(wait_for(ready, timeout), f"Client {name} not Ready\n" +
                        "\n".join(b.read_log()[-3000:] for b in logs))

    def writers(self, since=0.0):
        """Users that wrote Secrets or statuses in the test's namespace."""
        prefixes = (f"/api/v1/namespaces/{self.ns}/secrets",
                    f"/apis/{GROUP}/v1/namespaces/{self.ns}/")
        out = set()
        for r in list(self.api.requests):
            if r["method"] in ("POST", "PUT", "PATCH") and r["time"] >= since and \
                    r["path"].startswith(prefixes):
                out.add(r["user"])
        return out

    def login(self, b, name):
        s = self.api.get("", "secrets", self.ns, name + "-secret")
        token = base64.b64decode(s["data"]["token"]).decode()

        def ok():
            c = Client(b, username="k8s", password=token).connect(expect_ok=False)
            rc = c.connack[1] if c.connack else None
            c.disconnect()
            return rc == 0
        return wait_for(ok, 5)

    def leader_gauge(self, b):
        code, _, text = http_request(b.http_port, "GET", "/metrics")
        self.assertEqual(code, 200)
        m = re.search(r"^backbone_k8s_leader (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    # ---- tests

    def test_only_the_leader_writes_and_a_killed_leader_is_replaced(self):
        a = self.broker("a", lease_duration_s=3, identity_setting=True)
        self.wait_holder("pod-a", 10, [a])
        b = self.broker("b", lease_duration_s=3, identity_setting=False)
        self.assertTrue(wait_for(lambda: "leader election on Lease" in b.read_log(), 5))
        time.sleep(0.5)  # b has tried the Lease a few times by now
        self.assertEqual(self.holder(), "pod-a")

        self.add_client("first")
        self.wait_ready("first", logs=[a, b])
        time.sleep(0.5)  # b has seen the Client too: it must not write
        self.assertEqual(self.writers(), {USERS["a"]})
        # both serve: the follower authenticates from what it watches
        self.assertTrue(self.login(a, "first"))
        self.assertTrue(self.login(b, "first"))
        self.assertIn("became the leader", a.read_log())
        self.assertNotIn("became the leader", b.read_log())
        self.assertEqual((self.leader_gauge(a), self.leader_gauge(b)), (1, 0))

        # the leader dies without releasing: b waits for the Lease to expire
        killed = time.time()
        a.proc.kill()
        a.proc.wait()
        a.log.close()
        self.wait_holder("pod-b", 10, [b])
        took = time.time() - killed
        self.assertGreaterEqual(took, 2.0, "took over before the Lease expired")
        lease = self.api.get(LEASES, "leases", LEASE_NS, self.lease)
        self.assertEqual(lease["spec"]["leaseTransitions"], 1)
        self.assertEqual(lease["spec"]["leaseDurationSeconds"], 3)
        self.assertTrue(wait_for(lambda: "became the leader" in b.read_log(), 5), b.read_log())
        self.assertEqual(self.leader_gauge(b), 1)

        since = time.time()
        self.add_client("second")
        self.wait_ready("second", logs=[b])
        self.assertEqual(self.writers(since), {USERS["b"]})
        self.assertTrue(self.login(b, "second"))

    def test_a_stopped_leader_releases_the_lease_at_once(self):
        # A long lease: only the release explains a fast takeover.
        a = self.broker("a", lease_duration_s=60, identity_setting=True)
        self.wait_holder("pod-a", 10, [a])
        b = self.broker("b", lease_duration_s=60, identity_setting=True)
        self.add_client("one")
        self.wait_ready("one", logs=[a, b])
        self.assertEqual(self.writers(), {USERS["a"]})

        stopped = time.time()
        a.stop()
        self.assertIn("released Lease", a.read_log())
        self.wait_holder("pod-b", 10, [b])
        self.assertLess(time.time() - stopped, 10)
        since = time.time()
        self.add_client("two")
        self.wait_ready("two", logs=[b])
        self.assertEqual(self.writers(since), {USERS["b"]})

    def test_a_new_leader_reconciles_what_it_missed(self):
        a = self.broker("a", lease_duration_s=60, identity_setting=True)
        self.wait_holder("pod-a", 10, [a])
        b = self.broker("b", lease_duration_s=60, identity_setting=True)
        # a dies without releasing; for a minute the Lease still names it, and
        # a Client arrives meanwhile: b, a follower, writes nothing for it.
        a.proc.kill()
        a.proc.wait()
        a.log.close()
        self.add_client("missed")
        time.sleep(1.0)
        self.assertIsNone(self.api.get("", "secrets", self.ns, "missed-secret"))
        # The Lease is taken from the dead holder (an operator deleting it).
        self.api.delete(LEASES, "leases", LEASE_NS, self.lease)
        self.wait_holder("pod-b", 10, [b])
        self.wait_ready("missed", logs=[b])
        self.assertEqual(self.writers(), {USERS["b"]})

    def test_without_election_every_replica_writes(self):
        s = {"kubeconfig": self.kubeconfigs["a"], "namespaces": [self.ns],
             "watch_timeout_s": 30, "leader_election": False}
        a = Broker(modules=[{"name": "k8s", "settings": s}]).start()
        self.brokers.append(a)
        self.add_client("solo")
        self.wait_ready("solo", logs=[a])
        self.assertIsNone(self.holder())


if __name__ == "__main__":
    main()
