// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <backbone/module_abi.h>

#include "kernel/auth/outcome.hpp"
#include "kernel/message/message.hpp"

namespace backbone::kernel::net {
class Worker;
}

namespace backbone::kernel::auth {

// A registered authenticator: the module's table and its user pointer.
struct Authenticator {
  const bb_authenticator* table = nullptr;
  void* user = nullptr;
  bool serialize = false;  // BB_MODULE_SERIALIZE: one call into the module at a time
  std::shared_ptr<std::mutex> serial_mutex;
};

// Authentication for every way in (MQTT CONNECT, HTTP /api/*): the
// authenticators modules registered, and the logins waiting for one.
//
// The kernel's promises to authenticators (module_abi.h): a ticket is
// answered at most once; an answer for a ticket no longer wanted returns
// BB_E_STALE; an abandoned login (requester gone, timeout, shutdown) is
// cancelled through the authenticator's `cancel`, outside any kernel lock.
class Logins {
 public:
  explicit Logins(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  ~Logins();

  // --- the registry (start-up, module init; read from every worker) ---
  // False when the name is taken.
  bool add(std::string name, const Authenticator& a);
  const Authenticator* find(std::string_view name) const;  // stable once added
  std::vector<std::string> names() const;

  // --- logins ---
  // Told once, on the requester's worker, unless the requester cancels first.
  using Answer = std::function<void(Outcome&&)>;
  struct Started {
    bb_status status = BB_OK;   // BB_OK: `outcome` holds the answer; BB_PENDING: `answer` follows
    bb_auth_ticket ticket = 0;  // while pending: cancel(ticket) when the requester gives up
    Outcome outcome;
  };
  // Asks `auth` about `req` (req.conn as the requester sets it). Pending
  // logins are answered by complete(), or after the timeout with a
  // timed-out outcome. Any other status: the authenticator failed.
  Started start(const Authenticator& auth, const bb_auth_request& req, net::Worker& worker,
                Answer answer);
  // An authenticator's answer (host->auth_complete, any thread). BB_E_STALE
  // when the ticket is unknown, answered, cancelled or timed out.
  bb_status complete(bb_auth_ticket ticket, const bb_auth_result& result);
  // The requester is gone: the login is dropped and the authenticator told.
  void cancel(bb_auth_ticket ticket);
  // Logins past their deadline are cancelled and answered as timed out.
  void expire(message::Clock::time_point now);
  // Shutdown: every pending login is cancelled; their requesters are told nothing.
  void cancel_all();
  size_t pending() const;

 private:
  struct Pending {
    const Authenticator* auth;
    net::Worker* worker;
    Answer answer;
    message::Clock::time_point deadline;
  };
  static void tell_cancelled(const Authenticator& auth, bb_auth_ticket ticket);

  const std::chrono::milliseconds timeout_;
  mutable std::mutex registry_mutex_;
  std::map<std::string, Authenticator, std::less<>> authenticators_;

  mutable std::mutex pending_mutex_;
  std::unordered_map<bb_auth_ticket, Pending> pending_;
  std::atomic<bb_auth_ticket> next_ticket_{1};
};

}  // namespace backbone::kernel::auth
