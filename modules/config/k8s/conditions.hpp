// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The Ready condition of Client and Topic resources and the status patch
// that sets it. A patch is computed only when the resource's status does not
// already say the same thing, so the MODIFIED events our own status writes
// cause do not trigger further writes.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace backbone::modules::k8s {

struct ReadyCondition {
  bool ready = false;
  std::string reason;   // CamelCase: "Ready", "Applied", "InvalidSpec", ...
  std::string message;  // for humans; never a secret
  int64_t generation = 0;
  // Further .status fields the object should carry ({"secretName": ...}).
  nlohmann::json extra = nlohmann::json::object();

  // Equal fingerprints mean equal status writes.
  std::string fingerprint() const;
};

// Longer messages are cut (Kubernetes allows 32 KiB; a status is no log).
inline constexpr size_t kMaxConditionMessage = 1024;

// "2024-05-01T12:00:00Z"
std::string rfc3339(std::chrono::system_clock::time_point t);

// The JSON merge patch for the status subresource that makes `current_status`
// (the resource's .status, any JSON) say `want`, or nullopt when it already
// does (`want.extra` included). Conditions of other types are kept; the Ready
// condition keeps its lastTransitionTime unless its status flips (then `now`).
std::optional<nlohmann::json> status_patch(const nlohmann::json& current_status,
                                           const ReadyCondition& want, std::string_view now);

}  // namespace backbone::modules::k8s
