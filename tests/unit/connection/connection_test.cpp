// SPDX-License-Identifier: GPL-3.0-or-later
// The MQTT state machine end to end in process: the real Broker and
// Connection driven through a fake transport (bb_conn_ops), on the worker
// thread the connections are bound to.
#include "kernel/connection/connection.hpp"
#include "kernel/connection/connection_table.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <stdlib.h>

#include "kernel/authz/policy.hpp"
#include "kernel/broker/broker.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/protocol/codec.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::connection {
namespace {

using protocol::AckPacket;
using protocol::ConnackPacket;
using protocol::ConnectPacket;
using protocol::DecodeError;
using protocol::DisconnectPacket;
using protocol::FrameHeader;
using protocol::PacketType;
using protocol::Properties;
using protocol::PublishView;
using protocol::SubackPacket;
using protocol::SubscribeOptions;
using protocol::SubscribePacket;
using protocol::Version;
namespace reason = protocol::reason;

std::string B(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// --- the fake transport -------------------------------------------------------

struct FakeTransport {
  std::string written;  // every byte the broker wrote, in order
  size_t read_pos = 0;  // how far the test has parsed `written`
  bool closed = false;
  std::vector<int32_t> pauses;
};

bb_status fake_write(void* user, const bb_bytes* chunks, size_t count) {
  auto* t = static_cast<FakeTransport*>(user);
  EXPECT_FALSE(t->closed) << "write after close";
  for (size_t i = 0; i < count; ++i)
    t->written.append(reinterpret_cast<const char*>(chunks[i].ptr), chunks[i].len);
  return BB_OK;
}
void fake_pause(void* user, int32_t paused) {
  static_cast<FakeTransport*>(user)->pauses.push_back(paused);
}
void fake_close(void* user) {
  auto* t = static_cast<FakeTransport*>(user);
  EXPECT_FALSE(t->closed) << "closed twice";
  t->closed = true;
}
const bb_conn_ops kOps{sizeof(bb_conn_ops), 0, &fake_write, &fake_pause, &fake_close};

// One packet the broker sent.
struct Packet {
  FrameHeader header;
  std::string body;
  PacketType type() const { return header.type(); }
};

// A decoded PUBLISH that owns its bytes.
struct Pub {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  Properties props;
};

Pub as_publish(const Packet& p, Version v) {
  EXPECT_EQ(p.type(), PacketType::kPublish);
  PublishView view;
  DecodeError err;
  EXPECT_TRUE(protocol::decode_publish(p.header.flags(), p.body, v, view, err)) << err.message;
  return Pub{std::string(view.topic),
             std::string(view.payload),
             view.qos,
             view.retain,
             view.dup,
             view.packet_id,
             view.props};
}

AckPacket as_ack(const Packet& p, Version v) {
  AckPacket a;
  DecodeError err;
  EXPECT_TRUE(protocol::decode_ack(p.type(), p.header.flags(), p.body, v, a, err)) << err.message;
  return a;
}

ConnackPacket as_connack(const Packet& p, Version v) {
  EXPECT_EQ(p.type(), PacketType::kConnack);
  ConnackPacket c;
  DecodeError err;
  EXPECT_TRUE(protocol::decode_connack(p.body, v, c, err)) << err.message;
  return c;
}

SubackPacket as_suback(const Packet& p, Version v) {
  SubackPacket s;
  DecodeError err;
  EXPECT_TRUE(protocol::decode_suback(p.type(), p.body, v, s, err)) << err.message;
  return s;
}

DisconnectPacket as_disconnect(const Packet& p, Version v) {
  EXPECT_EQ(p.type(), PacketType::kDisconnect);
  DisconnectPacket d;
  DecodeError err;
  EXPECT_TRUE(protocol::decode_disconnect(p.type(), p.header.flags(), p.body, v, d, err))
      << err.message;
  return d;
}

// --- the harness ----------------------------------------------------------------

std::shared_ptr<const authz::Policy> allow_all() {
  std::string err;
  auto p = authz::Policy::compile({authz::Statement{true, {"*"}, {"**"}}}, &err);
  EXPECT_NE(p, nullptr) << err;
  return p;
}

class Harness;

struct Client {
  Harness* h = nullptr;
  FakeTransport* t = nullptr;
  ConnId id = 0;
  Version v = Version::kV311;

  void send(const std::string& bytes);
  // Packets written since the last call.
  std::vector<Packet> packets();
  bool closed() const { return t->closed; }

  void publish(std::string_view topic, std::string_view payload, uint8_t qos, uint16_t id = 0,
               Properties props = {}, bool retain = false, bool dup = false) {
    PublishView p;
    p.topic = topic;
    p.payload = payload;
    p.qos = qos;
    p.packet_id = id;
    p.props = std::move(props);
    p.retain = retain;
    p.dup = dup;
    std::string bytes;
    protocol::encode_publish(p, v, bytes);
    send(bytes);
  }
  void subscribe(std::string_view filter, SubscribeOptions opts, uint16_t id = 1,
                 uint32_t sub_id = 0) {
    SubscribePacket s;
    s.packet_id = id;
    s.subscriptions = {{std::string(filter), opts}};
    if (sub_id) s.props.subscription_ids = {sub_id};
    std::string bytes;
    protocol::encode_subscribe(s, v, bytes);
    send(bytes);
  }
  void ack(PacketType type, uint16_t id) {
    AckPacket a;
    a.type = type;
    a.packet_id = id;
    std::string bytes;
    protocol::encode_ack(a, v, bytes);
    send(bytes);
  }
};

class Harness {
 public:
  // `taps` are added before the worker starts; `store_dir`: with the
  // embedded store there.
  explicit Harness(config::Limits limits = {},
                   std::shared_ptr<const authz::Policy> anonymous = allow_all(),
                   std::vector<broker::Tap> taps = {}, const std::string& store_dir = {})
      : pool_(std::make_unique<net::WorkerPool>(1)),
        broker_(std::make_unique<broker::Broker>(limits, *pool_)),
        table_(std::make_unique<ConnectionTable>(*broker_, *pool_)) {
    broker_->set_anonymous_policy(std::move(anonymous));
    for (const broker::Tap& tap : taps) broker_->add_tap(tap);
    if (!store_dir.empty()) {
      store::State state;
      auto store = store::Store::open(store_dir, store::StoreSettings{}, state);
      EXPECT_TRUE(store);
      broker_->attach_store(std::move(store), state);
    }
    pool_->start();
  }
  ~Harness() {
    if (wedged_) {
      // The worker thread is stuck for good: joining it would hang the test
      // binary, so keep everything it may touch alive (and reachable, for
      // the leak checker) until the process exits.
      static auto* graveyard = new std::vector<void*>;
      graveyard->push_back(pool_.release());
      graveyard->push_back(broker_.release());
      graveyard->push_back(table_.release());
      graveyard->push_back(transports_.release());
      return;
    }
    pool_->stop();
    table_.reset();
    broker_.reset();
  }

  broker::Broker& broker() { return *broker_; }
  ConnectionTable& table() { return *table_; }

  // What host_api::ack_release does, from the test's thread (posted to the
  // connection's worker).
  void release(uint64_t hold) {
    table_->with_connection(
        Connection::conn_of_hold(hold),
        [seq = Connection::seq_of_hold(hold)](Connection& c) { c.release_hold(seq); });
    drain();
  }

  // Runs f on the worker thread and returns its result. A worker that does
  // not answer within 10 s is deadlocked: the test fails instead of hanging.
  template <class F>
  auto run(F f) -> decltype(f()) {
    using R = decltype(f());
    if (wedged_) return R();
    auto task = std::make_shared<std::packaged_task<R()>>(std::move(f));
    auto result = task->get_future();
    pool_->at(0).post([task] { (*task)(); });
    if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      wedged_ = true;
      ADD_FAILURE() << "the worker thread did not answer within 10 s (deadlocked)";
      return R();
    }
    return result.get();
  }
  // Lets deferred flushes (posted at the end of each event batch) run.
  void drain() {
    for (int i = 0; i < 3; ++i) run([] {});
  }

  Client open(Version v) {
    transports_->push_back(std::make_unique<FakeTransport>());
    FakeTransport* t = transports_->back().get();
    bb_conn_info info{};
    info.struct_size = sizeof(info);
    info.transport = bb_str{"test", 4};
    info.peer = bb_str{"peer:1", 6};
    const ConnId id = run([&] { return table_->open(info, &kOps, t); });
    EXPECT_NE(id, 0u);
    return Client{this, t, id, v};
  }

  void feed(ConnId id, const std::string& bytes) {
    run([&] { return table_->feed(id, bytes); });
    drain();
  }

  // The transport lost the connection.
  void transport_closed(ConnId id) {
    run([&] { table_->closed(id); });
    drain();
  }

  // Connection::tick at `now + ahead` on the worker.
  void tick(ConnId id, std::chrono::milliseconds ahead) {
    run([&] {
      Connection* c = table_->find(id);
      ASSERT_NE(c, nullptr);
      c->tick(message::Clock::now() + ahead);
    });
    drain();
  }

  size_t inflight(ConnId id) {
    return run([&]() -> size_t {
      Connection* c = table_->find(id);
      if (!c || !c->session()) return SIZE_MAX;
      std::lock_guard lock(c->session()->mutex());
      return c->session()->inflight.size();
    });
  }

  Client connect(Version v, const std::string& client_id, bool clean = true,
                 uint16_t keep_alive = 60, Properties props = {},
                 std::optional<protocol::Will> will = {}) {
    Client c = open(v);
    ConnectPacket p;
    p.version = v;
    p.client_id = client_id;
    p.clean_start = clean;
    p.keep_alive = keep_alive;
    p.props = std::move(props);
    p.will = std::move(will);
    std::string bytes;
    protocol::encode_connect(p, bytes);
    c.send(bytes);
    return c;
  }

  // Connects and checks for a successful CONNACK; returns the client with
  // nothing left to read.
  Client connect_ok(Version v, const std::string& client_id, bool clean = true,
                    uint16_t keep_alive = 60, Properties props = {},
                    std::optional<protocol::Will> will = {}, bool* session_present = nullptr) {
    Client c = connect(v, client_id, clean, keep_alive, std::move(props), std::move(will));
    auto packets = c.packets();
    EXPECT_GE(packets.size(), 1u);
    if (!packets.empty()) {
      const ConnackPacket ack = as_connack(packets[0], v);
      EXPECT_EQ(ack.reason_code, 0) << client_id;
      if (session_present) *session_present = ack.session_present;
    }
    EXPECT_FALSE(c.closed());
    return c;
  }

 private:
  std::unique_ptr<net::WorkerPool> pool_;
  bool wedged_ = false;
  std::unique_ptr<std::deque<std::unique_ptr<FakeTransport>>> transports_ =
      std::make_unique<std::deque<std::unique_ptr<FakeTransport>>>();
  std::unique_ptr<broker::Broker> broker_;
  std::unique_ptr<ConnectionTable> table_;
};

void Client::send(const std::string& bytes) {
  h->feed(id, bytes);
}

std::vector<Packet> Client::packets() {
  std::vector<Packet> out;
  while (t->read_pos < t->written.size()) {
    const std::string_view rest = std::string_view(t->written).substr(t->read_pos);
    FrameHeader fh;
    if (protocol::parse_frame_header(rest, fh) != protocol::FrameStatus::kComplete ||
        rest.size() < fh.header_length + size_t{fh.remaining_length}) {
      ADD_FAILURE() << "partial packet written";
      break;
    }
    out.push_back(Packet{fh, std::string(rest.substr(fh.header_length, fh.remaining_length))});
    t->read_pos += fh.header_length + fh.remaining_length;
  }
  return out;
}

std::string connect_bytes(Version v, const std::string& client_id) {
  ConnectPacket p;
  p.version = v;
  p.client_id = client_id;
  std::string bytes;
  protocol::encode_connect(p, bytes);
  return bytes;
}

// --- CONNECT / CONNACK ------------------------------------------------------------

TEST(ConnectionConnect, V311Connack) {
  Harness h;
  Client c = h.connect(Version::kV311, "c1");
  EXPECT_EQ(c.t->written, B({0x20, 0x02, 0x00, 0x00}));
  EXPECT_FALSE(c.closed());
  EXPECT_EQ(h.broker().session_count(), 1u);
}

TEST(ConnectionConnect, V5ConnackProperties) {
  config::Limits limits;
  limits.receive_maximum = 7;
  limits.max_packet_size = 5000;
  limits.topic_alias_maximum = 9;
  limits.max_keep_alive = 100;
  limits.max_session_expiry_s = 50;
  Harness h(limits);
  Properties props;
  props.session_expiry = 1000;
  Client c = h.connect(Version::kV5, "", true, 0, props);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  const ConnackPacket ack = as_connack(packets[0], Version::kV5);
  EXPECT_EQ(ack.reason_code, 0);
  EXPECT_FALSE(ack.session_present);
  EXPECT_EQ(ack.props.receive_maximum, 7);
  EXPECT_EQ(ack.props.maximum_packet_size, 5000u);
  EXPECT_EQ(ack.props.topic_alias_maximum, 9);
  EXPECT_EQ(ack.props.server_keep_alive, 100);  // keep alive 0 is raised
  EXPECT_EQ(ack.props.session_expiry, 50u);     // lowered to the limit
  ASSERT_TRUE(ack.props.assigned_client_id);
  EXPECT_EQ(ack.props.assigned_client_id->substr(0, 3), "bb-");
  EXPECT_EQ(ack.props.assigned_client_id->size(), 27u);
  EXPECT_FALSE(c.closed());
}

TEST(ConnectionConnect, V5ConnackOmitsWhatWasNotChanged) {
  Harness h;
  Properties props;
  props.session_expiry = 60;
  Client c = h.connect(Version::kV5, "given", true, 30, props);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  const ConnackPacket ack = as_connack(packets[0], Version::kV5);
  EXPECT_FALSE(ack.props.assigned_client_id);
  EXPECT_FALSE(ack.props.server_keep_alive);
  EXPECT_FALSE(ack.props.session_expiry);
  EXPECT_EQ(ack.props.receive_maximum, 100);
}

TEST(ConnectionConnect, V311EmptyClientIdNeedsCleanSession) {
  Harness h;
  Client c = h.connect(Version::kV311, "", false);
  EXPECT_EQ(c.t->written, B({0x20, 0x02, 0x00, 0x02}));
  EXPECT_TRUE(c.closed());
}

TEST(ConnectionConnect, UnsupportedProtocolVersionGetsConnack) {
  Harness h;
  Client c = h.open(Version::kV311);
  c.send(B({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x06, 0x02, 0x00, 0x3C, 0x00, 0x01, 'x'}));
  EXPECT_EQ(c.t->written, B({0x20, 0x02, 0x00, 0x01}));
  EXPECT_TRUE(c.closed());
}

TEST(ConnectionConnect, AnonymousRefusedWithoutPolicy) {
  Harness h(config::Limits{}, nullptr);
  Client c = h.connect(Version::kV5, "anon");
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_connack(packets[0], Version::kV5).reason_code, reason::kNotAuthorized);
  EXPECT_TRUE(c.closed());
}

