// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/connection/connection_table.hpp"

#include <string>

#include "kernel/broker/broker.hpp"
#include "kernel/connection/connection.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::connection {

ConnectionTable::ConnectionTable(broker::Broker& broker, net::WorkerPool& workers)
    : broker_(broker), workers_(workers), by_worker_(workers.size()) {
  broker.attach_connections(*this);
}

ConnectionTable::~ConnectionTable() = default;

ConnId ConnectionTable::open(const bb_conn_info& info, const bb_conn_ops* ops, void* user,
                             bool on_current_worker) {
  auto& stats = broker_.stats();
  if (stats.connections.load(std::memory_order_relaxed) >= broker_.limits().max_connections)
    return 0;
  net::Worker* current = net::WorkerPool::current();
  net::Worker& worker = on_current_worker && current ? *current : workers_.next();
  const ConnId id = by_worker_.next_id(worker);
  // The transport's later calls for this id are queued behind the insertion.
  by_worker_.add(worker, id,
                 std::make_unique<Connection>(broker_, *this, worker, id, info, ops, user));
  stats.connections.fetch_add(1, std::memory_order_relaxed);
  return id;
}

Connection* ConnectionTable::find(ConnId id) {
  return by_worker_.find(id);
}

bool ConnectionTable::feed(ConnId id, std::string_view data) {
  Connection* c = find(id);
  return c && c->feed(data);
}

void ConnectionTable::closed(ConnId id) {
  Connection* c = find(id);
  if (!c) return;
  c->on_transport_closed();
  // The transport may call this from inside our own call into ops->close:
  // destroy the connection only after the current event completes.
  c->worker().post([this, id] { by_worker_.erase(id); });
  broker_.stats().connections.fetch_sub(1, std::memory_order_relaxed);
}

void ConnectionTable::backpressure(ConnId id, bool above) {
  if (Connection* c = find(id)) c->set_backpressure(above);
}

void ConnectionTable::with_connection(ConnId id, std::function<void(Connection&)> fn) {
  const uint32_t w = worker_of(id);
  if (w >= by_worker_.workers()) return;
  net::Worker& worker = workers_.at(w);
  if (net::WorkerPool::current() == &worker) {
    if (Connection* c = find(id)) fn(*c);
    return;
  }
  worker.post([this, id, fn = std::move(fn)] {
    if (Connection* c = find(id)) fn(*c);
  });
}

void ConnectionTable::close_all(uint8_t reason) {
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    workers_.at(w).post([this, w, reason] {
      for (ConnId id : by_worker_.ids(w)) {
        if (Connection* c = find(id)) c->disconnect(reason);
      }
    });
  }
}

void ConnectionTable::wake(ConnId id) {
  with_connection(id, [](Connection& c) { c.request_flush(); });
}

void ConnectionTable::resume_publisher(ConnId id) {
  with_connection(id, [](Connection& c) { c.resume_reading(Connection::kPausedForQueue); });
}

void ConnectionTable::disconnect(ConnId id, uint8_t reason, std::string_view reason_string) {
  with_connection(id, [reason, text = std::string(reason_string)](Connection& c) {
    c.disconnect(reason, text);
  });
}

void ConnectionTable::revoke(ConnId id) {
  with_connection(id, [](Connection& c) { c.revoke(); });
}

void ConnectionTable::set_policy(ConnId id, std::shared_ptr<const authz::Policy> policy) {
  with_connection(id, [policy = std::move(policy)](Connection& c) { c.set_policy(policy); });
}

void ConnectionTable::set_quotas(ConnId id, const quota::Quotas& quotas) {
  with_connection(id, [quotas](Connection& c) { c.set_quotas(quotas); });
}

void ConnectionTable::tick(uint32_t worker, message::Clock::time_point now) {
  if (worker >= by_worker_.workers()) return;
  for (ConnId id : by_worker_.ids(worker)) {
    if (Connection* c = find(id)) c->tick(now);
  }
}

}  // namespace backbone::kernel::connection
