#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of tests/bench/bench.py: option parsing as the bash bench did it, and the rows
each option set runs (so that a refactoring cannot drop or reorder a row unnoticed)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def parse(*argv, **env):
    return bench.parse_args(list(argv), env)


class ParseTest(unittest.TestCase):
    def test_defaults_and_environment(self):
        o = parse()
        self.assertEqual((o.duration, o.warmup, o.idle_connections, o.authz_repeat),
                         ("5", "1", 10000, 5))
        self.assertTrue(o.build and o.main_table())
        o = parse(BENCH_DURATION="7", BENCH_AUTHZ_REPEAT="1", BENCH_BUILD_DIR="/b")
        self.assertEqual((o.duration, o.authz_repeat, o.build_dir), ("7", 1, "/b"))

    def test_quick_overrides_the_environment(self):
        o = parse("--quick", BENCH_DURATION="9")
        self.assertEqual((o.duration, o.warmup, o.idle_connections, o.authz_duration,
                          o.authz_warmup), ("2", "0.5", 2000, "2", "0.5"))

    def test_flags_apply_in_order(self):
        o = parse("--authz")
        self.assertEqual((o.authz, o.ws, o.store, o.cluster), ("only", "off", "off", "off"))
        self.assertFalse(o.main_table())
        o = parse("--authz", "--no-authz")  # the bash bench: main table alone
        self.assertTrue(o.main_table())
        self.assertEqual(list(bench.plan(o)), ["main"])
        o = parse("--quotas", "--only", "pairs", "--username", "u", "--no-build",
                  "--build-dir", "x")
        self.assertTrue(o.quotas)
        self.assertEqual((o.only, o.auth, o.build, o.build_dir),
                         ("pairs", ["--username", "u"], False, "x"))

    def test_bad_arguments(self):
        with self.assertRaises(bench.UsageError) as e:
            parse("--bogus")
        self.assertEqual(e.exception.code, 64)
        with self.assertRaises(bench.UsageError):
            parse("--only")
        self.assertTrue(parse("--quick", "--help", "--bogus").help)


class PlanTest(unittest.TestCase):
    def test_every_table(self):
        p = bench.plan(parse())
        self.assertEqual(list(p), ["main", "authz", "ws", "store", "cluster"])
        self.assertEqual(p["main"][:3], [("idle", "3.1.1", 0), ("idle", "5.0", 0),
                                         ("fan-in", "3.1.1", 0)])
        self.assertEqual(len(p["main"]), 2 + 5 * 2 * 2)
        self.assertEqual(p["main"][-1], ("overload", "5.0", 1))
        self.assertEqual(len(p["authz"]), 160)  # as the usage says
        self.assertEqual(len(p["ws"]), 16 * 3 + 1)
        self.assertEqual(p["store"], [(s, "5.0", 1) for s in bench.SCENARIOS])
        # Clean sessions: every scenario, protocol and QoS; then MQTT 5 persistent sessions.
        self.assertEqual(len(p["cluster"]), 16 + 8)
        self.assertEqual(p["cluster"][0], ("clean", "fan-in", "3.1.1", 0))
        self.assertEqual(p["cluster"][16:], [("persistent", s, "5.0", q)
                                             for s in bench.SCENARIOS for q in (0, 1)])

    def test_cluster_rows(self):
        self.assertEqual(list(bench.plan(parse("--cluster"))), ["cluster"])
        p = bench.plan(parse("--cluster", "--only", "^latency 5.0 1"))
        self.assertEqual(p["cluster"], [("clean", "latency", "5.0", 1),
                                        ("persistent", "latency", "5.0", 1)])
        self.assertEqual(bench.plan(parse("--cluster", "--only", "3.1.1"))["cluster"],
                         [("clean", s, "3.1.1", q) for s in bench.SCENARIOS for q in (0, 1)])

    def test_pairs_alternate_over_the_table(self):
        runs = bench.authz_runs(parse("--authz", "--only", "^pairs 5.0", BENCH_AUTHZ_REPEAT="2"))
        self.assertEqual(runs, [("off", "pairs", "5.0", 0), ("on", "pairs", "5.0", 0),
                                ("on", "pairs", "5.0", 0), ("off", "pairs", "5.0", 0),
                                ("off", "pairs", "5.0", 1), ("on", "pairs", "5.0", 1),
                                ("on", "pairs", "5.0", 1), ("off", "pairs", "5.0", 1)])
        ws = bench.ws_runs(parse("--ws", "--only", "^latency 3.1.1"), False)
        self.assertEqual([r[0] for r in ws], ["bb-tcp", "bb-ws", "bb-ws", "bb-tcp"])

    def test_only_is_an_unanchored_regex(self):
        p = bench.plan(parse("--only", "idle|fan-in 5.0 1"))
        self.assertEqual(p["main"], [("idle", "3.1.1", 0), ("idle", "5.0", 0),
                                     ("fan-in", "5.0", 1)])
        self.assertEqual(p["ws"][-1], ("bb-ws", "idle", "3.1.1", 0))
        self.assertEqual(bench.plan(parse("--store", "--only", "3.1.1")), {"store": []})


if __name__ == "__main__":
    unittest.main(verbosity=2)
