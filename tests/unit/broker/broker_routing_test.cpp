// SPDX-License-Identifier: GPL-3.0-or-later
// Broker routing without a socket: ingress, delivery into sessions, shared
// groups and retained messages, with the connections replaced by a recorder.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <stdlib.h>

#include "kernel/authz/policy.hpp"
#include "kernel/broker/broker.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::broker {
namespace {

namespace reason = protocol::reason;
using session::ConnId;
using session::SessionPtr;

// What the broker asked of the connections.
class RecordedConnections final : public Connections {
 public:
  void wake(ConnId id) override { ++wakes[id]; }
  void resume_publisher(ConnId id) override { resumed.push_back(id); }
  void disconnect(ConnId id, uint8_t reason, std::string_view) override {
    disconnected[id] = reason;
  }
  void revoke(ConnId id) override { revoked.push_back(id); }
  void set_policy(ConnId, std::shared_ptr<const authz::Policy>) override {}
  void set_quotas(ConnId, const quota::Quotas&) override {}
  void tick(uint32_t, Clock::time_point) override {}

  std::map<ConnId, int> wakes;
  std::map<ConnId, uint8_t> disconnected;
  std::vector<ConnId> resumed, revoked;
};

std::shared_ptr<const authz::Policy> policy(std::vector<authz::Statement> statements) {
  std::string error;
  auto p = authz::Policy::compile(statements, &error);
  EXPECT_TRUE(p) << error;
  return p;
}

class BrokerRouting : public ::testing::Test {
 protected:
  BrokerRouting() : workers_(1), broker_(config::Limits{}, workers_) {
    broker_.attach_connections(connections_);
  }

  // An online session of `client_id` on connection `conn`, reading everything.
  SessionPtr online(const std::string& client_id, ConnId conn,
                    std::shared_ptr<const authz::Policy> p = nullptr) {
    auto s = broker_.attach_session(client_id, true, conn, {"test", client_id}).session;
    EXPECT_TRUE(s);
    broker_.apply_policy(s, p ? p : policy({{true, {"*"}, {"**"}}}));
    return s;
  }
  void subscribe(const SessionPtr& s, const std::string& filter, uint8_t qos = 1, uint32_t id = 0,
                 bool no_local = false) {
    topic_tree::Subscriber sub;
    sub.session = s.get();
    sub.options.qos = qos;
    sub.options.no_local = no_local;
    sub.subscription_id = id;
    broker_.subscribe(*s, filter, sub);
  }
  static MessagePtr message(std::string topic, std::string payload, uint8_t qos = 1,
                            bool retain = false) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(topic);
    m->payload = std::move(payload);
    m->qos = qos;
    m->retain = retain;
    return m;
  }
  IngressResult publish(MessagePtr m, const Origin& origin = {}) {
    return broker_.ingress(origin, std::move(m), 0);
  }
  static std::vector<session::Delivery> queued(const SessionPtr& s) {
    std::lock_guard lock(s->mutex());
    std::vector<session::Delivery> out;
    for (size_t i = 0; i < s->queue.size(); ++i) out.push_back(s->queue[i]);
    return out;
  }

  net::WorkerPool workers_;
  RecordedConnections connections_;
  Broker broker_;
};

TEST_F(BrokerRouting, NobodySubscribedIsNoMatchingSubscribers) {
  EXPECT_EQ(publish(message("a/b", "x")).reason, reason::kNoMatchingSubscribers);
}

TEST_F(BrokerRouting, OneDeliveryPerSessionWithTheHighestQosAndEveryIdentifier) {
  auto s = online("sub", 11);
  subscribe(s, "a/+", 0, 1);
  subscribe(s, "a/#", 2, 2);
  auto other = online("other", 12);
  subscribe(other, "a/b", 1);
  const auto r = publish(message("a/b", "payload", 2));
  EXPECT_EQ(r.reason, 0);
  auto got = queued(s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].qos, 2);
  EXPECT_EQ(got[0].sub_ids.count, 2);
  ASSERT_EQ(queued(other).size(), 1u);
  EXPECT_EQ(queued(other)[0].qos, 1);  // the minimum of the subscription's and the message's
  // The same message instance: the payload is never copied per subscriber.
  EXPECT_EQ(got[0].msg.get(), queued(other)[0].msg.get());
  EXPECT_EQ(connections_.wakes[11], 1);
  EXPECT_EQ(connections_.wakes[12], 1);
  publish(message("a/b", "again"));
  EXPECT_EQ(connections_.wakes[11], 1);  // a flush is already scheduled: not woken twice
}

