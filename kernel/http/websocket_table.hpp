// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <backbone/module_abi.h>

#include "kernel/net/per_worker.hpp"

namespace backbone::kernel::http {

class WebSocket;

// The open WebSockets by id (bb_ws_id), on their workers.
class WebSocketTable {
 public:
  explicit WebSocketTable(size_t workers) : by_worker_(workers) {}

  // On `worker`.
  bb_ws_id add(net::Worker& worker, std::shared_ptr<WebSocket> ws);
  // On the WebSocket's worker. Null once the WebSocket closed.
  WebSocket* find(bb_ws_id id);
  void remove(bb_ws_id id);
  // On worker `worker`: closes each of its WebSockets with `code`.
  void close_all(uint32_t worker, uint16_t code);

 private:
  net::PerWorker<std::shared_ptr<WebSocket>> by_worker_;
};

}  // namespace backbone::kernel::http
