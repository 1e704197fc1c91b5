// SPDX-License-Identifier: GPL-3.0-or-later
// ns per message of RuleSet::check with the topic rules of `scripts/bench --authz`
// (tests/bench/authz_config.py TOPICS) and bb_loadgen's --json-payload payloads.
// Target bb_rules_microbench (tests/bench/CMakeLists.txt); meaningful on a Release build:
//   cmake --build build-release --target bb_rules_microbench &&
//   build-release/bin/bb_rules_microbench
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "kernel/rules/topic_rules.hpp"
#include "tests/bench/bench_topic_rules.hpp"

using backbone::kernel::rules::RuleSet;

// The thread's CPU time: the machine is shared, wall time would count other processes.
double cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char** argv) {
  // usage: rules_microbench [payload size >= 72] [nested]
  const size_t size = argc > 1 ? std::stoul(argv[1]) : 64;
  const bool nested = argc > 2 && std::string(argv[2]) == "nested";
  const auto topics = backbone::bench::bench_topic_rules();
  std::string error;
  auto set = RuleSet::compile(topics, &error);
  if (!set) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  // 256 distinct payloads of `size` bytes: {"v":"<48 hex>"<spaces>}
  std::vector<std::string> payloads;
  for (int i = 0; i < 256; ++i) {
    std::string p = "{\"v\":\"";
    for (int j = 0; j < 48; ++j) p += "0123456789abcdef"[(i * 7 + j * 13) & 15];
    p += '"';
    // "nested": a payload the flat-object reader leaves to RapidJSON.
    if (nested) p += R"(,"m":{"a":[1]})";
    p.append(size - p.size() - 1, ' ');
    p += '}';
    payloads.push_back(std::move(p));
  }
  const std::string topics_used[] = {"bench/in/1", "bench/out", "bench/pair/3", "bench/in/1"};
  size_t bad = 0;
  for (int round = 0; round < 5; ++round) {
    constexpr size_t kN = 4'000'000;
    const double t0 = cpu_ns();
    for (size_t i = 0; i < kN; ++i) {
      // One publisher's topic stays the same for a while, as on a connection.
      if (set->check(topics_used[(i >> 10) & 3], payloads[i & 255], 0, false)) ++bad;
    }
    std::printf("%.1f ns/message\n", (cpu_ns() - t0) / kN);
  }
  return bad ? 1 : 0;
}
