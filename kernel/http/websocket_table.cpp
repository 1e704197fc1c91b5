// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/websocket_table.hpp"

#include "kernel/http/websocket.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::http {

bb_ws_id WebSocketTable::add(net::Worker& worker, std::shared_ptr<WebSocket> ws) {
  const bb_ws_id id = by_worker_.next_id(worker);
  by_worker_.add(worker, id, std::move(ws));
  return id;
}

WebSocket* WebSocketTable::find(bb_ws_id id) {
  return by_worker_.find(id);
}

void WebSocketTable::remove(bb_ws_id id) {
  by_worker_.erase(id);
}

void WebSocketTable::close_all(uint32_t worker, uint16_t code) {
  // Closing removes a WebSocket from the map: iterate over a copy.
  std::vector<std::shared_ptr<WebSocket>> open;
  for (auto& [id, ws] : by_worker_.on(worker)) open.push_back(ws);
  for (auto& ws : open) ws->close(code);
}

}  // namespace backbone::kernel::http
