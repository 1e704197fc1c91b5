# SPDX-License-Identifier: GPL-3.0-or-later
"""The Helm chart (packaging/helm/backbone), checked without helm (not
packaged for Debian): Chart.yaml and values.yaml parse, every environment
variable of SPEC §3 has a value and reaches the container, every .Values
reference resolves, the chart's CRDs are packaging/kubernetes/crds/, the
RBAC rules are exactly the least-privilege list and the pod is hardened.

Against the stand-in API server (tests/k8s/fake_apiserver.py): the CRDs
apply (server dry-run, then for real), the RBAC rules allow what the
broker needs and nothing else, and the real backboned - with the chart's
config file and environment, and a token holding only the chart's rules -
syncs the seed's Client and Topic, writes the Client's Secret and status,
and reports ready (cluster-wide, and namespaced as with watchNamespaces)."""
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import yaml

from harness import BACKBONED, free_port, main, wait_for

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/integration
ROOT = os.path.abspath(os.environ.get("BACKBONE_SOURCE_DIR") or os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "k8s"))

from fake_apiserver import FakeApiServer  # noqa: E402

import kubernetes  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

CHART = os.path.join(ROOT, "packaging", "helm", "backbone")
TEMPLATES = os.path.join(CHART, "templates")
CRD_DIR = os.path.join(ROOT, "packaging", "kubernetes", "crds")
EXAMPLES = os.path.join(ROOT, "tests", "k8s", "examples")
GROUP, VERSION = "backbone.mortenolsen.pro", "v1"

# SPEC §3 (canonical names; JWT_SECRET and OIDC_DISCOVERY_URL are aliases)
SPEC_ENV = [
    "ADMIN_TOKEN",
    "TOKEN_SECRET",
    "K8S_ENABLED",
    "HTTP_ENABLED",
    "HTTP_PORT",
    "TCP_ENABLED",
    "TCP_PORT",
    "WS_ENABLED",
    "API_ENABLED",
    "OIDC_ENABLED",
    "OIDC_DISCOVERY",
    "OIDC_CLIENT_ID",
    "OIDC_CLIENT_SECRET",
    "OIDC_GROUP_FIELD",
    "OIDC_ADMIN_GROUP",
    "OIDC_WRITER_GROUP",
    "OIDC_READER_GROUP",
]
SECRET_ENV = {"ADMIN_TOKEN", "TOKEN_SECRET", "OIDC_CLIENT_SECRET"}

# What the broker may do, and nothing else: (apiGroup, resource, verb)
LEAST_PRIVILEGE = (
    {(GROUP, r, v) for r in ("clients", "topics") for v in ("get", "list", "watch")}
    | {(GROUP, r, v) for r in ("clients/status", "topics/status") for v in ("update", "patch")}
    | {(GROUP, "clients/finalizers", "update")}
    | {("", "secrets", v) for v in ("get", "list", "watch", "create", "update", "patch")}
)
# Leader election of the k8s module, in the release's namespace only.
LEASE_PRIVILEGE = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


def read(path):
    with open(path) as f:
        return f.read()


def load_yaml(path):
    return yaml.safe_load(read(path))


def values():
    return load_yaml(os.path.join(CHART, "values.yaml"))


def define(name):
    """The body of a {{ define }} in _helpers.tpl (nested blocks included)."""
    text = read(os.path.join(TEMPLATES, "_helpers.tpl"))
    start = re.search(r'\{\{-? define "' + re.escape(name) + r'" -?\}\}\n?', text)
    assert start, f"no define {name}"
    depth = 1
    for m in re.finditer(r"\{\{-?\s*(\w+)?.*?-?\}\}", text[start.end() :], re.S):
        word = m.group(1)
        if word in ("if", "with", "range", "define", "block"):
            depth += 1
        elif word == "end":
            depth -= 1
            if depth == 0:
                return text[start.end() : start.end() + m.start()]
    raise AssertionError(f"define {name} is not closed")


def rbac_rules():
    return yaml.safe_load(define("backbone.rbacRules"))


def lease_rules():
    return yaml.safe_load(define("backbone.leaseRules"))


