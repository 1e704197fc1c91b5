// SPDX-License-Identifier: GPL-3.0-or-later
// The "quotas" object of SPEC §6 (config-file and API clients, Client
// resources, JWT claims, OIDC roles, the broker's "limits.principal"), read
// into the ABI's bb_quotas. Header-only; works with any JSON type shaped like
// nlohmann::json (is_object, items, is_number_unsigned, get<uint64_t>).
#pragma once

#include <backbone/module_abi.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace backbone::sdk {

// One quota: its name in the JSON object and its field in bb_quotas.
struct QuotaField {
  std::string_view name;
  uint64_t bb_quotas::*field;
};

inline constexpr QuotaField kQuotaFields[] = {
    {"maxConnections", &bb_quotas::max_connections},
    {"maxSubscriptions", &bb_quotas::max_subscriptions},
    {"maxQueuedMessages", &bb_quotas::max_queued_messages},
    {"maxSessionExpiry", &bb_quotas::max_session_expiry_s},
    {"maxRetained", &bb_quotas::max_retained},
    {"maxRetainedBytes", &bb_quotas::max_retained_bytes},
    {"publishRate", &bb_quotas::publish_rate},
    {"publishBurst", &bb_quotas::publish_burst},
    {"publishBytesRate", &bb_quotas::publish_bytes_rate},
    {"publishBytesBurst", &bb_quotas::publish_bytes_burst},
};

// Strict: an object of the names above with unsigned integers (0 = the
// broker's default); anything else fails with `error` naming the field under
// `where` ("clients.dev.quotas.publishRate: expected an unsigned integer").
template <class Json>
bool parse_quotas(const Json& j, std::string_view where, bb_quotas& out, std::string& error) {
  bb_quotas q{};
  q.struct_size = sizeof(q);
  if (!j.is_object()) {
    error = std::string(where) + ": expected an object";
    return false;
  }
  for (const auto& [key, value] : j.items()) {
    const QuotaField* known = nullptr;
    for (const QuotaField& f : kQuotaFields) {
      if (f.name == key) known = &f;
    }
    if (!known) {
      error = std::string(where) + "." + std::string(key) + ": unknown quota";
      return false;
    }
    // Whole numbers from 0 (a JSON text's non-negative integers read as unsigned).
    if (!value.is_number_integer() ||
        (!value.is_number_unsigned() && value.template get<int64_t>() < 0)) {
      error = std::string(where) + "." + std::string(key) + ": expected an unsigned integer";
      return false;
    }
    q.*(known->field) = value.template get<uint64_t>();
  }
  out = q;
  return true;
}

}  // namespace backbone::sdk
