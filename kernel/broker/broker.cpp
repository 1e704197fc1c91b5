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
  std::lock_guard lock(out.session->mutex());
  out.session->set_conn(conn);
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
  {
    std::lock_guard lock(s->mutex());
    // A takeover may already have bound the session to a newer connection.
    if (conn != 0 && s->conn() == conn) {
      s->set_conn(0);
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
  if (end) end_session(s);
}

void Broker::end_session(const session::SessionPtr& s) {
  std::vector<std::string> filters;
  {
    std::lock_guard lock(s->mutex());
    forget_stored_session(*s);
    for (const auto& [filter, entry] : s->subscriptions) filters.push_back(filter);
    s->subscriptions.clear();
    s->queue.clear();
    s->inflight.clear();
  }
  std::unique_lock lock(tree_mutex_);
  for (const auto& f : filters) tree_.unsubscribe(f, s.get());
}

size_t Broker::session_count() const {
  std::lock_guard lock(sessions_mutex_);
  return sessions_.size();
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
  std::unique_lock lock(tree_mutex_);
  return tree_.subscribe(filter, sub);
}

bool Broker::unsubscribe(Session& s, std::string_view filter) {
  {
    std::lock_guard lock(s.mutex());
    auto it = s.subscriptions.find(filter);
    if (it == s.subscriptions.end()) return false;
    s.subscriptions.erase(it);
    if (store_ && s.store_key != 0) store_->unsubscribe(s.store_key, filter);
  }
  std::unique_lock lock(tree_mutex_);
  return tree_.unsubscribe(filter, &s);
}

size_t Broker::subscription_count() const {
  std::shared_lock lock(tree_mutex_);
  return tree_.subscription_count();
}

// --- messages ---

bool Broker::topic_within_limits(std::string_view topic) const {
  if (topic.size() > limits_.max_topic_length) return false;
  uint32_t levels = 1;
  for (char c : topic) levels += c == '/';
  return levels <= limits_.max_topic_levels;
}

struct Broker::Route {
  std::vector<topic_tree::Subscriber> matches;
};

void Broker::collect(void* ctx, const topic_tree::Subscriber& s) {
  static_cast<Route*>(ctx)->matches.push_back(s);
}

// The publisher's authorization and the topic rules; false (and `result`
// says why) when the message is refused.
bool Broker::admit(const Origin& origin, const Message& msg, IngressResult& result) {
  if (origin.publish_cache && !origin.publish_cache->allows(authz::Action::publish, msg.topic)) {
    stats_.publish_denied.fetch_add(1, std::memory_order_relaxed);
    metrics_.count_denial("mqtt:publish");
    spdlog::info("client '{}': publish to '{}' denied",
                 origin.session ? origin.session->client_id() : "", msg.topic);
    result.reason = reason::kNotAuthorized;
    result.reason_string = "not authorized to publish to this topic";
    return false;
  }
  if (const rules::RuleSet* rules = rules_.local(); rules && !rules->empty()) {
    if (auto violation =
            rules->check(msg.topic, msg.payload, msg.qos, msg.retain, origin.rule_memo)) {
      stats_.rule_rejected.fetch_add(1, std::memory_order_relaxed);
      metrics_.count_rule_rejection(violation->rule);
      spdlog::info("publish to '{}' rejected: {}", msg.topic, violation->reason);
      result.reason = violation->reason_code;
      result.reason_string = std::move(violation->reason);
      return false;
    }
  }
  return true;
}

void Broker::tap_message(const Message& msg) {
  bb_message m{};
  m.struct_size = sizeof(m);
  m.qos = msg.qos;
  m.retain = msg.retain;
  if (auto left = msg.remaining_expiry(Clock::now())) m.expiry_s = std::max<uint32_t>(*left, 1);
  m.topic = {msg.topic.data(), msg.topic.size()};
  m.payload = {reinterpret_cast<const uint8_t*>(msg.payload.data()), msg.payload.size()};
  m.properties = {reinterpret_cast<const uint8_t*>(msg.forward_props.data()),
                  msg.forward_props.size()};
  for (const Tap& tap : taps_) {
    if (tap.table->message) tap.table->message(tap.user, &m);
  }
}

void Broker::session_started(std::string_view client_id, uint64_t connected_at_unix_ms,
                             const Login& login) {
  if (taps_.empty()) return;
  const bb_str id{client_id.data(), client_id.size()};
  bb_session_start start{};
  start.struct_size = sizeof(start);
  start.client_id = id;
  start.connected_at_unix_ms = connected_at_unix_ms;
  start.provider = {login.provider.data(), login.provider.size()};
  start.principal = {login.principal.data(), login.principal.size()};
  start.may_take_over = login.policy && login.policy->allows("mqtt:connect", client_id) ? 1 : 0;
  for (const Tap& tap : taps_) {
    if (BB_HAS(tap.table, bb_message_tap, session_started_as) && tap.table->session_started_as) {
      tap.table->session_started_as(tap.user, &start);
    } else if (BB_HAS(tap.table, bb_message_tap, session_started) && tap.table->session_started) {
      tap.table->session_started(tap.user, id, connected_at_unix_ms);
    }
  }
}

IngressResult Broker::ingress(const Origin& origin, MessagePtr msg, ConnId publisher_conn) {
  IngressResult result;
  if (!origin.routed && !admit(origin, *msg, result)) return result;
  if (msg->retain) {
    // Counted against the broker's caps and the publisher's retained quotas
    // before anyone (taps, subscribers, the store) sees it.
    const quota::PrincipalPtr owner = origin.usage ? origin.usage->shared_from_this() : nullptr;
    const std::string_view over =
        retained_.set(msg, owner, {limits_.max_retained_messages, limits_.max_retained_bytes});
    if (!over.empty()) {
      metrics_.count_quota(over);
      spdlog::info("retained message on '{}' refused: {} reached", msg->topic, over);
      result.reason = reason::kQuotaExceeded;
      result.reason_string = "quota exceeded: " + std::string(over);
      return result;
    }
    if (store_) result.durable_seq = store_->set_retained(msg);
  }
  if (!origin.routed && !taps_.empty()) tap_message(*msg);

  thread_local Route route;
  route.matches.clear();
  std::shared_lock lock(tree_mutex_);
  tree_.match(msg->topic, &Broker::collect, &route);
  if (route.matches.empty()) {
    result.reason = reason::kNoMatchingSubscribers;
    return result;
  }
  // One delivery per session, with the highest QoS and every subscription
  // identifier of its matching subscriptions (MQTT 5 §3.3.4).
  auto& m = route.matches;
  Stored stored;
  if (m.size() > 1) {
    std::sort(m.begin(), m.end(),
              [](const auto& a, const auto& b) { return a.session < b.session; });
  }
  for (size_t i = 0; i < m.size();) {
    Session* s = m[i].session;
    uint8_t qos = 0;
    bool retain_as_published = false;
    bool skip = false;
    uint64_t read_policy = 0;
    session::SubIds ids;
    size_t j = i;
    for (; j < m.size() && m[j].session == s; ++j) {
      if (m[j].options.no_local && origin.session == s) {
        skip = true;
        continue;
      }
      qos = std::max(qos, m[j].options.qos);
      retain_as_published |= m[j].options.retain_as_published;
      ids.add(m[j].subscription_id);
      if (m[j].read_policy) read_policy = m[j].read_policy;
    }
    const bool any = !skip || j - i > 1;
    if (any) {
      const uint8_t effective = std::min(qos, msg->qos);
      if (deliver(*s, msg, effective, retain_as_published && msg->retain, ids, publisher_conn,
                  read_policy, stored))
        result.paused = true;
    }
    i = j;
  }
  result.durable_seq = std::max(result.durable_seq, stored.seq);
  return result;
}

// Returns true when the publisher should pause (the queue is over its limit).
bool Broker::deliver(Session& s, const MessagePtr& msg, uint8_t qos, bool retain,
                     const session::SubIds& ids, ConnId publisher_conn, uint64_t read_policy,
                     Stored& stored) {
  bool pause = false;
  bool wake = false;
  {
    std::lock_guard lock(s.mutex());
    if (s.read_cache && (read_policy == 0 || read_policy != s.read_cache->policy().id()) &&
        !s.read_cache->allows(authz::Action::read, msg->topic)) {
      metrics_.count_denial("mqtt:read");
      return false;
    }
    const bool online = s.online();
    if (!online && qos == 0) return false;  // QoS 0 is not queued for offline sessions
    const bool over = s.queue.size() >= s.queue_limit || s.queued_bytes >= limits_.max_queued_bytes;
    if (over) {
      const bool hard =
          s.queue.size() >= 2ull * s.queue_limit || s.queued_bytes >= 2 * limits_.max_queued_bytes;
      if (qos == 0 || hard || !online || publisher_conn == 0) {
        ++s.dropped;
        stats_.messages_dropped.fetch_add(1, std::memory_order_relaxed);
        if (s.queue_limit < limits_.max_queued_messages)
          metrics_.count_quota(quota::kMaxQueuedMessages);
        return false;
      }
      s.paused_publishers.insert(publisher_conn);
      pause = true;
    }
    uint64_t store_id = 0;
    if (store_ && s.store_key != 0 && qos > 0) {
      // Persistent sessions keep QoS 1/2 messages across restarts.
      stored.seq = store_->enqueue(s.store_key, stored.message_id, msg, qos, retain, ids.ids.data(),
                                   ids.count);
      store_id = stored.message_id;
    }
    s.queue.push_back(session::Delivery{msg, qos, retain, ids, store_id});
    s.queued_bytes += msg->payload.size();
    if (online && !s.flush_scheduled) {
      s.flush_scheduled = true;
      wake = true;
    }
  }
  if (wake) schedule_flush(s);
  return pause;
}

void Broker::schedule_flush(Session& s) {
  const ConnId conn = s.conn();
  if (conn == 0) return;
  connections_->wake(conn);
}

void Broker::deliver_retained(Session& s, std::string_view filter,
                              const protocol::SubscribeOptions& opts, uint32_t sub_id) {
  session::SubIds ids;
  ids.add(sub_id);
  for (const MessagePtr& msg : retained_.matching(filter)) {
    // Retained messages are sent with the retain flag set (MQTT 5 §3.3.1.3)
    // and pass the same read check as live messages (inside deliver()).
    Stored stored;
    deliver(s, msg, std::min(opts.qos, msg->qos), true, ids, 0, 0, stored);
  }
}

void Broker::schedule_will(const Session& s, MessagePtr will, Clock::time_point at,
                           std::shared_ptr<const authz::Policy> policy) {
  std::lock_guard lock(wills_mutex_);
  pending_wills_[s.client_id()] =
      PendingWill{std::move(will), at, std::move(policy), s.provider, s.principal};
}

void Broker::cancel_will(const std::string& client_id) {
  std::lock_guard lock(wills_mutex_);
  pending_wills_.erase(client_id);
}

void Broker::publish_will(MessagePtr will, const std::shared_ptr<const authz::Policy>& policy) {
  // Authorized again when sent: statements may have changed since CONNECT.
  std::optional<authz::DecisionCache> cache;
  if (policy) cache.emplace(policy);
  Origin origin{nullptr, cache ? &*cache : nullptr};
  ingress(origin, std::move(will), 0);
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
