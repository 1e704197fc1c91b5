#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Turns bb_loadgen JSON lines into the scripts/bench comparison table (stdlib only).

usage: report.py RESULTS.jsonl [--a mosquitto] [--b backbone] [--b-title TITLE]
Each line is one bb_loadgen result; "broker" says which column it belongs to.
"""

import argparse
import json
import sys

SCENARIO_ORDER = ["fan-in", "fan-out", "pairs", "latency", "overload", "idle"]


def scenario_title(r):
    sc = r["scenario"]
    if sc == "idle":
        return "idle %d conns (RSS B/conn)" % r.get("connections", 0)
    pubs, subs = r.get("publishers"), r.get("subscribers")
    if pubs is None:
        return sc
    if sc == "latency":
        return "latency @%.0f/s, %d pairs" % (r.get("rate") or r.get("published_per_s", 0), pubs)
    if sc == "pairs":
        return "pairs %d" % pubs
    shape = "%d->%d" % (pubs, subs)
    if sc == "overload":
        return "overload %s (open loop)" % shape
    return "%s %s" % (sc, shape)


def fmt_rate(v):
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.1f" % v


def cell_rate(r):
    if r is None:
        return "n/a"
    if "error" in r:
        return "ERROR"
    if r["scenario"] == "idle":
        return "{:,.0f}".format(r["rss_per_conn_bytes"])
    mark = " (stalled)" if r.get("stalled") else ""
    return fmt_rate(r["delivered_per_s"]) + mark


def value(r):
    if r is None or "error" in r:
        return None
    if r["scenario"] == "idle":
        return r["rss_per_conn_bytes"]
    return r["delivered_per_s"]


def cell_latency(r):
    if r is None:
        return "n/a"
    if "error" in r or r["scenario"] == "idle":
        return "-" if "error" not in r else "ERROR"
    if r["p50_ms"] < 0:
        return "-"

    def ms(v):
        if v < 1:
            return "%.3f" % v
        if v < 10:
            return "%.2f" % v
        if v < 100:
            return "%.1f" % v
        return "%.0f" % v

    return "%s/%s" % (ms(r["p50_ms"]), ms(r["p99_ms"]))


def cell_count(r, key):
    if r is None:
        return "n/a"
    if "error" in r:
        return "ERROR"
    if r["scenario"] == "idle":
        return "-"
    text = "{:,}".format(r[key])
    if key == "loss" and r["qos"] == 1 and r.get("unacked"):
        text += " (+%d unacked)" % r["unacked"]
    return text


def cell_cpu(r):
    if r is None:
        return "n/a"
    if "error" in r or r.get("broker_cpu_pct", -1) < 0:
        return "-"
    return "%.0f" % r["broker_cpu_pct"]


def cell_efficiency(r):
    if r is None:
        return "n/a"
    if "error" in r or r.get("broker_cpu_pct", -1) <= 0:
        return "-"
    return "{:,.0f}".format(r["delivered_per_s"] * 100.0 / r["broker_cpu_pct"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--a", default="mosquitto")
    ap.add_argument("--b", default="backbone")
    ap.add_argument("--b-title", default=None, help="column title for broker --b")
    ap.add_argument("--b-desc", default=None, help="what broker --b is, for the legend")
    args = ap.parse_args()

    rows = {}
    order = []
    errors = []
    with open(args.results) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                errors.append("unparsable result line: " + line[:200])
                continue
            key = (r["scenario"], r["protocol"], r["qos"])
            if key not in rows:
                rows[key] = {}
                order.append(key)
            rows[key][r["broker"]] = r
            if "error" in r:
                errors.append("%s %s %s QoS %s: %s" % (r["broker"], r["scenario"], r["protocol"],
                                                       r["qos"], r["error"]))

    order.sort(key=lambda k: (SCENARIO_ORDER.index(k[0]) if k[0] in SCENARIO_ORDER else 99,
                              k[1], k[2]))
    short = {"mosquitto": "mosq", "backbone": "bb"}
    sa = short.get(args.a, args.a)
    sb = args.b_title or short.get(args.b, args.b)
    header = ["scenario", "protocol", "QoS", "%s msgs/s" % sa, "%s msgs/s" % sb,
              "%s/%s" % (sb, sa), "%s p50/p99 ms" % sa, "%s p50/p99 ms" % sb,
              "loss %s/%s" % (sa, sb), "dups %s/%s" % (sa, sb), "CPU%% %s/%s" % (sa, sb),
              "msgs/CPU-s %s/%s" % (sa, sb)]
    table = [header]
    for key in order:
        a = rows[key].get(args.a)
        b = rows[key].get(args.b)
        any_r = a or b
        va, vb = value(a), value(b)
        ratio = "%.2f" % (vb / va) if va and vb is not None else "n/a"
        qos = "-" if key[0] == "idle" else str(key[2])
        table.append([scenario_title(any_r), key[1], qos, cell_rate(a), cell_rate(b), ratio,
                      cell_latency(a), cell_latency(b),
                      "%s / %s" % (cell_count(a, "loss"), cell_count(b, "loss")),
                      "%s / %s" % (cell_count(a, "duplicates"), cell_count(b, "duplicates")),
                      "%s / %s" % (cell_cpu(a), cell_cpu(b)),
                      "%s / %s" % (cell_efficiency(a), cell_efficiency(b))])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = {3, 4, 5, 10, 11}
    for n, row in enumerate(table):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        print("| " + " | ".join(cells) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()
    print("%s = %s, %s = %s. msgs/s: deliveries per second counted at the subscribers (fan-out "
          "counts every copy); idle rows: broker RSS growth per connection in bytes (ratio < 1: "
          "%s leaner)." % (sa, args.a, sb, args.b_desc or args.b, sb))
    print("loss: QoS 1 = PUBACKed but never delivered after the drain (exact); "
          "QoS 0 = sent but never delivered. dups: deliveries of an already-seen (publisher, seq).")
    gen = [x.get("loadgen_cpu_pct", -1) for k in order for x in rows[k].values()]
    gen = [g for g in gen if g >= 0]
    if gen:
        print("CPU%%: broker CPU time over the measured window (100 = its core fully busy; less "
              "means it waited for clients or lost its core to other processes). msgs/CPU-s = "
              "msgs/s / CPU share: efficiency, robust to a busy machine. The generator used at "
              "most %.0f%% of its core." % max(gen))
    for e in errors:
        print("error: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
