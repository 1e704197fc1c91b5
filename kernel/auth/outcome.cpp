// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/auth/outcome.hpp"

#include <algorithm>
#include <cstring>

namespace backbone::kernel::auth {

Outcome copy_result(const bb_auth_result& r) {
  Outcome out;
  out.verdict = r.verdict;
  auto text = [](bb_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); };
  out.principal = text(r.principal);
  out.log_reason = text(r.log_reason);
  if (BB_HAS(&r, bb_auth_result, expires_at_unix_s)) out.expires_at_unix_s = r.expires_at_unix_s;
  if (BB_HAS(&r, bb_auth_result, quotas) && r.quotas) {
    // The module's struct may be older (shorter) than ours: copy what it has.
    bb_quotas q{};
    std::memcpy(&q, r.quotas, std::min<size_t>(r.quotas->struct_size, sizeof q));
    q.struct_size = static_cast<uint32_t>(std::min<size_t>(r.quotas->struct_size, sizeof q));
    out.quotas = q;
  }
  out.statements = statements_from_abi(r.statements, r.statement_count);
  return out;
}

std::vector<authz::Statement> statements_from_abi(const bb_statement* statements, size_t count) {
  auto text = [](bb_str s) { return s.ptr ? std::string(s.ptr, s.len) : std::string(); };
  std::vector<authz::Statement> out;
  for (size_t i = 0; statements && i < count; ++i) {
    const bb_statement& s = statements[i];
    out.push_back(
        authz::Statement{s.effect == BB_EFFECT_ALLOW, {text(s.action)}, {text(s.resource)}});
  }
  return out;
}

}  // namespace backbone::kernel::auth
