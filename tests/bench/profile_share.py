#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The share of a broker's CPU spent in access control, from `perf report --children` (stdlib only).

usage: perf report -i DATA --children --sort symbol --stdio -g none |
           profile_share.py --row SCENARIO PROTOCOL QOS >> SHARES.jsonl
       profile_share.py --table SHARES.jsonl [--max 10]

Every per-message access-control decision enters through two functions: the topic-rule check
(rules::RuleSet::check, schema validation included) and the session's decision cache
(authz::DecisionCache::allows, publish and read). Their "children" percentage is the time spent
inside them and everything they call. A CPU-bound broker that spends the share s of its time
there delivers (1 - s) of what it would without: s is the throughput the checks cost, measured
without comparing two noisy runs.
"""

import argparse
import json
import re
import sys

ENTRY_POINTS = {
    "rules": "backbone::kernel::rules::RuleSet::check",
    "authz": "backbone::kernel::authz::DecisionCache::allows",
    # Per-message quota work (SPEC §6): the publish rates. The other quotas are
    # counted per connection, subscription or retained message.
    "quotas": "backbone::kernel::connection::Connection::spend_publish_rate",
}
# "  6.47%  0.69%  [.] symbol   -  -": children, self, [.] user / [k] kernel, symbol, IPC columns.
LINE = re.compile(r"^\s*([0-9.]+)%\s+([0-9.]+)%\s+\[[.k]\]\s+(.*?)(?:\s+-\s+-)?\s*$")


def parse(text):
    shares = {k: 0.0 for k in ENTRY_POINTS}
    samples = 0
    for line in text.splitlines():
        m = re.search(r"# Samples: ([0-9.]+)([KM]?)", line)
        if m:
            samples = int(float(m.group(1)) * {"": 1, "K": 1000, "M": 1000000}[m.group(2)])
        m = LINE.match(line)
        if not m:
            continue
        children, symbol = float(m.group(1)), m.group(3)
        for key, name in ENTRY_POINTS.items():
            # "allows(...)" but not "allows_subscribe(...)"; the overloads of one name add up.
            if symbol.startswith(name) and not symbol[len(name):].startswith("_"):
                shares[key] += children
    return shares, samples


def table(path, limit):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| scenario | proto | QoS | samples | topic rules % | decisions % | quotas % |"
          " access control % | target |")
    print("|---|---|---|---|---|---|---|---|---|")
    misses = 0
    for r in rows:
        quotas = r.get("quotas", 0.0)
        total = r["rules"] + r["authz"] + quotas
        ok = total <= limit
        misses += not ok
        print("| %s | %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %s |"
              % (r["scenario"], r["protocol"], r["qos"], r["samples"], r["rules"], r["authz"],
                 quotas, total, "ok" if ok else "MISS"))
    print()
    print("Share of the \"on\" broker's CPU inside the topic-rule check, the authorization "
          "decisions and the quota counting (perf, call graphs, inclusive). Target: <= %g%% (the throughput loss a "
          "CPU-bound broker takes from them). %s"
          % (limit, "All rows meet it." if not misses else "%d row(s) miss it." % misses))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--row", nargs=3, metavar=("SCENARIO", "PROTOCOL", "QOS"))
    ap.add_argument("--table")
    ap.add_argument("--max", type=float, default=10.0)
    args = ap.parse_args()
    if args.table:
        return table(args.table, args.max)
    if not args.row:
        ap.error("--row or --table")
    shares, samples = parse(sys.stdin.read())
    if samples == 0:
        print("profile_share: no samples in the perf report", file=sys.stderr)
        return 1
    print(json.dumps({"scenario": args.row[0], "protocol": args.row[1], "qos": int(args.row[2]),
                      "samples": samples, "rules": round(shares["rules"], 2),
                      "authz": round(shares["authz"], 2),
                      "quotas": round(shares["quotas"], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
