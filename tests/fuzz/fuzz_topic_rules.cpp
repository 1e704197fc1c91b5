// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: a topic rule compiled and a PUBLISH checked against it.
// Input: the rule's spec (JSON), NUL, the topic, NUL, the payload.
#include <backbone/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernel/rules/topic_rules.hpp"

using backbone::kernel::rules::RuleSet;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto next = [&in]() {
    const size_t end = in.find('\0');
    const std::string_view part = in.substr(0, end);
    in.remove_prefix(end == std::string_view::npos ? in.size() : end + 1);
    return part;
  };
  const nlohmann::json spec = backbone::sdk::parse_json(next());
  if (spec.is_discarded()) return 0;
  std::string error;
  auto set = RuleSet::compile({{"fuzz", spec}}, &error);
  if (!set) return 0;
  const std::string_view topic = next();
  const std::string_view payload = in;
  for (uint8_t qos = 0; qos < 3; ++qos) set->check(topic, payload, qos, qos == 1);
  return 0;
}
