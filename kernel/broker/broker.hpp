// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include <backbone/module_abi.h>
#include <nlohmann/json.hpp>

#include "kernel/auth/logins.hpp"
#include "kernel/authz/policy.hpp"
#include "kernel/broker/connections.hpp"
#include "kernel/broker/metrics.hpp"
#include "kernel/broker/versioned.hpp"
#include "kernel/config/limits.hpp"
#include "kernel/message/message.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/quota/login_throttle.hpp"
#include "kernel/quota/quota.hpp"
#include "kernel/retain/retained_store.hpp"
#include "kernel/rules/topic_rules.hpp"
#include "kernel/session/session.hpp"
#include "kernel/store/store.hpp"
#include "kernel/topic_tree/topic_tree.hpp"

namespace backbone::kernel::broker {

using message::Clock;
using message::Message;
using message::MessagePtr;

struct Stats {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> connections_total{0};
  // Messages and bytes in/out are counted once, per transport: see
  // Metrics::traffic().
  std::atomic<uint64_t> messages_dropped{0};
  std::atomic<uint64_t> publish_denied{0};
  std::atomic<uint64_t> subscribe_denied{0};
  std::atomic<uint64_t> rule_rejected{0};
  std::atomic<uint64_t> auth_failures{0};
};

// The shared groups a message routed from another broker reaches
// (bb_message.shared_listed): "<group>/<filter>" each, as after "$share/".
// Borrowed from the module's bb_message for the duration of the ingress.
struct SharedGroups {
  const bb_str* groups = nullptr;
  uint32_t count = 0;
  bool contains(std::string_view group, std::string_view filter) const;
};

// Who a message comes from, for the ingress pipeline.
struct Origin {
  session::Session* session = nullptr;            // null for modules and the broker itself
  authz::DecisionCache* publish_cache = nullptr;  // null = trusted (module, $SYS)
  rules::RuleMemo* rule_memo = nullptr;           // the publishing connection's
  quota::Principal* usage = nullptr;  // the publisher's quotas; null = none (modules, $SYS)
  // Accepted by another broker of the cluster: its authorization and topic
  // rules were applied there, and it is not handed to the taps again.
  bool routed = false;
  // Routed with a list of shared groups: only those groups' members here
  // get it (plain subscriptions are not affected). Null: every group.
  const SharedGroups* shared_only = nullptr;
  // ABI 1.5: the hold a client's QoS 1/2 PUBLISH gives each tap with
  // message_held (its acknowledgement waits for their ack_release); 0 for
  // wills, modules and the HTTP API: nobody waits.
  uint64_t ack_hold = 0;
};

// A module's view of what this broker accepts (bb_message_tap), for sharing
// messages and sessions with other brokers.
struct Tap {
  const bb_message_tap* table = nullptr;
  void* user = nullptr;
};

// Result of the ingress pipeline for one message.
struct IngressResult {
  uint8_t reason = 0;  // v5 reason code; 0 = accepted (0x10 when nobody matched)
  std::string reason_string;
  bool paused = false;  // a subscriber's queue is full: stop reading from the publisher
  // The store's sequence number that must be durable before the message is
  // acknowledged (it is retained or queued for a persistent session); 0 = none.
  uint64_t durable_seq = 0;
  // How many taps were given Origin::ack_hold (each releases it once).
  uint32_t holds = 0;
};

class Broker {
 public:
  Broker(config::Limits limits, net::WorkerPool& workers);
  ~Broker();

  // Who logs in: a principal (provider + name) and its statements.
  struct Login {
    std::string_view provider;
    std::string_view principal;
    const authz::Policy* policy = nullptr;  // may allow "mqtt:connect" on others' client ids
    bool may_take_over = false;             // for kick(): what `policy` said on another broker
  };

  const config::Limits& limits() const { return limits_; }
  net::WorkerPool& workers() { return workers_; }
  Stats& stats() { return stats_; }
  Metrics& metrics() { return metrics_; }
  quota::PrincipalTable& principals() { return principals_; }
  quota::LoginThrottle& login_throttle() { return login_throttle_; }
  // The authenticators and pending logins (MQTT and HTTP).
  auth::Logins& logins() { return logins_; }
  // New quotas for every session of (provider, principal) (SPEC §6): live
  // within a second, new logins at once. Null = the broker's defaults.
  void update_quotas(std::string_view provider, std::string_view principal,
                     const bb_quotas* quotas);

