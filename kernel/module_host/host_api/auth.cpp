// SPDX-License-Identifier: GPL-3.0-or-later
// Host functions of authenticator modules: registration, answers to
// pending logins, and changes to a principal's statements and quotas.
#include <spdlog/spdlog.h>

#include <memory>

#include "kernel/authz/policy.hpp"
#include "kernel/broker/broker.hpp"
#include "kernel/module_host/host_api/host_api.hpp"

namespace backbone::kernel::module_host::host_api {

bb_status register_authenticator(bb_host_ctx* h, const bb_authenticator* a, void* user) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i || !a || !a->authenticate || a->name.len == 0) return BB_E_INVALID;
    if (i->configured) return BB_E_STATE;
    const std::string name = text(a->name);
    auth::Authenticator entry;
    entry.table = a;
    entry.user = user;
    entry.serialize = (i->descriptor->flags & BB_MODULE_SERIALIZE) != 0;
    if (!h->host->broker().logins().add(name, entry)) {
      spdlog::error("[{}] authenticator '{}' is already registered", i->name(), name);
      return BB_E_INVALID;
    }
    spdlog::info("[{}] authentication provider '{}' registered", i->name(), name);
    return BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status auth_complete(bb_host_ctx* h, bb_auth_ticket t, const bb_auth_result* r) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host || !r) return BB_E_INVALID;
    return host->broker().logins().complete(t, *r);
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status principal_update(bb_host_ctx* h, bb_str provider, bb_str principal,
                           const bb_statement* statements, size_t count, int32_t revoked) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i || (count > 0 && !statements)) return BB_E_INVALID;
    std::shared_ptr<const authz::Policy> policy;
    if (!revoked) {
      std::string error;
      policy = authz::Policy::compile(auth::statements_from_abi(statements, count), &error);
      if (!policy) {
        spdlog::error("[{}] statements for '{}' refused, previous ones stay: {}", i->name(),
                      text(principal), error);
        return failed(BB_E_INVALID, error);
      }
    }
    h->host->broker().update_principal(text(provider), text(principal), std::move(policy));
    return BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status principal_quotas(bb_host_ctx* h, bb_str provider, bb_str principal,
                           const bb_quotas* quotas) noexcept {
  try {
    if (!instance_of(h) || (quotas && quotas->struct_size < sizeof(uint32_t) * 2))
      return failed(BB_E_INVALID, "bad bb_quotas");
    h->host->broker().update_quotas(text(provider), text(principal), quotas);
    return BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

}  // namespace backbone::kernel::module_host::host_api
