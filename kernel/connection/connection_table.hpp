// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <backbone/module_abi.h>

#include "kernel/broker/connections.hpp"
#include "kernel/net/per_worker.hpp"
#include "kernel/session/session.hpp"

namespace backbone::kernel::broker {
class Broker;
}

namespace backbone::kernel::connection {

class Connection;
using ConnectionPtr = std::unique_ptr<Connection>;
using session::ConnId;

// Every MQTT connection of the broker, per worker: the transports' way in
// (open, feed, closed, backpressure) and the broker's way to a connection by
// its id (broker::Connections). Each worker's map is touched only by that
// worker's thread; calls from elsewhere are posted to it.
class ConnectionTable final : public broker::Connections {
 public:
  // Attaches itself to `broker`; both outlive the workers.
  ConnectionTable(broker::Broker& broker, net::WorkerPool& workers);
  ~ConnectionTable() override;

  // The worker a connection (and its authentication ticket) lives on.
  static uint32_t worker_of(ConnId id) { return net::PerWorker<ConnectionPtr>::worker_of(id); }

  // --- the transport side, on the connection's worker ---
  // 0 when limits.max_connections are open. `on_current_worker`: bind to the
  // calling worker instead of round robin.
  ConnId open(const bb_conn_info& info, const bb_conn_ops* ops, void* user,
              bool on_current_worker = false);
  bool feed(ConnId id, std::string_view data);
  void closed(ConnId id);
  void backpressure(ConnId id, bool above);
  Connection* find(ConnId id);  // current worker only
  // Runs fn on the connection's worker if the connection still exists there.
  void with_connection(ConnId id, std::function<void(Connection&)> fn);
  // Server shutdown: every connection gets DISCONNECT with `reason`.
  void close_all(uint8_t reason);

  // --- broker::Connections ---
  void wake(ConnId id) override;
  void resume_publisher(ConnId id) override;
  void disconnect(ConnId id, uint8_t reason, std::string_view reason_string) override;
  void revoke(ConnId id) override;
  void set_policy(ConnId id, std::shared_ptr<const authz::Policy> policy) override;
  void set_quotas(ConnId id, const quota::Quotas& quotas) override;
  void tick(uint32_t worker, message::Clock::time_point now) override;

 private:
  broker::Broker& broker_;
  net::WorkerPool& workers_;
  net::PerWorker<ConnectionPtr> by_worker_;
};

}  // namespace backbone::kernel::connection
