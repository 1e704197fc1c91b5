#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The bench behind scripts/bench (which builds, then runs this). Brokers start through the
integration harness's Broker (tests/integration/harness.py), mosquitto and redis-server through
tests/bench/servers.py; tests/bench/bb_loadgen drives them; report.py and profile_share.py print
the tables. Run with /usr/bin/python3; --help has the usage."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, os.path.join(ROOT, "tests", "integration")]

import authz_config  # noqa: E402
import harness  # noqa: E402
from servers import Mosquitto, Redis  # noqa: E402

USAGE = """\
Benchmarks backboned against Debian's mosquitto with tests/bench/bb_loadgen and prints one table,
then backboned with access control off versus on (second table), then MQTT over WebSocket
versus TCP (third table), then persistent sessions through the store (fourth table).

usage: scripts/bench [--quick] [--no-build] [--validate] [--only REGEX] [--authz | --no-authz]
                     [--quotas]
                     [--ws | --no-ws] [--store | --no-store] [--cluster | --no-cluster]
                     [--username U] [--password P] [--build-dir DIR]
  --quick     2 s rows after 0.5 s warm-up, 2000 idle connections (a smoke run)
  --no-build  use the binaries already built
  --build-dir DIR  the Release tree to build and run (BENCH_BUILD_DIR; default build-release)
  --validate  run a second mosquitto in the backbone column (checks the ratio plumbing)
  --only RE   run only rows whose "scenario protocol qos" matches the extended regex RE
  --authz     only the access-control table: fan-in, fan-out, pairs and latency, MQTT 3.1.1/5.0,
              QoS 0/1, each on backboned "off" (anonymous allow-all) and "on" (jwt login, 10
              statements, 5 topic rules matching the bench topics, one with a JSON Schema), both
              with JSON payloads (bb_loadgen --json-payload); targets: throughput loss <= 10%,
              p99 increase <= 20%; with perf available, one more profiled "on" run per
              closed-loop row gives the share of the broker's CPU spent in access control
  --no-authz  no access-control table
  --quotas    only the quota table: the access-control rows with "on" (as --authz) against
              "quotas" (the same token with every quota kind set, none reached), SPEC §6
  --ws        only the WebSocket table: backboned's ws module versus its tcp module (same
              process, same scenarios; target ws >= 70% of tcp), mosquitto's websockets
              listener beside them when it starts on this machine, and BENCH_WS_IDLE idle
              WebSocket connections (RSS per connection)
  --no-ws     no WebSocket table
  --store     only the store table: MQTT 5 persistent sessions (Session Expiry 60 s), QoS 1,
              fan-in/fan-out/pairs/latency on backboned without a store (memory), with the store
              in sync and in periodic durability, and mosquitto with persistence true
  --no-store  no store table
  --cluster   only the cluster table (module redis, a real redis-server): 3 brokers in one
              cluster (bb-a, bb-b, bb-c), messages crossing brokers (publishers on A,
              subscribers on B, through the Redis stream that all 3 read) side by side with one
              broker alone (bb-solo, no module), the module alone in its cluster (bb-local) and
              two mosquittos joined by a bridge (topic bench/# out); clean sessions (MQTT
              3.1.1/5.0, QoS 0/1) and MQTT 5 persistent sessions (Session Expiry 60 s, QoS 0/1;
              every backboned has a store, durability sync); latency rows at 10k msgs/s; per
              row acknowledged vs received and lost; targets: cross QoS 1 >= 50% of bb-solo,
              p99 <= 5 ms at 10k msgs/s, 0 acknowledged messages lost; everything on CPU 0
  --no-cluster no cluster table
Environment: BENCH_DURATION (5), BENCH_WARMUP (1), BENCH_PAYLOAD (64), BENCH_WINDOW (64),
  BENCH_RATE (10000), BENCH_IDLE_CONNECTIONS (10000), BENCH_WS_IDLE (5000), BENCH_JOBS (2),
  BENCH_OUT (build-release/bench), BENCH_BUILD_DIR (build-release), BENCH_AUTHZ_DURATION (3),
  BENCH_AUTHZ_WARMUP (0.5), BENCH_AUTHZ_REPEAT (5 back-to-back off/on pairs per row; the table
  judges the median change within a pair): the access-control rows (160 runs, about 12 min).
  Relative paths are taken from the repository's root.
Each broker is pinned to CPU 0 and the generator to CPU 1 (when there are 2+ CPUs). Results go
to $BENCH_OUT/run-*/results.jsonl (access control: authz.jsonl), broker logs and configs beside
them."""

