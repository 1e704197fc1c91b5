# SPDX-License-Identifier: GPL-3.0-or-later
"""Real Redis processes on loopback ports for the cluster tests: redis-server
(master or replica) and redis-sentinel, without persistence."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"


class Redis:
    """A redis-server on a loopback port, without persistence unless
    `persistent`; a replica of 127.0.0.1:`replicaof` when given."""

    def __init__(self, port=None, password=None, persistent=False, directory=None,
                 replicaof=None):
        self.port = port or harness.free_port()
        self.password = password
        self.persistent = persistent  # every write in the append-only file before its reply
        self.dir = directory or tempfile.mkdtemp(prefix="backbone-redis-")
        self.replicaof = replicaof
        self.proc = None

    def start(self):
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else \
            ["--appendonly", "no"]
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--dir", self.dir, "--daemonize", "no"] + aof
        if self.password:
            cmd += ["--requirepass", self.password]
        if self.replicaof:
            cmd += ["--replicaof", "127.0.0.1", str(self.replicaof)]
        self.log = open(os.path.join(self.dir, "redis.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        assert harness.wait_port(self.port), "redis-server did not start"
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()

    def kill(self):
        """SIGKILL: gone at once, like a crashed host."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def restarted(self):
        """The same server (port, files) started again."""
        return Redis(port=self.port, password=self.password, persistent=self.persistent,
                     directory=self.dir, replicaof=self.replicaof).start()

    def cli(self, *args):
        # Binary values (frames) read as Latin-1: every byte a character.
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                              capture_output=True, timeout=10,
                              env=dict(os.environ, REDISCLI_AUTH=self.password or "")
                              ).stdout.decode("latin-1")


class Sentinel(Redis):
    """A redis-sentinel on a loopback port watching 127.0.0.1:`master_port`
    as `name`, quick to fail over (down after 1 s)."""

    def __init__(self, master_port, name="mymaster", quorum=2, port=None):
        super().__init__(port=port)
        self.master_port = master_port
        self.name = name
        self.quorum = quorum

    def start(self):
        conf = os.path.join(self.dir, "sentinel.conf")  # rewritten by the sentinel
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"sentinel monitor {self.name} 127.0.0.1 {self.master_port} {self.quorum}\n"
                    f"sentinel down-after-milliseconds {self.name} 1000\n"
                    f"sentinel failover-timeout {self.name} 3000\n")
        self.log = open(os.path.join(self.dir, "sentinel.log"), "w")
        self.proc = subprocess.Popen([REDIS_SENTINEL, conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        assert harness.wait_port(self.port), "redis-sentinel did not start"
        return self

    def master_port_now(self):
        """The master's port as this sentinel names it (None if unknown)."""
        out = self.cli("SENTINEL", "get-master-addr-by-name", self.name).split()
        return int(out[1]) if len(out) == 2 and out[1].isdigit() else None


def redis_metrics(broker):
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith("backbone_redis_")}
