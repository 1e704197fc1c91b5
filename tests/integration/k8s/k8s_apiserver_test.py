# SPDX-License-Identifier: GPL-3.0-or-later
"""Fidelity of the stand-in Kubernetes API server (tests/k8s/fake_apiserver.py)
that the k8s module's end-to-end tests run against: real clients - kubectl
and the official Python client (Debian's python3-kubernetes) - must work
against it unchanged, and it must answer like a real API server (status
codes, Status objects, resourceVersion and watch semantics, 410 Gone,
RBAC 403, 401, garbage collection through ownerReferences).

The CRDs of packaging/kubernetes/crds/ and the seed's example manifests
(tests/k8s/examples/, copied unchanged from the product description) are
applied with kubectl. Nothing here needs the broker. Nothing is skipped:
a missing kubectl or python3-kubernetes fails the test (scripts/test
installs both)."""
import atexit
import base64
import datetime
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration
ROOT = os.environ.get("BACKBONE_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
ROOT = os.path.abspath(ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s"))

from fake_apiserver import FakeApiServer  # noqa: E402
from harness import main, wait_for  # noqa: E402

import kubernetes  # noqa: E402  (python3-kubernetes: a missing module fails the test)
from kubernetes.client.rest import ApiException  # noqa: E402

CRD_DIR = os.path.join(ROOT, "packaging", "kubernetes", "crds")
EXAMPLES = os.path.join(ROOT, "tests", "k8s", "examples")
FAKE = os.path.join(ROOT, "tests", "k8s", "fake_apiserver.py")
GROUP, VERSION = "backbone.mortenolsen.pro", "v1"
KUBECTL = shutil.which("kubectl")


def setUpModule():
    if KUBECTL is None:
        raise AssertionError(
            "kubectl is not installed (scripts/test installs Debian's kubernetes-client)"
        )


def b64(s):
    return base64.b64encode(s.encode()).decode()


def client_body(name, namespace="default", statements=None, **extra):
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Client",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "statements": statements
            if statements is not None
            else [{"effect": "allow", "actions": ["mqtt:publish"], "resources": ["a/#"]}]
        },
    }
    body.update(extra)
    return body