PROTOCOLS = ("3.1.1", "5.0")
QOSES = (0, 1)
MAIN_SCENARIOS = ("fan-in", "fan-out", "pairs", "latency", "overload")
SCENARIOS = ("fan-in", "fan-out", "pairs", "latency")
PROFILED_SCENARIOS = ("fan-in", "fan-out", "pairs")  # closed-loop: CPU-bound brokers
ALLOW_ALL = harness.ALLOW_ALL
LOADGEN_TIMEOUT = 300


class UsageError(Exception):
    def __init__(self, message, code=64):
        super().__init__(message)
        self.code = code


class Options:
    """The command line and BENCH_* variables. Numbers handed to bb_loadgen stay the strings
    they were given, so its command line is the one the bash bench built."""

    def __init__(self, env):
        g = env.get
        self.duration = g("BENCH_DURATION", "5")
        self.warmup = g("BENCH_WARMUP", "1")
        self.payload = int(g("BENCH_PAYLOAD", "64"))
        self.window = g("BENCH_WINDOW", "64")
        self.rate = g("BENCH_RATE", "10000")
        self.idle_connections = int(g("BENCH_IDLE_CONNECTIONS", "10000"))
        self.ws_idle = g("BENCH_WS_IDLE", "5000")
        self.out = g("BENCH_OUT", "build-release/bench")
        self.build_dir = g("BENCH_BUILD_DIR", "build-release")
        self.authz_duration = g("BENCH_AUTHZ_DURATION", "3")
        self.authz_warmup = g("BENCH_AUTHZ_WARMUP", "0.5")
        self.authz_repeat = int(g("BENCH_AUTHZ_REPEAT", "5"))
        self.build = True
        self.validate = False
        self.only = ""
        self.auth = []
        self.help = False
        # Each table: "on", "off" or "only".
        self.authz = self.ws = self.store = self.cluster = "on"
        self.quotas = False

    def main_table(self):
        return "only" not in (self.authz, self.ws, self.store, self.cluster)


def parse_args(argv, env=None):
    """The bash bench's parsing, flag by flag in order (a later flag overrides an earlier)."""
    o = Options(os.environ if env is None else env)
    args = list(argv)
    while args:
        a = args.pop(0)

        def value():
            if not args:
                raise UsageError("bench: %s needs a value" % a)
            return args.pop(0)

        if a == "--quick":
            o.duration, o.warmup, o.idle_connections = "2", "0.5", 2000
            o.authz_duration, o.authz_warmup = "2", "0.5"
        elif a == "--no-build":
            o.build = False
        elif a == "--validate":
            o.validate = True
        elif a == "--only":
            o.only = value()
        elif a == "--build-dir":
            o.build_dir = value()
        elif a in ("--username", "--password"):
            o.auth += [a, value()]
        elif a == "--authz":
            o.authz, o.ws, o.store, o.cluster = "only", "off", "off", "off"
        elif a == "--no-authz":
            o.authz = "off"
        elif a == "--quotas":
            o.authz, o.quotas, o.ws, o.store, o.cluster = "only", True, "off", "off", "off"
        elif a == "--ws":
            o.ws, o.authz, o.store, o.cluster = "only", "off", "off", "off"
        elif a == "--no-ws":
            o.ws = "off"
        elif a == "--store":
            o.store, o.authz, o.ws, o.cluster = "only", "off", "off", "off"
        elif a == "--no-store":
            o.store = "off"
        elif a == "--cluster":
            o.cluster, o.authz, o.ws, o.store = "only", "off", "off", "off"
        elif a == "--no-cluster":
            o.cluster = "off"
        elif a in ("-h", "--help"):
            o.help = True
            return o
        else:
            raise UsageError("bench: unknown argument " + a)
    return o


def selected(o, scenario, protocol, qos):
    import re
    return not o.only or re.search(o.only, "%s %s %s" % (scenario, protocol, qos)) is not None


def rows(o, scenarios, protocols=PROTOCOLS, qoses=QOSES):
    return [(s, p, q) for s in scenarios for p in protocols for q in qoses
            if selected(o, s, p, q)]


def alternating(n, first, second):
    """Which of a pair runs first: alternate, so that drift hits both alike."""
    return (first, second) if n % 2 == 0 else (second, first)


def authz_runs(o):
    """(column, scenario, protocol, qos) in run order: `authz_repeat` back-to-back pairs per
    row, the first of each pair alternating over the whole table."""
    out, n = [], 0
    for row in rows(o, SCENARIOS):
        for _ in range(o.authz_repeat):
            out += [(col,) + row for col in alternating(n, "off", "on")]
            n += 1
    return out


def ws_runs(o, mosquitto):
    out = []
    for n, row in enumerate(rows(o, SCENARIOS)):
        out += [(col,) + row for col in alternating(n, "bb-tcp", "bb-ws")]
        if mosquitto:
            out.append(("mosq-ws",) + row)
    return out


