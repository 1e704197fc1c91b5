// SPDX-License-Identifier: GPL-3.0-or-later
// The names the controller's two halves share: the work queue's keys
// ("clients/<ns>/<name>", "topics/<ns>/<name>") and the Secret that holds a
// Client's token ("<client>-secret").
#pragma once

#include <string>
#include <string_view>

#include "common/kube/watch_event.hpp"

namespace backbone::modules::k8s {

inline constexpr std::string_view kSecretSuffix = "-secret";
inline constexpr std::string_view kClientsPrefix = "clients/";
inline constexpr std::string_view kTopicsPrefix = "topics/";

inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// "<namespace>/<name>"
inline std::string key_of(const ObjectMeta& m) {
  return m.ns + "/" + m.name;
}

}  // namespace backbone::modules::k8s