TEST(ConnectionConnect, PacketBeforeConnectCloses) {
  Harness h;
  Client c = h.open(Version::kV5);
  c.send(B({0xC0, 0x00}));  // PINGREQ
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.t->written, "");  // no DISCONNECT before CONNACK
  Client d = h.open(Version::kV311);
  d.publish("a", "b", 0);
  EXPECT_TRUE(d.closed());
  EXPECT_EQ(d.t->written, "");
}

TEST(ConnectionConnect, SecondConnectCloses) {
  Harness h;
  Client v5 = h.connect_ok(Version::kV5, "twice5");
  v5.send(connect_bytes(Version::kV5, "twice5"));
  auto packets = v5.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kProtocolError);
  EXPECT_TRUE(v5.closed());

  Client v3 = h.connect_ok(Version::kV311, "twice3");
  v3.send(connect_bytes(Version::kV311, "twice3"));
  EXPECT_TRUE(v3.packets().empty());
  EXPECT_TRUE(v3.closed());
}

TEST(ConnectionConnect, MalformedConnectClosesWithoutConnack) {
  Harness h;
  Client c = h.open(Version::kV5);
  // Reserved connect flag set.
  c.send(B({0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x03, 0x00, 0x3C, 0x00, 0x01, 'x'}));
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.t->written, "");
}

TEST(ConnectionConnect, TakeoverDisconnectsTheOldConnection) {
  Harness h;
  Client first = h.connect_ok(Version::kV5, "same");
  Client second = h.connect_ok(Version::kV5, "same");
  auto packets = first.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kSessionTakenOver);
  EXPECT_TRUE(first.closed());
  EXPECT_FALSE(second.closed());
  EXPECT_EQ(h.broker().session_count(), 1u);
}

TEST(ConnectionConnect, PingreqGetsPingresp) {
  Harness h;
  Client c = h.connect_ok(Version::kV311, "ping");
  c.send(B({0xC0, 0x00}));
  EXPECT_EQ(c.t->written.substr(c.t->read_pos), B({0xD0, 0x00}));
  // A PINGREQ with a body is malformed.
  c.t->read_pos = c.t->written.size();
  c.send(B({0xC0, 0x01, 0x00}));
  EXPECT_TRUE(c.closed());
}

// --- QoS 1 ----------------------------------------------------------------------------

TEST(ConnectionQos1, PublishIsAckedDeliveredAndFreedByPuback) {
  Harness h;
  Client sub = h.connect_ok(Version::kV5, "sub");
  sub.subscribe("q1/+", {1}, 5);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].type(), PacketType::kSuback);
  EXPECT_EQ(as_suback(packets[0], Version::kV5).reason_codes, std::vector<uint8_t>{1});
  EXPECT_EQ(as_suback(packets[0], Version::kV5).packet_id, 5);

  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("q1/x", "hello", 1, 10);
  EXPECT_EQ(pub.t->written.substr(pub.t->read_pos), B({0x40, 0x02, 0x00, 0x0A}));

  packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const Pub got = as_publish(packets[0], Version::kV5);
  EXPECT_EQ(got.topic, "q1/x");
  EXPECT_EQ(got.payload, "hello");
  EXPECT_EQ(got.qos, 1);
  EXPECT_FALSE(got.dup);
  EXPECT_FALSE(got.retain);
  EXPECT_NE(got.packet_id, 0);
  EXPECT_EQ(h.inflight(sub.id), 1u);
  sub.ack(PacketType::kPuback, got.packet_id);
  EXPECT_EQ(h.inflight(sub.id), 0u);
  // A second PUBACK for the same id is ignored.
  sub.ack(PacketType::kPuback, got.packet_id);
  EXPECT_FALSE(sub.closed());
  EXPECT_TRUE(sub.packets().empty());
}

