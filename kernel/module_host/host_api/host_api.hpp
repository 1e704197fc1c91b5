// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The kernel's side of bb_host_api, one file per area of module_abi.h:
// core.cpp, connection.cpp, auth.cpp, http.cpp, cluster.cpp and io_watch.cpp;
// table.cpp assembles them into the table modules receive. Contracts are in
// module_abi.h. Every function is noexcept (nothing may unwind into a
// module) and reaches the kernel only through its bb_host_ctx.

#include <cstddef>
#include <cstdint>
#include <string>

#include <backbone/module_abi.h>

#include "kernel/broker/broker.hpp"
#include "kernel/message/message.hpp"
#include "kernel/module_host/module_instance.hpp"

namespace backbone::kernel::module_host::host_api {

// --- Shared by the sections (support.cpp) ---

inline ModuleHost::Instance* instance_of(bb_host_ctx* h) {
  return h ? h->instance : nullptr;
}
inline ModuleHost* host_of(bb_host_ctx* h) {
  return h ? h->host : nullptr;
}
std::string text(bb_str s);
// Records why the calling thread's host call failed (for last_error) and
// returns `status`.
bb_status failed(bb_status status, std::string why);
// What last_error reports on the calling thread.
const std::string& thread_last_error();
// Keeps `value` in the calling thread's result buffer and points at it: the
// bb_str stays valid until the thread's next host call that returns text.
bb_str thread_result(std::string value);
// The kernel's message for a module's; nullptr (and last_error says why)
// when it is not one a client could publish.
message::MessagePtr message_of(ModuleHost& host, const bb_message* m);
// The origin of a message another broker routed here (publish_routed,
// publish_routed_durable): with `m->shared_listed` (ABI 1.5) it points at
// `groups`, which borrows m's list and must outlive the ingress. False (and
// last_error says why) when the list is malformed.
bool routed_origin(const bb_message* m, broker::SharedGroups& groups, broker::Origin& origin);

// --- Core: logging, settings, publishing, tasks, lifecycle, state ---
void log(bb_host_ctx* h, int32_t level, bb_str msg) noexcept;
int32_t log_enabled(bb_host_ctx* h, int32_t level) noexcept;
bb_status config_get(bb_host_ctx* h, bb_str key, bb_str* out) noexcept;
bb_status config_submit(bb_host_ctx* h, bb_str kind, bb_str name, bb_str json_text,
                        int32_t deleted) noexcept;
bb_status publish(bb_host_ctx* h, const bb_message* m) noexcept;
bb_status post(bb_host_ctx* h, uint32_t delay_ms, bb_task_fn fn, void* arg) noexcept;
bb_status ready(bb_host_ctx* h) noexcept;
bb_status last_error(bb_host_ctx* h, bb_str* out) noexcept;
bb_status inspect(bb_host_ctx* h, bb_str what, bb_str arg, bb_str* out) noexcept;
bb_status session_kick(bb_host_ctx* h, bb_str client_id) noexcept;
bb_status state_path(bb_host_ctx* h, bb_str* out) noexcept;
bb_status metric_set(bb_host_ctx* h, bb_str name, bb_str help, int32_t kind, double value) noexcept;

// --- Connections of transport modules ---
bb_status conn_open(bb_host_ctx* h, const bb_conn_info* info, const bb_conn_ops* ops,
                    void* conn_user, bb_conn_id* out) noexcept;
bb_status conn_feed(bb_host_ctx* h, bb_conn_id c, bb_bytes data) noexcept;
void conn_backpressure(bb_host_ctx* h, bb_conn_id c, int32_t above) noexcept;
void conn_closed(bb_host_ctx* h, bb_conn_id c) noexcept;

// --- fd readiness watches ---
bb_status io_watch(bb_host_ctx* h, int32_t fd, bb_conn_id affinity, bb_io_fn fn, void* user,
                   bb_io_watch* out) noexcept;
bb_status io_want(bb_host_ctx* h, bb_io_watch w, int32_t interest) noexcept;
void io_unwatch(bb_host_ctx* h, bb_io_watch w) noexcept;

// --- Authentication and principals ---
bb_status register_authenticator(bb_host_ctx* h, const bb_authenticator* a, void* user) noexcept;
bb_status auth_complete(bb_host_ctx* h, bb_auth_ticket t, const bb_auth_result* r) noexcept;
bb_status principal_update(bb_host_ctx* h, bb_str provider, bb_str principal,
                           const bb_statement* statements, size_t count, int32_t revoked) noexcept;
bb_status principal_quotas(bb_host_ctx* h, bb_str provider, bb_str principal,
                           const bb_quotas* quotas) noexcept;

// --- HTTP and WebSocket ---
bb_status http_route(bb_host_ctx* h, const bb_http_route* r, void* user) noexcept;
bb_status http_respond(bb_host_ctx* h, bb_http_exchange ex, const bb_http_response* r) noexcept;
int32_t http_authorize(bb_host_ctx* h, bb_http_exchange ex, bb_str action,
                       bb_str resource) noexcept;
int64_t http_authorize_grant(bb_host_ctx* h, bb_http_exchange ex, const bb_statement* statements,
                             size_t count) noexcept;
bb_status http_publish(bb_host_ctx* h, bb_http_exchange ex, const bb_message* m,
                       int32_t* reason_code, bb_str* reason_string) noexcept;
bb_status ws_send(bb_host_ctx* h, bb_ws_id ws, const bb_bytes* chunks, size_t count) noexcept;
void ws_pause(bb_host_ctx* h, bb_ws_id ws, int32_t paused) noexcept;
void ws_close(bb_host_ctx* h, bb_ws_id ws, uint16_t code) noexcept;

// --- Cluster: taps and what other brokers report ---
bb_status register_message_tap(bb_host_ctx* h, const bb_message_tap* tap, void* user) noexcept;
bb_status publish_routed(bb_host_ctx* h, const bb_message* m) noexcept;
bb_status session_takeover(bb_host_ctx* h, bb_str client_id,
                           uint64_t connected_at_unix_ms) noexcept;
bb_status session_takeover_as(bb_host_ctx* h, const bb_session_start* s) noexcept;
// ABI 1.5
bb_status ack_release(bb_host_ctx* h, bb_ack_hold hold) noexcept;
bb_status publish_routed_durable(bb_host_ctx* h, const bb_message* m, void (*done)(void* user),
                                 void* user) noexcept;

}  // namespace backbone::kernel::module_host::host_api
