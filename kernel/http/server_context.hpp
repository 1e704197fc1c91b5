// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "kernel/config/config_file.hpp"
#include "kernel/http/exchange_table.hpp"
#include "kernel/http/route_table.hpp"
#include "kernel/http/websocket_table.hpp"

namespace backbone::kernel::broker {
class Broker;
}

namespace backbone::kernel::http {

// What the listener, the HTTP connections and the WebSockets share; owned
// by HttpServer.
struct ServerContext {
  // Shared with the connections: one still queued in a worker at shutdown
  // is destroyed after the server.
  struct Counters {
    std::atomic<uint32_t> connections{0};
    // Bytes held for requests not authenticated (http.max_unauthenticated_bytes).
    std::atomic<uint64_t> unauthenticated{0};
    // Connection memory freed since the last malloc_trim.
    std::atomic<uint64_t> released{0};
  };

  ServerContext(const config::HttpSettings& s, broker::Broker& b, size_t workers)
      : settings(s), broker(b), websockets(workers) {}

  const config::HttpSettings& settings;
  broker::Broker& broker;
  RouteTable routes;
  ExchangeTable exchanges;
  WebSocketTable websockets;
  std::shared_ptr<Counters> counters = std::make_shared<Counters>();
  std::atomic<bool> stopping{false};
};

}  // namespace backbone::kernel::http