TEST(ConnectionQos1, V5PubackSaysNoMatchingSubscribers) {
  Harness h;
  Client pub = h.connect_ok(Version::kV5, "lonely");
  pub.publish("nobody/listens", "x", 1, 3);
  auto packets = pub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const AckPacket ack = as_ack(packets[0], Version::kV5);
  EXPECT_EQ(ack.type, PacketType::kPuback);
  EXPECT_EQ(ack.packet_id, 3);
  EXPECT_EQ(ack.reason_code, reason::kNoMatchingSubscribers);
}

TEST(ConnectionQos1, DeliveryQosIsTheMinimumOfBoth) {
  Harness h;
  Client sub0 = h.connect_ok(Version::kV311, "sub0");
  sub0.subscribe("m/#", {0});
  Client sub2 = h.connect_ok(Version::kV311, "sub2");
  sub2.subscribe("m/#", {2});
  sub0.packets();
  sub2.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("m/1", "a", 1, 1);
  auto p0 = sub0.packets();
  auto p2 = sub2.packets();
  ASSERT_EQ(p0.size(), 1u);
  ASSERT_EQ(p2.size(), 1u);
  EXPECT_EQ(as_publish(p0[0], Version::kV311).qos, 0);
  EXPECT_EQ(as_publish(p0[0], Version::kV311).packet_id, 0);
  EXPECT_EQ(as_publish(p2[0], Version::kV311).qos, 1);
}

TEST(ConnectionQos1, SendWindowFollowsReceiveMaximum) {
  Harness h;
  Properties props;
  props.receive_maximum = 2;
  Client sub = h.connect_ok(Version::kV5, "windowed", true, 60, props);
  sub.subscribe("w", {1});
  sub.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  for (uint16_t i = 1; i <= 3; ++i) pub.publish("w", "m" + std::to_string(i), 1, i);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 2u);
  const Pub first = as_publish(packets[0], Version::kV5);
  const Pub second = as_publish(packets[1], Version::kV5);
  EXPECT_EQ(first.payload, "m1");
  EXPECT_EQ(second.payload, "m2");
  EXPECT_NE(first.packet_id, second.packet_id);
  EXPECT_EQ(h.inflight(sub.id), 2u);
  sub.ack(PacketType::kPuback, second.packet_id);
  packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV5).payload, "m3");
  EXPECT_EQ(h.inflight(sub.id), 2u);
  sub.ack(PacketType::kPuback, first.packet_id);
  sub.ack(PacketType::kPuback, as_publish(packets[0], Version::kV5).packet_id);
  EXPECT_EQ(h.inflight(sub.id), 0u);
  EXPECT_TRUE(sub.packets().empty());
}

// --- QoS 2 ----------------------------------------------------------------------------

TEST(ConnectionQos2, InboundExactlyOnceWithDuplicate) {
  Harness h;
  Client sub = h.connect_ok(Version::kV311, "sub");
  sub.subscribe("q2", {0});
  sub.packets();
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("q2", "once", 2, 7);
  auto packets = pub.packets();
  ASSERT_EQ(packets.size(), 1u);
  AckPacket ack = as_ack(packets[0], Version::kV5);
  EXPECT_EQ(ack.type, PacketType::kPubrec);
  EXPECT_EQ(ack.packet_id, 7);
  EXPECT_EQ(ack.reason_code, 0);
  // The retransmission with DUP is acknowledged, not delivered again.
  pub.publish("q2", "once", 2, 7, {}, false, true);
  packets = pub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_ack(packets[0], Version::kV5).type, PacketType::kPubrec);
  EXPECT_EQ(as_ack(packets[0], Version::kV5).packet_id, 7);
  packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV311).payload, "once");
  // PUBREL completes the flow.
  pub.ack(PacketType::kPubrel, 7);
  EXPECT_EQ(pub.t->written.substr(pub.t->read_pos), B({0x70, 0x02, 0x00, 0x07}));
  pub.packets();
  // The id is free again: the same id is now a new message.
  pub.publish("q2", "twice", 2, 7);
  packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV311).payload, "twice");
}

TEST(ConnectionQos2, PubrelForUnknownIdGetsPubcomp92) {
  Harness h;
  Client v5 = h.connect_ok(Version::kV5, "v5");
  v5.ack(PacketType::kPubrel, 8);
  EXPECT_EQ(v5.t->written.substr(v5.t->read_pos), B({0x70, 0x03, 0x00, 0x08, 0x92}));
  EXPECT_FALSE(v5.closed());
  Client v3 = h.connect_ok(Version::kV311, "v3");
  v3.ack(PacketType::kPubrel, 8);
  EXPECT_EQ(v3.t->written.substr(v3.t->read_pos), B({0x70, 0x02, 0x00, 0x08}));
}

TEST(ConnectionQos2, OutboundFlow) {
  Harness h;
  Client sub = h.connect_ok(Version::kV5, "sub");
  sub.subscribe("o/#", {2});
  sub.packets();
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("o/1", "data", 2, 1);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const Pub got = as_publish(packets[0], Version::kV5);
  EXPECT_EQ(got.qos, 2);
  EXPECT_EQ(got.payload, "data");
  EXPECT_EQ(h.inflight(sub.id), 1u);
  sub.ack(PacketType::kPubrec, got.packet_id);
  packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].header.first_byte, 0x62);
  const AckPacket rel = as_ack(packets[0], Version::kV5);
  EXPECT_EQ(rel.type, PacketType::kPubrel);
  EXPECT_EQ(rel.packet_id, got.packet_id);
  EXPECT_EQ(rel.reason_code, 0);
  EXPECT_EQ(h.inflight(sub.id), 1u);  // awaiting PUBCOMP
  // A PUBACK for a QoS 2 id does not free it.
  sub.ack(PacketType::kPuback, got.packet_id);
  EXPECT_EQ(h.inflight(sub.id), 1u);
  sub.ack(PacketType::kPubcomp, got.packet_id);
  EXPECT_EQ(h.inflight(sub.id), 0u);
  // PUBREC for an unknown id: PUBREL with 0x92.
  sub.ack(PacketType::kPubrec, 999);
  packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_ack(packets[0], Version::kV5).type, PacketType::kPubrel);
  EXPECT_EQ(as_ack(packets[0], Version::kV5).reason_code, reason::kPacketIdNotFound);
}

TEST(ConnectionQos2, ReceiveMaximumExceededDisconnects) {
  config::Limits limits;
  limits.receive_maximum = 2;
  Harness h(limits);
  Client pub = h.connect(Version::kV5, "greedy");
  auto packets = pub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_connack(packets[0], Version::kV5).props.receive_maximum, 2);
  pub.publish("r", "1", 2, 1);
  pub.publish("r", "2", 2, 2);
  packets = pub.packets();
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_FALSE(pub.closed());
  pub.publish("r", "3", 2, 3);
  packets = pub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kReceiveMaximumExceeded);
  EXPECT_TRUE(pub.closed());
}

TEST(ConnectionQos2, ReleasedIdsDoNotCountTowardsReceiveMaximum) {
  config::Limits limits;
  limits.receive_maximum = 1;
  Harness h(limits);
  Client pub = h.connect_ok(Version::kV5, "steady");
  for (uint16_t i = 1; i <= 3; ++i) {
    pub.publish("r", "x", 2, i);
    pub.ack(PacketType::kPubrel, i);
  }
  auto packets = pub.packets();
  ASSERT_EQ(packets.size(), 6u);
  for (size_t i = 0; i < 6; ++i)
    EXPECT_EQ(packets[i].type(), i % 2 ? PacketType::kPubcomp : PacketType::kPubrec);
  EXPECT_FALSE(pub.closed());
}

// --- persistent sessions ----------------------------------------------------------------

TEST(ConnectionSession, PersistentSessionResendsWithDupAfterReconnect) {
  Harness h;
  bool present = true;
  Client sub = h.connect_ok(Version::kV311, "persist", false, 60, {}, {}, &present);
  EXPECT_FALSE(present);
  sub.subscribe("p/t", {1});
  sub.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("p/t", "m1", 1, 1);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const Pub first = as_publish(packets[0], Version::kV311);
  EXPECT_FALSE(first.dup);
  // Not acknowledged; the network drops.
  h.transport_closed(sub.id);
  EXPECT_EQ(h.broker().session_count(), 2u);
  pub.publish("p/t", "m2", 1, 2);  // queued while offline
  pub.publish("p/t", "m0", 0);     // QoS 0 is not queued for offline sessions

  Client again = h.connect(Version::kV311, "persist", false);
  packets = again.packets();
  ASSERT_EQ(packets.size(), 3u);
  EXPECT_EQ(packets[0].body, B({0x01, 0x00}));  // session present
  const Pub resent = as_publish(packets[1], Version::kV311);
  EXPECT_EQ(packets[1].header.first_byte, 0x3A);  // QoS 1 with DUP
  EXPECT_TRUE(resent.dup);
  EXPECT_EQ(resent.packet_id, first.packet_id);
  EXPECT_EQ(resent.payload, "m1");
  const Pub queued = as_publish(packets[2], Version::kV311);
  EXPECT_FALSE(queued.dup);
  EXPECT_EQ(queued.payload, "m2");
  EXPECT_NE(queued.packet_id, first.packet_id);
  EXPECT_EQ(h.inflight(again.id), 2u);
  again.ack(PacketType::kPuback, resent.packet_id);
  again.ack(PacketType::kPuback, queued.packet_id);
  EXPECT_EQ(h.inflight(again.id), 0u);
}