  // --- policies, set at start-up and on reload; read from every worker ---
  void set_anonymous_policy(std::shared_ptr<const authz::Policy> p);
  std::shared_ptr<const authz::Policy> anonymous_policy() const;
  bool set_topic_rules(std::string_view name, const nlohmann::json* spec, std::string* error);
  // Atomically removes the rules named in `remove` and sets those in `set`;
  // on error nothing changes (fail closed).
  bool replace_topic_rules(const std::vector<std::string>& remove,
                           const std::map<std::string, nlohmann::json>& set, std::string* error);
  std::shared_ptr<const rules::RuleSet> topic_rules() const { return rules_.get(); }
  // Live statement change for every session of (provider, principal); a
  // null policy revokes: those sessions are disconnected and ended.
  void update_principal(std::string_view provider, std::string_view principal,
                        std::shared_ptr<const authz::Policy> policy);
  // Puts a session under `p`: its read decisions, queued messages it may no
  // longer read (dropped) and subscriptions no longer allowed (removed).
  void apply_policy(const session::SessionPtr& s, const std::shared_ptr<const authz::Policy>& p);
  // Before the workers start; read without a lock afterwards.
  void add_tap(Tap tap) {
    if (BB_HAS(tap.table, bb_message_tap, message_held) && tap.table->message_held)
      holds_acks_ = true;
    if (BB_HAS(tap.table, bb_message_tap, shared_here) && tap.table->shared_here)
      shared_here_taps_ = true;
    if (BB_HAS(tap.table, bb_message_tap, shared_members) && tap.table->shared_members)
      shared_members_taps_ = true;
    taps_.push_back(tap);
  }
  // A tap wants to hold acknowledgements (ABI 1.5 message_held): only then
  // do connections give their QoS 1/2 messages a hold.
  bool holds_acks() const { return holds_acks_; }
  // A client's session started here (CONNACK sent): the taps hear of it.
  void session_started(std::string_view client_id, uint64_t connected_at_unix_ms,
                       const Login& login);

  // The connections sessions are bound to; set once, before the workers
  // start (until then, and in tests without connections, none).
  void attach_connections(Connections& c) { connections_ = &c; }
  Connections& connections() { return *connections_; }

  // --- the store (SPEC §10), attached before the workers start ---
  // Restores what `state` holds and persists from now on.
  void attach_store(std::unique_ptr<store::Store> store, const store::State& state);
  // Writes what is pending and stops persisting (shutdown, connections gone).
  void close_store();
  store::Store* store() { return store_.get(); }
  // Runs `done` once the store's record `seq` (IngressResult::durable_seq)
  // is durable: at once on the calling thread when nothing waits (no store,
  // seq 0, durable already), else later on the store's thread.
  void when_durable(uint64_t seq, std::function<void()> done);
  // Records the session's expiry and protocol version: persistent sessions
  // (expiry > 0) are stored, others forgotten. After CONNECT and DISCONNECT.
  void persist_session(session::Session& s);
  // A stored queued message is no longer owed (acknowledged, expired or
  // dropped). Caller holds s.mutex().
  void stored_done(session::Session& s, const session::Delivery& d);
  // The session is no longer persisted. Caller holds s.mutex().
  void forget_stored_session(session::Session& s);

  // --- sessions ---
  // Is the client id's session live on a connection of this principal (a
  // reconnect that takes over its own connection)?
  bool connected_as(const std::string& client_id, std::string_view provider,
                    std::string_view principal) const;
  struct Attached {
    session::SessionPtr session;  // null: the client id belongs to another principal
    bool present = false;         // state was present (resumed)
    bool owner_changed = false;   // resumed from another principal (allowed mqtt:connect)
  };
  // Finds or creates the session for a CONNECT and takes over an existing
  // connection of the same client id, unless that session (live or
  // persisted) belongs to another principal and `login.policy` does not
  // allow "mqtt:connect" on the client id (SPEC §6): then nothing changes.
  Attached attach_session(const std::string& client_id, bool clean_start, session::ConnId conn,
                          const Login& login);
  // Connection `conn` is gone: the session goes offline (or ends) unless a
  // takeover has bound it to a newer connection already.
  void detach_session(const session::SessionPtr& s, session::ConnId conn);
  void end_session(const session::SessionPtr& s);  // remove state entirely
  size_t session_count() const;

  // --- subscriptions ---
  bool subscribe(session::Session& s, const std::string& filter, const topic_tree::Subscriber& sub);
  bool unsubscribe(session::Session& s, std::string_view filter);
  size_t subscription_count() const;

  // --- messages ---
  // The configured topic length and level limits, for every way a topic or
  // filter enters (clients, wills, HTTP, modules, other brokers).
  bool topic_within_limits(std::string_view topic) const;
  IngressResult ingress(const Origin& origin, MessagePtr msg, session::ConnId publisher_conn);
  void deliver_retained(session::Session& s, std::string_view filter,
                        const protocol::SubscribeOptions& opts, uint32_t sub_id);
  retain::RetainedStore& retained() { return retained_; }

  // Wakes the connection of `s` so it sends what is queued.
  void schedule_flush(session::Session& s);

