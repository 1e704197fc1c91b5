// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/exchange_table.hpp"

namespace backbone::kernel::http {

std::shared_ptr<Exchange> ExchangeTable::open(std::weak_ptr<Responder> conn, net::Worker& worker) {
  auto ex = std::make_shared<Exchange>();
  ex->id = next_.fetch_add(1);
  ex->conn = std::move(conn);
  ex->worker = &worker;
  std::lock_guard lock(mutex_);
  exchanges_.emplace(ex->id, ex);
  return ex;
}

std::shared_ptr<Exchange> ExchangeTable::find(uint64_t id) {
  std::lock_guard lock(mutex_);
  auto it = exchanges_.find(id);
  return it == exchanges_.end() ? nullptr : it->second;
}

void ExchangeTable::end(uint64_t id) {
  std::lock_guard lock(mutex_);
  exchanges_.erase(id);
}

}  // namespace backbone::kernel::http
