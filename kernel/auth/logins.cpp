// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/auth/logins.hpp"

#include <spdlog/spdlog.h>

#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::auth {

namespace {

// Calls into the module one at a time when it asked for that.
std::unique_lock<std::mutex> serialized(const Authenticator& auth) {
  return auth.serial_mutex ? std::unique_lock(*auth.serial_mutex) : std::unique_lock<std::mutex>();
}

}  // namespace

Logins::~Logins() = default;

bool Logins::add(std::string name, const Authenticator& a) {
  std::lock_guard lock(registry_mutex_);
  if (authenticators_.contains(name)) return false;
  Authenticator entry = a;
  if (entry.serialize) entry.serial_mutex = std::make_shared<std::mutex>();
  authenticators_.emplace(std::move(name), std::move(entry));
  return true;
}

const Authenticator* Logins::find(std::string_view name) const {
  std::lock_guard lock(registry_mutex_);
  auto it = authenticators_.find(name);
  return it == authenticators_.end() ? nullptr : &it->second;
}

std::vector<std::string> Logins::names() const {
  std::lock_guard lock(registry_mutex_);
  std::vector<std::string> out;
  for (const auto& [name, a] : authenticators_) out.push_back(name);
  return out;
}

Logins::Started Logins::start(const Authenticator& auth, const bb_auth_request& req,
                              net::Worker& worker, Answer answer) {
  Started started;
  started.ticket = next_ticket_.fetch_add(1, std::memory_order_relaxed);
  {
    // Registered before the call: the module may answer from inside it, or
    // from another thread before it returns.
    std::lock_guard lock(pending_mutex_);
    pending_.emplace(started.ticket,
                     Pending{&auth, &worker, std::move(answer), message::Clock::now() + timeout_});
  }
  bb_auth_result result{};
  result.struct_size = sizeof(result);
  {
    auto serial = serialized(auth);
    started.status = auth.table->authenticate(auth.user, &req, started.ticket, &result);
  }
  if (started.status == BB_PENDING) return started;
  {
    std::lock_guard lock(pending_mutex_);
    pending_.erase(started.ticket);
  }
  started.ticket = 0;
  if (started.status == BB_OK) started.outcome = copy_result(result);
  return started;
}

bb_status Logins::complete(bb_auth_ticket ticket, const bb_auth_result& result) {
  Pending p;
  {
    std::lock_guard lock(pending_mutex_);
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return BB_E_STALE;
    p = std::move(it->second);
    pending_.erase(it);
  }
  auto outcome = std::make_shared<Outcome>(copy_result(result));
  p.worker->post([answer = std::move(p.answer), outcome] { answer(std::move(*outcome)); });
  return BB_OK;
}

void Logins::tell_cancelled(const Authenticator& auth, bb_auth_ticket ticket) {
  if (!auth.table->cancel) return;
  auto serial = serialized(auth);
  auth.table->cancel(auth.user, ticket);
}

void Logins::cancel(bb_auth_ticket ticket) {
  const Authenticator* auth = nullptr;
  {
    std::lock_guard lock(pending_mutex_);
    auto it = pending_.find(ticket);
    if (it == pending_.end()) return;
    auth = it->second.auth;
    pending_.erase(it);
  }
  tell_cancelled(*auth, ticket);
}

void Logins::expire(message::Clock::time_point now) {
  std::vector<std::pair<bb_auth_ticket, Pending>> late;
  {
    std::lock_guard lock(pending_mutex_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.deadline <= now) {
        late.emplace_back(it->first, std::move(it->second));
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [ticket, p] : late) {
    tell_cancelled(*p.auth, ticket);
    p.worker->post([answer = std::move(p.answer)] {
      Outcome timed_out;
      timed_out.verdict = BB_AUTH_UNAVAILABLE;
      timed_out.timed_out = true;
      timed_out.log_reason = "no answer in time";
      answer(std::move(timed_out));
    });
  }
}

void Logins::cancel_all() {
  std::unordered_map<bb_auth_ticket, Pending> all;
  {
    std::lock_guard lock(pending_mutex_);
    all.swap(pending_);
  }
  for (auto& [ticket, p] : all) tell_cancelled(*p.auth, ticket);
  if (!all.empty()) spdlog::info("{} pending logins cancelled", all.size());
}

size_t Logins::pending() const {
  std::lock_guard lock(pending_mutex_);
  return pending_.size();
}

}  // namespace backbone::kernel::auth