class Kubectl:
    """kubectl with its own kubeconfig and cache directory."""

    def __init__(self, kubeconfig):
        self.kubeconfig = kubeconfig
        self.home = tempfile.mkdtemp(prefix="kubectl-home-")
        atexit.register(shutil.rmtree, self.home, True)
        self.env = dict(os.environ, HOME=self.home, KUBECONFIG=kubeconfig)

    def run(self, *args, check=True, stdin=None, timeout=30):
        r = subprocess.run(
            [KUBECTL, "--kubeconfig", self.kubeconfig, "--request-timeout=20s", *args],
            capture_output=True,
            text=True,
            env=self.env,
            input=stdin,
            timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
            )
        return r

    def json(self, *args):
        return json.loads(self.run(*args, "-o", "json").stdout)

    def popen(self, *args):
        return subprocess.Popen(
            [KUBECTL, "--kubeconfig", self.kubeconfig, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )


def json_stream(text):
    """The objects of a stream of concatenated JSON documents."""
    dec, i, out = json.JSONDecoder(), 0, []
    text = text.strip()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


class Raw:
    """Plain HTTP(S) requests to the stand-in, for what clients hide
    (status lines, Status bodies, the chunked watch stream)."""

    def __init__(self, srv, token=None):
        self.srv, self.token = srv, token

    def conn(self, timeout=10):
        if self.srv.tls:
            ctx = ssl.create_default_context(cafile=self.srv.ca_path)
            return http.client.HTTPSConnection(
                self.srv.host, self.srv.port, context=ctx, timeout=timeout
            )
        return http.client.HTTPConnection(self.srv.host, self.srv.port, timeout=timeout)

    def request(self, method, path, body=None, ctype="application/json", token=None, headers=None):
        c = self.conn()
        h = dict(headers or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if body is not None:
            h["Content-Type"] = ctype
            body = body if isinstance(body, (bytes, str)) else json.dumps(body)
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            return r.status, json.loads(data), r
        except ValueError:
            return r.status, data, r

    def watch(self, path, timeout=10):
        """Opens a watch; returns (connection, response) - read events with
        next_event()."""
        c = self.conn(timeout=timeout)
        c.request("GET", path, headers={"Authorization": "Bearer " + self.token})
        r = c.getresponse()
        return c, r


def close_api(api):
    api.rest_client.pool_manager.clear()  # closes the pooled connections
    api.close()


def next_event(resp):
    line = resp.readline()
    return json.loads(line) if line.strip() else None


class KubectlFidelity(unittest.TestCase):
    """kubectl (whatever version is installed: Debian's 1.20 or newer) with
    its defaults: discovery, OpenAPI validation (client-side from
    /openapi/v2 protobuf, or server-side fieldValidation=Strict),
    client-side apply, tables, watch."""

    @classmethod
    def setUpClass(cls):
        cls.srv = FakeApiServer(crds=[]).start()
        cls.k = Kubectl(cls.srv.kubeconfig)
        cls.k.run("apply", "-f", CRD_DIR)
        cls.k.run(
            "wait",
            "--for=condition=established",
            "--timeout=10s",
            f"crd/clients.{GROUP}",
            f"crd/topics.{GROUP}",
        )
        cls.k.run("create", "namespace", "production")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_crds_installed(self):
        crd = self.k.json("get", "crd", f"clients.{GROUP}")
        self.assertEqual(crd["spec"]["names"]["kind"], "Client")
        conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        self.assertEqual(conds.get("Established"), "True")
        again = self.k.run("apply", "-f", CRD_DIR).stdout
        self.assertIn("unchanged", again)
        res = self.k.run("api-resources", f"--api-group={GROUP}", "-o", "wide").stdout
        self.assertIn("clients", res)
        self.assertIn("mqtttopic", res)

    def test_seed_examples_apply_unchanged(self):
        out = self.k.run("apply", "-f", EXAMPLES).stdout
        self.assertRegex(out, r"client.backbone.mortenolsen.pro/sensor-client (created|unchanged)")
        self.assertRegex(out, r"topic.backbone.mortenolsen.pro/sensor-topics (created|unchanged)")
        self.assertIn("unchanged", self.k.run("apply", "-f", EXAMPLES).stdout)
        import yaml

        for fname, plural in (("client.yaml", "clients"), ("topic.yaml", "topics")):
            with open(os.path.join(EXAMPLES, fname)) as f:
                manifest = yaml.safe_load(f)
            live = self.k.json("get", plural, manifest["metadata"]["name"], "-n", "production")
            self.assertEqual(live["spec"], manifest["spec"])
            self.assertEqual(live["metadata"]["generation"], 1)
            self.assertTrue(live["metadata"]["uid"])
        lst = self.k.json("get", "clients", "--all-namespaces")
        self.assertIn("sensor-client", [i["metadata"]["name"] for i in lst["items"]])
        table = self.k.run("get", "mqttclient", "-n", "production").stdout
        self.assertRegex(table, r"NAME\s+READY\s+AGE")
        self.assertIn("sensor-client", self.k.run("get", "backbone", "-A").stdout)
        self.assertIn("statements", self.k.run("explain", "clients.spec").stdout)

    def test_invalid_manifests_refused(self):
        bad_enum = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Client",
            "metadata": {"name": "bad-enum"},
            "spec": {"statements": [{"effect": "maybe", "actions": ["*"], "resources": ["*"]}]},
        }
        r = self.k.run("apply", "-f", "-", stdin=json.dumps(bad_enum), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('Unsupported value: "maybe"', r.stderr)
        unknown = client_body("bad-field")
        unknown["spec"]["bogus"] = 1
        r = self.k.run("apply", "-f", "-", stdin=json.dumps(unknown), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("bogus", r.stderr)
        no_pattern = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Topic",
            "metadata": {"name": "bad-topic"},
            "spec": {"patterns": [{"maxMessageSize": -1, "allowedQoS": [3]}]},
        }
        r = self.k.run("apply", "-f", "-", stdin=json.dumps(no_pattern), check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("greater than or equal to 0", r.stderr)
        self.assertIn("less than or equal to 2", r.stderr)
        # --validate=false: the unknown field is pruned, as a real server does
        r = self.k.run("apply", "--validate=false", "-f", "-", stdin=json.dumps(unknown))
        self.assertNotIn("bogus", self.k.json("get", "client", "bad-field")["spec"])
        both = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Topic",
            "metadata": {"name": "matches-qos"},
            "spec": {
                "patterns": [
                    {
                        "matches": ["a/+", "b/#"],
                        "qos": [0],
                        "retain": False,
                        "schema": {"type": "object", "required": ["value"]},
                    }
                ]
            },
        }
        self.k.run("apply", "-f", "-", stdin=json.dumps(both))
        self.assertEqual(self.k.json("get", "topic", "matches-qos")["spec"], both["spec"])

    def test_watch_patch_delete(self):
        w = self.k.popen(
            "get",
            "clients",
            "-n",
            "default",
            "-w",
            "-o",
            "json",
            "--output-watch-events",
            "--request-timeout=30s",
        )
        try:
            self.assertTrue(
                self.srv.wait_for_watches(1, "clients", timeout=15), "kubectl get -w did not watch"
            )
            self.k.run("apply", "-f", "-", stdin=json.dumps(client_body("watched")))
            self.k.run(
                "patch",
                "client",
                "watched",
                "--type=merge",
                "-p",
                json.dumps({"spec": {"statements": []}}),
            )
            self.assertEqual(self.k.json("get", "client", "watched")["metadata"]["generation"], 2)
            self.k.run("label", "client", "watched", "tier=test")
            self.assertEqual(self.k.json("get", "client", "watched")["metadata"]["generation"], 2)
            self.k.run("delete", "client", "watched")
            out = []
            reader = threading.Thread(
                target=lambda: out.extend(iter(w.stdout.readline, "")), daemon=True
            )
            reader.start()
            wait_for(lambda: '"DELETED"' in "".join(out), timeout=10)
            w.terminate()
            reader.join(10)
            err = w.stderr.read()
            w.wait(10)
            out = "".join(out)
            events = [
                (e["type"], e["object"]["metadata"]["name"])
                for e in json_stream(out)
                if e["object"]["metadata"]["name"] == "watched"
            ]
            self.assertEqual(
                [t for t, _ in events], ["ADDED", "MODIFIED", "MODIFIED", "DELETED"], out + err
            )
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
            w.stdout.close()
            w.stderr.close()

    def test_secret_and_garbage_collection(self):
        self.k.run(
            "create", "secret", "generic", "plain", "-n", "production", "--from-literal=token=abc"
        )
        s = self.k.json("get", "secret", "plain", "-n", "production")
        self.assertEqual(s["data"]["token"], b64("abc"))
        self.assertEqual(s["type"], "Opaque")
        self.k.run("apply", "-f", "-", stdin=json.dumps(client_body("owner", "production")))
        uid = self.k.json("get", "client", "owner", "-n", "production")["metadata"]["uid"]
        owned = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "owner-secret",
                "namespace": "production",
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/{VERSION}",
                        "kind": "Client",
                        "name": "owner",
                        "uid": uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "stringData": {"token": "x" * 40},
        }
        self.k.run("apply", "-f", "-", stdin=json.dumps(owned))
        time.sleep(0.3)  # the GC must keep a Secret whose owner exists
        self.assertEqual(
            self.k.json("get", "secret", "owner-secret", "-n", "production")["data"]["token"],
            b64("x" * 40),
        )
        self.k.run("delete", "client", "owner", "-n", "production")
        self.assertTrue(
            wait_for(
                lambda: self.k.run(
                    "get", "secret", "owner-secret", "-n", "production", check=False
                ).returncode
                != 0,
                timeout=10,
            )
        )
        self.assertIn(
            "NotFound",
            self.k.run("get", "secret", "owner-secret", "-n", "production", check=False).stderr,
        )
        self.k.run("get", "secret", "plain", "-n", "production")

    def test_credentials(self):
        token = "kubectl-reader-token"
        self.srv.set_token(token, ["get,list,watch clients,topics"])
        reader = Kubectl(self.srv.kubeconfig_for(token))
        reader.run("get", "clients", "-A")
        r = reader.run("create", "secret", "generic", "nope", "--from-literal=a=b", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(
            'cannot create resource "secrets" in API group "" in the namespace "default"', r.stderr
        )
        bad = Kubectl(self.srv.kubeconfig_for("not-a-token"))
        r = bad.run("get", "clients", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("You must be logged in to the server", r.stderr)
        cert = Kubectl(self.srv.kubeconfig_cert)  # client certificate, CN=kubernetes-admin
        cert.run("get", "namespaces")


class PythonClient(unittest.TestCase):
    """The official Python client: CustomObjectsApi, CoreV1Api, Watch."""

    @classmethod
    def setUpClass(cls):
        cls.srv = FakeApiServer().start()  # CRDs preloaded from packaging/kubernetes/crds
        cls.api_client = kubernetes.config.new_client_from_config(config_file=cls.srv.kubeconfig)
        cls.co = kubernetes.client.CustomObjectsApi(cls.api_client)
        cls.core = kubernetes.client.CoreV1Api(cls.api_client)
        cls.raw = Raw(cls.srv, cls.srv.token)

    @classmethod
    def tearDownClass(cls):
        close_api(cls.api_client)
        cls.srv.stop()

    def api_for(self, token):
        cfg = kubernetes.client.Configuration()
        cfg.host = self.srv.url
        cfg.ssl_ca_cert = self.srv.ca_path
        cfg.api_key = {"authorization": "Bearer " + token}
        api = kubernetes.client.ApiClient(cfg)
        self.addCleanup(close_api, api)
        return api

    def test_custom_object_lifecycle(self):
        body = client_body("life")
        body["status"] = {"observedGeneration": 99}
        c = self.co.create_namespaced_custom_object(GROUP, VERSION, "default", "clients", body)
        m = c["metadata"]
        self.assertTrue(m["uid"] and m["resourceVersion"] and m["creationTimestamp"])
        self.assertEqual(m["generation"], 1)
        self.assertNotIn("status", c)  # the status subresource: main-resource writes ignore status
        with self.assertRaises(ApiException) as e:
            self.co.create_namespaced_custom_object(
                GROUP, VERSION, "default", "clients", client_body("life")
            )
        self.assertEqual(e.exception.status, 409)
        self.assertEqual(json.loads(e.exception.body)["reason"], "AlreadyExists")
        got = self.co.get_namespaced_custom_object(GROUP, VERSION, "default", "clients", "life")
        self.assertEqual(got["metadata"]["resourceVersion"], m["resourceVersion"])
        # update with a stale resourceVersion -> 409 Conflict
        stale = dict(got, spec={"statements": []})
        fresh = self.co.replace_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", "life", stale
        )
        self.assertEqual(fresh["metadata"]["generation"], 2)
        self.assertGreater(int(fresh["metadata"]["resourceVersion"]), int(m["resourceVersion"]))
        with self.assertRaises(ApiException) as e:
            self.co.replace_namespaced_custom_object(
                GROUP, VERSION, "default", "clients", "life", stale
            )
        self.assertEqual(e.exception.status, 409)
        self.assertEqual(json.loads(e.exception.body)["reason"], "Conflict")
        # status subresource: changes only status, keeps generation
        st = {
            "status": {
                "observedGeneration": 2,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Accepted",
                        "message": "ok",
                        "lastTransitionTime": "2024-01-01T00:00:00Z",
                        "observedGeneration": 2,
                    }
                ],
            },
            "spec": {"statements": "ignored"},
        }
        s = self.co.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", "clients", "life", st
        )
        self.assertEqual(s["status"]["conditions"][0]["status"], "True")
        self.assertEqual(s["spec"], {"statements": []})
        self.assertEqual(s["metadata"]["generation"], 2)
        # a merge patch of metadata only: new resourceVersion, same generation
        p = self.co.patch_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", "life", {"metadata": {"labels": {"a": "b"}}}
        )
        self.assertEqual(p["metadata"]["generation"], 2)
        self.assertEqual(p["status"], s["status"])
        # a main-resource update cannot change the status
        p["status"] = {"observedGeneration": 1}
        r = self.co.replace_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", "life", p
        )
        self.assertEqual(r["status"], s["status"])
        # list: namespaced and cluster-wide, label selector, resourceVersion
        self.co.create_namespaced_custom_object(
            GROUP, VERSION, "kube-system", "clients", client_body("other", "kube-system")
        )
        all_ = self.co.list_cluster_custom_object(GROUP, VERSION, "clients")
        names = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in all_["items"]}
        self.assertTrue({("default", "life"), ("kube-system", "other")} <= names)
        self.assertGreaterEqual(
            int(all_["metadata"]["resourceVersion"]), int(r["metadata"]["resourceVersion"])
        )
        only = self.co.list_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", label_selector="a=b"
        )
        self.assertEqual([i["metadata"]["name"] for i in only["items"]], ["life"])
        # invalid spec -> 422 with the field
        with self.assertRaises(ApiException) as e:
            self.co.create_namespaced_custom_object(
                GROUP,
                VERSION,
                "default",
                "clients",
                client_body("bad", statements=[{"effect": "allow", "actions": ["*"]}]),
            )
        self.assertEqual(e.exception.status, 422)
        self.assertEqual(
            json.loads(e.exception.body)["details"]["causes"][0]["field"],
            "spec.statements[0].resources",
        )
        # delete -> 404 afterwards
        self.co.delete_namespaced_custom_object(GROUP, VERSION, "default", "clients", "life")
        with self.assertRaises(ApiException) as e:
            self.co.get_namespaced_custom_object(GROUP, VERSION, "default", "clients", "life")
        self.assertEqual(e.exception.status, 404)
        # a namespace that does not exist
        with self.assertRaises(ApiException) as e:
            self.co.create_namespaced_custom_object(
                GROUP, VERSION, "nowhere", "clients", client_body("x", "nowhere")
            )
        self.assertEqual(e.exception.status, 404)
        self.assertIn('namespaces "nowhere" not found', json.loads(e.exception.body)["message"])

    def test_patch_types(self):
        self.co.create_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            "topics",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Topic",
                "metadata": {"name": "pt"},
                "spec": {"patterns": [{"pattern": "a/#", "maxMessageSize": 10}]},
            },
        )
        path = f"/apis/{GROUP}/{VERSION}/namespaces/default/topics/pt"
        code, obj, _ = self.raw.request(
            "PATCH",
            path,
            [{"op": "replace", "path": "/spec/patterns/0/maxMessageSize", "value": 20}],
            "application/json-patch+json",
        )
        self.assertEqual(code, 200, obj)
        self.assertEqual(obj["spec"]["patterns"][0]["maxMessageSize"], 20)
        code, obj, _ = self.raw.request(
            "PATCH",
            path,
            [{"op": "test", "path": "/spec/patterns/0/maxMessageSize", "value": 1}],
            "application/json-patch+json",
        )
        self.assertEqual(code, 422)
        # strategic merge patch is not supported for custom resources (as on a real cluster)
        code, obj, _ = self.raw.request(
            "PATCH", path, {"spec": {}}, "application/strategic-merge-patch+json"
        )
        self.assertEqual(code, 415)
        self.assertEqual(obj["reason"], "UnsupportedMediaType")
        # server-side apply creates and updates
        applied = (
            "apiVersion: backbone.mortenolsen.pro/v1\nkind: Topic\nmetadata:\n  name: ssa\nspec:\n"
            "  patterns:\n  - pattern: b/+\n    retain: true\n"
        )
        ssa = f"/apis/{GROUP}/{VERSION}/namespaces/default/topics/ssa?fieldManager=test"
        code, obj, _ = self.raw.request("PATCH", ssa, applied, "application/apply-patch+yaml")
        self.assertEqual(code, 201, obj)
        code, obj, _ = self.raw.request(
            "PATCH", ssa, applied.replace("true", "false"), "application/apply-patch+yaml"
        )
        self.assertEqual(
            (code, obj["spec"]["patterns"][0]["retain"], obj["metadata"]["generation"]),
            (200, False, 2),
        )
        # a stale resourceVersion in a patch is a precondition
        code, obj, _ = self.raw.request(
            "PATCH", path, {"metadata": {"resourceVersion": "1"}}, "application/merge-patch+json"
        )
        self.assertEqual(code, 409)

    def test_secrets(self):
        V1 = kubernetes.client
        s = self.core.create_namespaced_secret(
            "default",
            V1.V1Secret(
                metadata=V1.V1ObjectMeta(name="tok"), string_data={"token": "secret-value"}
            ),
        )
        self.assertEqual(s.data, {"token": b64("secret-value")})
        self.assertEqual(s.type, "Opaque")
        self.assertIsNone(s.string_data)
        # CoreV1Api sends a strategic merge patch for a dict body
        p = self.core.patch_namespaced_secret("tok", "default", {"data": {"extra": b64("e")}})
        self.assertEqual(set(p.data), {"token", "extra"})
        p = self.core.patch_namespaced_secret("tok", "default", {"data": {"extra": None}})
        self.assertEqual(set(p.data), {"token"})
        r = self.core.read_namespaced_secret("tok", "default")
        self.assertEqual(r.metadata.resource_version, p.metadata.resource_version)
        r.data["token"] = b64("rotated")
        r2 = self.core.replace_namespaced_secret("tok", "default", r)
        with self.assertRaises(ApiException) as e:
            self.core.replace_namespaced_secret("tok", "default", r)  # stale resourceVersion
        self.assertEqual(e.exception.status, 409)
        self.assertEqual(r2.data["token"], b64("rotated"))
        lst = self.core.list_namespaced_secret("default", field_selector="metadata.name=tok")
        self.assertEqual([i.metadata.name for i in lst.items], ["tok"])
        with self.assertRaises(ApiException) as e:
            self.core.create_namespaced_secret(
                "default", {"metadata": {"name": "b"}, "data": {"k": "!!"}}
            )
        self.assertEqual(e.exception.status, 400)
        st = self.core.delete_namespaced_secret("tok", "default")
        self.assertEqual(st.status, "Success")

    def test_leases(self):
        """What leader election (client-go's and the k8s module's) relies on:
        create, read, optimistic concurrency on update, MicroTime fields."""
        V1 = kubernetes.client
        coord = V1.CoordinationV1Api(self.api_client)
        now = datetime.datetime.now(datetime.timezone.utc)
        lease = coord.create_namespaced_lease(
            "default",
            V1.V1Lease(
                metadata=V1.V1ObjectMeta(name="leader"),
                spec=V1.V1LeaseSpec(holder_identity="pod-a", lease_duration_seconds=15,
                                    acquire_time=now, renew_time=now, lease_transitions=0),
            ),
        )
        self.assertEqual(lease.spec.holder_identity, "pod-a")
        self.assertEqual(lease.spec.renew_time, now)  # microseconds survive the round trip
        with self.assertRaises(ApiException) as e:
            coord.create_namespaced_lease("default", {"metadata": {"name": "leader"}})
        self.assertEqual(e.exception.status, 409)
        read = coord.read_namespaced_lease("leader", "default")
        read.spec.holder_identity, read.spec.lease_transitions = "pod-b", 1
        won = coord.replace_namespaced_lease("leader", "default", read)
        self.assertEqual((won.spec.holder_identity, won.spec.lease_transitions), ("pod-b", 1))
        with self.assertRaises(ApiException) as e:  # the loser: stale resourceVersion
            coord.replace_namespaced_lease("leader", "default", read)
        self.assertEqual(e.exception.status, 409)
        path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/leader"
        _, body, _ = self.raw.request("GET", path)
        self.assertRegex(body["spec"]["renewTime"], r"^\d{4}-\d\d-\d\dT[\d:]+\.\d{6}(Z|\+00:00)$")
        body["spec"]["renewTime"] = "yesterday"
        status, st, _ = self.raw.request("PUT", path, body)
        self.assertEqual((status, st["reason"]), (422, "Invalid"), st)
        self.assertIn("spec.renewTime", st["message"])
        coord.delete_namespaced_lease("leader", "default")

    def test_owner_references_garbage_collection(self):
        V1 = kubernetes.client
        owner = self.co.create_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", client_body("gc")
        )
        ref = V1.V1OwnerReference(
            api_version=f"{GROUP}/{VERSION}",
            kind="Client",
            name="gc",
            uid=owner["metadata"]["uid"],
            controller=True,
            block_owner_deletion=True,
        )
        for name in ("gc-secret", "gc-orphan"):
            self.core.create_namespaced_secret(
                "default",
                V1.V1Secret(
                    metadata=V1.V1ObjectMeta(name=name, owner_references=[ref]),
                    data={"token": b64("t")},
                ),
            )
        time.sleep(0.3)
        s = self.core.read_namespaced_secret("gc-secret", "default")
        self.assertEqual(s.metadata.owner_references[0].uid, owner["metadata"]["uid"])
        self.co.delete_namespaced_custom_object(GROUP, VERSION, "default", "clients", "gc")

        def gone(name):
            try:
                self.core.read_namespaced_secret(name, "default")
                return False
            except ApiException as e:
                return e.status == 404

        self.assertTrue(wait_for(lambda: gone("gc-secret") and gone("gc-orphan"), timeout=10))
        # propagationPolicy=Orphan keeps the dependent and drops the reference
        owner = self.co.create_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", client_body("gc2")
        )
        ref.uid, ref.name = owner["metadata"]["uid"], "gc2"
        self.core.create_namespaced_secret(
            "default",
            V1.V1Secret(
                metadata=V1.V1ObjectMeta(name="kept", owner_references=[ref]),
                data={"token": b64("t")},
            ),
        )
        self.co.delete_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", "gc2", propagation_policy="Orphan"
        )
        self.assertTrue(
            wait_for(
                lambda: not self.core.read_namespaced_secret(
                    "kept", "default"
                ).metadata.owner_references,
                timeout=10,
            )
        )
        # an owner reference with a wrong uid is dangling: the GC deletes the dependent
        self.co.create_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", client_body("gc3")
        )
        ref.uid, ref.name = "00000000-0000-0000-0000-000000000000", "gc3"
        self.core.create_namespaced_secret(
            "default",
            V1.V1Secret(
                metadata=V1.V1ObjectMeta(name="dangling", owner_references=[ref]),
                data={"token": b64("t")},
            ),
        )
        self.assertTrue(wait_for(lambda: gone("dangling"), timeout=10))

    def test_watch_events(self):
        lst = self.co.list_namespaced_custom_object(GROUP, VERSION, "default", "topics")
        rv = lst["metadata"]["resourceVersion"]
        events = []
        w = kubernetes.watch.Watch()

        def run():
            for ev in w.stream(
                self.co.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                "topics",
                resource_version=rv,
                timeout_seconds=10,
            ):
                events.append(
                    (
                        ev["type"],
                        ev["object"]["metadata"]["name"],
                        ev["object"]["metadata"]["resourceVersion"],
                    )
                )
                if ev["type"] == "DELETED":
                    w.stop()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.assertTrue(self.srv.wait_for_watches(1, "topics"))
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Topic",
            "metadata": {"name": "w1"},
            "spec": {"patterns": [{"pattern": "x"}]},
        }
        self.co.create_namespaced_custom_object(GROUP, VERSION, "default", "topics", body)
        self.co.patch_namespaced_custom_object(
            GROUP, VERSION, "default", "topics", "w1", {"spec": {"patterns": [{"pattern": "y"}]}}
        )
        self.co.delete_namespaced_custom_object(GROUP, VERSION, "default", "topics", "w1")
        t.join(15)
        self.assertFalse(t.is_alive())
        self.assertEqual(
            [(e[0], e[1]) for e in events], [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]
        )
        rvs = [int(e[2]) for e in events]
        self.assertEqual(rvs, sorted(rvs))
        # a watch from that list's resourceVersion replays the same history
        replay = [
            (e["type"], e["object"]["metadata"]["name"])
            for e in w.stream(
                self.co.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                "topics",
                resource_version=rv,
                timeout_seconds=1,
            )
        ]
        self.assertEqual(replay, [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")])
        # without resourceVersion: synthetic ADDED events for what exists
        self.co.create_namespaced_custom_object(
            GROUP, VERSION, "default", "topics", dict(body, metadata={"name": "w2"})
        )
        now = [
            (e["type"], e["object"]["metadata"]["name"])
            for e in w.stream(
                self.co.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                "topics",
                timeout_seconds=1,
            )
        ]
        self.assertIn(("ADDED", "w2"), now)
        self.assertNotIn(("ADDED", "w1"), now)

    def test_410_gone(self):
        rv = self.co.list_cluster_custom_object(GROUP, VERSION, "clients")["metadata"][
            "resourceVersion"
        ]
        self.co.create_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", client_body("old")
        )
        self.srv.compact()
        with self.assertRaises(ApiException) as e:
            for _ in kubernetes.watch.Watch().stream(
                self.co.list_cluster_custom_object,
                GROUP,
                VERSION,
                "clients",
                resource_version=rv,
                timeout_seconds=3,
            ):
                pass
        self.assertEqual(e.exception.status, 410)
        # on the wire: 200, then one ERROR event carrying a Status with code 410
        c, r = self.raw.watch(f"/apis/{GROUP}/{VERSION}/clients?watch=1&resourceVersion={rv}")
        self.assertEqual(r.status, 200)
        ev = next_event(r)
        self.assertEqual(
            (ev["type"], ev["object"]["kind"], ev["object"]["code"], ev["object"]["reason"]),
            ("ERROR", "Status", 410, "Expired"),
        )
        self.assertIsNone(next_event(r))
        c.close()
        # a relist gives a resourceVersion that can be watched from
        rv2 = self.co.list_cluster_custom_object(GROUP, VERSION, "clients")["metadata"][
            "resourceVersion"
        ]
        evs = list(
            kubernetes.watch.Watch().stream(
                self.co.list_cluster_custom_object,
                GROUP,
                VERSION,
                "clients",
                resource_version=rv2,
                timeout_seconds=1,
            )
        )
        self.assertEqual(evs, [])
        # a continue token from before the compaction
        for i in range(3):
            self.co.create_namespaced_custom_object(
                GROUP, VERSION, "default", "clients", client_body(f"page{i}")
            )
        page = self.co.list_cluster_custom_object(GROUP, VERSION, "clients", limit=2)
        self.assertTrue(page["metadata"]["continue"])
        nxt = self.co.list_cluster_custom_object(
            GROUP, VERSION, "clients", limit=2, _continue=page["metadata"]["continue"]
        )
        self.assertEqual(nxt["metadata"]["resourceVersion"], page["metadata"]["resourceVersion"])
        self.srv.compact()
        with self.assertRaises(ApiException) as e:
            self.co.list_cluster_custom_object(
                GROUP, VERSION, "clients", limit=2, _continue=page["metadata"]["continue"]
            )
        self.assertEqual(e.exception.status, 410)

    def test_bookmarks_timeouts_and_dropped_watches(self):
        rv = self.srv.resource_version()
        base = f"/apis/{GROUP}/{VERSION}/namespaces/default/clients?watch=true&resourceVersion={rv}"
        c, r = self.raw.watch(base + "&allowWatchBookmarks=true")
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        self.assertTrue(self.srv.wait_for_watches(1, "clients"))
        self.co.create_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", client_body("bm")
        )
        ev = next_event(r)
        self.assertEqual((ev["type"], ev["object"]["metadata"]["name"]), ("ADDED", "bm"))
        self.srv.send_bookmark()
        ev = next_event(r)
        self.assertEqual((ev["type"], ev["object"]["kind"]), ("BOOKMARK", "Client"))
        self.assertGreaterEqual(
            int(ev["object"]["metadata"]["resourceVersion"]),
            int(
                self.co.get_namespaced_custom_object(GROUP, VERSION, "default", "clients", "bm")[
                    "metadata"
                ]["resourceVersion"]
            ),
        )
        # dropped: the connection is cut mid-stream (no final chunk)
        self.srv.drop_watches()
        with self.assertRaises(
            (http.client.IncompleteRead, ConnectionError, ssl.SSLError, OSError)
        ):
            while True:
                line = r.readline()
                if not line:
                    raise ConnectionError("closed")
        c.close()
        self.assertTrue(wait_for(lambda: self.srv.watch_count("clients") == 0, timeout=5))
        # graceful end, as on timeout: the stream ends cleanly
        base = (
            f"/apis/{GROUP}/{VERSION}/namespaces/default/clients?watch=true"
            f"&resourceVersion={self.srv.resource_version()}"
        )
        c, r = self.raw.watch(base)
        self.assertTrue(self.srv.wait_for_watches(1, "clients"))
        self.srv.drop_watches(graceful=True)
        self.assertEqual(r.read(), b"")
        c.close()
        # timeoutSeconds ends the stream cleanly
        start = time.time()
        c, r = self.raw.watch(base + "&timeoutSeconds=1")
        self.assertEqual(r.read(), b"")
        self.assertLess(time.time() - start, 5)
        c.close()
        # a watch without allowWatchBookmarks gets none
        c, r = self.raw.watch(base + "&timeoutSeconds=1")
        self.assertTrue(self.srv.wait_for_watches(1, "clients"))
        self.srv.send_bookmark()
        self.assertEqual(r.read(), b"")
        c.close()
        # sendInitialEvents: the current state, then a BOOKMARK marking its end
        c, r = self.raw.watch(
            f"/apis/{GROUP}/{VERSION}/namespaces/default/clients?watch=1&sendInitialEvents=true"
            "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=2"
        )
        evs = json_stream(r.read().decode())
        self.assertIn(
            ("ADDED", "bm"), [(e["type"], e["object"]["metadata"].get("name")) for e in evs]
        )
        self.assertEqual(
            evs[-1]["object"]["metadata"]["annotations"], {"k8s.io/initial-events-end": "true"}
        )
        c.close()

    def test_authorization(self):
        ro = "read-only-token"
        self.srv.set_token(
            ro,
            [
                {
                    "apiGroups": [GROUP],
                    "resources": ["clients", "topics"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            ],
            user="system:serviceaccount:backbone:backbone",
        )
        api = self.api_for(ro)
        co, core = kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api)
        co.list_cluster_custom_object(GROUP, VERSION, "clients")
        with self.assertRaises(ApiException) as e:
            core.create_namespaced_secret("default", {"metadata": {"name": "x"}, "data": {}})
        self.assertEqual(e.exception.status, 403)
        st = json.loads(e.exception.body)
        self.assertEqual((st["kind"], st["reason"], st["code"]), ("Status", "Forbidden", 403))
        self.assertEqual(
            st["message"],
            'secrets is forbidden: User "system:serviceaccount:backbone:backbone" '
            'cannot create resource "secrets" in API group "" in the namespace "default"',
        )
        self.co.create_namespaced_custom_object(
            GROUP, VERSION, "default", "clients", client_body("rbac")
        )
        with self.assertRaises(ApiException) as e:  # a subresource needs its own rule
            co.patch_namespaced_custom_object_status(
                GROUP, VERSION, "default", "clients", "rbac", {"status": {"observedGeneration": 1}}
            )
        self.assertEqual(e.exception.status, 403)
        self.assertIn(
            'cannot patch resource "clients/status"', json.loads(e.exception.body)["message"]
        )
        self.srv.set_token(
            ro, ["patch clients/status"], user="system:serviceaccount:backbone:backbone"
        )
        co.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", "clients", "rbac", {"status": {"observedGeneration": 1}}
        )
        # namespaced grant (a RoleBinding): cluster-wide list is forbidden
        self.srv.set_token("ns-token", ["list clients"], namespaces=["default"])
        co2 = kubernetes.client.CustomObjectsApi(self.api_for("ns-token"))
        co2.list_namespaced_custom_object(GROUP, VERSION, "default", "clients")
        with self.assertRaises(ApiException) as e:
            co2.list_cluster_custom_object(GROUP, VERSION, "clients")
        self.assertEqual(e.exception.status, 403)
        self.assertIn("at the cluster scope", json.loads(e.exception.body)["message"])

    def test_authentication(self):
        bad = kubernetes.client.CustomObjectsApi(self.api_for("wrong-token"))
        with self.assertRaises(ApiException) as e:
            bad.list_cluster_custom_object(GROUP, VERSION, "clients")
        self.assertEqual(e.exception.status, 401)
        for token in ("", "wrong"):
            code, st, _ = self.raw.request("GET", "/api/v1/namespaces", token=token)
            self.assertEqual(code, 401)
            self.assertEqual(
                (st["kind"], st["reason"], st["code"]), ("Status", "Unauthorized", 401)
            )
        code, _, _ = self.raw.request("GET", "/version", token="")
        self.assertEqual(code, 401)

    def test_discovery(self):
        code, rl, _ = self.raw.request("GET", f"/apis/{GROUP}/{VERSION}")
        self.assertEqual(code, 200)
        self.assertEqual(
            (rl["kind"], rl["groupVersion"]), ("APIResourceList", f"{GROUP}/{VERSION}")
        )
        res = {r["name"]: r for r in rl["resources"]}
        self.assertEqual(set(res), {"clients", "clients/status", "topics", "topics/status"})
        self.assertEqual(
            (res["clients"]["kind"], res["clients"]["namespaced"], res["clients"]["shortNames"]),
            ("Client", True, ["mqttclient"]),
        )
        self.assertTrue(
            {"get", "list", "watch", "create", "update", "patch", "delete"}
            <= set(res["topics"]["verbs"])
        )
        self.assertEqual(set(res["topics/status"]["verbs"]), {"get", "patch", "update"})
        groups = kubernetes.client.ApisApi(self.api_client).get_api_versions()
        self.assertIn(GROUP, [g.name for g in groups.groups])
        v = kubernetes.client.VersionApi(self.api_client).get_code()
        self.assertEqual(v.major, "1")
        code, root, _ = self.raw.request("GET", "/openapi/v3")
        self.assertIn(f"apis/{GROUP}/{VERSION}", root["paths"])

    def test_injected_failures_and_request_log(self):
        self.srv.clear_requests()
        self.srv.fail(r"/clients$", code=500, count=1, method="GET")
        with self.assertRaises(ApiException) as e:
            self.co.list_cluster_custom_object(GROUP, VERSION, "clients")
        self.assertEqual(e.exception.status, 500)
        self.co.list_cluster_custom_object(GROUP, VERSION, "clients")
        codes = [
            r["code"] for r in self.srv.requests if r["path"] == f"/apis/{GROUP}/{VERSION}/clients"
        ]
        self.assertEqual(codes, [500, 200])
        # the same hooks over HTTP, without credentials
        code, body, _ = self.raw.request("POST", "/_test/compact", {}, token="")
        self.assertEqual(code, 200)
        self.assertEqual(body["resourceVersion"], self.srv.resource_version())