TEST_F(BrokerRouting, NoLocalSkipsThePublishersOwnSession) {
  auto s = online("me", 21);
  subscribe(s, "chat", 1, 0, true);
  Origin origin;
  origin.session = s.get();
  EXPECT_EQ(publish(message("chat", "hi"), origin).reason, 0);
  EXPECT_TRUE(queued(s).empty());
  auto listener = online("listener", 22);
  subscribe(listener, "chat", 1);
  publish(message("chat", "hi"), origin);
  EXPECT_TRUE(queued(s).empty());
  EXPECT_EQ(queued(listener).size(), 1u);
}

TEST_F(BrokerRouting, PublishOutsideThePublishersStatementsIsRefused) {
  auto s = online("reader", 31);
  subscribe(s, "#", 1);
  authz::DecisionCache cache(policy({{true, {"mqtt:publish"}, {"allowed/#"}}}));
  Origin origin;
  origin.publish_cache = &cache;
  EXPECT_EQ(publish(message("secret/x", "no"), origin).reason, reason::kNotAuthorized);
  EXPECT_TRUE(queued(s).empty());
  EXPECT_EQ(publish(message("allowed/x", "yes"), origin).reason, 0);
  EXPECT_EQ(queued(s).size(), 1u);
}

TEST_F(BrokerRouting, SubscriberWithoutReadOnTheTopicGetsNothing) {
  auto s =
      online("narrow", 41,
             policy({{true, {"mqtt:subscribe"}, {"**"}}, {true, {"mqtt:read"}, {"public/#"}}}));
  subscribe(s, "#", 1);
  publish(message("private/x", "hidden"));
  publish(message("public/x", "shown"));
  auto got = queued(s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg->topic, "public/x");
}

TEST_F(BrokerRouting, SharedGroupDeliversEachMessageToExactlyOneMemberInTurn) {
  std::vector<SessionPtr> members;
  for (int i = 0; i < 3; ++i) {
    members.push_back(online("member" + std::to_string(i), 50 + i));
    subscribe(members.back(), "$share/g/jobs/+", 1);
  }
  auto plain = online("plain", 60);
  subscribe(plain, "jobs/+", 1);
  for (int i = 0; i < 30; ++i) publish(message("jobs/" + std::to_string(i), "job"));
  size_t total = 0;
  for (const auto& m : members) {
    EXPECT_EQ(queued(m).size(), 10u);  // round robin
    total += queued(m).size();
  }
  EXPECT_EQ(total, 30u);
  EXPECT_EQ(queued(plain).size(), 30u);  // a non-shared subscription gets every one
}

TEST_F(BrokerRouting, OfflineSessionsQueueQos1ButNotQos0) {
  auto s = online("sleeper", 70);
  subscribe(s, "t", 1);
  {
    std::lock_guard lock(s->mutex());
    s->expiry_interval_s = 60;
  }
  broker_.detach_session(s, 70);
  EXPECT_FALSE(s->online());
  publish(message("t", "kept", 1));
  publish(message("t", "lost", 0));
  auto got = queued(s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg->payload, "kept");
  EXPECT_EQ(connections_.wakes.count(70), 0u);
}