TEST(ConnectionSession, PersistentSessionResendsPubrelAfterReconnect) {
  Harness h;
  Client sub = h.connect_ok(Version::kV311, "persist2", false);
  sub.subscribe("p2", {2});
  sub.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("p2", "x", 2, 1);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const uint16_t id = as_publish(packets[0], Version::kV311).packet_id;
  sub.ack(PacketType::kPubrec, id);
  sub.packets();  // PUBREL
  h.transport_closed(sub.id);
  Client again = h.connect(Version::kV311, "persist2", false);
  packets = again.packets();
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].body, B({0x01, 0x00}));
  EXPECT_EQ(packets[1].header.first_byte, 0x62);
  EXPECT_EQ(as_ack(packets[1], Version::kV311).packet_id, id);
  again.ack(PacketType::kPubcomp, id);
  EXPECT_EQ(h.inflight(again.id), 0u);
}

// On reconnect the in-flight messages are resent; one that is now larger
// than the client's new Maximum Packet Size is dropped (send_publish erases
// it from session->inflight), which must not break the resend loop.
// Reconnects a persistent v5 session whose two in-flight messages are
// resent; the one listed in `big` (0 or 1) no longer fits the client's new
// Maximum Packet Size. Returns the number of PUBLISHes resent.
size_t resend_with_smaller_maximum(bool big_first) {
  Harness h;
  Properties props;
  props.session_expiry = 300;
  Client sub = h.connect_ok(Version::kV5, "shrinking", false, 60, props);
  sub.subscribe("pms/t", {1});
  sub.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  const std::string big(200, 'x');
  pub.publish("pms/t", big_first ? big : "small", 1, 1);
  pub.publish("pms/t", big_first ? "small" : big, 1, 2);
  EXPECT_EQ(sub.packets().size(), 2u);
  h.transport_closed(sub.id);

  props.maximum_packet_size = 64;
  Client again = h.connect(Version::kV5, "shrinking", false, 60, props);
  auto packets = again.packets();
  EXPECT_GE(packets.size(), 1u);
  if (packets.empty()) return 0;
  EXPECT_TRUE(as_connack(packets[0], Version::kV5).session_present);
  size_t publishes = 0;
  for (size_t i = 1; i < packets.size(); ++i) {
    const Pub p = as_publish(packets[i], Version::kV5);
    EXPECT_TRUE(p.dup);
    EXPECT_EQ(p.payload, "small");
    ++publishes;
  }
  EXPECT_EQ(h.inflight(again.id), 1u);
  EXPECT_FALSE(again.closed());
  return publishes;
}

// On reconnect the in-flight messages are resent from a loop over
// session->inflight; one now larger than the client's Maximum Packet Size is
// dropped by send_publish(), which erases it from that map mid-loop. Run in
// a child process: iterator use after erase may crash it.
TEST(ConnectionSessionDeathTest, ResendSkipsMessagesTooLargeForTheNewMaximumPacketSize) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  for (bool big_first : {true, false}) {
    EXPECT_EXIT(
        {
          const size_t n = resend_with_smaller_maximum(big_first);
          std::exit(n == 1 && !::testing::Test::HasFailure() ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "")
        << (big_first ? "large message first" : "large message last");
  }
}

TEST(ConnectionSession, CleanSessionDiscardsState) {
  Harness h;
  Client sub = h.connect_ok(Version::kV311, "clean", false);
  sub.subscribe("c/#", {1});
  EXPECT_EQ(h.broker().subscription_count(), 1u);
  h.transport_closed(sub.id);
  bool present = true;
  Client again = h.connect_ok(Version::kV311, "clean", true, 60, {}, {}, &present);
  EXPECT_FALSE(present);
  EXPECT_EQ(h.broker().subscription_count(), 0u);
  h.transport_closed(again.id);
  EXPECT_EQ(h.broker().session_count(), 0u);
}

TEST(ConnectionSession, V5SessionExpiryOnDisconnectNeedsNonZeroAtConnect) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "expiry0");
  DisconnectPacket d;
  d.props.session_expiry = 30;
  std::string bytes;
  protocol::encode_disconnect(PacketType::kDisconnect, d, Version::kV5, bytes);
  c.send(bytes);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kProtocolError);
  EXPECT_TRUE(c.closed());
}

// --- keep alive and timeouts -------------------------------------------------------------

TEST(ConnectionKeepAlive, V311ClosesAfterOneAndAHalfPeriods) {
  Harness h;
  Client c = h.connect_ok(Version::kV311, "ka3", true, 10);
  h.tick(c.id, std::chrono::seconds(14));
  EXPECT_FALSE(c.closed());
  h.tick(c.id, std::chrono::seconds(16));
  EXPECT_TRUE(c.closed());
  EXPECT_TRUE(c.packets().empty());  // no DISCONNECT in 3.1.1
}

TEST(ConnectionKeepAlive, V5SendsDisconnect8D) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "ka5", true, 10);
  h.tick(c.id, std::chrono::seconds(14));
  EXPECT_FALSE(c.closed());
  h.tick(c.id, std::chrono::seconds(16));
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kKeepAliveTimeout);
  EXPECT_TRUE(c.closed());
}

TEST(ConnectionKeepAlive, V311ZeroMeansNoKeepAlive) {
  Harness h;
  Client c = h.connect_ok(Version::kV311, "ka0", true, 0);
  h.tick(c.id, std::chrono::hours(24));
  EXPECT_FALSE(c.closed());
}

TEST(ConnectionKeepAlive, ConnectTimeout) {
  config::Limits limits;
  limits.connect_timeout_ms = 2000;
  Harness h(limits);
  Client c = h.open(Version::kV311);
  h.tick(c.id, std::chrono::milliseconds(1500));
  EXPECT_FALSE(c.closed());
  h.tick(c.id, std::chrono::milliseconds(2500));
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.t->written, "");
}

// --- wills ---------------------------------------------------------------------------------

protocol::Will make_will(std::string topic, std::string payload, uint8_t qos) {
  protocol::Will w;
  w.topic = std::move(topic);
  w.payload = std::move(payload);
  w.qos = qos;
  return w;
}

TEST(ConnectionWill, PublishedOnAbnormalClose) {
  Harness h;
  Client sub = h.connect_ok(Version::kV5, "watcher");
  sub.subscribe("will/#", {1});
  sub.packets();
  protocol::Will will = make_will("will/dying", "gone", 1);
  will.props.content_type = "text/plain";
  will.props.user = {{"k", "v"}};
  Client dying = h.connect_ok(Version::kV5, "dying", true, 60, {}, will);
  EXPECT_TRUE(sub.packets().empty());
  h.transport_closed(dying.id);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const Pub got = as_publish(packets[0], Version::kV5);
  EXPECT_EQ(got.topic, "will/dying");
  EXPECT_EQ(got.payload, "gone");
  EXPECT_EQ(got.qos, 1);
  EXPECT_EQ(got.props.content_type, "text/plain");
  EXPECT_EQ(got.props.user, will.props.user);
}

TEST(ConnectionWill, PublishedOnKeepAliveTimeout) {
  Harness h;
  Client sub = h.connect_ok(Version::kV311, "watcher");
  sub.subscribe("will/#", {0});
  sub.packets();
  Client dying = h.connect_ok(Version::kV311, "silent", true, 10, {}, make_will("will/s", "x", 0));
  h.tick(dying.id, std::chrono::seconds(20));
  EXPECT_TRUE(dying.closed());
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV311).topic, "will/s");
}

TEST(ConnectionWill, NotPublishedOnDisconnect) {
  Harness h;
  Client sub = h.connect_ok(Version::kV311, "watcher");
  sub.subscribe("will/#", {0});
  sub.packets();
  Client leaving =
      h.connect_ok(Version::kV311, "leaving", true, 60, {}, make_will("will/l", "x", 0));
  leaving.send(B({0xE0, 0x00}));
  EXPECT_TRUE(leaving.closed());
  h.transport_closed(leaving.id);
  EXPECT_TRUE(sub.packets().empty());
}

TEST(ConnectionWill, V5DisconnectWithWillPublishesIt) {
  Harness h;
  Client sub = h.connect_ok(Version::kV311, "watcher");
  sub.subscribe("will/#", {0});
  sub.packets();
  Client leaving = h.connect_ok(Version::kV5, "leaving", true, 60, {}, make_will("will/w", "x", 0));
  leaving.send(B({0xE0, 0x01, 0x04}));
  EXPECT_TRUE(leaving.closed());
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV311).topic, "will/w");
}

