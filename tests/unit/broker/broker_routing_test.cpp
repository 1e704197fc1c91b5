// SPDX-License-Identifier: GPL-3.0-or-later
// Broker routing without a socket: ingress, delivery into sessions, shared
// groups and retained messages, with the connections replaced by a recorder.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace backbone::kernel::broker