  // Periodic housekeeping (session expiry, delayed wills, $SYS, keep-alive
  // and timeouts of each worker's connections), once a second.
  void start_timers();
  void tick();
  // Wills waiting for their delay, keyed by client id.
  // `s` is the will's session: its principal's statement changes reach the
  // pending will, and revoking them discards it.
  void schedule_will(const session::Session& s, MessagePtr will, Clock::time_point at,
                     std::shared_ptr<const authz::Policy> policy);
  void cancel_will(const std::string& client_id);
  void publish_will(MessagePtr will, const std::shared_ptr<const authz::Policy>& policy);

  uint64_t uptime_s() const;

  // --- management (broker_inspect.cpp) ---
  nlohmann::json stats_json();
  nlohmann::json sessions_json() const;
  nlohmann::json topic_rules_json();
  std::string prometheus();
  // Disconnects the client with `reason` (v5 0x98 administrative action, 0x8E
  // session taken over) and ends its session; false when there is no such
  // session, or (connected_before > 0) it connected at or after that Unix
  // time in milliseconds.
  // With `by` (a session that started on another broker), another
  // principal's session is kept unless `by` may take it over.
  bool kick(const std::string& client_id, uint8_t reason, uint64_t connected_before = 0,
            const Login* by = nullptr);

 private:
  struct Route;
  // Every session (live or offline) of the principal.
  std::vector<session::SessionPtr> sessions_of(std::string_view provider,
                                               std::string_view principal) const;
  static void collect(void* ctx, const topic_tree::Subscriber& s);
  // What one message left in the store while being routed.
  struct Stored {
    uint64_t message_id = 0;
    uint64_t seq = 0;
  };
  // `read_policy`: Subscriber::read_policy of a subscription that matched.
  // `shared`: the group it came through, if it came through a shared one.
  bool deliver(session::Session& s, const MessagePtr& msg, uint8_t qos, bool retain,
               const session::SubIds& ids, session::ConnId publisher_conn, uint64_t read_policy,
               Stored& stored, session::SharedKey shared = nullptr);
  // Shared groups (broker_shared.cpp).
  // A message accepted here, described once for the taps' shared_here.
  struct SharedAsk {
    const Broker* broker = nullptr;
    const Message* msg = nullptr;
    bb_message m;  // filled (zeroed first) on the first group asked about
    bool described = false;
  };
  static bool listed_group(void* ctx, std::string_view group, std::string_view filter);
  static bool ask_taps(void* ctx, std::string_view group, std::string_view filter);
  // The session's "$share/..." subscriptions, when a tap counts members.
  std::vector<std::string> shared_filters(session::Session& s);
  // Recounts the online members here of each "$share/..." filter and tells
  // the taps (shared_members) those whose count changed.
  void count_shared(const std::vector<std::string>& filters);
  // Deliveries of an ending session that came through shared groups go to
  // another member of their group here; without one they are dropped.
  void hand_over(const session::Session& leaving, std::vector<session::Delivery>& orphans);
  void publish_sys();
  void arm_timer(uint32_t worker);
  std::vector<std::unique_ptr<boost::asio::steady_timer>> timers_;

  config::Limits limits_;
  net::WorkerPool& workers_;
  Stats stats_;
  Metrics metrics_;
  const Clock::time_point started_ = Clock::now();

  mutable std::mutex policy_mutex_;
  std::shared_ptr<const authz::Policy> anonymous_policy_;
  std::vector<Tap> taps_;
  bool holds_acks_ = false;
  bool shared_here_taps_ = false;     // a tap has shared_here
  bool shared_members_taps_ = false;  // a tap has shared_members
  // Serializes shared_members calls; the online counts the taps were told
  // last, by "<group>/<filter>" (absent = 0).
  std::mutex members_mutex_;
  std::map<std::string, uint32_t, std::less<>> shared_online_;
  bool admit(const Origin& origin, const Message& msg, IngressResult& result);
  // Returns how many taps were given `hold` (0 when it is 0).
  uint32_t tap_message(const Message& msg, uint64_t hold);

  std::mutex rules_mutex_;  // serializes rule changes; readers use rules_
  std::map<std::string, nlohmann::json> rule_specs_;
  Versioned<rules::RuleSet> rules_;

  std::unique_ptr<store::Store> store_;

  quota::PrincipalTable principals_;
  quota::LoginThrottle login_throttle_;
  auth::Logins logins_;

  mutable std::mutex sessions_mutex_;
  std::unordered_map<std::string, session::SessionPtr> sessions_;
  std::atomic<uint64_t> next_session_id_{1};
  std::atomic<uint64_t> offline_sessions_{0};  // recounted every tick

  mutable std::shared_mutex tree_mutex_;
  topic_tree::TopicTree tree_;

  retain::RetainedStore retained_;

  Connections* connections_;

  struct PendingWill {
    MessagePtr msg;
    Clock::time_point at;
    std::shared_ptr<const authz::Policy> policy;
    std::string provider;
    std::string principal;
  };
  std::mutex wills_mutex_;
  std::map<std::string, PendingWill> pending_wills_;
  Clock::time_point next_sys_{};
};

}  // namespace backbone::kernel::broker
