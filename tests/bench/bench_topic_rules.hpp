// SPDX-License-Identifier: GPL-3.0-or-later
// The topic rules of `scripts/bench --authz` (tests/bench/authz_config.py TOPICS), for the rules
// microbenchmark and the allocation test: 5 rules matching every bench topic, one with a JSON
// Schema.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace backbone::bench {

inline std::map<std::string, nlohmann::json> bench_topic_rules() {
  using nlohmann::json;
  const json schema =
      json::parse(R"({"type":"object","required":["v"],"properties":{"v":{"type":"string"}}})");
  return {
      {"bench-size",
       json::parse(R"({"patterns": [{"pattern": "bench/**", "maxMessageSize": 4096}]})")},
      {"bench-qos",
       json::parse(
           R"({"patterns": [{"matches": ["bench/+/+", "bench/out"], "allowedQoS": [0, 1]}]})")},
      {"bench-retain", json::parse(R"({"patterns": [{"pattern": "bench/#", "retain": false}]})")},
      {"bench-levels", json::parse(R"({"patterns": [{"matches": ["bench/*", "bench/*/*"],
          "maxMessageSize": 65536, "allowedQoS": [0, 1, 2]}]})")},
      {"bench-schema", json{{"patterns", json::array({json{{"pattern", "bench/**"},
                                                           {"maxMessageSize", 4096},
                                                           {"allowedQoS", {0, 1}},
                                                           {"retain", false},
                                                           {"schema", schema}}})}}}};
}

}  // namespace backbone::bench
