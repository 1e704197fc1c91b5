// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "kernel/authz/policy.hpp"
#include "kernel/quota/quota.hpp"

namespace backbone::kernel::net {
class Worker;
}

namespace backbone::kernel::http {

struct Response;

// The connection an exchange answers on, as the exchange table sees it. The
// call comes on the connection's worker; `ex` may be an exchange the
// connection no longer waits for (timed out), which it ignores.
class Responder {
 public:
  virtual ~Responder() = default;
  virtual void on_response(uint64_t ex, std::shared_ptr<Response> r) = 0;
};

// The exchange a request is waiting in: who asked (after authentication) and
// the connection to answer on.
struct Exchange {
  uint64_t id = 0;
  std::weak_ptr<Responder> conn;
  net::Worker* worker = nullptr;
  std::shared_ptr<const authz::Policy> policy;
  std::string provider;
  std::string principal;
  quota::PrincipalPtr usage;  // the requester's quotas and usage (SPEC §6)
};

// The requests waiting for a module's answer,
// by id (bb_http_exchange). Any thread.
class ExchangeTable {
 public:
  std::shared_ptr<Exchange> open(std::weak_ptr<Responder> conn, net::Worker& worker);
  // Null once the exchange ended (answered, timed out, connection gone).
  std::shared_ptr<Exchange> find(uint64_t id);
  void end(uint64_t id);

 private:
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::shared_ptr<Exchange>> exchanges_;
  std::atomic<uint64_t> next_{1};
};

}  // namespace backbone::kernel::http