TEST_F(BrokerRouting, DetachByAnOlderConnectionLeavesATakenOverSessionOnline) {
  auto s = online("roamer", 80);
  {
    std::lock_guard lock(s->mutex());
    s->expiry_interval_s = 60;
  }
  auto again = broker_.attach_session("roamer", false, 81, {"test", "roamer"});
  EXPECT_EQ(again.session, s);
  EXPECT_EQ(connections_.disconnected[80], reason::kSessionTakenOver);
  broker_.detach_session(s, 80);  // the old connection goes away afterwards
  EXPECT_TRUE(s->online());
  EXPECT_EQ(s->conn(), 81u);
}

TEST_F(BrokerRouting, RetainedMessagesReachNewSubscriptionsAndAnEmptyOneClears) {
  publish(message("state/lamp", "on", 1, true));
  publish(message("state/door", "open", 0, true));
  auto s = online("late", 90);
  protocol::SubscribeOptions opts;
  opts.qos = 1;
  broker_.deliver_retained(*s, "state/+", opts, 7);
  auto got = queued(s);
  ASSERT_EQ(got.size(), 2u);
  for (const auto& d : got) {
    EXPECT_TRUE(d.retain);
    EXPECT_EQ(d.sub_ids.count, 1);
  }
  publish(message("state/lamp", "", 1, true));  // clears
  auto later = online("later", 91);
  broker_.deliver_retained(*later, "state/#", opts, 0);
  got = queued(later);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].msg->topic, "state/door");
  EXPECT_EQ(got[0].qos, 0);  // the minimum of the message's and the subscription's
}

TEST_F(BrokerRouting, RevokingAPrincipalEndsItsSessionsThroughTheirConnections) {
  auto s = online("victim", 100);
  subscribe(s, "t", 1);
  broker_.update_principal("test", "victim", nullptr);
  EXPECT_EQ(connections_.revoked, std::vector<ConnId>{100});
  EXPECT_EQ(broker_.session_count(), 0u);
  EXPECT_EQ(publish(message("t", "x")).reason, reason::kNoMatchingSubscribers);
}

// --- shared groups across brokers (ABI 1.5) ---

// A cluster module's tap: what it was told and what it answers.
struct SharedTap {
  std::vector<std::string> asked;      // shared_here: "<group>/<filter> <topic>"
  std::vector<std::string> elsewhere;  // "<group>/<filter>" another broker serves
  std::vector<std::pair<std::string, uint32_t>> members;  // shared_members calls
  bb_message_tap table{};
  Tap tap() { return Tap{&table, this}; }
  SharedTap() {
    table.struct_size = sizeof(table);
    table.message = [](void*, const bb_message*) {};
    table.shared_members = [](void* user, bb_str group, bb_str filter, uint32_t online) {
      static_cast<SharedTap*>(user)->members.emplace_back(
          std::string(group.ptr, group.len) + "/" + std::string(filter.ptr, filter.len), online);
    };
    table.shared_here = [](void* user, const bb_message* m, bb_str group, bb_str filter) {
      auto* t = static_cast<SharedTap*>(user);
      const std::string key =
          std::string(group.ptr, group.len) + "/" + std::string(filter.ptr, filter.len);
      EXPECT_EQ(m->shared_listed, 0);
      t->asked.push_back(
          key + " " + std::string(m->topic.ptr, m->topic.len) + " " +
          std::string(reinterpret_cast<const char*>(m->payload.ptr), m->payload.len));
      for (const auto& e : t->elsewhere) {
        if (e == key) return 0;
      }
      return 1;
    };
  }
};