TEST(ConnectionWill, RetainedWillIsStored) {
  Harness h;
  protocol::Will will = make_will("will/r", "last", 0);
  will.retain = true;
  Client dying = h.connect_ok(Version::kV311, "dying", true, 60, {}, will);
  h.transport_closed(dying.id);
  EXPECT_EQ(h.broker().retained().size(), 1u);
  Client sub = h.connect_ok(Version::kV311, "late");
  sub.subscribe("will/+", {0});
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 2u);
  EXPECT_EQ(packets[0].type(), PacketType::kSuback);
  const Pub got = as_publish(packets[1], Version::kV311);
  EXPECT_EQ(got.topic, "will/r");
  EXPECT_TRUE(got.retain);
}

// --- protocol errors ------------------------------------------------------------------------

TEST(ConnectionErrors, TopicAliasOutOfRange) {
  config::Limits limits;
  limits.topic_alias_maximum = 4;
  Harness h(limits);
  for (uint16_t alias : {uint16_t{0}, uint16_t{5}, uint16_t{65535}}) {
    Client c = h.connect_ok(Version::kV5, "alias" + std::to_string(alias));
    Properties props;
    props.topic_alias = alias;
    c.publish("a/b", "x", 0, 0, props);
    auto packets = c.packets();
    ASSERT_EQ(packets.size(), 1u) << alias;
    EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kTopicAliasInvalid)
        << alias;
    EXPECT_TRUE(c.closed());
  }
}

TEST(ConnectionErrors, UnknownTopicAliasIsProtocolError) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "alias");
  Properties props;
  props.topic_alias = 2;
  c.publish("", "x", 0, 0, props);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kProtocolError);
}

TEST(ConnectionErrors, InboundTopicAliasResolves) {
  Harness h;
  Client sub = h.connect_ok(Version::kV311, "sub");
  sub.subscribe("alias/#", {0});
  sub.packets();
  Client pub = h.connect_ok(Version::kV5, "pub");
  Properties props;
  props.topic_alias = 1;
  pub.publish("alias/one", "a", 0, 0, props);
  pub.publish("", "b", 0, 0, props);
  props.topic_alias = 1;
  pub.publish("alias/two", "c", 0, 0, props);  // rebinds alias 1
  pub.publish("", "d", 0, 0, props);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 4u);
  EXPECT_EQ(as_publish(packets[0], Version::kV311).topic, "alias/one");
  EXPECT_EQ(as_publish(packets[1], Version::kV311).topic, "alias/one");
  EXPECT_EQ(as_publish(packets[1], Version::kV311).payload, "b");
  EXPECT_EQ(as_publish(packets[2], Version::kV311).topic, "alias/two");
  EXPECT_EQ(as_publish(packets[3], Version::kV311).topic, "alias/two");
  EXPECT_FALSE(pub.closed());
}

TEST(ConnectionErrors, OversizedPacketRefusedFromItsHeader) {
  config::Limits limits;
  limits.max_packet_size = 1024;
  Harness h(limits);
  Client c = h.connect_ok(Version::kV5, "big");
  // Only the fixed header of a 2 MB PUBLISH.
  c.send(B({0x30, 0xFF, 0xFF, 0x7F}));
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kPacketTooLarge);
  EXPECT_TRUE(c.closed());
}

TEST(ConnectionErrors, PacketSizeLimitIsInclusive) {
  config::Limits limits;
  limits.max_packet_size = 100;
  Harness h(limits);
  Client c = h.connect_ok(Version::kV311, "edge");
  // Exactly 100 bytes: 2 header + 2 length + 1 topic + 95 payload.
  c.publish("t", std::string(95, 'x'), 0);
  EXPECT_FALSE(c.closed());
  c.publish("t", std::string(96, 'x'), 0);
  EXPECT_TRUE(c.closed());
}

TEST(ConnectionErrors, OversizedConnectRefusedBeforeAuth) {
  config::Limits limits;
  limits.max_packet_size_before_auth = 128;
  Harness h(limits);
  Client c = h.open(Version::kV311);
  c.send(B({0x10, 0xFF, 0x01}));  // CONNECT of 255 bytes, header only
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(c.t->written, "");
}

TEST(ConnectionErrors, FiveByteRemainingLengthIsMalformed) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "varint");
  c.send(B({0x30, 0x80, 0x80, 0x80, 0x80, 0x01}));
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kMalformedPacket);
}

TEST(ConnectionErrors, MalformedPublishDisconnectsWithDecoderReason) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "bad");
  c.send(B({0x30, 0x04, 0x00, 0x01, '#', 0x00}));  // wildcard in the topic name
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kTopicNameInvalid);
  EXPECT_TRUE(c.closed());
}

TEST(ConnectionErrors, AuthWithoutMethodIsProtocolError) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "auth");
  c.send(B({0xF0, 0x00}));
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kProtocolError);
}

// MQTT 5 §3.3.4 [MQTT-3.3.4-6]: a PUBLISH from a client must not carry a
// Subscription Identifier; it is a protocol error.
TEST(ConnectionErrors, ClientPublishWithSubscriptionIdIsProtocolError) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "subid");
  Properties props;
  props.subscription_ids = {5};
  c.publish("t", "x", 1, 1, props);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].type(), PacketType::kDisconnect);
  if (packets[0].type() == PacketType::kDisconnect) {
    EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kProtocolError);
  }
  EXPECT_TRUE(c.closed());
}

// --- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------------

TEST(ConnectionSubscribe, InvalidFiltersGetFailureCodes) {
  Harness h;
  for (Version v : {Version::kV5, Version::kV311}) {
    const uint8_t invalid = v == Version::kV5 ? 0x8F : 0x80;
    Client c = h.connect_ok(v, v == Version::kV5 ? "s5" : "s3");
    SubscribePacket s;
    s.packet_id = 9;
    s.subscriptions = {{"ok/+", {1}},      {"a/#/b", {0}},       {"a+", {0}}, {"$share/g", {0}},
                       {"$share//a", {0}}, {"$share/g+/a", {0}}, {"#", {2}}};
    std::string bytes;
    protocol::encode_subscribe(s, v, bytes);
    c.send(bytes);
    auto packets = c.packets();
    ASSERT_EQ(packets.size(), 1u);
    const SubackPacket ack = as_suback(packets[0], v);
    EXPECT_EQ(ack.packet_id, 9);
    EXPECT_EQ(ack.reason_codes,
              (std::vector<uint8_t>{1, invalid, invalid, invalid, invalid, invalid, 2}));
    EXPECT_FALSE(c.closed());
  }
  EXPECT_EQ(h.broker().subscription_count(), 4u);
}

TEST(ConnectionSubscribe, TopicLevelLimitApplies) {
  config::Limits limits;
  limits.max_topic_levels = 3;
  Harness h(limits);
  Client c = h.connect_ok(Version::kV5, "levels");
  c.subscribe("a/b/c/d", {0});
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_suback(packets[0], Version::kV5).reason_codes, std::vector<uint8_t>{0x8F});
}

TEST(ConnectionSubscribe, DeniedByPolicy) {
  std::string err;
  auto policy = authz::Policy::compile({authz::Statement{true, {"*"}, {"**"}},
                                        authz::Statement{false, {"mqtt:subscribe"}, {"secret/#"}}},
                                       &err);
  ASSERT_NE(policy, nullptr) << err;
  Harness h(config::Limits{}, policy);
  for (Version v : {Version::kV5, Version::kV311}) {
    Client c = h.connect_ok(v, v == Version::kV5 ? "d5" : "d3");
    c.subscribe("secret/x", {0});
    auto packets = c.packets();
    ASSERT_EQ(packets.size(), 1u);
    EXPECT_EQ(as_suback(packets[0], v).reason_codes,
              std::vector<uint8_t>{static_cast<uint8_t>(v == Version::kV5 ? 0x87 : 0x80)});
  }
}

TEST(ConnectionSubscribe, ReadRevokedWhileSubscribedStopsDeliveries) {
  // Under allow-all the subscription is known readable as a whole; a
  // narrower policy later must still be asked per message.
  Harness h;
  Client sub = h.connect_ok(Version::kV5, "reader");
  sub.subscribe("r/+", {0});
  sub.packets();
  Client pub = h.connect_ok(Version::kV5, "writer");
  pub.publish("r/secret", "before", 0);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV5).payload, "before");
  std::string err;
  auto narrower = authz::Policy::compile(
      {authz::Statement{true, {"*"}, {"**"}}, authz::Statement{false, {"mqtt:read"}, {"r/secret"}}},
      &err);
  ASSERT_NE(narrower, nullptr) << err;
  h.broker().update_principal("anonymous", "anonymous", narrower);
  pub.publish("r/secret", "after", 0);
  pub.publish("r/open", "open", 0);
  packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV5).payload, "open");
}

TEST(ConnectionSubscribe, NoLocalOnSharedSubscriptionIsProtocolError) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "nl");
  c.subscribe("$share/g/t", {0, true, false, 0});
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kProtocolError);
}

