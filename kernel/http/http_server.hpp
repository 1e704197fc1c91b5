// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <backbone/module_abi.h>
#include <nlohmann/json.hpp>

#include "kernel/authz/policy.hpp"
#include "kernel/config/config_file.hpp"
#include "kernel/quota/quota.hpp"

namespace backbone::kernel::broker {
class Broker;
}
namespace backbone::kernel::net {
class WorkerPool;
}

namespace backbone::kernel::http {

// The kernel's HTTP(S) server shared by the modules (Boost.Beast on the
// kernel workers): routing, size limits, timeouts, authentication of
// BB_HTTP_AUTH routes, WebSocket upgrades. Modules answer requests through
// respond() from any thread. The parts: Listener (listener.hpp), RouteTable
// (route_table.hpp), the OpenAPI document (openapi.hpp), HTTP connections
// (http_connection.hpp), WebSockets (plain_websocket.hpp, tls_websocket.hpp).
class HttpServer {
 public:
  HttpServer(broker::Broker& broker, net::WorkerPool& workers);
  ~HttpServer();

  void configure(const config::HttpSettings& settings) { settings_ = settings; }
  const config::HttpSettings& settings() const { return settings_; }

  // Control thread. On refusal returns the status and sets `error`.
  bb_status add_route(const std::string& module, const bb_http_route& r, void* user,
                      std::string* error);
  // From now on the listener is open whenever HTTP is enabled and some
  // module serves a route (now, or when the first route arrives). Throws
  // config::ConfigError (port in use, unreadable TLS files).
  void start();
  // Stops accepting and closes every HTTP connection and WebSocket.
  void stop();
  bool listening() const { return listening_; }
  uint16_t port() const { return bound_port_; }

  // --- exchanges (any thread) ---
  bb_status respond(bb_http_exchange ex, const bb_http_response& r);
  int32_t authorize(bb_http_exchange ex, std::string_view action, std::string_view resource);
  // The policy of the exchange's requester; null when unknown or answered.
  std::shared_ptr<const authz::Policy> policy_of(bb_http_exchange ex);
  // The requester's quotas and usage (BB_HTTP_AUTH routes), or null.
  quota::PrincipalPtr principal_of(bb_http_exchange ex);

  // --- WebSockets (the WebSocket's worker only) ---
  bb_status ws_send(bb_ws_id ws, const bb_bytes* chunks, size_t count);
  void ws_pause(bb_ws_id ws, bool paused);
  void ws_close(bb_ws_id ws, uint16_t code);

  // The OpenAPI 3 document of every registered route.
  nlohmann::json openapi() const;

 private:
  struct Impl;
  void listen();

  config::HttpSettings settings_;  // before impl_, whose parts refer to it
  std::unique_ptr<Impl> impl_;
  bool armed_ = false;
  bool listening_ = false;
  uint16_t bound_port_ = 0;
};

}  // namespace backbone::kernel::http