TEST_F(BrokerRouting, SharedHereZeroSkipsTheLocalGroupNotPlainSubscribers) {
  SharedTap tap;
  tap.elsewhere = {"g/jobs/+"};
  broker_.add_tap(tap.tap());
  auto g1 = online("g1", 301), g2 = online("g2", 302), h = online("h", 303);
  auto plain = online("plain", 304);
  subscribe(g1, "$share/g/jobs/+");
  subscribe(g2, "$share/g/jobs/+");
  subscribe(h, "$share/h/jobs/#");
  subscribe(plain, "jobs/+");
  EXPECT_EQ(publish(message("jobs/1", "one")).reason, 0);
  EXPECT_TRUE(queued(g1).empty());
  EXPECT_TRUE(queued(g2).empty());
  EXPECT_EQ(queued(h).size(), 1u);
  EXPECT_EQ(queued(plain).size(), 1u);
  std::sort(tap.asked.begin(), tap.asked.end());
  EXPECT_EQ(tap.asked, (std::vector<std::string>{"g/jobs/+ jobs/1 one", "h/jobs/# jobs/1 one"}));
  // Served here again: one member gets it.
  tap.elsewhere.clear();
  publish(message("jobs/2", "two"));
  EXPECT_EQ(queued(g1).size() + queued(g2).size(), 1u);
  EXPECT_EQ(queued(h).size(), 2u);
  // Routed messages are never asked about.
  tap.asked.clear();
  Origin routed;
  routed.routed = true;
  publish(message("jobs/3", "three"), routed);
  EXPECT_TRUE(tap.asked.empty());
  EXPECT_EQ(queued(g1).size() + queued(g2).size(), 2u);
}

TEST_F(BrokerRouting, RoutedWithASharedListServesOnlyTheListedGroups) {
  auto g = online("g", 311), h = online("h", 312), plain = online("plain", 313);
  subscribe(g, "$share/g/t/+");
  subscribe(h, "$share/h/t/+");
  subscribe(plain, "t/+");
  const bb_str listed[] = {{"h/t/+", 5}, {"g/t/#", 5}, {"x/t/+", 5}};
  SharedGroups groups{listed, 3};
  Origin origin;
  origin.routed = true;
  origin.shared_only = &groups;
  EXPECT_EQ(publish(message("t/1", "x"), origin).reason, 0);
  EXPECT_TRUE(queued(g).empty());  // "g/t/#" is another group
  EXPECT_EQ(queued(h).size(), 1u);
  EXPECT_EQ(queued(plain).size(), 1u);
  // An empty list: no group, plain subscriptions still.
  SharedGroups none{nullptr, 0};
  origin.shared_only = &none;
  publish(message("t/2", "x"), origin);
  EXPECT_TRUE(queued(g).empty());
  EXPECT_EQ(queued(h).size(), 1u);
  EXPECT_EQ(queued(plain).size(), 2u);
  // No list (shared_listed 0): every group, as before.
  origin.shared_only = nullptr;
  publish(message("t/3", "x"), origin);
  EXPECT_EQ(queued(g).size(), 1u);
  EXPECT_EQ(queued(h).size(), 2u);
  EXPECT_EQ(queued(plain).size(), 3u);
}

TEST_F(BrokerRouting, TapsOfOlderModulesAreNeverCalledThroughTheNewFields) {
  // A 1.4 module's table ends before shared_members: whatever follows in
  // memory is not its.
  struct Older {
    bb_message_tap table{};
  } older;
  older.table.struct_size = offsetof(bb_message_tap, shared_members);
  older.table.message = [](void*, const bb_message*) {};
  older.table.shared_members = [](void*, bb_str, bb_str, uint32_t) {
    ADD_FAILURE() << "shared_members of a 1.4 tap";
  };
  older.table.shared_here = [](void*, const bb_message*, bb_str, bb_str) -> int32_t {
    ADD_FAILURE() << "shared_here of a 1.4 tap";
    return 0;
  };
  broker_.add_tap(Tap{&older.table, nullptr});
  auto a = online("a", 321), b = online("b", 322);
  subscribe(a, "$share/g/t");
  subscribe(b, "$share/g/t");
  for (int i = 0; i < 4; ++i) publish(message("t", "x"));
  EXPECT_EQ(queued(a).size(), 2u);
  EXPECT_EQ(queued(b).size(), 2u);
  broker_.detach_session(a, 321);
  broker_.unsubscribe(*b, "$share/g/t");
}