TEST(ConnectionSubscribe, NoLocalSkipsOwnMessages) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "self");
  c.subscribe("loop", {0, true, false, 0});
  c.packets();
  c.publish("loop", "x", 0);
  EXPECT_TRUE(c.packets().empty());
  Client other = h.connect_ok(Version::kV5, "other");
  other.publish("loop", "y", 0);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV5).payload, "y");
}

TEST(ConnectionSubscribe, OverlappingSubscriptionsDeliverOnceWithAllIds) {
  Harness h;
  Client sub = h.connect_ok(Version::kV5, "overlap");
  sub.subscribe("x/+", {0}, 1, 11);
  sub.subscribe("x/#", {1}, 2, 22);
  sub.packets();
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("x/y", "p", 2, 1);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const Pub got = as_publish(packets[0], Version::kV5);
  EXPECT_EQ(got.qos, 1);
  std::vector<uint32_t> ids = got.props.subscription_ids;
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<uint32_t>{11, 22}));
}

TEST(ConnectionSubscribe, RetainHandling) {
  Harness h;
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("ret/a", "kept", 1, 1, {}, true);
  Client sub = h.connect_ok(Version::kV5, "sub");
  // Handling 0: sent on every subscribe.
  sub.subscribe("ret/#", {1, false, false, 0});
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 2u);
  const Pub got = as_publish(packets[1], Version::kV5);
  EXPECT_TRUE(got.retain);
  EXPECT_EQ(got.payload, "kept");
  sub.ack(PacketType::kPuback, got.packet_id);
  // Handling 1: only when the subscription is new.
  sub.subscribe("ret/#", {1, false, false, 1});
  EXPECT_EQ(sub.packets().size(), 1u);
  // Handling 2: never.
  sub.subscribe("ret/+", {1, false, false, 2});
  EXPECT_EQ(sub.packets().size(), 1u);
  // An empty retained payload clears it.
  pub.publish("ret/a", "", 0, 0, {}, true);
  EXPECT_EQ(h.broker().retained().size(), 0u);
}

TEST(ConnectionSubscribe, RetainFlagOfLiveMessagesFollowsRetainAsPublished) {
  Harness h;
  Client plain = h.connect_ok(Version::kV5, "plain");
  plain.subscribe("rap", {0, false, false, 2});
  Client rap = h.connect_ok(Version::kV5, "rap");
  rap.subscribe("rap", {0, false, true, 2});
  plain.packets();
  rap.packets();
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("rap", "x", 0, 0, {}, true);
  auto a = plain.packets();
  auto b = rap.packets();
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_FALSE(as_publish(a[0], Version::kV5).retain);
  EXPECT_TRUE(as_publish(b[0], Version::kV5).retain);
}

TEST(ConnectionSubscribe, UnsubscribeReasonCodes) {
  Harness h;
  Client c = h.connect_ok(Version::kV5, "unsub");
  c.subscribe("u/1", {0});
  c.packets();
  protocol::UnsubscribePacket u;
  u.packet_id = 4;
  u.filters = {"u/1", "u/2"};
  std::string bytes;
  protocol::encode_unsubscribe(u, Version::kV5, bytes);
  c.send(bytes);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(packets[0].type(), PacketType::kUnsuback);
  const SubackPacket ack = as_suback(packets[0], Version::kV5);
  EXPECT_EQ(ack.packet_id, 4);
  EXPECT_EQ(ack.reason_codes, (std::vector<uint8_t>{0x00, 0x11}));
  EXPECT_EQ(h.broker().subscription_count(), 0u);
}

TEST(ConnectionSubscribe, SharedSubscriptionDeliversToOneMember) {
  Harness h;
  Client a = h.connect_ok(Version::kV311, "a");
  Client b = h.connect_ok(Version::kV311, "b");
  a.subscribe("$share/g/job/#", {0});
  b.subscribe("$share/g/job/#", {0});
  a.packets();
  b.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  for (int i = 0; i < 4; ++i) pub.publish("job/x", std::to_string(i), 0);
  const auto pa = a.packets();
  const auto pb = b.packets();
  EXPECT_EQ(pa.size() + pb.size(), 4u);
  EXPECT_EQ(pa.size(), 2u);
  EXPECT_EQ(pb.size(), 2u);
}

// --- outbound v5 features ----------------------------------------------------------------------

TEST(ConnectionOutbound, MessageExpiryIsForwardedAndExpiredMessagesDropped) {
  Harness h;
  Client sub = h.connect_ok(Version::kV5, "sub");
  sub.subscribe("e", {1});
  sub.packets();
  Client pub = h.connect_ok(Version::kV5, "pub");
  Properties props;
  props.message_expiry = 100;
  props.response_topic = "resp";
  pub.publish("e", "x", 1, 1, props);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const Pub got = as_publish(packets[0], Version::kV5);
  ASSERT_TRUE(got.props.message_expiry);
  EXPECT_LE(*got.props.message_expiry, 100u);
  EXPECT_GE(*got.props.message_expiry, 99u);
  EXPECT_EQ(got.props.response_topic, "resp");
  EXPECT_FALSE(got.props.topic_alias);
}

TEST(ConnectionOutbound, TopicAliasesAreAssignedUpToTheClientMaximum) {
  Harness h;
  Properties props;
  props.topic_alias_maximum = 1;
  Client sub = h.connect_ok(Version::kV5, "sub", true, 60, props);
  sub.subscribe("ta/#", {0});
  sub.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("ta/1", "a", 0);
  pub.publish("ta/1", "b", 0);
  pub.publish("ta/2", "c", 0);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 3u);
  const Pub p1 = as_publish(packets[0], Version::kV5);
  const Pub p2 = as_publish(packets[1], Version::kV5);
  const Pub p3 = as_publish(packets[2], Version::kV5);
  EXPECT_EQ(p1.topic, "ta/1");
  EXPECT_EQ(p1.props.topic_alias, 1);
  EXPECT_EQ(p2.topic, "");
  EXPECT_EQ(p2.props.topic_alias, 1);
  EXPECT_EQ(p2.payload, "b");
  EXPECT_EQ(p3.topic, "ta/2");
  EXPECT_FALSE(p3.props.topic_alias);
}

TEST(ConnectionOutbound, TooLargeForTheClientIsDropped) {
  Harness h;
  Properties props;
  props.maximum_packet_size = 64;
  Client sub = h.connect_ok(Version::kV5, "small", true, 60, props);
  sub.subscribe("big/#", {1});
  sub.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("big/t", std::string(100, 'x'), 1, 1);
  EXPECT_TRUE(sub.packets().empty());
  EXPECT_EQ(h.inflight(sub.id), 0u);
  pub.publish("big/t", "fits", 1, 2);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_publish(packets[0], Version::kV5).payload, "fits");
}

// A PUBLISH dropped for exceeding the client's Maximum Packet Size must not
// leave a topic alias behind that the client never saw: the next message on
// that topic would arrive with an empty topic and an alias unknown to the
// client (a protocol error on its side).
TEST(ConnectionOutbound, DroppedPublishDoesNotConsumeTopicAlias) {
  Harness h;
  Properties props;
  props.maximum_packet_size = 64;
  props.topic_alias_maximum = 5;
  Client sub = h.connect_ok(Version::kV5, "small", true, 60, props);
  sub.subscribe("big/#", {0});
  sub.packets();
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("big/t", std::string(100, 'x'), 0);  // dropped
  pub.publish("big/t", "fits", 0);
  auto packets = sub.packets();
  ASSERT_EQ(packets.size(), 1u);
  const Pub got = as_publish(packets[0], Version::kV5);
  EXPECT_EQ(got.payload, "fits");
  EXPECT_EQ(got.topic, "big/t") << "alias " << got.props.topic_alias.value_or(0)
                                << " sent without ever being established";
}

// MQTT 5 [MQTT-3.1.2-29]: with Request Problem Information 0 the server
// must not send a Reason String on anything but PUBLISH, CONNACK or
// DISCONNECT.
TEST(ConnectionOutbound, NoReasonStringWhenProblemInformationNotRequested) {
  std::string err;
  auto policy = authz::Policy::compile({authz::Statement{true, {"*"}, {"**"}},
                                        authz::Statement{false, {"mqtt:publish"}, {"denied/#"}}},
                                       &err);
  ASSERT_NE(policy, nullptr) << err;
  Harness h(config::Limits{}, policy);
  Properties props;
  props.request_problem_info = 0;
  Client c = h.connect_ok(Version::kV5, "quiet", true, 60, props);
  c.publish("denied/x", "x", 1, 1);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  const AckPacket ack = as_ack(packets[0], Version::kV5);
  EXPECT_EQ(ack.reason_code, reason::kNotAuthorized);
  EXPECT_FALSE(ack.props.reason_string) << *ack.props.reason_string;
}

