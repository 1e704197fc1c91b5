// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/request_login.hpp"

#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>

#include "kernel/broker/broker.hpp"
#include "kernel/http/exchange_table.hpp"
#include "kernel/http/route_table.hpp"

namespace backbone::kernel::http {

namespace {

bool expired(const auth::Outcome& outcome) {
  return outcome.expires_at_unix_s > 0 &&
         outcome.expires_at_unix_s <= std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count();
}

}  // namespace

std::string_view bearer_token(std::string_view authorization) {
  static constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  return token;
}

auth::Logins::Started start_login(auth::Logins& logins, const auth::Authenticator& auth,
                                  const std::string& provider, const std::string& peer,
                                  std::string_view token, net::Worker& worker,
                                  auth::Logins::Answer answer) {
  static constexpr std::string_view kTransport = "http";
  bb_auth_request req{};
  req.struct_size = sizeof(req);
  req.username = bb_str{provider.data(), provider.size()};
  req.transport = bb_str{kTransport.data(), kTransport.size()};
  req.peer_address = bb_str{peer.data(), peer.size()};
  req.password = bb_bytes{reinterpret_cast<const uint8_t*>(token.data()), token.size()};
  return logins.start(auth, req, worker, std::move(answer));
}

std::optional<Response> admit(broker::Broker& broker, Exchange& ex, auth::Outcome&& outcome,
                              const std::string& provider, const std::string& peer,
                              const std::string& what) {
  if (outcome.verdict == BB_AUTH_ALLOW && expired(outcome)) {
    outcome.verdict = BB_AUTH_DENY;
    outcome.log_reason = "credentials expired";
  }
  switch (outcome.verdict) {
    case BB_AUTH_ALLOW: {
      std::string error;
      auto policy = authz::Policy::compile(outcome.statements, &error);
      if (!policy) {
        spdlog::warn("http {}: {}: statements of '{}' from '{}' are invalid: {}", peer, what,
                     outcome.principal, provider, error);
        return error_response(403, "forbidden", "the credentials carry invalid statements");
      }
      ex.policy = std::move(policy);
      ex.provider = provider;
      ex.principal = outcome.principal;
      // The same quotas as the principal's MQTT sessions, from this login.
      ex.usage = broker.principals().get(provider, outcome.principal);
      const bb_quotas* quotas = outcome.quotas ? &*outcome.quotas : nullptr;
      if (ex.usage->replace_quotas(quota::Quotas::resolve(quotas, broker.limits().principal)))
        broker.update_quotas(provider, outcome.principal, quotas);
      return std::nullopt;
    }
    case BB_AUTH_FORBIDDEN:
      spdlog::info("http {}: {}: '{}' ({}) not authorized: {}", peer, what, outcome.principal,
                   provider, outcome.log_reason);
      return error_response(403, "forbidden", "not authorized");
    case BB_AUTH_UNAVAILABLE:
      spdlog::warn("http {}: {}: provider '{}' unavailable: {}", peer, what, provider,
                   outcome.log_reason);
      return error_response(503, "unavailable", "the authentication provider is unavailable");
    default:
      spdlog::info("http {}: {}: login with provider '{}' refused: {}", peer, what, provider,
                   outcome.log_reason);
      return error_response(401, "unauthorized", "invalid credentials");
  }
}

bool allows(broker::Broker& broker, const authz::Policy& policy, std::string_view action,
            std::string_view resource) {
  const bool allowed = action == "mqtt:subscribe" ? policy.allows_subscribe(resource)
                                                  : policy.allows(action, resource);
  if (!allowed) broker.metrics().count_denial(action);
  return allowed;
}

std::optional<Response> permit(broker::Broker& broker, const Exchange& ex, const Route& route,
                               std::string_view method, std::string_view path,
                               const std::string& peer) {
  const auto need = route.actions.required(route.path, method, path);
  if (!need) return std::nullopt;
  if (ex.policy && allows(broker, *ex.policy, need->action, need->resource)) return std::nullopt;
  // The line the module wrote before the kernel took the check over.
  spdlog::info(
      "[{}] {}", route.module,
      sdk::audit_line(ex.provider, ex.principal, peer, need->action, need->resource, "denied"));
  Response r;
  r.status = 403;
  r.content_type = "application/json";
  r.body = sdk::forbidden_body(need->action, need->resource);
  return r;
}

}  // namespace backbone::kernel::http