TEST_F(BrokerRouting, SharedMembersHearsOnlineCountsWhenTheyChange) {
  SharedTap tap;
  broker_.add_tap(tap.tap());
  using Calls = std::vector<std::pair<std::string, uint32_t>>;
  auto a = online("a", 331);
  {
    std::lock_guard lock(a->mutex());
    a->expiry_interval_s = 60;  // kept offline
  }
  subscribe(a, "$share/g/t/#");
  EXPECT_EQ(tap.members, (Calls{{"g/t/#", 1}}));
  subscribe(a, "$share/g/t/#", 2);  // replaced: same count, no call
  subscribe(a, "t/#");              // not shared: no call
  EXPECT_EQ(tap.members.size(), 1u);
  auto b = online("b", 332);
  subscribe(b, "$share/g/t/#");
  subscribe(b, "$share/other/x");
  EXPECT_EQ(tap.members, (Calls{{"g/t/#", 1}, {"g/t/#", 2}, {"other/x", 1}}));
  tap.members.clear();
  broker_.detach_session(a, 331);  // offline, kept
  EXPECT_EQ(tap.members, (Calls{{"g/t/#", 1}}));
  broker_.detach_session(a, 331);  // already offline: nothing changes
  EXPECT_EQ(tap.members.size(), 1u);
  auto again = broker_.attach_session("a", false, 333, {"test", "a"});
  EXPECT_EQ(again.session, a);
  EXPECT_EQ(tap.members, (Calls{{"g/t/#", 1}, {"g/t/#", 2}}));
  // A takeover by a new connection keeps it online: no change.
  broker_.attach_session("a", false, 334, {"test", "a"});
  EXPECT_EQ(tap.members.size(), 2u);
  tap.members.clear();
  broker_.unsubscribe(*b, "$share/g/t/#");
  EXPECT_EQ(tap.members, (Calls{{"g/t/#", 1}}));
  broker_.unsubscribe(*b, "$share/g/t/#");  // not subscribed any more
  EXPECT_EQ(tap.members.size(), 1u);
  // b's connection closes; its session (not persistent) ends.
  broker_.detach_session(b, 332);
  EXPECT_EQ(tap.members, (Calls{{"g/t/#", 1}, {"other/x", 0}}));
  // a's session ends with a clean start.
  tap.members.clear();
  broker_.attach_session("a", true, 335, {"test", "a"});
  EXPECT_EQ(tap.members, (Calls{{"g/t/#", 0}}));
}

// Takes `n` queued deliveries of `s` in flight, as a connection's flush does.
void send_from_queue(const SessionPtr& s, size_t n) {
  std::lock_guard lock(s->mutex());
  for (size_t i = 0; i < n && !s->queue.empty(); ++i) {
    const uint16_t id = s->allocate_packet_id();
    s->inflight[id] = session::Inflight{std::move(s->queue.front()), false};
    s->queued_bytes -= s->inflight[id].delivery.msg->payload.size();
    s->queue.pop_front();
  }
}

TEST_F(BrokerRouting, AnEndingMembersUnacknowledgedSharedMessagesGoToAnotherMember) {
  auto leaving = online("leaving", 341), offline = online("offline", 342);
  auto staying = online("staying", 343);
  {
    std::lock_guard lock(offline->mutex());
    offline->expiry_interval_s = 60;
  }
  subscribe(leaving, "$share/g/t", 1);
  subscribe(leaving, "u", 1);  // a plain subscription of its own too
  subscribe(offline, "$share/g/t", 1);
  subscribe(staying, "$share/g/t", 1);
  broker_.detach_session(offline, 342);
  // Every message of the group to `leaving` (the others unsubscribed for now).
  broker_.unsubscribe(*staying, "$share/g/t");
  broker_.unsubscribe(*offline, "$share/g/t");
  for (int i = 0; i < 4; ++i) publish(message("t", "m" + std::to_string(i)));
  publish(message("u", "plain only"));
  auto got = queued(leaving);
  ASSERT_EQ(got.size(), 5u);
  ASSERT_TRUE(got[0].shared);
  EXPECT_EQ(*got[0].shared, "g/t");
  send_from_queue(leaving, 2);  // m0, m1 sent, unacknowledged
  {
    // m1 is QoS 2 in its second phase: the client has it already.
    std::lock_guard lock(leaving->mutex());
    leaving->inflight.rbegin()->second.released = true;
  }
  subscribe(offline, "$share/g/t", 1);
  subscribe(staying, "$share/g/t", 1);
  // Its connection closes and the (non-persistent) session ends.
  broker_.detach_session(leaving, 341);
  auto moved = queued(staying);
  ASSERT_EQ(moved.size(), 3u);  // m0 (in flight), m2, m3 (queued); the online member
  EXPECT_EQ(moved[0].msg->payload, "m0");
  EXPECT_EQ(moved[1].msg->payload, "m2");
  EXPECT_EQ(moved[2].msg->payload, "m3");
  for (const auto& d : moved) {
    EXPECT_EQ(d.qos, 1);
    ASSERT_TRUE(d.shared);
    EXPECT_EQ(*d.shared, "g/t");
  }
  EXPECT_TRUE(queued(offline).empty());
  EXPECT_EQ(connections_.wakes[343], 1);
}