def triples(rules):
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def env_string(v):
    """What Helm's toString makes of a value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def chart_config(vals, watch_namespaces=(), state_dir="/var/lib/backbone", fullname="backbone"):
    """The config file the "backbone.config" define renders (state_dir is the
    pod's emptyDir; a test passes a directory of its own)."""
    modules = []
    for m in vals["config"]["modules"]:
        m = json.loads(json.dumps(m))
        if m["name"] == "k8s":
            settings = dict(m.get("settings") or {})
            if watch_namespaces:
                settings["namespaces"] = list(watch_namespaces)
            election = settings.get("leader_election")
            if election is None:
                election = {}
            if isinstance(election, dict):
                election.setdefault("lease_name", fullname)
                settings["leader_election"] = election
            m["settings"] = settings
        modules.append(m)
    redis = vals["cluster"]["redis"]
    if redis["address"]:
        settings = {"address": redis["address"], "prefix": redis["prefix"]}
        if redis["passwordSecret"]:
            settings["password_file"] = "/var/run/secrets/backbone/redis/password"
        modules.append({"name": "redis", "settings": settings})
    cfg = {"log": vals["config"]["log"], "modules": modules, "state_dir": state_dir}
    for k in ("limits", "topics", "anonymous"):
        if vals["config"].get(k):
            cfg[k] = vals["config"][k]
    return cfg


class ChartFiles(unittest.TestCase):
    def test_chart_yaml(self):
        chart = load_yaml(os.path.join(CHART, "Chart.yaml"))
        self.assertEqual(
            (chart["apiVersion"], chart["name"], chart["type"]), ("v2", "backbone", "application")
        )
        self.assertRegex(chart["version"], r"^\d+\.\d+\.\d+")
        project = re.search(
            r"project\(backbone VERSION (\S+)", read(os.path.join(ROOT, "CMakeLists.txt"))
        )
        self.assertEqual(chart["appVersion"], project.group(1))

    def test_every_spec_variable_has_a_value_and_reaches_the_container(self):
        v = values()
        self.assertEqual(set(v["env"]) | (set(v["secretEnv"]) - {"existingSecret"}), set(SPEC_ENV))
        self.assertFalse(set(v["env"]) & SECRET_ENV, "secrets belong in secretEnv")
        self.assertTrue(v["env"]["K8S_ENABLED"])
        self.assertEqual((v["env"]["HTTP_PORT"], v["env"]["TCP_PORT"]), (8883, 1883))
        deployment = read(os.path.join(TEMPLATES, "deployment.yaml"))
        for name in SPEC_ENV:
            self.assertIn(f'"{name}"', deployment, name)
        # the same set as the commented /etc/default/backbone of the .deb
        default = set(
            re.findall(
                r"^#?([A-Z][A-Z0-9_]+)=",
                read(os.path.join(ROOT, "packaging/default/backbone")),
                re.M,
            )
        )
        self.assertEqual(default, set(SPEC_ENV))
        secret = read(os.path.join(TEMPLATES, "secret.yaml"))
        for name in SECRET_ENV:
            self.assertIn(f'"{name}"', secret)
        self.assertIn("secretKeyRef", define("backbone.secretEnvVar"))

    def test_values_references_resolve(self):
        v = values()
        refs = set()
        for fn in os.listdir(TEMPLATES):
            refs |= set(
                re.findall(r"\.Values\.([A-Za-z0-9_.]+)", read(os.path.join(TEMPLATES, fn)))
            )
        self.assertTrue(refs)
        for ref in sorted(refs):
            cur = v
            for part in ref.split("."):
                self.assertIsInstance(cur, dict, ref)
                self.assertIn(part, cur, f".Values.{ref} is not in values.yaml")
                cur = cur[part]

    def test_template_blocks_balanced(self):
        for fn in sorted(os.listdir(TEMPLATES)):
            text = re.sub(
                r"\{\{-?\s*/\*.*?\*/\s*-?\}\}", "", read(os.path.join(TEMPLATES, fn)), flags=re.S
            )
            actions = re.findall(r"\{\{-?\s*(.*?)\s*-?\}\}", text, re.S)
            depth = 0
            for a in actions:
                word = a.split()[0] if a.split() else ""
                if word in ("if", "with", "range", "define", "block"):
                    depth += 1
                elif word == "end":
                    depth -= 1
                self.assertGreaterEqual(depth, 0, f"{fn}: unexpected end")
            self.assertEqual(depth, 0, f"{fn}: unclosed block")
            self.assertEqual(text.count("{{"), text.count("}}"), fn)

    def test_crds_are_the_packaged_ones(self):
        ours = sorted(os.listdir(CRD_DIR))
        self.assertEqual(ours, ["clients.yaml", "topics.yaml"])
        self.assertEqual(sorted(os.listdir(os.path.join(CHART, "crds"))), ours)
        for fn in ours:
            self.assertTrue(
                filecmp.cmp(
                    os.path.join(CRD_DIR, fn), os.path.join(CHART, "crds", fn), shallow=False
                ),
                f"packaging/helm/backbone/crds/{fn} differs from packaging/kubernetes/crds/{fn}",
            )

    def test_rbac_is_least_privilege(self):
        rules = rbac_rules()
        self.assertEqual(triples(rules), LEAST_PRIVILEGE)
        for rule in rules:
            self.assertNotIn("*", rule["verbs"] + rule["resources"] + rule["apiGroups"])
            self.assertNotIn("resourceNames", rule)
        rbac = read(os.path.join(TEMPLATES, "rbac.yaml"))
        for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
            self.assertRegex(rbac, rf"kind: {kind}\n")
        self.assertEqual(rbac.count('include "backbone.rbacRules"'), 2)
        self.assertNotRegex(
            rbac, r"^\s*-\s*(apiGroups|verbs|resources):", "rules only through the define"
        )

    def test_state_can_live_on_a_persistent_volume_claim(self):
        v = values()
        self.assertFalse(v["persistence"]["enabled"])  # an emptyDir unless asked
        pvc = read(os.path.join(TEMPLATES, "pvc.yaml"))
        self.assertRegex(pvc, r"\{\{-? if and \.Values\.persistence\.enabled "
                              r"\(not \.Values\.persistence\.existingClaim\) -?\}\}")
        self.assertIn("kind: PersistentVolumeClaim", pvc)
        self.assertIn("name: {{ include \"backbone.fullname\" . }}-state", pvc)
        self.assertIn("helm.sh/resource-policy: keep", pvc)
        deployment = read(os.path.join(TEMPLATES, "deployment.yaml"))
        # Recreate and the claim only with persistence; the emptyDir otherwise.
        self.assertRegex(deployment, r"if \.Values\.persistence\.enabled \}\}[^{]*"
                                     r"strategy:\s+type: Recreate")
        self.assertRegex(deployment, r"- name: state\s+\{\{- if \.Values\.persistence\.enabled "
                                     r"\}\}\s+persistentVolumeClaim:\s+claimName: [^\n]*"
                                     r"existingClaim[^\n]*-state")
        self.assertRegex(deployment, r"\{\{- else \}\}\s+emptyDir: \{\}")

    def test_replicas_share_state_through_redis(self):
        v = values()
        self.assertEqual(v["replicaCount"], 1)
        self.assertEqual(v["cluster"]["redis"]["address"], "")  # no cluster unless asked
        # The define adds the redis module exactly as chart_config() mirrors it.
        body = define("backbone.config")
        for key in ("cluster.redis", '"name" "redis"', '"password_file" "/var/run/secrets/backbone/redis/password"'):
            self.assertIn(key, body)
        v["cluster"]["redis"].update(address="redis:6379", passwordSecret="redis-auth")
        self.assertEqual(chart_config(v)["modules"][-1],
                         {"name": "redis", "settings": {
                             "address": "redis:6379", "prefix": "backbone",
                             "password_file": "/var/run/secrets/backbone/redis/password"}})
        deployment = read(os.path.join(TEMPLATES, "deployment.yaml"))
        # Several replicas only with Redis, never on one ReadWriteOnce claim.
        self.assertRegex(deployment, r"gt \(int \.Values\.replicaCount\) 1\) \(not "
                                     r"\.Values\.cluster\.redis\.address\) \}\}\s+\{\{- fail")
        self.assertRegex(deployment, r"gt \(int \.Values\.replicaCount\) 1\) "
                                     r"\.Values\.persistence\.enabled \}\}\s+\{\{- fail")
        # The password Secret is a read-only file where password_file points.
        self.assertRegex(deployment, r"- name: redis-password\s+mountPath: /var/run/secrets/backbone/redis\s+"
                                     r"readOnly: true")
        self.assertRegex(deployment, r"- name: redis-password\s+secret:\s+secretName: "
                                     r"\{\{ \.Values\.cluster\.redis\.passwordSecret \}\}")
        service = read(os.path.join(TEMPLATES, "service.yaml"))
        self.assertRegex(service, r"if \.Values\.cluster\.redis\.address \}\}[^{]*"
                                  r"sessionAffinity: ClientIP")

    def test_several_replicas_elect_a_leader_and_have_a_disruption_budget(self):
        self.assertEqual(triples(lease_rules()), LEASE_PRIVILEGE)
        rbac = read(os.path.join(TEMPLATES, "rbac.yaml"))
        self.assertEqual(rbac.count('include "backbone.leaseRules"'), 1)
        # one Role and RoleBinding in the release's namespace, whatever is watched
        self.assertRegex(rbac, r'kind: Role\nmetadata:\n  name: \{\{ printf "%s-leader-election"[^\n]*\n'
                               r"  namespace: \{\{ \.Release\.Namespace \}\}")
        self.assertRegex(rbac, r"kind: RoleBinding\nmetadata:\n  name: [^\n]*leader-election")
        # the pod's name is the holder identity, its namespace the Lease's
        d = read(os.path.join(TEMPLATES, "deployment.yaml"))
        self.assertRegex(d, r"- name: POD_NAME\n\s+valueFrom:\n\s+fieldRef:\n\s+"
                            r"fieldPath: metadata\.name")
        self.assertRegex(d, r"- name: POD_NAMESPACE\n\s+valueFrom:\n\s+fieldRef:\n\s+"
                            r"fieldPath: metadata\.namespace")
        # the Lease is named after the release unless the settings say otherwise
        body = define("backbone.config")
        for key in ('"leader_election"', '"lease_name" (include "backbone.fullname" $)',
                    'hasKey $election "lease_name"', 'kindIs "map" $election'):
            self.assertIn(key, body)
        v = values()
        k8s = [m for m in chart_config(v, fullname="rel-backbone")["modules"] if m["name"] == "k8s"]
        self.assertEqual(k8s[0]["settings"]["leader_election"], {"lease_name": "rel-backbone"})
        # a PodDisruptionBudget only with several replicas
        self.assertEqual(v["podDisruptionBudget"], {"enabled": True, "maxUnavailable": 1})
        pdb = read(os.path.join(TEMPLATES, "pdb.yaml"))
        self.assertRegex(pdb, r"\{\{- if and \.Values\.podDisruptionBudget\.enabled "
                              r"\(gt \(int \.Values\.replicaCount\) 1\) \}\}\n"
                              r"apiVersion: policy/v1\nkind: PodDisruptionBudget\n")
        self.assertIn("maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}", pdb)
        self.assertRegex(pdb, r"selector:\n\s+matchLabels:\n\s+\{\{- include "
                              r'"backbone.selectorLabels" \. \| nindent 6 \}\}')
        self.assertTrue(pdb.rstrip().endswith("{{- end }}"))
        # sessions are not shared yet: clients stay pinned to one replica
        service = read(os.path.join(TEMPLATES, "service.yaml"))
        self.assertIn("sessionAffinity: ClientIP", service)

    def test_pod_hardening_probes_and_command(self):
        v = values()
        self.assertEqual(
            v["securityContext"],
            {
                "runAsNonRoot": True,
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        )
        self.assertTrue(v["podSecurityContext"]["runAsNonRoot"])
        dockerfile = read(os.path.join(ROOT, "packaging/container/Dockerfile"))
        uid = re.search(r"^USER (\d+):(\d+)", dockerfile, re.M)
        self.assertEqual(
            (v["podSecurityContext"]["runAsUser"], v["podSecurityContext"]["runAsGroup"]),
            (int(uid.group(1)), int(uid.group(2))),
        )
        d = read(os.path.join(TEMPLATES, "deployment.yaml"))
        self.assertIn("toYaml .Values.securityContext", d)
        self.assertIn("toYaml .Values.podSecurityContext", d)
        entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])", dockerfile, re.M).group(1))
        cmd = json.loads(re.search(r"^CMD (\[.*\])", dockerfile, re.M).group(1))
        self.assertIn("command: " + json.dumps(entry), d)
        self.assertIn("args: " + json.dumps(cmd), d)
        self.assertEqual(cmd, ["--config", "/etc/backbone/backbone.json"])
        self.assertRegex(d, r"livenessProbe:\n\s+httpGet:\n\s+path: /health\n\s+port: http")
        self.assertRegex(d, r"readinessProbe:\n\s+httpGet:\n\s+path: /ready\n\s+port: http")
        self.assertRegex(d, r"- name: state\n\s+mountPath: /var/lib/backbone")
        self.assertRegex(d, r"- name: config\n\s+mountPath: /etc/backbone\n\s+readOnly: true")
        self.assertIn("emptyDir", d)
        self.assertIn("containerPort: {{ .Values.env.TCP_PORT }}", d)
        self.assertIn("containerPort: {{ .Values.env.HTTP_PORT }}", d)
        svc = read(os.path.join(TEMPLATES, "service.yaml"))
        self.assertIn("targetPort: mqtt", svc)
        self.assertIn("targetPort: http", svc)
        self.assertEqual((v["service"]["mqtt"]["port"], v["service"]["http"]["port"]), (1883, 8883))
        self.assertIn(
            "automountServiceAccountToken: true",
            read(os.path.join(TEMPLATES, "serviceaccount.yaml")),
        )

    def test_config_file_modules(self):
        v = values()
        names = [m["name"] for m in v["config"]["modules"]]
        self.assertEqual(names[0], "env", "env first: the environment overrides the file")
        built = {"env", "admin", "jwt", "oidc", "k8s", "client", "tcp", "ws", "http-api", "redis"}
        self.assertTrue(set(names) <= built, names)
        self.assertTrue({"k8s", "tcp", "ws", "http-api"} <= set(names))
        body = define("backbone.config")
        for key in (
            "config.modules",
            "config.log",
            "config.limits",
            "config.topics",
            "config.anonymous",
            "watchNamespaces",
            "toPrettyJson",
        ):
            self.assertIn(key, body)
        cm = read(os.path.join(TEMPLATES, "configmap.yaml"))
        self.assertIn('backbone.json: |\n    {{- include "backbone.config" . | nindent 4 }}', cm)


