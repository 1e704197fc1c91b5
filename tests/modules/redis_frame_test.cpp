// SPDX-License-Identifier: GPL-3.0-or-later
// The frames brokers exchange through Redis (modules/cluster/redis).
#include "cluster/redis/frame.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace backbone::modules::redis {
namespace {

Frame message() {
  Frame f;
  f.qos = 2;
  f.retain = true;
  f.expires_at_ms = 1'800'000'000'123;
  f.topic = "a/b";
  f.properties = std::string_view("\x03\x00\x01x", 4);
  f.payload = std::string_view("pay\0load", 8);
  return f;
}

TEST(RedisFrame, MessageRoundTrip) {
  std::string bytes;
  encode_frame(message(), bytes);
  Frame f;
  ASSERT_TRUE(decode_frame(bytes, f));
  const Frame want = message();
  EXPECT_EQ(f.kind, Frame::kMessage);
  EXPECT_EQ(f.qos, 2);
  EXPECT_TRUE(f.retain);
  EXPECT_EQ(f.expires_at_ms, want.expires_at_ms);
  EXPECT_EQ(f.topic, "a/b");
  EXPECT_EQ(f.properties, want.properties);
  EXPECT_EQ(f.payload, want.payload);
}

TEST(RedisFrame, SessionStartedRoundTrip) {
  Frame s;
  s.kind = Frame::kSessionStarted;
  s.connected_at_ms = 1'800'000'000'000;
  s.client_id = "client-1";
  std::string bytes;
  encode_frame(s, bytes);
  Frame f;
  ASSERT_TRUE(decode_frame(bytes, f));
  EXPECT_EQ(f.kind, Frame::kSessionStarted);
  EXPECT_EQ(f.connected_at_ms, s.connected_at_ms);
  EXPECT_EQ(f.client_id, "client-1");
}

TEST(RedisFrame, SessionStartedByCarriesThePrincipal) {
  Frame s;
  s.kind = Frame::kSessionStartedBy;
  s.connected_at_ms = 1'800'000'000'000;
  s.client_id = "client-1";
  s.provider = "jwt";
  s.principal = "alice";
  s.may_take_over = true;
  std::string bytes;
  encode_frame(s, bytes);
  EXPECT_EQ(bytes.size(), frame_size(s));
  Frame f;
  ASSERT_TRUE(decode_frame(bytes, f));
  EXPECT_EQ(f.kind, Frame::kSessionStartedBy);
  EXPECT_EQ(f.connected_at_ms, s.connected_at_ms);
  EXPECT_EQ(f.client_id, "client-1");
  EXPECT_EQ(f.provider, "jwt");
  EXPECT_EQ(f.principal, "alice");
  EXPECT_TRUE(f.may_take_over);
  // Cut anywhere inside the principal: refused.
  const size_t fixed = 2 + 8 + 1 + 2 + 3 + 2 + 5;
  for (size_t n = 0; n < fixed; ++n) {
    Frame cut;
    EXPECT_FALSE(decode_frame(std::string_view(bytes).substr(0, n), cut)) << n;
  }
  bytes[10] = 2;  // neither 0 nor 1
  EXPECT_FALSE(decode_frame(bytes, f));
}

TEST(RedisFrame, EveryTruncationAndBadHeaderIsRefused) {
  std::string bytes;
  encode_frame(message(), bytes);
  const size_t header = 2 + 1 + 8 + 2 + 3 + 4 + 4;  // up to the payload
  for (size_t n = 0; n < header; ++n) {
    Frame f;
    EXPECT_FALSE(decode_frame(std::string_view(bytes).substr(0, n), f)) << n;
  }
  std::string other = bytes;
  other[0] = 2;  // a later version
  Frame f;
  EXPECT_FALSE(decode_frame(other, f));
  other = bytes;
  other[1] = 7;  // an unknown kind
  EXPECT_FALSE(decode_frame(other, f));
  other = bytes;
  other[2] = 3;  // QoS 3
  EXPECT_FALSE(decode_frame(other, f));
  other = bytes;
  other[2] = 8;  // an unknown flag
  EXPECT_FALSE(decode_frame(other, f));
}

TEST(RedisFrame, ABatchCarriesItsSenderAndFramesInOrderAndACutIsReported) {
  BrokerId sender;
  for (size_t i = 0; i < sender.size(); ++i) sender[i] = static_cast<uint8_t>(i * 17);
  std::string batch(reinterpret_cast<const char*>(sender.data()), sender.size());
  Frame a = message();
  a.topic = "first";
  Frame b = message();
  b.topic = "second";
  append_batch_entry(a, batch);
  append_batch_entry(b, batch);
  std::vector<std::string> topics;
  auto collect = [&](std::string_view frame) {
    Frame f;
    ASSERT_TRUE(decode_frame(frame, f));
    topics.emplace_back(f.topic);
  };
  BrokerId origin{};
  std::string_view entries;
  ASSERT_TRUE(split_batch(batch, origin, entries));
  EXPECT_EQ(origin, sender);
  EXPECT_FALSE(split_batch(std::string_view(batch).substr(0, 15), origin, entries));
  EXPECT_TRUE(for_each_batch_entry(entries, collect));
  EXPECT_EQ(topics, (std::vector<std::string>{"first", "second"}));
  topics.clear();
  EXPECT_FALSE(for_each_batch_entry(entries.substr(0, entries.size() - 1), collect));
  EXPECT_EQ(topics, std::vector<std::string>{"first"});  // the frames before the cut
}

}  // namespace
}  // namespace backbone::modules::redis