TEST_F(BrokerRouting, AnEndingMembersSharedMessagesGoToAnOfflineMemberOrAreDropped) {
  auto leaving = online("leaving", 351), sleeper = online("sleeper", 352);
  {
    std::lock_guard lock(sleeper->mutex());
    sleeper->expiry_interval_s = 60;
  }
  subscribe(leaving, "$share/g/t", 1);
  publish(message("t", "a"));
  publish(message("t", "b"));
  subscribe(sleeper, "$share/g/t", 1);
  broker_.detach_session(sleeper, 352);
  EXPECT_EQ(queued(leaving).size(), 2u);
  broker_.detach_session(leaving, 351);
  EXPECT_EQ(queued(sleeper).size(), 2u);  // the only member left, offline: queued for it
  // The last member ends: nobody here is left, its messages go with it.
  const uint64_t dropped = broker_.stats().messages_dropped.load();
  {
    std::lock_guard lock(sleeper->mutex());
    sleeper->expiry_interval_s = 0;
  }
  broker_.kick("sleeper", reason::kAdministrativeAction);
  EXPECT_TRUE(queued(sleeper).empty());
  EXPECT_EQ(broker_.stats().messages_dropped.load(), dropped);
  EXPECT_EQ(publish(message("t", "c")).reason, reason::kNoMatchingSubscribers);
}

// --- ABI 1.5: held acknowledgements and durable routed publishes ----------------

// What a tap heard: each message's topic and hold.
struct HeardTap {
  std::vector<std::pair<std::string, bb_ack_hold>> held;
  std::vector<std::string> plain;
  static void on_message(void* user, const bb_message* m) {
    static_cast<HeardTap*>(user)->plain.emplace_back(m->topic.ptr, m->topic.len);
  }
  static void on_held(void* user, const bb_message* m, bb_ack_hold hold) {
    static_cast<HeardTap*>(user)->held.emplace_back(std::string(m->topic.ptr, m->topic.len), hold);
  }
};

TEST(BrokerTaps, MessageHeldGetsTheHoldExactlyForAClientsQos1And2) {
  net::WorkerPool workers(1);
  Broker broker(config::Limits{}, workers);
  bb_message_tap table{};
  table.struct_size = sizeof(table);
  table.message = &HeardTap::on_message;  // not called: message_held is preferred
  table.message_held = &HeardTap::on_held;
  HeardTap a, b;
  EXPECT_FALSE(broker.holds_acks());
  broker.add_tap(Tap{&table, &a});
  broker.add_tap(Tap{&table, &b});
  EXPECT_TRUE(broker.holds_acks());

  auto msg = [](std::string topic, uint8_t qos) {
    auto m = std::make_shared<Message>();
    m->topic = std::move(topic);
    m->qos = qos;
    return m;
  };
  Origin client;
  client.ack_hold = 0x1234000007;  // what a connection passes for its QoS 1/2 PUBLISH
  EXPECT_EQ(broker.ingress(client, msg("c/1", 1), 0x1234).holds, 2u);
  EXPECT_EQ(broker.ingress(client, msg("c/2", 2), 0x1234).holds, 2u);
  // QoS 0 waits for nothing even if a hold was passed.
  EXPECT_EQ(broker.ingress(client, msg("c/0", 0), 0x1234).holds, 0u);
  // Wills, modules and the HTTP API pass no hold.
  EXPECT_EQ(broker.ingress(Origin{}, msg("m/1", 1), 0).holds, 0u);
  // Routed messages are not tapped again.
  Origin routed;
  routed.routed = true;
  routed.ack_hold = 0x1234000008;
  EXPECT_EQ(broker.ingress(routed, msg("r/1", 1), 0).holds, 0u);

  const std::vector<std::pair<std::string, bb_ack_hold>> want{
      {"c/1", 0x1234000007}, {"c/2", 0x1234000007}, {"c/0", 0}, {"m/1", 0}};
  EXPECT_EQ(a.held, want);
  EXPECT_EQ(b.held, want);
  EXPECT_TRUE(a.plain.empty());
}

