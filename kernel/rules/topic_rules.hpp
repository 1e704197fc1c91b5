// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace backbone::kernel::rules {

// Why a publish breaks a topic rule (SPEC §7). `reason_code` is the MQTT v5
// reason code to answer with; `reason` names the rule and pattern, e.g.
// "topic rule 'sensor-topics' pattern 'sensors/**/data': payload exceeds 1024 bytes".
struct Violation {
  static constexpr uint8_t kPacketTooLarge = 0x95;
  static constexpr uint8_t kPayloadFormatInvalid = 0x99;
  static constexpr uint8_t kRetainNotSupported = 0x9A;
  static constexpr uint8_t kQosNotSupported = 0x9B;

  std::string rule;  // the name of the rule that refused
  uint8_t reason_code;
  std::string reason;
};

// Which rules match a publisher's last topic, kept by the caller (one
// connection; not thread-safe) so that a publisher repeating its topic skips
// even the per-thread lookup. Tied to one RuleSet generation.
struct RuleMemo {
  uint64_t generation = 0;
  std::string topic;
  std::shared_ptr<const void> matches;
};

// The compiled topic rules of every source, keyed by rule name. Immutable and
// shared as std::shared_ptr<const RuleSet>; the owner swaps in a new one
// atomically when a rule changes. check() is thread-safe and does not throw.
class RuleSet {
 public:
  // `topics` maps a rule name to its spec:
  //   {"patterns": [{"pattern": "x" | "matches": ["x", ...],
  //                  "maxMessageSize"?: int >= 0, "allowedQoS"? | "qos"?: [0..2],
  //                  "retain"?: bool, "schema"?: object}, ...]}
  // Strict: unknown keys, wrong types, invalid patterns and invalid JSON
  // Schemas give nullptr and an error naming the rule and field. Schemas are
  // compiled here, once. Called on configuration changes, any thread.
  static std::shared_ptr<const RuleSet> compile(const std::map<std::string, nlohmann::json>& topics,
                                                std::string* error);

  // Validates one Topic spec alone (e.g. an HTTP PUT body); the error names
  // the field, e.g. "patterns[0].qos: expected non-empty array of integers 0..2".
  static bool validate_spec(const nlohmann::json& spec, std::string* error);

  // Every rule pattern matching `topic` must hold; topics matching none and
  // topics under "$SYS/" are unrestricted. Per rule the checks run in the order
  // size, QoS, retain, schema, and every cheap check of every matching rule runs
  // before any payload is parsed. Called per published message, any thread.
  std::optional<Violation> check(std::string_view topic, std::string_view payload, uint8_t qos,
                                 bool retain, RuleMemo* memo = nullptr) const;

  bool empty() const;

  ~RuleSet();
  RuleSet(const RuleSet&) = delete;
  RuleSet& operator=(const RuleSet&) = delete;

 private:
  struct Impl;
  RuleSet();

  std::unique_ptr<Impl> impl_;
};

}  // namespace backbone::kernel::rules