namespace backbone::modules::redis {
namespace {

TEST(RedisFrame, SharedMessageCarriesItsAssignments) {
  std::string assignments;
  append_assignment("node-b", "g/sensors/#", assignments);
  append_assignment("node-c", "h/+/x", assignments);
  Frame m;
  m.kind = Frame::kMessageShared;
  m.qos = 1;
  m.topic = "sensors/1";
  m.payload = "21.5";
  m.assignments = assignments;
  std::string bytes;
  encode_frame(m, bytes);
  EXPECT_EQ(bytes.size(), frame_size(m));
  Frame f;
  ASSERT_TRUE(decode_frame(bytes, f));
  EXPECT_EQ(f.kind, Frame::kMessageShared);
  EXPECT_EQ(f.topic, "sensors/1");
  EXPECT_EQ(f.payload, "21.5");
  std::vector<std::pair<std::string, std::string>> got;
  EXPECT_TRUE(for_each_assignment(
      f.assignments, [&](std::string_view n, std::string_view g) { got.emplace_back(n, g); }));
  EXPECT_EQ(got, (std::vector<std::pair<std::string, std::string>>{{"node-b", "g/sensors/#"},
                                                                   {"node-c", "h/+/x"}}));
  // An assignment block that lies about its entries is refused whole.
  std::string bad = assignments;
  bad.pop_back();
  m.assignments = bad;
  bytes.clear();
  encode_frame(m, bytes);
  EXPECT_FALSE(decode_frame(bytes, f));
}

TEST(RedisFrame, SharedMembersRoundTrip) {
  Frame s;
  s.kind = Frame::kSharedMembers;
  s.node = "node-a";
  s.group_filter = "workers/jobs/#";
  s.online = 3;
  std::string bytes;
  encode_frame(s, bytes);
  EXPECT_EQ(bytes.size(), frame_size(s));
  Frame f;
  ASSERT_TRUE(decode_frame(bytes, f));
  EXPECT_EQ(f.kind, Frame::kSharedMembers);
  EXPECT_EQ(f.node, "node-a");
  EXPECT_EQ(f.group_filter, "workers/jobs/#");
  EXPECT_EQ(f.online, 3u);
  // Cut anywhere up to the group (which runs to the frame's end): refused.
  for (size_t n = 0; n <= 2 + 4 + 2 + s.node.size(); ++n) {
    Frame cut;
    EXPECT_FALSE(decode_frame(std::string_view(bytes).substr(0, n), cut)) << n;
  }
}

}  // namespace
}  // namespace backbone::modules::redis
