// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <backbone/module_abi.h>
#include <nlohmann/json.hpp>

#include "kernel/authz/policy.hpp"
#include "kernel/config/config_file.hpp"

namespace backbone::kernel::auth {
struct Outcome;
}
namespace backbone::kernel::broker {
class Broker;
}
namespace backbone::kernel::net {
class WorkerPool;
}

namespace backbone::kernel::http {

// A route registered by a module, with its strings copied.
struct Route {
  std::string module;
  std::string path;
  std::vector<std::string> methods;
  std::vector<std::string> subprotocols;
  std::string summary;
  nlohmann::json openapi;  // object of extra path-item fields, or null
  bool prefix = false;
  bool auth = false;
  bool websocket = false;
  uint32_t max_message_size = 0;
  const bb_http_route* table = nullptr;
  void* user = nullptr;

  bool allows_method(std::string_view method) const;
};

// The exchange a request is waiting in: who asked (after authentication) and
// the connection to answer on.
struct Exchange;
class ConnectionBase;
class WebSocketBase;

// The kernel's HTTP(S) listener shared by the modules (Boost.Beast on the
// kernel workers): routing, size limits, timeouts, authentication of
// BB_HTTP_AUTH routes, WebSocket upgrades. Modules answer requests through
// respond() from any thread.
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
  static bool is_http_ticket(bb_auth_ticket t) { return (t >> 63) != 0; }
  bb_status auth_complete(bb_auth_ticket t, auth::Outcome&& outcome);

  // --- WebSockets (the WebSocket's worker only) ---
  bb_status ws_send(bb_ws_id ws, const bb_bytes* chunks, size_t count);
  void ws_pause(bb_ws_id ws, bool paused);
  void ws_close(bb_ws_id ws, uint16_t code);

  // The OpenAPI 3 document of every registered route.
  nlohmann::json openapi() const;

  // For the connection classes (http_server.cpp).
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  void listen();

  config::HttpSettings settings_;
  std::unique_ptr<Impl> impl_;
  bool armed_ = false;
  bool listening_ = false;
  uint16_t bound_port_ = 0;
};

}  // namespace backbone::kernel::http
