// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "kernel/protocol/reason_code.hpp"
#include "kernel/retain/retained_store.hpp"

namespace backbone::kernel::broker {

namespace reason = protocol::reason;
using session::ConnId;
using session::Session;

namespace {

// Until connections are attached (and in tests of routing alone).
class NoConnections final : public Connections {
 public:
  void wake(ConnId) override {}
  void resume_publisher(ConnId) override {}
  void disconnect(ConnId, uint8_t, std::string_view) override {}
  void revoke(ConnId) override {}
  void set_policy(ConnId, std::shared_ptr<const authz::Policy>) override {}
  void set_quotas(ConnId, const quota::Quotas&) override {}
  void tick(uint32_t, Clock::time_point) override {}
};

Connections& no_connections() {
  static NoConnections none;
  return none;
}

}  // namespace

Broker::Broker(config::Limits limits, net::WorkerPool& workers)
    : limits_(limits),
      workers_(workers),
      login_throttle_(limits.login_failures_before_backoff,
                      std::chrono::milliseconds(limits.login_backoff_max_ms)),
      logins_(std::chrono::milliseconds(limits.auth_timeout_ms)),
      connections_(&no_connections()) {
  rules_.set(std::shared_ptr<const rules::RuleSet>(rules::RuleSet::compile({}, nullptr)));
  next_sys_ = Clock::now();
}

Broker::~Broker() {
  // First: the store's thread runs completions that reach into the broker.
  store_.reset();
}

// --- the store ---

void Broker::when_durable(uint64_t seq, std::function<void()> done) {
  if (store_ && seq != 0 && !store_->durable(seq)) {
    store_->when_durable(seq, std::move(done));
    return;
  }
  done();
}

void Broker::attach_store(std::unique_ptr<store::Store> store, const store::State& state) {
  for (const auto& [topic, msg] : state.retained) retained_.restore(msg);
  const auto now = Clock::now();
  for (const auto& [key, rec] : state.sessions) {
    auto s = std::make_shared<Session>(rec.client_id, next_session_id_.fetch_add(1));
    s->version = static_cast<protocol::Version>(rec.version);
    s->expiry_interval_s = rec.expiry_interval_s;
    // The downtime is not counted against the session's expiry.
    s->offline_since = now;
    s->store_key = key;
    // Its owner: the client id stays theirs, and their statements' source
    // (a directory module at start, or their next login) re-checks it.
    s->provider = rec.provider;
    s->principal = rec.principal;
    for (const auto& [filter, sub] : rec.subscriptions) {
      s->subscriptions[filter] = session::SubscriptionEntry{sub.options, sub.subscription_id};
      tree_.subscribe(filter, topic_tree::Subscriber{s.get(), sub.options, sub.subscription_id, 0});
    }
    for (const auto& [id, ref] : rec.queue) {
      auto it = state.messages.find(id);
      if (it == state.messages.end()) continue;
      session::Delivery d{it->second.message, ref.qos, ref.retain, {}, id};
      for (uint32_t sid : ref.subscription_ids) d.sub_ids.add(sid);
      s->queued_bytes += d.msg->payload.size();
      s->queue.push_back(std::move(d));
    }
    sessions_[rec.client_id] = std::move(s);
  }
  offline_sessions_.store(sessions_.size(), std::memory_order_relaxed);
  store_ = std::move(store);
}

void Broker::close_store() {
  if (store_) store_->sync();
}

void Broker::persist_session(Session& s) {
  if (!store_) return;
  std::lock_guard lock(s.mutex());
  if (s.expiry_interval_s > 0) {
    store_->put_session(s.store_key, s.client_id(), s.expiry_interval_s,
                        static_cast<uint8_t>(s.version), s.provider, s.principal);
  } else {
    forget_stored_session(s);
  }
}

void Broker::forget_stored_session(Session& s) {
  if (store_ && s.store_key != 0) {
    store_->end_session(s.store_key);
    s.store_key = 0;
  }
}

void Broker::stored_done(Session& s, const session::Delivery& d) {
  if (store_ && d.store_id != 0 && s.store_key != 0) store_->done(s.store_key, d.store_id);
}

void Broker::set_anonymous_policy(std::shared_ptr<const authz::Policy> p) {
  {
    std::lock_guard lock(policy_mutex_);
    anonymous_policy_ = p;
  }
  update_principal("anonymous", "anonymous", std::move(p));
}

void Broker::update_principal(std::string_view provider, std::string_view principal,
                              std::shared_ptr<const authz::Policy> policy) {
  const std::vector<session::SessionPtr> targets = sessions_of(provider, principal);
  {
    // Pending (delayed) wills: checked against the new statements when sent;
    // revoked credentials publish nothing more (SPEC §6).
    std::lock_guard lock(wills_mutex_);
    for (auto it = pending_wills_.begin(); it != pending_wills_.end();) {
      PendingWill& w = it->second;
      if (w.provider != provider || w.principal != principal) {
        ++it;
      } else if (policy) {
        w.policy = policy;
        ++it;
      } else {
        spdlog::info("credentials of '{}' ({}) revoked: will of '{}' discarded", principal,
                     provider, it->first);
        it = pending_wills_.erase(it);
      }
    }
  }
  for (const auto& s : targets) {
    if (policy) {
      apply_policy(s, policy);
      continue;
    }
    spdlog::info("credentials of '{}' ({}) revoked: ending session '{}'", principal, provider,
                 s->client_id());
    const ConnId conn = s->conn();
    if (conn != 0) {
      connections_->revoke(conn);
    }
    {
      std::lock_guard lock(s->mutex());
      s->expiry_interval_s = 0;  // revoked: the session ends with its connection
    }
    {
      std::lock_guard lock(sessions_mutex_);
      auto it = sessions_.find(s->client_id());
      if (it != sessions_.end() && it->second == s) sessions_.erase(it);
    }
    end_session(s);
  }
}

void Broker::apply_policy(const session::SessionPtr& s,
                          const std::shared_ptr<const authz::Policy>& policy) {
  std::vector<std::string> revoked_filters;
  {
    std::lock_guard lock(s->mutex());
    if (s->read_cache) {
      s->read_cache->set_policy(policy);
    } else {
      s->read_cache.emplace(policy);
    }
    // Queued messages the session may no longer read are dropped.
    session::RingQueue<session::Delivery> kept;
    while (!s->queue.empty()) {
      session::Delivery d = std::move(s->queue.front());
      s->queue.pop_front();
      if (s->read_cache->allows(authz::Action::read, d.msg->topic)) {
        kept.push_back(std::move(d));
      } else {
        s->queued_bytes -= d.msg->payload.size();
        stored_done(*s, d);
      }
    }
    s->queue.swap(kept);
    for (const auto& [filter, entry] : s->subscriptions) {
      std::string_view group, real = filter;
      topic_tree::TopicTree::split_shared(filter, group, real);
      if (!policy->allows_subscribe(real)) revoked_filters.push_back(filter);
    }
  }
  for (const auto& f : revoked_filters) {
    spdlog::info("client '{}': subscription '{}' no longer allowed, removed", s->client_id(), f);
    unsubscribe(*s, f);
  }
  if (const ConnId conn = s->conn()) {
    connections_->set_policy(conn, policy);
  }
}

std::shared_ptr<const authz::Policy> Broker::anonymous_policy() const {
  std::lock_guard lock(policy_mutex_);
  return anonymous_policy_;
}

bool Broker::set_topic_rules(std::string_view name, const nlohmann::json* spec,
                             std::string* error) {
  std::map<std::string, nlohmann::json> set;
  std::vector<std::string> remove;
  if (spec) {
    set[std::string(name)] = *spec;
  } else {
    remove.emplace_back(name);
  }
  return replace_topic_rules(remove, set, error);
}

bool Broker::replace_topic_rules(const std::vector<std::string>& remove,
                                 const std::map<std::string, nlohmann::json>& set,
                                 std::string* error) {
  std::lock_guard lock(rules_mutex_);
  auto candidate = rule_specs_;
  for (const auto& name : remove) candidate.erase(name);
  for (const auto& [name, spec] : set) candidate[name] = spec;
  auto compiled = rules::RuleSet::compile(candidate, error);
  if (!compiled) return false;  // fail closed: the previous set stays in force
  rule_specs_ = std::move(candidate);
  rules_.set(std::move(compiled));
  return true;
}

// --- subscriptions ---

bool Broker::subscribe(Session& s, const std::string& filter, const topic_tree::Subscriber& sub) {
  {
    std::lock_guard lock(s.mutex());
    s.subscriptions[filter] = session::SubscriptionEntry{sub.options, sub.subscription_id};
    if (store_ && s.store_key != 0)
      store_->subscribe(s.store_key, filter,
                        store::SubscriptionRecord{sub.options, sub.subscription_id});
  }
  bool replaced;
  {
    std::unique_lock lock(tree_mutex_);
    replaced = tree_.subscribe(filter, sub);
  }
  if (shared_members_taps_ && filter.starts_with("$share/")) count_shared({filter});
  return replaced;
}

bool Broker::unsubscribe(Session& s, std::string_view filter) {
  {
    std::lock_guard lock(s.mutex());
    auto it = s.subscriptions.find(filter);
    if (it == s.subscriptions.end()) return false;
    s.subscriptions.erase(it);
    if (store_ && s.store_key != 0) store_->unsubscribe(s.store_key, filter);
  }
  bool removed;
  {
    std::unique_lock lock(tree_mutex_);
    removed = tree_.unsubscribe(filter, &s);
  }
  if (shared_members_taps_ && filter.starts_with("$share/")) count_shared({std::string(filter)});
  return removed;
}

size_t Broker::subscription_count() const {
  std::shared_lock lock(tree_mutex_);
  return tree_.subscription_count();
}

void Broker::start_timers() {
  for (uint32_t w = 0; w < workers_.size(); ++w) {
    timers_.push_back(std::make_unique<boost::asio::steady_timer>(workers_.at(w).io()));
    arm_timer(w);
  }
}

void Broker::arm_timer(uint32_t w) {
  timers_[w]->expires_after(std::chrono::seconds(1));
  timers_[w]->async_wait([this, w](boost::system::error_code ec) {
    if (ec) return;
    connections_->tick(w, Clock::now());
    if (w == 0) tick();
    arm_timer(w);
  });
}

void Broker::tick() {
  const auto now = Clock::now();
  logins_.expire(now);
  // Delayed wills whose time has come, and wills of sessions that ended.
  std::vector<PendingWill> due;
  {
    std::lock_guard lock(wills_mutex_);
    for (auto it = pending_wills_.begin(); it != pending_wills_.end();) {
      if (it->second.at <= now) {
        due.push_back(std::move(it->second));
        it = pending_wills_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : due) publish_will(std::move(w.msg), w.policy);

  // Expired offline sessions; the others are counted for
  // limits.max_offline_sessions (detach_session adds between two counts).
  std::vector<session::SessionPtr> expired;
  {
    std::lock_guard lock(sessions_mutex_);
    uint64_t offline = 0;
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      Session& s = *it->second;
      if (!s.online() && now - s.offline_since >= std::chrono::seconds(s.expiry_interval_s)) {
        expired.push_back(it->second);
        it = sessions_.erase(it);
      } else {
        offline += !s.online();
        ++it;
      }
    }
    offline_sessions_.store(offline, std::memory_order_relaxed);
  }
  for (auto& s : expired) {
    spdlog::debug("session '{}' expired", s->client_id());
    end_session(s);
    PendingWill will;
    bool has_will = false;
    {
      std::lock_guard lock(wills_mutex_);
      auto it = pending_wills_.find(s->client_id());
      if (it != pending_wills_.end()) {
        will = std::move(it->second);
        pending_wills_.erase(it);
        has_will = true;
      }
    }
    if (has_will) publish_will(std::move(will.msg), will.policy);
  }
  if (limits_.sys_interval_s > 0 && now >= next_sys_) {
    next_sys_ = now + std::chrono::seconds(limits_.sys_interval_s);
    publish_sys();
  }
}

uint64_t Broker::uptime_s() const {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_).count());
}

void Broker::publish_sys() {
  auto publish = [this](const std::string& topic, uint64_t value) {
    auto msg = std::make_shared<Message>();
    msg->topic = "$SYS/broker/" + topic;
    msg->payload = std::to_string(value);
    msg->retain = true;
    ingress(Origin{}, std::move(msg), 0);
  };
  publish("uptime", uptime_s());
  publish("clients/connected", stats_.connections.load());
  publish("clients/total", session_count());
  const Metrics::Traffic traffic = metrics_.traffic();
  publish("messages/received", traffic.messages_in);
  publish("messages/sent", traffic.messages_out);
  publish("messages/dropped", stats_.messages_dropped.load());
  publish("bytes/received", traffic.bytes_in);
  publish("bytes/sent", traffic.bytes_out);
  publish("subscriptions/count", subscription_count());
  publish("retained messages/count", retained_.size());
}

}  // namespace backbone::kernel::broker
