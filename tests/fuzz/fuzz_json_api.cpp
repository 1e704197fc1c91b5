// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: a management API body (PUT /api/clients/NAME,
// PUT /api/topics/NAME) through parse_json and what the kernel then does with
// it: the statement parser and compiler, the topic-rule validator and
// compiler, and the recursive walks (copy, dump) every parsed value may meet.
#include <backbone/json.hpp>
#include <backbone/statements.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "kernel/authz/policy.hpp"
#include "kernel/rules/topic_rules.hpp"

using namespace backbone::kernel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const nlohmann::json body = backbone::sdk::parse_json(text);
  if (body.is_discarded()) return 0;
  const nlohmann::json copy = body;
  if (nlohmann::json::parse(copy.dump()) != body) std::abort();
  if (!body.is_object()) return 0;

  if (auto s = body.find("statements"); s != body.end()) {
    std::vector<backbone::sdk::StatementGroup> groups;
    std::string error;
    if (backbone::sdk::parse_statement_groups(*s, "statements", groups, error)) {
      // What was accepted reads back as itself.
      std::vector<backbone::sdk::StatementGroup> again;
      if (!backbone::sdk::parse_statement_groups(backbone::sdk::to_json(groups), "statements",
                                                 again, error) ||
          again != groups)
        std::abort();
      std::vector<authz::Statement> statements;
      for (const auto& g : groups)
        statements.push_back({g.effect == BB_EFFECT_ALLOW, g.actions, g.resources});
      if (auto policy = authz::Policy::compile(statements, &error)) {
        policy->allows("mqtt:publish", "a/b");
        policy->allows_subscribe("a/#");
        policy->allows_read_all("+/b");
      }
    }
  }
  if (body.contains("patterns")) {
    std::string error;
    rules::RuleSet::validate_spec(body, &error);
    if (auto set = rules::RuleSet::compile({{"fuzz", body}}, &error)) {
      for (const char* topic : {"a", "a/b", "sensors/x/data"}) {
        set->check(topic, R"({"value": 1})", 1, false);
        set->check(topic, "[[[[1]]]]", 0, true);
      }
    }
  }
  return 0;
}
