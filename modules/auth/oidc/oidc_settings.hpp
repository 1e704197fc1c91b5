// SPDX-License-Identifier: GPL-3.0-or-later
// The oidc module's settings and their strict reader.
#pragma once

#include <backbone/module_abi.h>
#include <backbone/sdk.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/jose/jwks.hpp"
#include "http_get.hpp"

namespace backbone::modules::oidc {

using jose::ClaimRules;

struct Settings {
  std::string discovery_url;
  ClaimRules rules;
  // "role_quotas": {"admin"|"writer"|"reader": quotas} (SPEC §6); a user
  // in several groups gets those of its highest role.
  std::optional<bb_quotas> admin_quotas, writer_quotas, reader_quotas;
  int64_t jwks_min_refresh_s = 30;
  HttpOptions http;
};

// Validates the settings (errors are logged through `host`); leaves `out`
// null when the provider is off (no discovery_url).
bb_status read_settings(const sdk::Host& host, std::shared_ptr<const Settings>& out);

}  // namespace backbone::modules::oidc
