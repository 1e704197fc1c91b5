// SPDX-License-Identifier: GPL-3.0-or-later
// Routing: a message's way from ingress to the queues of the sessions it reaches, retained messages
// and wills.
#include "kernel/broker/broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "kernel/protocol/reason_code.hpp"
#include "kernel/retain/retained_store.hpp"

namespace backbone::kernel::broker {

namespace reason = protocol::reason;
using session::ConnId;
using session::Session;

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

uint32_t Broker::tap_message(const Message& msg, uint64_t hold) {
  bb_message m{};
  m.struct_size = sizeof(m);
  m.qos = msg.qos;
  m.retain = msg.retain;
  if (auto left = msg.remaining_expiry(Clock::now())) m.expiry_s = std::max<uint32_t>(*left, 1);
  m.topic = {msg.topic.data(), msg.topic.size()};
  m.payload = {reinterpret_cast<const uint8_t*>(msg.payload.data()), msg.payload.size()};
  m.properties = {reinterpret_cast<const uint8_t*>(msg.forward_props.data()),
                  msg.forward_props.size()};
  // Only a client's QoS 1/2 message can be held: its acknowledgement waits.
  if (msg.qos == 0) hold = 0;
  uint32_t given = 0;
  for (const Tap& tap : taps_) {
    if (BB_HAS(tap.table, bb_message_tap, message_held) && tap.table->message_held) {
      // Counted before the call: the module may release it at once.
      if (hold) ++given;
      tap.table->message_held(tap.user, &m, hold);
    } else if (tap.table->message) {
      tap.table->message(tap.user, &m);
    }
  }
  return given;
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
  if (!origin.routed && !taps_.empty()) result.holds = tap_message(*msg, origin.ack_hold);

  // Which shared groups get a member: a routed message's list, or what the
  // taps say of one accepted here (another broker's member may get it).
  topic_tree::GroupFilter keep = nullptr;
  void* keep_ctx = nullptr;
  SharedAsk ask;
  if (origin.routed) {
    if (origin.shared_only) {
      keep = &Broker::listed_group;
      keep_ctx = const_cast<SharedGroups*>(origin.shared_only);
    }
  } else if (shared_here_taps_) {
    ask.broker = this;
    ask.msg = msg.get();
    keep = &Broker::ask_taps;
    keep_ctx = &ask;
  }

  thread_local Route route;
  route.matches.clear();
  std::shared_lock lock(tree_mutex_);
  tree_.match(msg->topic, &Broker::collect, &route, keep, keep_ctx);
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
    const session::SharedKey* shared = nullptr;
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
      if (m[j].shared && !shared) shared = &m[j].shared;
    }
    const bool any = !skip || j - i > 1;
    if (any) {
      const uint8_t effective = std::min(qos, msg->qos);
      if (deliver(*s, msg, effective, retain_as_published && msg->retain, ids, publisher_conn,
                  read_policy, stored, shared ? *shared : nullptr))
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
                     Stored& stored, session::SharedKey shared) {
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
    s.queue.push_back(session::Delivery{msg, qos, retain, ids, store_id, std::move(shared)});
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

}  // namespace backbone::kernel::broker