class CommandLine(unittest.TestCase):
    """`fake_apiserver.py --port 0 --dir DIR [--http]` as another test starts it."""

    def start(self, *extra):
        d = tempfile.mkdtemp(prefix="fake-apiserver-cli-")
        self.addCleanup(shutil.rmtree, d, True)
        err = open(os.path.join(d, "stderr"), "w")
        p = subprocess.Popen(
            [sys.executable, FAKE, "--port", "0", "--dir", d, *extra],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        err.close()
        line = [None]
        t = threading.Thread(target=lambda: line.__setitem__(0, p.stdout.readline()), daemon=True)
        t.start()
        t.join(20)
        if not line[0] or not line[0].startswith("READY "):
            p.kill()
            p.wait()
            with open(os.path.join(d, "stderr")) as f:
                raise AssertionError(f"no READY line: {line[0]!r} {f.read()}")
        return p, d, int(line[0].split()[1])

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        try:
            self.assertEqual(p.wait(10), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()

    def test_https(self):
        p, d, port = self.start()
        try:
            for f in ("ca.crt", "token", "kubeconfig"):
                self.assertTrue(os.path.exists(os.path.join(d, f)), f)
            k = Kubectl(os.path.join(d, "kubeconfig"))
            ns = k.json("get", "namespaces")
            self.assertIn("default", [i["metadata"]["name"] for i in ns["items"]])
            self.assertEqual(k.json("get", "crd", f"topics.{GROUP}")["spec"]["group"], GROUP)
            with open(os.path.join(d, "token")) as f:
                token = f.read().strip()
            ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.crt"))
            c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
            c.request(
                "GET", "/api/v1/namespaces/default", headers={"Authorization": "Bearer " + token}
            )
            r = c.getresponse()
            self.assertEqual((r.status, json.loads(r.read())["metadata"]["name"]), (200, "default"))
            c.close()
        finally:
            self.stop(p)

    def test_plain_http(self):
        p, d, port = self.start("--http", "--no-crds")
        try:
            k = Kubectl(os.path.join(d, "kubeconfig"))  # kubectl sends no token over HTTP: admin
            k.run("create", "namespace", "cli")
            self.assertEqual(k.json("get", "namespace", "cli")["status"]["phase"], "Active")
            r = k.run("get", "clients", check=False)
            self.assertNotEqual(r.returncode, 0)  # no CRDs
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request(
                "POST",
                "/_test/token",
                body=json.dumps({"token": "t2", "rules": ["get namespaces"]}),
            )
            self.assertEqual(c.getresponse().status, 200)
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/api/v1/namespaces", headers={"Authorization": "Bearer t2"})
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 403)
            c.close()
        finally:
            self.stop(p)


if __name__ == "__main__":
    main()
