# SPDX-License-Identifier: GPL-3.0-or-later
"""The bench's reference servers, Debian's mosquitto and redis-server, with the face of the
harness's Broker (port, proc, start, stop, alive), so that tests/bench/bench.py drives every
server alike. Each writes its config and log as <directory>/<name>.conf and .log."""

import os
import signal
import subprocess

from harness import free_port, wait_port

# The bench's mosquitto: unbounded queues and in-flight windows, as backboned's defaults do
# not drop in the bench rows either; errors and warnings only.
MOSQUITTO_BASE = """listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 0
max_connections -1
persistence false
log_dest stderr
log_type error
log_type warning
{extra}
"""

MOSQUITTO_WS = """listener {port}
socket_domain ipv4
protocol websockets
allow_anonymous true
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 0
max_connections -1
persistence false
log_dest stderr
log_type error
"""

MOSQUITTO_PERSISTENT = """listener {port} 127.0.0.1
allow_anonymous true
set_tcp_nodelay true
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 0
persistence true
persistence_location {state}/
log_dest stderr
log_type error
log_type warning
"""


class Server:
    """A process started from `command` with its output appended to <name>.log."""

    program = "server"
    settle = 0  # seconds the process must outlive its port's first accept

    def __init__(self, directory, name, prefix=(), port=None):
        self.dir = directory
        self.name = name
        self.port = port if port is not None else free_port()
        self.prefix = list(prefix)
        self.log_path = os.path.join(directory, name + ".log")
        self.proc = None

    def command(self):
        raise NotImplementedError

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT)
        if wait_port(self.port, proc=self.proc) and not self.exits_within(self.settle):
            return self
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError("%s did not start listening on %d (see %s)"
                           % (self.program, self.port, self.log_path))

    def exits_within(self, seconds):
        try:
            self.proc.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None


class Mosquitto(Server):
    """kind: "tcp" (the main table; `extra` config lines, e.g. a bridge), "ws" (websockets
    listener) or "persistent" (persistence true, state beside the config)."""

    program = "mosquitto"

    def __init__(self, directory, name, prefix=(), kind="tcp", extra="", binary="mosquitto"):
        super().__init__(directory, name, prefix)
        self.binary = binary
        self.config_path = os.path.join(directory, name + ".conf")
        if kind == "ws":
            text = MOSQUITTO_WS.format(port=self.port)
            # Where libwebsockets cannot open every socket it wants, mosquitto accepts on the
            # IPv4 one for a few ms, then exits ("Unable to start any listening sockets").
            self.settle = 0.5
        elif kind == "persistent":
            state = os.path.join(directory, name + "-state")
            os.makedirs(state, exist_ok=True)
            text = MOSQUITTO_PERSISTENT.format(port=self.port, state=state)
        else:
            text = MOSQUITTO_BASE.format(port=self.port, extra=extra)
        with open(self.config_path, "w") as f:
            f.write(text)

    def command(self):
        return self.prefix + [self.binary, "-c", self.config_path]


class Redis(Server):
    """A redis-server without persistence: the cluster table's message bus."""

    program = "redis-server"

    def command(self):
        return self.prefix + ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", self.dir]