TEST(ConnectionOutbound, DeniedPublishGets87WithReasonStringByDefault) {
  std::string err;
  auto policy = authz::Policy::compile({authz::Statement{true, {"*"}, {"**"}},
                                        authz::Statement{false, {"mqtt:publish"}, {"denied/#"}}},
                                       &err);
  ASSERT_NE(policy, nullptr) << err;
  Harness h(config::Limits{}, policy);
  Client c = h.connect_ok(Version::kV5, "loud");
  c.publish("denied/x", "x", 2, 1);
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  const AckPacket ack = as_ack(packets[0], Version::kV5);
  EXPECT_EQ(ack.type, PacketType::kPubrec);
  EXPECT_EQ(ack.reason_code, reason::kNotAuthorized);
  EXPECT_TRUE(ack.props.reason_string);
  // v3.1.1 has no negative ack: PUBACK success, message dropped.
  Client v3 = h.connect_ok(Version::kV311, "v3");
  v3.publish("denied/x", "x", 1, 1);
  EXPECT_EQ(v3.t->written.substr(v3.t->read_pos), B({0x40, 0x02, 0x00, 0x01}));
  EXPECT_FALSE(v3.closed());
}

// --- what a cluster module sees (bb_message_tap) and sends (publish_routed) ---

struct TapRecord {
  std::mutex mutex;
  std::vector<std::string> messages;  // "topic payload"
  std::vector<std::string> sessions;
};
void record_message(void* user, const bb_message* m) {
  auto* r = static_cast<TapRecord*>(user);
  std::lock_guard lock(r->mutex);
  r->messages.push_back(std::string(m->topic.ptr, m->topic.len) + " " +
                        std::string(reinterpret_cast<const char*>(m->payload.ptr), m->payload.len));
}
void record_session(void* user, bb_str client_id, uint64_t connected_at_unix_ms) {
  EXPECT_GT(connected_at_unix_ms, 1'700'000'000'000u);
  auto* r = static_cast<TapRecord*>(user);
  std::lock_guard lock(r->mutex);
  r->sessions.emplace_back(client_id.ptr, client_id.len);
}
// A tap of ABI 1.2: session starts without their principal.
// (Built field by field: fields appended to bb_message_tap stay null.)
const bb_message_tap kRecordingTap = [] {
  bb_message_tap t{};
  t.struct_size = offsetof(bb_message_tap, session_started_as);
  t.message = &record_message;
  t.session_started = &record_session;
  return t;
}();

std::shared_ptr<const authz::Policy> allow_all_but_reading_secrets() {
  std::string err;
  auto p = authz::Policy::compile(
      {authz::Statement{true, {"*"}, {"**"}}, authz::Statement{false, {"mqtt:read"}, {"secret/#"}}},
      &err);
  EXPECT_NE(p, nullptr) << err;
  return p;
}

TEST(ClusterTap, SeesAdmittedMessagesAndSessionsButNotRoutedOnes) {
  Harness h({}, allow_all_but_reading_secrets());
  TapRecord record;
  h.broker().add_tap(broker::Tap{&kRecordingTap, &record});
  const nlohmann::json rule = {{"patterns", {{{"pattern", "small/#"}, {"maxMessageSize", 4}}}}};
  std::string error;
  ASSERT_TRUE(h.broker().set_topic_rules("small", &rule, &error)) << error;

  Client sub = h.connect_ok(Version::kV5, "sub");
  SubscribeOptions opts;
  sub.subscribe("#", opts);
  sub.packets();
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("open/a", "one", 0);
  pub.publish("small/a", "too long", 0);  // refused by the rule: not shown to the tap
  {
    std::lock_guard lock(record.mutex);
    EXPECT_EQ(record.messages, std::vector<std::string>{"open/a one"});
    EXPECT_EQ(record.sessions, (std::vector<std::string>{"sub", "pub"}));
  }

  // A message another broker accepted skips this broker's rules and taps,
  // but each subscriber's read permission still holds.
  auto routed = [&](std::string topic, std::string payload) {
    auto m = std::make_shared<message::Message>();
    m->topic = std::move(topic);
    m->payload = std::move(payload);
    broker::Origin origin;
    origin.routed = true;
    h.run([&] { h.broker().ingress(origin, m, 0); });
    h.drain();
  };
  routed("small/b", "longer than four");
  routed("secret/b", "hidden");
  auto got = sub.packets();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(as_publish(got[0], Version::kV5).topic, "open/a");
  EXPECT_EQ(as_publish(got[1], Version::kV5).payload, "longer than four");
  std::lock_guard lock(record.mutex);
  EXPECT_EQ(record.messages.size(), 1u);
}

TEST(ClusterTap, TakeoverDisconnectsWithSessionTakenOver) {
  Harness h;
  const auto before = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
  Client c = h.connect_ok(Version::kV5, "roamer");
  // A connection elsewhere that is older than this one loses: nothing happens.
  EXPECT_FALSE(h.broker().kick("roamer", reason::kSessionTakenOver, before - 1));
  h.drain();
  EXPECT_TRUE(c.packets().empty());
  EXPECT_FALSE(c.closed());
  const uint64_t later = before + 60'000;
  EXPECT_TRUE(h.broker().kick("roamer", reason::kSessionTakenOver, later));
  h.drain();
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_disconnect(packets[0], Version::kV5).reason_code, reason::kSessionTakenOver);
  EXPECT_TRUE(c.closed());
  EXPECT_FALSE(h.broker().kick("roamer", reason::kSessionTakenOver, later));  // the session is gone

  // Attached but its CONNECT not finished (no connect time yet): it stays.
  // Offline without a connect time (restored from the store): it goes.
  h.run([&] {
    auto s = h.broker().attach_session("arriving", false, 4242, {"anonymous", "anonymous"}).session;
    EXPECT_FALSE(h.broker().kick("arriving", reason::kSessionTakenOver, later));
    {
      std::lock_guard lock(s->mutex());
      s->expiry_interval_s = 60;  // persistent and offline, as restored from the store
      s->set_conn(0);
    }
    EXPECT_TRUE(h.broker().kick("arriving", reason::kSessionTakenOver, later));
  });
}

TEST(ClusterTap, TakeoverFromAnotherBrokerRespectsTheOwner) {
  Harness h;
  const uint64_t later = 4'000'000'000'000;
  h.run([&] {
    auto s = h.broker().attach_session("owned", false, 4243, {"jwt", "alice"}).session;
    {
      std::lock_guard lock(s->mutex());
      s->expiry_interval_s = 60;
      s->set_conn(0);
    }
    broker::Broker::Login bob{"jwt", "bob"};
    EXPECT_FALSE(h.broker().kick("owned", reason::kSessionTakenOver, later, &bob));
    broker::Broker::Login alice{"jwt", "alice"};
    alice.may_take_over = false;
    bob.may_take_over = true;  // holds mqtt:connect on the client id where it connected
    EXPECT_TRUE(h.broker().kick("owned", reason::kSessionTakenOver, later, &bob));
    auto again = h.broker().attach_session("owned", false, 4244, {"jwt", "alice"}).session;
    {
      std::lock_guard lock(again->mutex());
      again->expiry_interval_s = 60;
      again->set_conn(0);
    }
    EXPECT_TRUE(h.broker().kick("owned", reason::kSessionTakenOver, later, &alice));  // its own
  });
}

// An authenticator that never answers by itself and records cancellations.
struct SlowAuthenticator {
  std::vector<bb_auth_ticket> asked, cancelled;
  bb_authenticator table{};
  SlowAuthenticator() {
    table.struct_size = sizeof(table);
    table.name = bb_str{"slow", 4};
    table.authenticate = [](void* user, const bb_auth_request*, bb_auth_ticket t,
                            bb_auth_result*) -> bb_status {
      static_cast<SlowAuthenticator*>(user)->asked.push_back(t);
      return BB_PENDING;
    };
    table.cancel = [](void* user, bb_auth_ticket t) {
      static_cast<SlowAuthenticator*>(user)->cancelled.push_back(t);
    };
  }
};

Client connect_as_slow(Harness& h) {
  Client c = h.open(Version::kV5);
  ConnectPacket p;
  p.version = Version::kV5;
  p.client_id = "waiting";
  p.username = "slow";
  p.password = "token";
  std::string bytes;
  protocol::encode_connect(p, bytes);
  c.send(bytes);
  return c;
}

TEST(ConnectionAuth, LoginAbandonedByTheClientIsCancelledAndItsAnswerStale) {
  Harness h;
  SlowAuthenticator slow;
  ASSERT_TRUE(
      h.broker().logins().add("slow", auth::Authenticator{&slow.table, &slow, false, nullptr}));
  Client c = connect_as_slow(h);
  EXPECT_TRUE(c.packets().empty());
  ASSERT_EQ(slow.asked.size(), 1u);
  EXPECT_EQ(h.broker().logins().pending(), 1u);
  h.transport_closed(c.id);
  EXPECT_EQ(slow.cancelled, slow.asked);
  bb_auth_result late{};
  late.struct_size = sizeof(late);
  late.verdict = BB_AUTH_ALLOW;
  EXPECT_EQ(h.broker().logins().complete(slow.asked[0], late), BB_E_STALE);
}

TEST(ConnectionAuth, LoginTimeoutRefusesWithServerUnavailableAndCancels) {
  Harness h;
  SlowAuthenticator slow;
  ASSERT_TRUE(
      h.broker().logins().add("slow", auth::Authenticator{&slow.table, &slow, false, nullptr}));
  Client c = connect_as_slow(h);
  h.run([&] { h.broker().logins().expire(message::Clock::now() + std::chrono::hours(1)); });
  h.drain();
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_connack(packets[0], Version::kV5).reason_code, reason::kServerUnavailable);
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(slow.cancelled, slow.asked);
}

