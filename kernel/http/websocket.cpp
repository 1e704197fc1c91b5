// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/websocket.hpp"

#include "kernel/broker/broker.hpp"
#include "kernel/http/response.hpp"
#include "kernel/http/route_table.hpp"

namespace backbone::kernel::http {

size_t ws_send_budget(uint64_t max_message) {
  return 2 * kWsHighWatermark + static_cast<size_t>(max_message);
}

uint32_t ws_message_limit(const Route& route, const broker::Broker& broker) {
  return route.max_message_size ? route.max_message_size : broker.limits().max_packet_size + 16;
}

bb_status open_websocket(const Route& route, bb_ws_id id, const std::string& peer,
                         const std::string& local, std::string_view method, std::string_view path,
                         void** user) {
  static constexpr std::string_view kTransport = "ws";
  bb_conn_info info{};
  info.struct_size = sizeof(info);
  info.transport = bb_str{kTransport.data(), kTransport.size()};
  info.peer = bb_str{peer.data(), peer.size()};
  info.local = bb_str{local.data(), local.size()};
  bb_http_request r{};
  r.struct_size = sizeof(r);
  r.method = bb_str{method.data(), method.size()};
  r.path = bb_str{path.data(), path.size()};
  r.peer = info.peer;
  return route.table->ws_open(route.user, id, &info, &r, user);
}

std::string ws_refused_body() {
  return error_body("unavailable", "the server cannot accept this connection now");
}

}  // namespace backbone::kernel::http