def plan(o):
    """The tables this option set runs, with their rows: what the unit test checks."""
    tables = {}
    if o.main_table():
        tables["main"] = ([("idle", p, 0) for p in PROTOCOLS if selected(o, "idle", p, 0)]
                          + rows(o, MAIN_SCENARIOS))
    if o.authz != "off":
        tables["authz"] = authz_runs(o)
    if o.ws != "off":
        tables["ws"] = ws_runs(o, True) + ([("bb-ws", "idle", "3.1.1", 0)]
                                           if selected(o, "idle", "3.1.1", 0) else [])
    if o.store != "off":
        tables["store"] = rows(o, SCENARIOS, ("5.0",), (1,))
    if o.cluster != "off":
        tables["cluster"] = cluster_runs(o)
    return tables


CLUSTER_NODES = ("bb-a", "bb-b", "bb-c")
CLUSTER_SESSIONS = ("clean", "persistent")
CLUSTER_SESSION_EXPIRY = "60"
CLUSTER_RATE = "10000"  # the cluster issue's latency target is at 10k msgs/s


def cluster_runs(o):
    """(session, scenario, protocol, qos): clean sessions (MQTT 3.1.1 and 5.0, QoS 0 and 1),
    then MQTT 5 persistent sessions (Session Expiry) at QoS 0 and 1."""
    return ([("clean",) + r for r in rows(o, SCENARIOS)]
            + [("persistent",) + r for r in rows(o, SCENARIOS, ("5.0",))])


def log(*words):
    print("bench:", *words, file=sys.stderr, flush=True)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def summary(out):
    try:
        r = json.loads(out)
        if "error" in r:
            return "ERROR %s" % r["error"]
        if r["scenario"] == "idle":
            return "%.0f B/conn" % r["rss_per_conn_bytes"]
        return ("%.0f msgs/s p50 %.3f ms p99 %.3f ms loss %d dups %d, CPU broker %.0f%% "
                "generator %.0f%%" % (r["delivered_per_s"], r["p50_ms"], r["p99_ms"], r["loss"],
                                      r["duplicates"], r["broker_cpu_pct"],
                                      r["loadgen_cpu_pct"]))
    except (ValueError, KeyError, TypeError):
        return out


def under_root(path):
    path = os.path.join(ROOT, path)
    return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