TEST(ConnectionAuth, PendingLoginAnsweredCompletesTheConnect) {
  Harness h;
  SlowAuthenticator slow;
  ASSERT_TRUE(
      h.broker().logins().add("slow", auth::Authenticator{&slow.table, &slow, false, nullptr}));
  Client c = connect_as_slow(h);
  ASSERT_EQ(slow.asked.size(), 1u);
  const bb_statement all{BB_EFFECT_ALLOW, 0, bb_str{"*", 1}, bb_str{"*", 1}};
  bb_auth_result r{};
  r.struct_size = sizeof(r);
  r.verdict = BB_AUTH_ALLOW;
  r.principal = bb_str{"alice", 5};
  r.statements = &all;
  r.statement_count = 1;
  EXPECT_EQ(h.broker().logins().complete(slow.asked[0], r), BB_OK);
  h.drain();
  auto packets = c.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_connack(packets[0], Version::kV5).reason_code, 0);
  EXPECT_EQ(h.broker().logins().complete(slow.asked[0], r), BB_E_STALE);
  EXPECT_TRUE(slow.cancelled.empty());
}

// --- ABI 1.5: acknowledgements held by taps (message_held, ack_release) ----------

// A tap that keeps every hold it is given (on the worker thread).
struct HoldingTap {
  std::mutex mutex;
  std::vector<std::pair<std::string, uint64_t>> holds;  // topic, hold
  ConnectionTable* release_at_once = nullptr;           // set: releases inside the tap
  bb_message_tap table{};
  HoldingTap() {
    table.struct_size = sizeof(table);
    table.message_held = [](void* user, const bb_message* m, bb_ack_hold hold) {
      auto* self = static_cast<HoldingTap*>(user);
      {
        std::lock_guard lock(self->mutex);
        self->holds.emplace_back(std::string(m->topic.ptr, m->topic.len), hold);
      }
      // Released before the connection queued its acknowledgement.
      if (hold && self->release_at_once) {
        self->release_at_once->with_connection(
            Connection::conn_of_hold(hold),
            [seq = Connection::seq_of_hold(hold)](Connection& c) { c.release_hold(seq); });
      }
    };
  }
  broker::Tap tap() { return broker::Tap{&table, this}; }
  uint64_t hold(size_t i) {
    std::lock_guard lock(mutex);
    return i < holds.size() ? holds[i].second : 0;
  }
  size_t count() {
    std::lock_guard lock(mutex);
    return holds.size();
  }
};

std::vector<std::pair<PacketType, uint16_t>> acks(Client& c) {
  std::vector<std::pair<PacketType, uint16_t>> out;
  for (const Packet& p : c.packets()) {
    const AckPacket a = as_ack(p, c.v);
    out.emplace_back(a.type, a.packet_id);
  }
  return out;
}

TEST(ConnectionHeldAck, PubackWaitsForEveryHoldAndLeavesInOrder) {
  HoldingTap one, two;
  Harness h({}, allow_all(), {one.tap(), two.tap()});
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("h/a", "1", 1, 10);
  pub.publish("h/b", "2", 1, 11);
  pub.publish("h/0", "0", 0);
  EXPECT_TRUE(pub.packets().empty());
  ASSERT_EQ(one.count(), 3u);
  ASSERT_EQ(two.count(), 3u);
  const uint64_t a = one.hold(0), b = one.hold(1);
  EXPECT_NE(a, 0u);
  EXPECT_NE(b, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(two.hold(0), a);   // one hold a message, released by each tap
  EXPECT_EQ(one.hold(2), 0u);  // QoS 0: nobody waits
  EXPECT_EQ(Connection::conn_of_hold(a), pub.id);

  // The second message is released first: its PUBACK waits for the first.
  h.release(b);
  h.release(b);
  EXPECT_TRUE(pub.packets().empty());
  h.release(a);
  EXPECT_TRUE(pub.packets().empty());  // the second tap still holds it
  h.release(a);
  EXPECT_EQ(acks(pub), (std::vector<std::pair<PacketType, uint16_t>>{{PacketType::kPuback, 10},
                                                                     {PacketType::kPuback, 11}}));
  // Releasing again, or a hold never given out, does nothing.
  h.release(a);
  h.release(Connection::hold_token(pub.id, 0x777));
  EXPECT_TRUE(pub.packets().empty());
  EXPECT_FALSE(pub.closed());
}

TEST(ConnectionHeldAck, PubrecOfQos2IsHeldAndLaterAcksQueueBehindIt) {
  HoldingTap tap;
  Harness h({}, allow_all(), {tap.tap()});
  Client pub = h.connect_ok(Version::kV311, "pub");
  pub.publish("h/q2", "x", 2, 7);
  EXPECT_TRUE(pub.packets().empty());
  // The retransmission's PUBREC queues behind the held one.
  pub.publish("h/q2", "x", 2, 7, {}, false, true);
  EXPECT_TRUE(pub.packets().empty());
  ASSERT_EQ(tap.count(), 1u);  // the duplicate is not routed again
  h.release(tap.hold(0));
  EXPECT_EQ(acks(pub), (std::vector<std::pair<PacketType, uint16_t>>{{PacketType::kPubrec, 7},
                                                                     {PacketType::kPubrec, 7}}));
  pub.ack(PacketType::kPubrel, 7);
  EXPECT_EQ(acks(pub), (std::vector<std::pair<PacketType, uint16_t>>{{PacketType::kPubcomp, 7}}));
}

TEST(ConnectionHeldAck, AReleaseBeforeTheAcknowledgementIsQueuedCounts) {
  HoldingTap tap;
  Harness h({}, allow_all(), {tap.tap()});
  tap.release_at_once = &h.table();
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("h/now", "1", 1, 3);
  pub.publish("h/now", "2", 2, 4);
  EXPECT_EQ(acks(pub), (std::vector<std::pair<PacketType, uint16_t>>{{PacketType::kPuback, 3},
                                                                     {PacketType::kPubrec, 4}}));
}

TEST(ConnectionHeldAck, ARefusedPublishIsNotHeld) {
  HoldingTap tap;
  std::string err;
  auto read_only = authz::Policy::compile(
      {authz::Statement{true, {"mqtt:connect", "mqtt:subscribe", "mqtt:read"}, {"**"}}}, &err);
  ASSERT_NE(read_only, nullptr) << err;
  Harness h({}, read_only, {tap.tap()});
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("h/no", "1", 1, 5);
  auto packets = pub.packets();
  ASSERT_EQ(packets.size(), 1u);
  EXPECT_EQ(as_ack(packets[0], Version::kV5).reason_code, reason::kNotAuthorized);
  EXPECT_EQ(tap.count(), 0u);
}

TEST(ConnectionHeldAck, ReleasingForAClosedConnectionIsHarmless) {
  HoldingTap tap;
  Harness h({}, allow_all(), {tap.tap()});
  Client pub = h.connect_ok(Version::kV5, "pub");
  pub.publish("h/gone", "1", 1, 9);
  ASSERT_EQ(tap.count(), 1u);
  h.transport_closed(pub.id);
  h.release(tap.hold(0));                                // nothing is written after close
  h.release(Connection::hold_token(pub.id + 0x100, 1));  // a connection that never was
  EXPECT_TRUE(h.run([&] { return h.table().find(pub.id) == nullptr; }));
  EXPECT_TRUE(pub.packets().empty());
  // The next connection's holds are its own.
  Client next = h.connect_ok(Version::kV5, "next");
  next.publish("h/next", "1", 1, 1);
  ASSERT_EQ(tap.count(), 2u);
  EXPECT_EQ(Connection::conn_of_hold(tap.hold(1)), next.id);
  h.release(tap.hold(1));
  EXPECT_EQ(acks(next), (std::vector<std::pair<PacketType, uint16_t>>{{PacketType::kPuback, 1}}));
}

TEST(ConnectionHeldAck, WaitsForTheStoreAndTheHolds) {
  char tmpl[] = "/tmp/bb-held-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    HoldingTap tap;
    Harness h({}, allow_all(), {tap.tap()}, dir);
    // A persistent session: its queue is stored, so the PUBACK also waits
    // for the store.
    Client sub = h.connect_ok(Version::kV311, "keeper", false);
    sub.subscribe("h/s", {1});
    sub.packets();
    h.transport_closed(sub.id);
    Client pub = h.connect_ok(Version::kV5, "pub");
    pub.publish("h/s", "1", 1, 21);
    pub.publish("h/s", "2", 1, 22);
    ASSERT_EQ(tap.count(), 2u);
    // However long the store takes, nothing leaves before the release.
    h.broker().store()->sync();
    h.drain();
    EXPECT_TRUE(pub.packets().empty());
    h.release(tap.hold(1));
    h.broker().store()->sync();
    h.drain();
    EXPECT_TRUE(pub.packets().empty());
    h.release(tap.hold(0));
    std::vector<std::pair<PacketType, uint16_t>> got;
    for (int i = 0; i < 100 && got.size() < 2; ++i) {
      h.drain();
      for (auto& a : acks(pub)) got.push_back(a);
      if (got.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(got, (std::vector<std::pair<PacketType, uint16_t>>{{PacketType::kPuback, 21},
                                                                 {PacketType::kPuback, 22}}));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace backbone::kernel::connection
