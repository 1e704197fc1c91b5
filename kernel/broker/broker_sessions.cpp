// SPDX-License-Identifier: GPL-3.0-or-later
// Sessions: finding, creating, taking over, detaching and ending them (SPEC §4, §6).
#include "kernel/broker/broker.hpp"

#include <spdlog/spdlog.h>

#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::broker {

namespace reason = protocol::reason;
using session::ConnId;
using session::Session;

// --- sessions ---

Broker::Attached Broker::attach_session(const std::string& client_id, bool clean_start, ConnId conn,
                                        const Login& login) {
  Attached out;
  session::SessionPtr old;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(client_id);
    if (it != sessions_.end()) {
      old = it->second;
      std::lock_guard session_lock(old->mutex());
      // A session restored from a store that did not record its owner is
      // anyone's, as it was before owners were recorded.
      out.owner_changed = !old->provider.empty() &&
                          (old->provider != login.provider || old->principal != login.principal);
      if (out.owner_changed && !(login.policy && login.policy->allows("mqtt:connect", client_id))) {
        spdlog::info("client id '{}' belongs to '{}' ({}): refused to '{}' ({})", client_id,
                     old->principal, old->provider, login.principal, login.provider);
        return Attached{};
      }
      if (clean_start) sessions_.erase(it);
    }
    if (old && !clean_start) {
      out.session = old;
    } else {
      out.session = std::make_shared<Session>(client_id, next_session_id_.fetch_add(1));
      sessions_[client_id] = out.session;
    }
    // Owned from here on, before any other CONNECT can look.
    std::lock_guard session_lock(out.session->mutex());
    out.session->provider.assign(login.provider);
    out.session->principal.assign(login.principal);
  }
  out.present = old && !clean_start;
  out.owner_changed = out.owner_changed && out.present;
  if (old) {
    const ConnId previous = old->conn();
    {
      std::lock_guard lock(old->mutex());
      old->set_conn(0);
    }
    if (previous != 0) {
      connections_->disconnect(previous, reason::kSessionTakenOver, {});
    }
    if (clean_start) end_session(old);
  }
  {
    std::lock_guard lock(out.session->mutex());
    out.session->set_conn(conn);
  }
  if (out.present) count_shared(shared_filters(*out.session));
  return out;
}

std::vector<session::SessionPtr> Broker::sessions_of(std::string_view provider,
                                                     std::string_view principal) const {
  std::vector<session::SessionPtr> out;
  std::lock_guard lock(sessions_mutex_);
  for (const auto& [id, s] : sessions_) {
    std::lock_guard session_lock(s->mutex());
    if (s->provider == provider && s->principal == principal) out.push_back(s);
  }
  return out;
}

bool Broker::connected_as(const std::string& client_id, std::string_view provider,
                          std::string_view principal) const {
  std::lock_guard lock(sessions_mutex_);
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return false;
  Session& s = *it->second;
  std::lock_guard session_lock(s.mutex());
  return s.online() && s.provider == provider && s.principal == principal;
}

void Broker::update_quotas(std::string_view provider, std::string_view principal,
                           const bb_quotas* quotas) {
  const quota::Quotas q = quota::Quotas::resolve(quotas, limits_.principal);
  // Its next login starts from these too.
  if (auto usage = principals_.find(provider, principal)) usage->set_quotas(q);
  for (const auto& s : sessions_of(provider, principal)) {
    if (const ConnId c = s->conn()) connections_->set_quotas(c, q);
  }
}

void Broker::detach_session(const session::SessionPtr& s, ConnId conn) {
  bool end = false;
  bool went_offline = false;
  {
    std::lock_guard lock(s->mutex());
    // A takeover may already have bound the session to a newer connection.
    if (conn != 0 && s->conn() == conn) {
      s->set_conn(0);
      went_offline = true;
      s->offline_since = Clock::now();
      end = !s->persistent();
      if (!end &&
          offline_sessions_.load(std::memory_order_relaxed) >= limits_.max_offline_sessions) {
        // Kept offline sessions are memory no one bounds but this cap.
        spdlog::warn("session '{}' not kept: {} offline sessions (limits.max_offline_sessions)",
                     s->client_id(), limits_.max_offline_sessions);
        metrics_.count_quota("limits.max_offline_sessions");
        s->expiry_interval_s = 0;
        end = true;
      }
      if (!end) offline_sessions_.fetch_add(1, std::memory_order_relaxed);
      s->paused_publishers.clear();
    }
  }
  if (end) {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(s->client_id());
    if (it != sessions_.end() && it->second == s) sessions_.erase(it);
  }
  if (end) {
    end_session(s);
  } else if (went_offline) {
    count_shared(shared_filters(*s));
  }
}

// What the session still owed through shared subscriptions (queued, or sent
// and unacknowledged; not QoS 2 messages already received, PUBREC'd) goes to
// another member of the same group here, online preferred (hand_over). With
// none left here it is dropped with the session's other messages, as
// before: the cluster module may route later messages to other brokers'
// members, but what was queued here is not sent to them.
void Broker::end_session(const session::SessionPtr& s) {
  std::vector<std::string> filters;
  std::vector<session::Delivery> orphans;
  {
    std::lock_guard lock(s->mutex());
    forget_stored_session(*s);
    for (const auto& [filter, entry] : s->subscriptions) filters.push_back(filter);
    s->subscriptions.clear();
    for (const auto& [id, f] : s->inflight) {
      if (f.delivery.shared && !f.released) orphans.push_back(f.delivery);
    }
    for (size_t i = 0; i < s->queue.size(); ++i) {
      if (s->queue[i].shared) orphans.push_back(std::move(s->queue[i]));
    }
    s->queue.clear();
    s->queued_bytes = 0;
    s->inflight.clear();
  }
  {
    std::unique_lock lock(tree_mutex_);
    for (const auto& f : filters) tree_.unsubscribe(f, s.get());
  }
  if (!orphans.empty()) hand_over(*s, orphans);
  if (shared_members_taps_) {
    std::erase_if(filters, [](const std::string& f) { return !f.starts_with("$share/"); });
    count_shared(filters);
  }
}

size_t Broker::session_count() const {
  std::lock_guard lock(sessions_mutex_);
  return sessions_.size();
}

}  // namespace backbone::kernel::broker
