// SPDX-License-Identifier: GPL-3.0-or-later
// Host functions of cluster modules: what they see of this broker (taps)
// and what they report from the others (routed messages, takeovers).
#include <optional>

#include "kernel/broker/broker.hpp"
#include "kernel/connection/connection.hpp"
#include "kernel/connection/connection_table.hpp"
#include "kernel/module_host/host_api/host_api.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::module_host::host_api {

// A tap of ABI 1.2-1.4 ends before message_held (smaller struct_size): the
// broker reads each optional field through BB_HAS.
bb_status register_message_tap(bb_host_ctx* h, const bb_message_tap* tap, void* user) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i || !tap || !BB_HAS(tap, bb_message_tap, message)) return BB_E_INVALID;
    if (i->configured) return BB_E_STATE;
    h->host->broker().add_tap(broker::Tap{tap, user});
    return BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

namespace {

// Routed ingress (publish_routed, publish_routed_durable): rules and taps
// were applied by the broker that accepted it; a listed message reaches the
// listed shared groups only.
std::optional<broker::IngressResult> route(bb_host_ctx* h, const bb_message* m) {
  auto msg = message_of(*h->host, m);
  if (!msg) return std::nullopt;
  broker::Origin origin;
  broker::SharedGroups groups;  // borrows m's list during the ingress
  if (!routed_origin(m, groups, origin)) return std::nullopt;
  return h->host->broker().ingress(origin, std::move(msg), 0);
}

}  // namespace

bb_status publish_routed(bb_host_ctx* h, const bb_message* m) noexcept {
  try {
    if (!instance_of(h)) return BB_E_INVALID;
    return route(h, m) ? BB_OK : BB_E_INVALID;
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

bb_status publish_routed_durable(bb_host_ctx* h, const bb_message* m, void (*done)(void* user),
                                 void* user) noexcept {
  try {
    if (!instance_of(h) || !done) return BB_E_INVALID;
    const auto result = route(h, m);
    if (!result) return BB_E_INVALID;
    // The queues of persistent sessions and the retained store: at once
    // when nothing waits, else on the store's thread after its group commit.
    h->host->broker().when_durable(result->durable_seq, [done, user] { done(user); });
    return BB_OK;
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

bb_status ack_release(bb_host_ctx* h, bb_ack_hold hold) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host) return BB_E_INVALID;
    if (hold == 0) return failed(BB_E_INVALID, "hold 0 is never given out");
    const uint32_t seq = connection::Connection::seq_of_hold(hold);
    if (seq == 0) return BB_OK;  // never given out: nothing waits for it
    // On the publisher's worker; a connection that closed meanwhile is not
    // found and the release does nothing.
    host->connections().with_connection(connection::Connection::conn_of_hold(hold),
                                        [seq](connection::Connection& c) { c.release_hold(seq); });
    return BB_OK;
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

bb_status session_takeover(bb_host_ctx* h, bb_str client_id,
                           uint64_t connected_at_unix_ms) noexcept {
  try {
    if (!instance_of(h) || connected_at_unix_ms == 0) return BB_E_INVALID;
    return h->host->broker().kick(text(client_id), protocol::reason::kSessionTakenOver,
                                  connected_at_unix_ms)
               ? BB_OK
               : BB_E_NOT_FOUND;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status session_takeover_as(bb_host_ctx* h, const bb_session_start* s) noexcept {
  try {
    if (!instance_of(h) || !s || !BB_HAS(s, bb_session_start, principal) ||
        s->connected_at_unix_ms == 0)
      return failed(BB_E_INVALID, "bad bb_session_start");
    const std::string provider = text(s->provider), principal = text(s->principal);
    broker::Broker::Login by{provider, principal, nullptr, s->may_take_over != 0};
    return h->host->broker().kick(text(s->client_id), protocol::reason::kSessionTakenOver,
                                  s->connected_at_unix_ms, &by)
               ? BB_OK
               : failed(BB_E_NOT_FOUND,
                        "no such session, it connected here later, or it belongs to another "
                        "principal");
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

}  // namespace backbone::kernel::module_host::host_api