TEST(BrokerTaps, ATapFromBeforeAbi15StillGetsMessageAndHoldsNothing) {
  net::WorkerPool workers(1);
  Broker broker(config::Limits{}, workers);
  // A 1.2 table ends at session_started; what follows is not the module's.
  bb_message_tap table{};
  table.struct_size = offsetof(bb_message_tap, session_started_as);
  table.message = &HeardTap::on_message;
  table.message_held = [](void*, const bb_message*, bb_ack_hold) {
    ADD_FAILURE() << "read past the table's struct_size";
  };
  HeardTap a;
  broker.add_tap(Tap{&table, &a});
  EXPECT_FALSE(broker.holds_acks());
  auto m = std::make_shared<Message>();
  m->topic = "old/1";
  m->qos = 1;
  Origin client;
  client.ack_hold = 0x1234000001;
  EXPECT_EQ(broker.ingress(client, std::move(m), 0x1234).holds, 0u);
  EXPECT_EQ(a.plain, std::vector<std::string>{"old/1"});
  EXPECT_TRUE(a.held.empty());
}

TEST(BrokerDurable, WhenDurableRunsAtOnceWithoutAStore) {
  net::WorkerPool workers(1);
  Broker broker(config::Limits{}, workers);
  bool done = false;
  broker.when_durable(42, [&] { done = true; });
  EXPECT_TRUE(done);
}

TEST(BrokerDurable, WhenDurableWaitsForTheQueueOfAPersistentSession) {
  char tmpl[] = "/tmp/bb-durable-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    net::WorkerPool workers(1);
    RecordedConnections connections;
    Broker broker(config::Limits{}, workers);
    broker.attach_connections(connections);
    store::State state;
    auto store = store::Store::open(dir, store::StoreSettings{}, state);
    ASSERT_TRUE(store);
    broker.attach_store(std::move(store), state);

    auto s = broker.attach_session("sleeper", false, 70, {"test", "sleeper"}).session;
    ASSERT_TRUE(s);
    broker.apply_policy(s, policy({{true, {"*"}, {"**"}}}));
    topic_tree::Subscriber sub;
    sub.session = s.get();
    sub.options.qos = 1;
    broker.subscribe(*s, "t", sub);
    {
      std::lock_guard lock(s->mutex());
      s->expiry_interval_s = 60;
    }
    broker.persist_session(*s);
    broker.detach_session(s, 70);

    auto m = std::make_shared<Message>();
    m->topic = "t";
    m->payload = "kept";
    m->qos = 1;
    Origin routed;
    routed.routed = true;
    const IngressResult r = broker.ingress(routed, std::move(m), 0);
    ASSERT_NE(r.durable_seq, 0u);  // queued for a persistent session
    std::promise<bool> durable;
    store::Store* st = broker.store();
    broker.when_durable(r.durable_seq, [&] { durable.set_value(st->durable(r.durable_seq)); });
    auto f = durable.get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_TRUE(f.get());
    broker.close_store();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace backbone::kernel::broker
