// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <backbone/module_abi.h>

#include "kernel/authz/policy.hpp"

namespace backbone::kernel::auth {

// The copied outcome of an authentication, owned by the kernel.
struct Outcome {
  int32_t verdict = BB_AUTH_DENY;
  std::string principal;
  std::string log_reason;
  std::vector<authz::Statement> statements;
  int64_t expires_at_unix_s = 0;
  std::optional<bb_quotas> quotas;  // ABI 1.3
  // The authenticator did not answer within limits.auth_timeout_ms (verdict
  // BB_AUTH_UNAVAILABLE); it was told to cancel.
  bool timed_out = false;
};

// Copies what an authenticator returned (its struct may be older than ours).
Outcome copy_result(const bb_auth_result& r);
// One kernel statement per (effect, action, resource) triple of the ABI.
std::vector<authz::Statement> statements_from_abi(const bb_statement* statements, size_t count);

}  // namespace backbone::kernel::auth