class ChartAgainstApiServer(unittest.TestCase):
    """The chart's CRDs, RBAC and config file against the stand-in API
    server and the real broker."""

    def setUp(self):
        self.srv = FakeApiServer(crds=[]).start()
        self.addCleanup(self.srv.stop)
        self.home = tempfile.mkdtemp(prefix="kubectl-home-")
        self.addCleanup(shutil.rmtree, self.home, True)

    def kubectl(self, *args, kubeconfig=None, check=True):
        r = subprocess.run(
            [
                shutil.which("kubectl") or "kubectl",
                "--kubeconfig",
                kubeconfig or self.srv.kubeconfig,
                "--request-timeout=20s",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, HOME=self.home),
        )
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    def install_crds(self):
        out = self.kubectl("apply", "--dry-run=server", "-f", os.path.join(CHART, "crds")).stdout
        self.assertIn("created (server dry run)", out)
        self.assertEqual(
            self.kubectl("get", "crds", "-o", "json", check=True).stdout.count(GROUP), 0
        )
        self.kubectl("apply", "-f", os.path.join(CHART, "crds"))
        self.kubectl(
            "wait",
            "--for=condition=established",
            "--timeout=10s",
            f"crd/clients.{GROUP}",
            f"crd/topics.{GROUP}",
        )

    def grant(self, namespaces=None):
        token = "backbone-sa-token"
        # the chart's Role for the Lease, in the release's namespace ("default"
        # here: the kubeconfig's; in a pod POD_NAMESPACE)
        leases = [dict(r, namespaces=["default"]) for r in lease_rules()]
        self.srv.set_token(
            token,
            rbac_rules() + leases,
            user="system:serviceaccount:backbone:backbone",
            namespaces=namespaces,
        )
        return token

    def test_crds_and_rbac(self):
        self.install_crds()
        api = kubernetes.client.ApiClient(self.client_config(self.grant()))
        self.addCleanup(api.close)
        self.addCleanup(api.rest_client.pool_manager.clear)
        co, core = kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api)
        self.srv.apply(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Client",
                "metadata": {"name": "c", "namespace": "default"},
                "spec": {"statements": []},
            }
        )
        # allowed: what the broker does
        co.list_cluster_custom_object(GROUP, VERSION, "clients")
        co.list_cluster_custom_object(GROUP, VERSION, "topics")
        core.list_secret_for_all_namespaces()
        core.create_namespaced_secret(
            "default", {"metadata": {"name": "c-secret"}, "data": {"token": "eA=="}}
        )
        core.patch_namespaced_secret("c-secret", "default", {"metadata": {"labels": {"a": "b"}}})
        co.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", "clients", "c", {"status": {"observedGeneration": 1}}
        )
        # forbidden: everything else
        for call in (
            lambda: core.delete_namespaced_secret("c-secret", "default"),
            lambda: co.patch_namespaced_custom_object(
                GROUP, VERSION, "default", "clients", "c", {"spec": {"statements": []}}
            ),
            lambda: co.create_namespaced_custom_object(
                GROUP,
                VERSION,
                "default",
                "topics",
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Topic",
                    "metadata": {"name": "t"},
                    "spec": {},
                },
            ),
            lambda: co.delete_namespaced_custom_object(GROUP, VERSION, "default", "clients", "c"),
            lambda: core.list_namespaced_config_map("default"),
            lambda: core.list_namespace(),
        ):
            with self.assertRaises(ApiException) as e:
                call()
            self.assertEqual(e.exception.status, 403)

    def client_config(self, token):
        cfg = kubernetes.client.Configuration()
        cfg.host, cfg.ssl_ca_cert = self.srv.url, self.srv.ca_path
        cfg.api_key = {"authorization": "Bearer " + token}
        return cfg

    def run_broker(self, token, watch_namespaces=()):
        """backboned with the chart's config file and environment."""
        v = values()
        d = tempfile.mkdtemp(prefix="backbone-chart-")
        self.addCleanup(shutil.rmtree, d, True)
        cfg_path = os.path.join(d, "backbone.json")
        with open(cfg_path, "w") as f:
            json.dump(chart_config(v, watch_namespaces, os.path.join(d, "state")), f)
        http_port, tcp_port = free_port(), free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in SPEC_ENV and k not in ("JWT_SECRET", "OIDC_DISCOVERY_URL")
        }
        for k, val in v["env"].items():
            if env_string(val):
                env[k] = env_string(val)
        env.update(
            HTTP_PORT=str(http_port),
            TCP_PORT=str(tcp_port),
            KUBECONFIG=self.srv.kubeconfig_for(token),
        )
        log_path = os.path.join(d, "backboned.log")
        log = open(log_path, "w")
        p = subprocess.Popen(
            [BACKBONED, "--config", cfg_path, "--log-level", "debug"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )

        def stop():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()

        self.addCleanup(stop)

        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        if not wait_for(ready, timeout=20):
            stop()
            raise AssertionError(
                "backboned with the chart's config never got ready:\n" + read(log_path)[-4000:]
            )
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5) as r:
            self.assertEqual(r.status, 200)
        return p, log_path

    def seed_examples(self):
        self.kubectl("create", "namespace", "production")
        self.kubectl("apply", "-f", EXAMPLES)

    def check_synced(self, log_path):
        def secret():
            return self.srv.get("", "secrets", "production", "sensor-client-secret")

        def ready(plural, name):
            st = (self.srv.get(GROUP, plural, "production", name) or {}).get("status") or {}
            return any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in st.get("conditions", [])
            )

        ok = wait_for(
            lambda: secret() is not None
            and ready("clients", "sensor-client")
            and ready("topics", "sensor-topics"),
            timeout=15,
        )
        self.assertTrue(ok, "Client/Topic not synced:\n" + read(log_path)[-4000:])
        s = secret()
        c = self.srv.get(GROUP, "clients", "production", "sensor-client")
        self.assertEqual(s["metadata"]["ownerReferences"][0]["uid"], c["metadata"]["uid"])
        forbidden = [r for r in self.srv.requests if r["code"] == 403]
        self.assertEqual(forbidden, [], "the broker needed more than the chart grants")

    def test_broker_with_chart_config_cluster_wide(self):
        self.install_crds()
        self.seed_examples()
        _, log_path = self.run_broker(self.grant())
        self.check_synced(log_path)

    def test_broker_with_chart_config_namespaced(self):
        self.install_crds()
        self.seed_examples()
        self.srv.apply(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Client",
                "metadata": {"name": "elsewhere", "namespace": "default"},
                "spec": {"statements": []},
            }
        )
        _, log_path = self.run_broker(
            self.grant(namespaces=["production"]), watch_namespaces=["production"]
        )
        self.check_synced(log_path)
        time.sleep(0.5)
        self.assertIsNone(self.srv.get("", "secrets", "default", "elsewhere-secret"))


if __name__ == "__main__":
    main()
