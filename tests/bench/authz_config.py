#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Writes the backboned configs of the scripts/bench access-control rows (stdlib only);
tests/bench/bench.py imports build().

usage: authz_config.py off|on|quotas --port N --config PATH [--token-file PATH]

off: the plain bench config (anonymous allow-all, no topic rules).
on:  no anonymous access; clients log in through the jwt module (username "jwt", password an
     HS256 token whose `statements` claim holds STATEMENTS: 10 statements, allow and deny, that
     grant the bench topics), and 5 topic rules whose patterns all match every bench topic, one
     with a JSON Schema that every message is validated against. The token goes to --token-file
     (mode 0600); the random secret only into the config (mode 0600).
quotas: "on", and the token also carries QUOTAS: every quota kind set, none reached by the bench
     (the cost of counting them, SPEC §6).

Bench topics (tests/bench/loadgen.cpp): bench/in/<i> (filter bench/in/+), bench/out,
bench/pair/<i>, bench/lat/<i>.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import time

ALLOW_ALL = [{"effect": "allow", "actions": ["*"], "resources": ["**"]}]

# Default deny; a deny that matches wins. No deny matches a bench topic or filter (a deny that
# could match a topic of a subscribed filter would refuse the subscription).
STATEMENTS = [
    {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["bench/+/+"]},
    {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["bench/out"]},
    {"effect": "allow", "actions": ["mqtt:subscribe"],
     "resources": ["bench/in/+", "bench/pair/*", "bench/lat/*"]},
    {"effect": "allow", "actions": ["mqtt:subscribe", "mqtt:read"], "resources": ["bench/**"]},
    {"effect": "allow", "actions": ["mqtt:read"], "resources": ["bench/+/data"]},
    {"effect": "allow", "actions": ["mqtt:publish", "mqtt:read"], "resources": ["other/*/x"]},
    {"effect": "allow", "actions": ["mqtt:publish"], "resources": ["sensors/dev-*/temp"]},
    {"effect": "deny", "actions": ["mqtt:*"], "resources": ["bench/secret/**"]},
    {"effect": "deny", "actions": ["mqtt:publish"], "resources": ["other/+/private", "admin/#"]},
    {"effect": "deny", "actions": ["mqtt:subscribe", "mqtt:read"], "resources": ["private/+/*-key"]},
]

# Every kind of quota, each far above what a bench row uses: the rows measure what counting
# costs, never a refusal or a pause. maxQueuedMessages equals the broker's default queue limit.
QUOTAS = {"maxConnections": 1000000, "maxSubscriptions": 100000, "maxQueuedMessages": 10000,
          "maxSessionExpiry": 86400, "maxRetained": 1000000, "maxRetainedBytes": 1 << 32,
          "publishRate": 1 << 40, "publishBurst": 1 << 40, "publishBytesRate": 1 << 50,
          "publishBytesBurst": 1 << 50}

SCHEMA = {"type": "object", "required": ["v"], "properties": {"v": {"type": "string"}}}

# Every pattern below matches every bench topic; each message meets all 5 rules.
TOPICS = {
    "bench-size": {"patterns": [{"pattern": "bench/**", "maxMessageSize": 4096}]},
    "bench-qos": {"patterns": [{"matches": ["bench/+/+", "bench/out"], "allowedQoS": [0, 1]}]},
    "bench-retain": {"patterns": [{"pattern": "bench/#", "retain": False}]},
    "bench-levels": {"patterns": [{"matches": ["bench/*", "bench/*/*"], "maxMessageSize": 65536,
                                   "allowedQoS": [0, 1, 2]}]},
    "bench-schema": {"patterns": [{"pattern": "bench/**", "maxMessageSize": 4096,
                                   "allowedQoS": [0, 1], "retain": False, "schema": SCHEMA}]},
}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(secret, claims):
    head = {"alg": "HS256", "typ": "JWT"}
    signing_input = b64(json.dumps(head).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(sig)


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def build(mode, port):
    """The config of `mode` for a tcp listener on `port`, and the token ("off": None)."""
    tcp = {"name": "tcp", "settings": {"address": "127.0.0.1", "port": port}}
    if mode == "off":
        return {"anonymous": {"statements": ALLOW_ALL}, "modules": [tcp]}, None
    secret = secrets.token_hex(32)
    # No HTTP listener: the jwt module's route would make every broker of a run take
    # the same default port.
    cfg = {"topics": TOPICS, "http": {"enabled": False},
           "modules": [{"name": "jwt", "settings": {"secret": secret, "algorithms": ["HS256"]}},
                       tcp]}
    now = int(time.time())
    claims = {"sub": "bench", "iat": now, "exp": now + 24 * 3600, "statements": STATEMENTS}
    if mode == "quotas":
        claims["quotas"] = QUOTAS
    return cfg, make_jwt(secret, claims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["off", "on", "quotas"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--token-file")
    args = ap.parse_args()
    if args.mode != "off" and not args.token_file:
        ap.error("on needs --token-file")
    cfg, token = build(args.mode, args.port)
    if token is not None:
        write_private(args.token_file, token)
    write_private(args.config, json.dumps(cfg, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
