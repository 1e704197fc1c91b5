// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/websocket_table.hpp"

#include "kernel/http/websocket.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::http {

bb_ws_id WebSocketTable::add(net::Worker& worker, std::shared_ptr<WebSocket> ws) {
  const bb_ws_id id = (next_.fetch_add(1) << 8) | worker.index();
  by_worker_[worker.index()].emplace(id, std::move(ws));
  return id;
}

WebSocket* WebSocketTable::find(bb_ws_id id) {
  const uint32_t w = static_cast<uint32_t>(id & 0xFF);
  if (w >= by_worker_.size()) return nullptr;
  auto& map = by_worker_[w];
  auto it = map.find(id);
  return it == map.end() ? nullptr : it->second.get();
}

void WebSocketTable::remove(bb_ws_id id) {
  const uint32_t w = static_cast<uint32_t>(id & 0xFF);
  if (w < by_worker_.size()) by_worker_[w].erase(id);
}

void WebSocketTable::close_all(uint32_t worker, uint16_t code) {
  // Closing removes a WebSocket from the map: iterate over a copy.
  std::vector<std::shared_ptr<WebSocket>> open;
  for (auto& [id, ws] : by_worker_[worker]) open.push_back(ws);
  for (auto& ws : open) ws->close(code);
}

}  // namespace backbone::kernel::http
