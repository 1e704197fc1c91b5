// SPDX-License-Identifier: GPL-3.0-or-later
// Host functions of the shared HTTP listener: routes, answers,
// authorization of the requester, publishing on its behalf, WebSockets.
#include <memory>
#include <string_view>

#include "kernel/authz/decision_cache.hpp"
#include "kernel/broker/broker.hpp"
#include "kernel/http/http_server.hpp"
#include "kernel/module_host/host_api/host_api.hpp"
#include "kernel/protocol/reason_code.hpp"
#include "kernel/quota/quota.hpp"

namespace backbone::kernel::module_host::host_api {

namespace {

// The requester's publish rates: an HTTP request over them is refused
// (0x97) rather than paused, and spends nothing. The name of the rate it
// exceeds, or empty.
std::string_view spend_publish_rates(quota::Principal& usage, size_t payload_bytes) {
  const quota::Quotas q = usage.quotas();
  const auto now = quota::RateLimiter::Clock::now();
  if (usage.messages.try_spend(1, q.publish_rate, q.publish_burst, now).count() > 0)
    return quota::kPublishRate;
  if (usage.bytes.try_spend(payload_bytes, q.publish_bytes_rate, q.publish_bytes_burst, now)
          .count() > 0)
    return quota::kPublishBytesRate;
  return {};
}

}  // namespace

bb_status http_route(bb_host_ctx* h, const bb_http_route* r, void* user) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i || !r || !BB_HAS(r, bb_http_route, ws_closed)) return BB_E_INVALID;
    std::string error;
    const bb_status status = h->host->http().add_route(i->name(), *r, user, &error);
    if (status != BB_OK) return failed(status, error);
    return BB_OK;
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

bb_status http_respond(bb_host_ctx* h, bb_http_exchange ex, const bb_http_response* r) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host || !r) return BB_E_INVALID;
    return host->http().respond(ex, *r);
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

int32_t http_authorize(bb_host_ctx* h, bb_http_exchange ex, bb_str action,
                       bb_str resource) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host) return 0;
    return host->http().authorize(ex, std::string_view(action.ptr ? action.ptr : "", action.len),
                                  std::string_view(resource.ptr ? resource.ptr : "", resource.len));
  } catch (...) {
    return 0;
  }
}

int64_t http_authorize_grant(bb_host_ctx* h, bb_http_exchange ex, const bb_statement* statements,
                             size_t count) noexcept {
  try {
    if (count == 0) return -1;
    ModuleHost* host = host_of(h);
    if (!host || !statements) return 0;
    auto policy = host->http().policy_of(ex);
    if (!policy) return 0;
    for (size_t i = 0; i < count; ++i) {
      const bb_statement& s = statements[i];
      if (s.effect != BB_EFFECT_ALLOW) continue;
      if (!policy->covers_grant(text(s.action), text(s.resource))) return static_cast<int64_t>(i);
    }
    return -1;
  } catch (...) {
    return 0;
  }
}

bb_status http_publish(bb_host_ctx* h, bb_http_exchange ex, const bb_message* m,
                       int32_t* reason_code, bb_str* reason_string) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host || !reason_code || !reason_string) return BB_E_INVALID;
    auto policy = host->http().policy_of(ex);
    if (!policy) return BB_E_STALE;
    auto msg = message_of(*host, m);
    if (!msg) return BB_E_INVALID;
    authz::DecisionCache cache(std::move(policy), 1);
    const quota::PrincipalPtr usage = host->http().principal_of(ex);
    if (usage) {
      const std::string_view over = spend_publish_rates(*usage, msg->payload.size());
      if (!over.empty()) {
        host->broker().metrics().count_quota(over);
        *reason_code = protocol::reason::kQuotaExceeded;
        *reason_string = thread_result("quota exceeded: " + std::string(over));
        return BB_OK;
      }
    }
    broker::Origin origin{nullptr, &cache};
    origin.usage = usage.get();
    auto result = host->broker().ingress(origin, std::move(msg), 0);
    *reason_code = result.reason == 0x10 ? 0 : result.reason;  // no subscribers is success
    *reason_string = thread_result(std::move(result.reason_string));
    return BB_OK;
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

bb_status ws_send(bb_host_ctx* h, bb_ws_id ws, const bb_bytes* chunks, size_t count) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host || (count > 0 && !chunks)) return BB_E_INVALID;
    return host->http().ws_send(ws, chunks, count);
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

void ws_pause(bb_host_ctx* h, bb_ws_id ws, int32_t paused) noexcept {
  try {
    if (ModuleHost* host = host_of(h)) host->http().ws_pause(ws, paused != 0);
  } catch (...) {
  }
}

void ws_close(bb_host_ctx* h, bb_ws_id ws, uint16_t code) noexcept {
  try {
    if (ModuleHost* host = host_of(h)) host->http().ws_close(ws, code);
  } catch (...) {
  }
}

}  // namespace backbone::kernel::module_host::host_api