class Bench:
    def __init__(self, o, run_dir):
        self.o = o
        self.run_dir = run_dir
        self.results = os.path.join(run_dir, "results.jsonl")
        self.started = []      # every server, stopped at exit
        self.targets = {}      # label -> (server, port): what bb_loadgen is pointed at
        self.broker_pin = []
        self.gen_pin = []
        build = o.build_dir
        self.loadgen = next((c for c in (os.path.join(build, "bin/bb_loadgen"),
                                         "build-bench/bb_loadgen") if os.access(c, os.X_OK)), "")
        candidate = os.path.join(build, "bin/backboned")
        self.backboned = candidate if os.access(candidate, os.X_OK) else ""
        # The access-control rows log in through the jwt module; it must sit beside tcp.so.
        self.jwt_module = os.path.join(build, "lib/backbone/modules/jwt.so")
        os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"
        self.mosquitto = shutil.which("mosquitto") or ""

    # --- servers ------------------------------------------------------------------------------
    def start(self, label, server, wait_ports=None):
        """Starts `server` under `label`; None (logged) when it does not come up."""
        self.started.append(server)
        try:
            server.start(wait_ports) if wait_ports else server.start()
        except RuntimeError:
            log("%s did not start (see %s)" % (label, server.log_path))
            self.targets[label] = (None, server.port)
            return None
        self.targets[label] = (server, server.port)
        return server

    def stop(self, *labels):
        for label in labels:
            server = self.targets.get(label, (None, None))[0]
            if server is not None:
                try:
                    server.stop()
                except AssertionError:
                    log("%s did not stop on SIGTERM: killed" % label)
            self.targets[label] = (None, None)

    def stop_all(self):
        for server in self.started:
            try:
                server.stop()
            except AssertionError:
                pass

    def backbone(self, label, config, port, http_port=None, wait_ports=None):
        broker = harness.Broker(config=config, port=port, http_port=http_port,
                                binary=self.backboned, prefix=self.broker_pin, log_level=None,
                                directory=self.run_dir, name=label, append_log=True)
        return self.start(label, broker, wait_ports)

    def start_backbone(self, label, mode=None):
        """Plain (anonymous allow-all, tcp only), or the access-control config `mode` of
        authz_config.py (its token in <label>.token)."""
        port = harness.free_port()
        if mode is None:
            config = {"anonymous": {"statements": ALLOW_ALL},
                      "modules": [{"name": "tcp", "settings": {"address": "127.0.0.1",
                                                               "port": port}}]}
        else:
            config, token = authz_config.build(mode, port)
            if token is not None:
                authz_config.write_private(os.path.join(self.run_dir, label + ".token"), token)
        return self.backbone(label, config, port)

    def start_mosquitto(self, label, **kw):
        return self.start(label, Mosquitto(self.run_dir, label, self.broker_pin,
                                           binary=self.mosquitto, **kw))

    def alias(self, label, of, port=None):
        server, own_port = self.targets.get(of, (None, None))
        self.targets[label] = (server, port if port is not None else own_port)

    # --- runs ---------------------------------------------------------------------------------
    def common(self):
        o = self.o
        return (["--duration", o.duration, "--warmup", o.warmup, "--payload", str(o.payload),
                 "--window", o.window, "--rate", o.rate] + o.auth)

    def run_one(self, label, scenario, protocol, qos, *extra, results=None):
        results = results or self.results
        head = {"broker": label, "scenario": scenario, "protocol": protocol, "qos": qos}
        server, port = self.targets.get(label, (None, None))
        if server is None or not server.alive():
            head["error"] = "broker not running (see %s)" % (
                server.log_path if server else os.path.join(self.run_dir, label + ".log"))
            self.append(results, json.dumps(head, separators=(",", ":")))
            log("%s %s %s QoS %s: broker not running" % (label, scenario, protocol, qos))
            return
        cmd = self.gen_pin + [self.loadgen, "--port", str(port), "--label", label,
                              "--scenario", scenario, "--protocol", protocol, "--qos", str(qos),
                              "--broker-pid", str(server.proc.pid)] + self.common() + list(extra)
        with open(os.path.join(self.run_dir, "loadgen.stderr"), "a") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
            try:
                out, _ = proc.communicate(timeout=LOADGEN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    out, _ = proc.communicate(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, _ = proc.communicate()
        out = out.rstrip("\n")
        if not out:
            head["error"] = "bb_loadgen exited %d without a result" % (
                proc.returncode if proc.returncode >= 0 else 128 - proc.returncode)
            out = json.dumps(head, separators=(",", ":"))
        self.append(results, out)
        log("%s %s %s QoS %s: %s" % (label, scenario, protocol, qos, summary(out)))

    @staticmethod
    def append(path, line):
        with open(path, "a") as f:
            f.write(line + "\n")

    def report(self, *args):
        sys.stdout.flush()
        subprocess.run([sys.executable, os.path.join(HERE, "report.py")] + list(args))

    # --- set-up -------------------------------------------------------------------------------
    def limits(self):
        # 10k idle clients need 10k descriptors in the generator and in each broker (inherited
        # from here). 10k connections from 127.0.0.1 to one port fit the ephemeral range.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 1048576 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile < self.o.idle_connections + 200:
            self.o.idle_connections = nofile - 200
            log("open-file limit %d: idle test reduced to %d connections"
                % (nofile, self.o.idle_connections))
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
        if hi - lo < self.o.idle_connections:
            log("ephemeral port range %d-%d is smaller than %d connections"
                % (lo, hi, self.o.idle_connections))
        if len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset"):
            self.broker_pin = ["taskset", "-c", "0"]
            self.gen_pin = ["taskset", "-c", "1"]
        else:
            log("fewer than 2 CPUs or no taskset: not pinning")

    # --- backboned versus mosquitto -----------------------------------------------------------
    def main_table(self):
        o = self.o
        brokers = ["mosquitto"]
        b_title, b_desc = "bb", "backboned"
        if o.validate:
            brokers.append("backbone")
            b_title, b_desc = "mosq#2", "a second mosquitto (--validate)"
        elif self.backboned:
            brokers.append("backbone")
        else:
            log("no %s/bin/backboned: the backbone column will read n/a" % o.build_dir)

        def start_brokers():
            for b in brokers:
                if b == "backbone" and not o.validate:
                    self.start_backbone(b)
                else:
                    self.start_mosquitto(b)

        # Idle connections first, each protocol on freshly started brokers, so that memory
        # freed by earlier traffic is not reused and hidden from the RSS delta.
        for protocol in PROTOCOLS:
            if not selected(o, "idle", protocol, 0):
                continue
            start_brokers()
            for b in brokers:
                self.run_one(b, "idle", protocol, 0, "--connections", str(o.idle_connections))
            self.stop(*brokers)
        start_brokers()
        for row in rows(o, MAIN_SCENARIOS):
            for b in brokers:
                self.run_one(b, *row)
        self.stop(*brokers)

        version = subprocess.run([self.mosquitto, "-h"], capture_output=True, text=True,
                                 timeout=10).stdout.splitlines()
        version = version[0].split()[2] if version and len(version[0].split()) > 2 else ""
        print()
        print("Backbone vs mosquitto %s: payload %s B, window %s, %s s per row after %s s "
              "warm-up; brokers on CPU 0, generator on CPU 1; load average at start %s"
              % (version, o.payload, o.window, o.duration, o.warmup, self.load_at_start))
        self.report(self.results, "--b-title", b_title, "--b-desc", b_desc)
        print()
        print("raw results: " + self.results)

    # --- access control off vs on -------------------------------------------------------------
    # Both backboned instances run side by side (on CPU 0) for the whole table; each row runs
    # on both, alternating which goes first so that drift in the machine's load hits both
    # alike. Both get the same JSON payload; "on" logs in with the jwt token.
    def authz_profile(self, shares, *args):
        """The access-control share of the "on" broker's CPU, from a profile of one more run
        per closed-loop row (perf with call graphs): drift on a shared machine moves whole runs
        by 20-40%, not which functions a CPU-bound broker spends its time in."""
        o = self.o
        if not shutil.which("perf") or subprocess.run(
                ["perf", "record", "-q", "-o", "/dev/null", "--", "true"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=60).returncode != 0:
            log("perf is not available here: no access-control profile")
            return
        open(shares, "w").close()
        runs = os.path.join(self.run_dir, "authz-profile-runs.jsonl")
        seconds = max(int(float(o.authz_duration)) - 1, 1)
        for scenario, protocol, qos in rows(o, PROFILED_SCENARIOS):
            data = os.path.join(self.run_dir, "profile.data")
            server = self.targets["bb-on"][0]

            def record():
                # bb_loadgen has connected and warmed up by then; perf stops before the run ends.
                time.sleep(float(o.authz_warmup) + 1)
                if server is None:
                    return
                try:
                    subprocess.run(["perf", "record", "-q", "-F", "499", "--call-graph",
                                    "dwarf,8192", "-p", str(server.proc.pid), "-o", data, "--",
                                    "sleep", str(seconds)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=seconds + 120)
                except subprocess.TimeoutExpired:
                    pass

            recorder = threading.Thread(target=record)
            recorder.start()
            self.run_one("bb-on", scenario, protocol, qos, *args, results=runs)
            recorder.join()
            ok = False
            try:
                rep = subprocess.run(["perf", "report", "-i", data, "--children", "--sort",
                                      "symbol", "--stdio", "-g", "none"], capture_output=True,
                                     text=True, timeout=600)
                with open(shares, "a") as f:
                    share = subprocess.run([sys.executable, os.path.join(HERE, "profile_share.py"),
                                            "--row", scenario, protocol, str(qos)],
                                           input=rep.stdout, stdout=f, text=True, timeout=60)
                ok = rep.returncode == 0 and share.returncode == 0
            except subprocess.TimeoutExpired:
                pass
            if not ok:
                log("%s %s QoS %s: no profile" % (scenario, protocol, qos))
            for path in (data, data + ".old"):
                if os.path.exists(path):
                    os.remove(path)

    def authz_table(self):
        o = self.o
        if not self.backboned or o.validate:
            log("no access-control table (needs backboned, not --validate)")
            return
        if not os.path.isfile(self.jwt_module):
            log("no access-control table: %s is not built" % self.jwt_module)
            return
        payload = o.payload
        if payload < 56:
            payload = 56
            log("access control: JSON payloads need 56 bytes; using 56")
        results = os.path.join(self.run_dir, "authz.jsonl")
        open(results, "w").close()
        # Of the binary the brokers run (others may rebuild it).
        built = time.strftime("%Y-%m-%d %H:%M:%S",
                              time.localtime(os.path.getmtime(self.backboned)))
        # --quotas: the "off" column logs in like "on" and "on" carries the quotas.
        mode_off, mode_on = ("on", "quotas") if o.quotas else ("off", "on")
        self.start_backbone("bb-off", mode_off)
        self.start_backbone("bb-on", mode_on)

        def token(label):
            path = os.path.join(self.run_dir, label + ".token")
            return open(path).read() if os.path.isfile(path) else ""

        on_auth = ["--username", "jwt", "--password", token("bb-on")]
        off_auth = ["--username", "jwt", "--password", token("bb-off")] if o.quotas else []
        common = ["--duration", o.authz_duration, "--warmup", o.authz_warmup,
                  "--payload", str(payload), "--json-payload"]
        az_load = loadavg()
        log("access control off vs on: load average %s; results: %s" % (az_load, results))
        for column, scenario, protocol, qos in authz_runs(o):
            if column == "off":
                self.run_one("bb-off", scenario, protocol, qos, *common, *off_auth,
                             results=results)
            else:
                self.run_one("bb-on", scenario, protocol, qos, *common, *on_auth,
                             results=results)
        profile = os.path.join(self.run_dir, "authz-profile.jsonl")
        self.authz_profile(profile, *common, *on_auth)
        self.stop("bb-off", "bb-on")
        print()
        columns = ("off = anonymous allow-all, on = jwt login, 10 statements, 5 topic rules "
                   "(one JSON Schema)")
        if o.quotas:
            columns = ("off = jwt login, 10 statements, 5 topic rules (one JSON Schema), on = the "
                       "same with every quota kind set, none reached")
        print("Backbone %s off vs on: JSON payload %d B, window %s, %s s per run after %s s "
              "warm-up, %d back-to-back off/on pairs per row; %s; broker on CPU 0, generator on "
              "CPU 1; load average %s at start, %s at end; %s built %s"
              % ("quotas" if o.quotas else "access control", payload, o.window,
                 o.authz_duration, o.authz_warmup, o.authz_repeat, columns, az_load, loadavg(),
                 under_root(self.backboned), built))
        self.report(results, "--authz")
        if os.path.isfile(profile) and os.path.getsize(profile) > 0:
            print()
            sys.stdout.flush()
            subprocess.run([sys.executable, os.path.join(HERE, "profile_share.py"), "--table",
                            profile])
        print()
        print("raw results: %s (configs: %s/bb-off.json, %s/bb-on.json)"
              % (results, self.run_dir, self.run_dir))

    # --- WebSocket versus TCP -----------------------------------------------------------------
    # One backboned with both transports (tcp and ws modules, anonymous allow-all): each row
    # runs over TCP and over WebSocket (ws:// at /ws, subprotocol mqtt) against the same
    # process, alternating which goes first. bb_loadgen frames with a zero mask key, so its own
    # cost stays close to TCP's while the broker does the full WebSocket work (unmasking pass
    # included). Mosquitto's websockets listener joins when it starts here (Debian's build links
    # libwebsockets; in some sandboxes it cannot open its socket and its column is left out).
    def start_backbone_ws(self, label):
        port, http_port = harness.free_port(), harness.free_port()
        config = {"anonymous": {"statements": ALLOW_ALL},
                  "http": {"address": "127.0.0.1", "port": http_port},
                  "modules": [{"name": "tcp", "settings": {"address": "127.0.0.1",
                                                           "port": port}}, "ws"]}
        broker = self.backbone(label, config, port, http_port, wait_ports=[port, http_port])
        self.alias(label + "-tcp", label)
        self.alias(label + "-ws", label, http_port)
        return broker

    def ws_table(self):
        o = self.o
        if not self.backboned or o.validate:
            log("no WebSocket table (needs backboned, not --validate)")
            return
        results = os.path.join(self.run_dir, "ws.jsonl")
        open(results, "w").close()
        self.start_backbone_ws("bb")
        mosq = None
        if self.mosquitto:
            server = Mosquitto(self.run_dir, "mosq-ws", self.broker_pin, kind="ws",
                               binary=self.mosquitto)
            self.started.append(server)
            try:
                mosq = server.start()
                self.targets["mosq-ws"] = (server, server.port)
            except RuntimeError:
                pass
        if mosq is None:
            log("mosquitto's websockets listener did not start here: TCP is the reference")
        load = loadavg()
        log("WebSocket versus TCP: load average %s; results: %s" % (load, results))
        for column, scenario, protocol, qos in ws_runs(o, mosq is not None):
            extra = {"bb-tcp": (), "bb-ws": ("--ws", "/ws"), "mosq-ws": ("--ws", "/")}[column]
            self.run_one(column, scenario, protocol, qos, *extra, results=results)
        self.stop("bb", "mosq-ws")
        if selected(o, "idle", "3.1.1", 0):
            # A fresh process, so the RSS delta is the WebSocket connections' own.
            self.start_backbone_ws("bb")
            self.run_one("bb-ws", "idle", "3.1.1", 0, "--connections", o.ws_idle, "--ws", "/ws",
                         results=results)
            self.stop("bb")
        print()
        print("Backbone MQTT over WebSocket versus TCP (the same backboned process): payload "
              "%s B, window %s, %s s per row after %s s warm-up; broker on CPU 0, generator on "
              "CPU 1; load average %s at start, %s at end. Target: ws/tcp >= 0.70."
              % (o.payload, o.window, o.duration, o.warmup, load, loadavg()))
        self.report(results, "--a", "bb-tcp", "--b", "bb-ws", "--b-title", "ws",
                    "--b-desc", "backboned over WebSocket")
        if mosq is not None:
            self.report(results, "--a", "mosq-ws", "--b", "bb-ws", "--b-title", "bb ws",
                        "--b-desc", "backboned over WebSocket")
        print()
        print("raw results: " + results)

    # --- the store: persistent sessions -------------------------------------------------------
    # MQTT 5 sessions with a Session Expiry Interval (bb_loadgen --session-expiry), QoS 1: every
    # message goes to persistent sessions, so backboned with a state_dir writes it to its store
    # and acknowledges it only once durable. bb-mem: no state_dir (memory only, the ceiling);
    # bb-sync: the default durability (written and fdatasync'ed, group commit); bb-periodic:
    # written at once (kill -9 safe), synced every 100 ms; mosquitto: persistence true (it saves
    # its whole state every autosave_interval, not per message: a crash loses the messages since
    # the last save).
    def start_backbone_store(self, label, durability):
        port = harness.free_port()
        config = {"anonymous": {"statements": ALLOW_ALL}}
        if durability != "memory":
            config["state_dir"] = os.path.join(self.run_dir, label + "-state")
            config["store"] = {"durability": durability}
        config["modules"] = [{"name": "tcp", "settings": {"address": "127.0.0.1", "port": port}}]
        return self.backbone(label, config, port)

    def store_table(self):
        o = self.o
        if not self.backboned or o.validate:
            log("no store table (needs backboned, not --validate)")
            return
        results = os.path.join(self.run_dir, "store.jsonl")
        open(results, "w").close()
        brokers = ["bb-mem", "bb-sync", "bb-periodic"]
        for label, durability in zip(brokers, ("memory", "sync", "periodic")):
            self.start_backbone_store(label, durability)
        mosq = bool(self.mosquitto) and self.start_mosquitto(
            "mosquitto-persist", kind="persistent") is not None
        if mosq:
            brokers.append("mosquitto-persist")
        load = loadavg()
        log("store (persistent sessions): load average %s; results: %s" % (load, results))
        for row in rows(o, SCENARIOS, ("5.0",), (1,)):
            for label in brokers:
                self.run_one(label, *row, "--session-expiry", "60", results=results)
        self.stop(*brokers)
        print()
        print("Persistent sessions (MQTT 5, Session Expiry 60 s, QoS 1): payload %s B, window "
              "%s, %s s per row after %s s warm-up; broker on CPU 0, generator on CPU 1; load "
              "average %s at start, %s at end."
              % (o.payload, o.window, o.duration, o.warmup, load, loadavg()))
        self.report(results, "--a", "bb-mem", "--b", "bb-sync", "--b-title", "sync", "--b-desc",
                    "backboned, store durability sync (PUBACK after fdatasync)")
        self.report(results, "--a", "bb-mem", "--b", "bb-periodic", "--b-title", "periodic",
                    "--b-desc", "backboned, store durability periodic (PUBACK after write, "
                    "fdatasync every 100 ms)")
        if mosq:
            self.report(results, "--a", "mosquitto-persist", "--b", "bb-sync", "--b-title",
                        "bb sync", "--b-desc", "backboned, store durability sync")
        print()
        print("raw results: " + results)

    # --- cluster: the redis module ------------------------------------------------------------
    # Three brokers share a prefix (bb-a, bb-b, bb-c): every entry of the stream is read by all
    # three, though only B has subscribers. The cross rows publish on A and subscribe on B
    # (bb_loadgen --sub-port). bb-solo (no module) and bb-local (the module, alone in its
    # cluster) are the one-broker references; mosq-cross is two mosquittos joined by a bridge.
    # Every backboned has a state_dir (store durability sync), so the persistent-session rows
    # (MQTT 5, Session Expiry, as the store table) go through the store on each of them.
    def start_backbone_clustered(self, label, redis_port, prefix):
        port = harness.free_port()
        config = {"anonymous": {"statements": ALLOW_ALL},
                  "state_dir": os.path.join(self.run_dir, label + "-state"),
                  "modules": [{"name": "tcp", "settings": {"address": "127.0.0.1",
                                                           "port": port}}]}
        if redis_port is not None:
            config["modules"].insert(0, {"name": "redis", "settings": {
                "address": "127.0.0.1:%d" % redis_port, "prefix": prefix}})
        return self.backbone(label, config, port)

    def cluster_table(self):
        o = self.o
        if not self.backboned or o.validate or not shutil.which("redis-server"):
            log("no cluster table (needs backboned, redis-server, not --validate)")
            return
        files = {s: os.path.join(self.run_dir, "cluster-%s.jsonl" % s) for s in CLUSTER_SESSIONS}
        for path in files.values():
            open(path, "w").close()
        redis = self.start("redis", Redis(self.run_dir, "redis", self.broker_pin))
        if redis is None:
            return
        self.start_backbone_clustered("bb-solo", None, None)
        self.start_backbone_clustered("bb-local", redis.port, "bench-local")
        for label in CLUSTER_NODES:
            self.start_backbone_clustered(label, redis.port, "bench")
        brokers = ["bb-solo", "bb-local"] + list(CLUSTER_NODES) + ["redis"]
        mosq = False
        if self.mosquitto:
            mosq_b = self.start_mosquitto("mosq-b")
            if mosq_b is not None and self.start_mosquitto("mosq-a", extra=(
                    "connection to-mosq-b\naddress 127.0.0.1:%d\ntopic bench/# out 1\n"
                    "cleansession true" % mosq_b.port)) is not None:
                # The bridge connects after the listener opens; the old bench's fixed wait.
                time.sleep(1)
                mosq = True
                brokers += ["mosq-a", "mosq-b"]
        # CPU is A's (the publishing broker).
        self.alias("bb-cross", "bb-a")
        self.alias("mosq-cross", "mosq-a")
        sub_port = lambda label: str(self.targets.get(label, (None, 0))[1])
        load = loadavg()
        log("cluster: load average %s; results: %s" % (load, ", ".join(files.values())))
        for session, scenario, protocol, qos in cluster_runs(o):
            extra = ["--session-expiry", CLUSTER_SESSION_EXPIRY] if session == "persistent" \
                else []
            if scenario == "latency":
                extra += ["--rate", CLUSTER_RATE]
            row = (scenario, protocol, qos)
            results = files[session]
            self.run_one("bb-solo", *row, *extra, results=results)
            self.run_one("bb-local", *row, *extra, results=results)
            self.run_one("bb-cross", *row, "--sub-port", sub_port("bb-b"), *extra,
                         results=results)
            if mosq:
                self.run_one("mosq-cross", *row, "--sub-port", sub_port("mosq-b"), *extra,
                             results=results)
        self.stop(*brokers)
        end_load = loadavg()
        print()
        print("Cluster (module redis, one redis-server without persistence): 3 clustered "
              "brokers (bb-a, bb-b, bb-c), publishers on A, subscribers on B; payload %s B, "
              "window %s, %s s per row after %s s warm-up, latency rows paced at %s msgs/s; "
              "every backboned with a state_dir (store durability sync); brokers, mosquittos and "
              "Redis on CPU 0, generator on CPU 1; load average %s at start, %s at end."
              % (o.payload, o.window, o.duration, o.warmup, CLUSTER_RATE, load, end_load))
        args = []
        for session in CLUSTER_SESSIONS:
            args += ["--session-file", "%s=%s" % (session, files[session])]
        self.report(files[CLUSTER_SESSIONS[0]], "--cluster", *args)
        print()
        print("raw results: " + ", ".join(files.values()))

    # --- all ----------------------------------------------------------------------------------
    def run(self):
        o = self.o
        open(self.results, "w").close()
        if not self.loadgen:
            log("no bb_loadgen built; run without --no-build")
            return 1
        if o.main_table() and not self.mosquitto:
            log("mosquitto is not installed")
            return 1
        self.limits()
        self.load_at_start = loadavg()
        log("load average: %s; results: %s" % (self.load_at_start, self.results))
        if o.main_table():
            self.main_table()
        if o.authz != "off":
            self.authz_table()
        if o.ws != "off":
            self.ws_table()
        if o.store != "off":
            self.store_table()
        if o.cluster != "off":
            self.cluster_table()
        return 0


def run_dir_of(o, env):
    return env.get("BENCH_RUN_DIR") or os.path.join(
        os.path.join(ROOT, o.out), "run-" + time.strftime("%Y%m%d-%H%M%S"))


def main(argv):
    os.chdir(ROOT)
    sys.stdout.reconfigure(line_buffering=True)
    # scripts/bench asks what to build and where the run's logs go, before building.
    parse_only = argv[:1] == ["--parse-only"]
    try:
        o = parse_args(argv[1:] if parse_only else argv)
    except UsageError as e:
        print(e, file=sys.stderr)
        return e.code
    o.build_dir = os.path.join(ROOT, o.build_dir)
    if parse_only:
        print("help" if o.help else "build" if o.build else "no-build")
        print(o.build_dir)
        print(run_dir_of(o, os.environ))
        return 0
    if o.help:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `scripts/bench --help | head`
        print(USAGE)
        return 0
    run_dir = run_dir_of(o, os.environ)
    os.makedirs(run_dir, exist_ok=True)
    bench = Bench(o, run_dir)

    def terminate(signum, frame):
        raise SystemExit(130)

    signal.signal(signal.SIGTERM, terminate)
    try:
        return bench.run()
    except KeyboardInterrupt:
        return 130
    finally:
        bench.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
