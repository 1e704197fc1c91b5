#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Turns bb_loadgen JSON lines into the scripts/bench comparison table (stdlib only).

usage: report.py RESULTS.jsonl [--a mosquitto] [--b backbone] [--b-title TITLE]
       report.py AUTHZ.jsonl --authz [--off bb-off] [--on bb-on] [--max-loss 10] [--max-p99 20]
       report.py X --cluster --session-file clean=CLEAN.jsonl [--session-file persistent=P.jsonl]
Each line is one bb_loadgen result; "broker" says which column it belongs to. --authz prints the
access-control table instead: backboned with access control off versus on, and whether each row
meets the targets (throughput loss <= --max-loss %, p99 increase <= --max-p99 %). --cluster
prints the cluster tables (scripts/bench --cluster): throughput and latency of bb-solo, bb-local,
bb-cross and mosq-cross per (session, scenario, protocol, QoS), then acknowledged versus received
and lost per row, and the cluster issue's targets.
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


def ms(v):
    if v < 1:
        return "%.3f" % v
    if v < 10:
        return "%.2f" % v
    if v < 100:
        return "%.1f" % v
    return "%.0f" % v


def read_results(path, raw=None):
    """Rows keyed by (scenario, protocol, QoS), each {broker: combined runs}; `raw`, when given,
    gets the same keys with every run in file order."""
    rows, order, errors = {}, [], []
    with open(path) as f:
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
            rows[key].setdefault(r["broker"], []).append(r)
            if "error" in r:
                errors.append("%s %s %s QoS %s: %s" % (r["broker"], r["scenario"], r["protocol"],
                                                       r["qos"], r["error"]))
    order.sort(key=lambda k: (SCENARIO_ORDER.index(k[0]) if k[0] in SCENARIO_ORDER else 99,
                              k[1], k[2]))
    for key in rows:
        if raw is not None:
            raw[key] = {broker: list(runs) for broker, runs in rows[key].items()}
        for broker, runs in rows[key].items():
            rows[key][broker] = combine(runs)
    return rows, order, errors


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def combine(runs):
    """Repeated runs of one row on one broker: the median of throughput, p99 and CPU (each on
    its own), the worst loss and duplicates; "repeats" says how many."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[-1]
    if len(good) == 1:
        return good[0]
    out = dict(sorted(good, key=lambda r: r.get("delivered_per_s", 0))[len(good) // 2])
    for field in ("delivered_per_s", "p50_ms", "p99_ms", "broker_cpu_pct", "rss_per_conn_bytes"):
        if all(field in r for r in good):
            out[field] = median([r[field] for r in good])
    for field in ("loss", "duplicates"):
        if all(field in r for r in good):
            out[field] = max(r[field] for r in good)
    out["repeats"] = len(good)
    return out


def print_table(table, right):
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for n, row in enumerate(table):
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        print("| " + " | ".join(cells) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def paired_changes(off_runs, on_runs, field):
    """The i-th "off" run and the i-th "on" run of a row ran back to back: the % change of
    `field` from off to on per pair. A pair shares the machine's state of the moment, so its
    ratio cancels the drift that moves both brokers alike (on this VM single runs swing 20-40%)."""
    good = lambda r: "error" not in r and r.get(field, -1) > 0
    return [100.0 * (b[field] / a[field] - 1)
            for a, b in zip(off_runs, on_runs) if good(a) and good(b)]


def fmt_change(changes):
    """Median with the range of the pairs: "+3.1 (-2.0..+8.4)"."""
    if len(changes) == 1:
        return "%+.1f" % changes[0]
    return "%+.1f (%+.0f..%+.0f)" % (median(changes), min(changes), max(changes))


def authz_report(args):
    """Access control off vs on, one row per (scenario, protocol, QoS)."""
    raw = {}
    rows, order, errors = read_results(args.results, raw)
    ok = lambda r: r is not None and "error" not in r and r.get("p99_ms", -1) >= 0
    header = ["scenario", "proto", "QoS", "off msgs/s", "on msgs/s", "throughput loss %",
              "off p99 ms", "on p99 ms", "p99 increase %", "loss/dups off", "loss/dups on",
              "CPU% off/on", "targets"]
    table = [header]
    misses = []
    repeats = 0
    for key in order:
        off, on = rows[key].get(args.off), rows[key].get(args.on)
        title = scenario_title(off or on)
        row = [title, key[1], str(key[2]), cell_rate(off), cell_rate(on)]
        off_runs = raw[key].get(args.off, [])
        on_runs = raw[key].get(args.on, [])
        thr = [-c for c in paired_changes(off_runs, on_runs, "delivered_per_s")]
        p99s = paired_changes(off_runs, on_runs, "p99_ms")
        if ok(off) and ok(on) and thr and p99s:
            repeats = max(repeats, len(thr))
            loss, p99 = median(thr), median(p99s)
            miss = []
            if loss > args.max_loss:
                miss.append("thr +%.1f pt" % (loss - args.max_loss))
            if p99 > args.max_p99:
                miss.append("p99 +%.1f pt" % (p99 - args.max_p99))
            if miss:
                misses.append("%s %s QoS %s: %s" % (title, key[1], key[2], ", ".join(miss)))
            row += [fmt_change(thr), ms(off["p99_ms"]), ms(on["p99_ms"]), fmt_change(p99s)]
            targets = "MISS " + ", ".join(miss) if miss else "ok"
        else:
            row += ["n/a", cell_latency(off).split("/")[-1], cell_latency(on).split("/")[-1], "n/a"]
            targets = "n/a"
        counts = lambda r: "%s / %s" % (cell_count(r, "loss"), cell_count(r, "duplicates"))
        row += [counts(off), counts(on), "%s / %s" % (cell_cpu(off), cell_cpu(on)), targets]
        table.append(row)
    print_table(table, {3, 4, 5, 6, 7, 8})
    print()
    print("off = %s (anonymous allow-all), on = %s (jwt login, 10 statements, 5 topic rules, one "
          "with a JSON Schema checked on every message); both get the same JSON payload. "
          "Targets: throughput loss <= %g%%, p99 increase <= %g%% (negative = on was better)."
          % (args.off, args.on, args.max_loss, args.max_p99))
    print("msgs/s and p99: medians of the runs on each broker. loss and p99 increase: the median "
          "over the %d back-to-back (off, on) pairs of the change within the pair, with its range "
          "in brackets; the targets are judged on that median. msgs/s: deliveries per second at "
          "the subscribers (fan-out counts every copy). loss/dups as in the main table. "
          "Closed-loop rows keep a window of messages in flight, so their p99 tracks "
          "1/throughput; latency rows are paced, so their p99 is the per-message cost."
          % repeats)
    if misses:
        print("targets missed in %d of %d rows:" % (len(misses), len(order)))
        for m in misses:
            print("  " + m)
    elif order:
        print("all %d rows meet the targets" % len(order))
    for e in errors:
        print("error: " + e)
    return 1 if errors else 0

CLUSTER_COLUMNS = (("bb-solo", "solo"), ("bb-local", "local"), ("bb-cross", "bb A->B"),
                   ("mosq-cross", "mosq A->B"))


def cell_ack_recv(r):
    """acknowledged (QoS 1) or sent (QoS 0) publications -> deliveries expected / received, lost:
    for QoS 1, deliveries of PUBACKed messages that never arrived (exact); for QoS 0, every
    delivery that never arrived."""
    if r is None:
        return "n/a"
    if "error" in r:
        return "ERROR"
    sent = r["acked"] if r["qos"] == 1 else r["published"]
    text = "{:,} -> {:,}/{:,}, lost {:,}, dups {:,}".format(
        sent, r["expected_deliveries"], r["received"], r["loss"], r["duplicates"])
    if r["qos"] == 1 and r.get("unacked"):
        text += " (+%d unacked)" % r["unacked"]
    return text


def cluster_report(args):
    sessions = []
    for spec in args.session_file:
        name, _, path = spec.partition("=")
        sessions.append((name, path))
    errors, misses, checked = [], [], 0
    perf = [["session", "scenario", "proto", "QoS"] + ["%s msgs/s" % t for _, t in CLUSTER_COLUMNS]
            + ["A->B/solo", "A->B/mosq"] + ["%s p50/p99 ms" % t for _, t in CLUSTER_COLUMNS]
            + ["CPU% A", "targets"]]
    loss = [["session", "scenario", "proto", "QoS"] + [t for _, t in CLUSTER_COLUMNS]]
    for session, path in sessions:
        rows, order, errs = read_results(path)
        errors += ["%s: %s" % (session, e) for e in errs]
        for key in order:
            cells = [rows[key].get(label) for label, _ in CLUSTER_COLUMNS]
            solo, cross, mosq = cells[0], cells[2], cells[3]
            title = scenario_title(next(c for c in cells if c is not None))
            ratio = lambda a, b: "%.2f" % (value(b) / value(a)) if value(a) and value(b) is not None \
                else "n/a"
            miss, judged = [], False
            name = "%s %s %s QoS %s" % (session, title, key[1], key[2])
            if cross is not None and "error" not in cross:
                judged = True
                if key[2] == 1 and key[0] != "latency" and value(solo):
                    if value(cross) < 0.5 * value(solo):
                        miss.append("A->B %.2f of solo" % (value(cross) / value(solo)))
                if key[0] == "latency" and cross["p99_ms"] > 5:
                    miss.append("p99 %s ms" % ms(cross["p99_ms"]))
            for label, c in zip((l for l, _ in CLUSTER_COLUMNS), cells):
                if label.startswith("bb") and c is not None and "error" not in c and c["loss"] \
                        and key[2] == 1:
                    miss.append("%s lost %d acked" % (label, c["loss"]))
            if judged:
                checked += 1
            if miss:
                misses.append("%s: %s" % (name, ", ".join(miss)))
            perf.append([session, title, key[1], str(key[2])] + [cell_rate(c) for c in cells]
                        + [ratio(solo, cross), ratio(mosq, cross)]
                        + [cell_latency(c) for c in cells]
                        + [cell_cpu(cross), ("MISS " + ", ".join(miss)) if miss else
                           "ok" if judged else "n/a"])
            loss.append([session, title, key[1], str(key[2])] + [cell_ack_recv(c) for c in cells])
    print_table(perf, {4, 5, 6, 7, 8, 9, 14})
    print()
    print("solo = bb-solo (one backboned, no module), local = bb-local (the redis module, alone in "
          "its cluster, every client on it), bb A->B = publishers on bb-a, subscribers on bb-b "
          "(3 brokers in the cluster: bb-c reads every entry too), mosq A->B = publishers on one "
          "mosquitto, subscribers on a second joined by a bridge (bench/# out, QoS 1). clean = "
          "clean sessions; persistent = MQTT 5, Session Expiry 60 s (backboned: through its "
          "store, durability sync; mosquitto: in memory, persistence false). msgs/s: deliveries "
          "per second at the subscribers; p50/p99: publish to delivery; CPU% A: the publishing "
          "broker's CPU in the A->B column.")
    print("Targets (the cluster issue): A->B QoS 1 msgs/s >= 0.50 x solo (closed-loop rows), "
          "A->B p99 <= 5 ms in the latency rows (paced at 10k msgs/s), and no acknowledged "
          "message lost in any backboned column (QoS 1).")
    print()
    print_table(loss, set())
    print()
    print("Each cell: publications acknowledged (QoS 1: PUBACKed; QoS 0: sent) -> deliveries "
          "expected (sent x matching subscribers) / deliveries received, and lost: QoS 1 = "
          "deliveries of PUBACKed messages that never arrived after the drain (exact, per "
          "(subscriber, publisher, seq)); QoS 0 = deliveries that never arrived (QoS 0 may drop). "
          "dups: deliveries of an already-seen (publisher, seq); \"+n unacked\": still awaiting PUBACK "
          "when the run ended (not counted as lost).")
    if misses:
        print("targets missed in %d of %d rows:" % (len(misses), checked))
        for m in misses:
            print("  " + m)
    elif checked:
        print("all %d rows meet the targets" % checked)
    for e in errors:
        print("error: " + e)
    return 1 if errors else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--a", default="mosquitto")
    ap.add_argument("--b", default="backbone")
    ap.add_argument("--b-title", default=None, help="column title for broker --b")
    ap.add_argument("--b-desc", default=None, help="what broker --b is, for the legend")
    ap.add_argument("--authz", action="store_true", help="access control off vs on table")
    ap.add_argument("--off", default="bb-off")
    ap.add_argument("--on", default="bb-on")
    ap.add_argument("--max-loss", type=float, default=10.0, help="target: throughput loss %%")
    ap.add_argument("--max-p99", type=float, default=20.0, help="target: p99 increase %%")
    ap.add_argument("--cluster", action="store_true", help="the cluster tables")
    ap.add_argument("--session-file", action="append", default=[],
                    help="--cluster: SESSION=RESULTS.jsonl, in order")
    args = ap.parse_args()
    if args.cluster:
        return cluster_report(args)
    if args.authz:
        return authz_report(args)

    rows, order, errors = read_results(args.results)
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
