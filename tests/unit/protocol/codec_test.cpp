// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/protocol/codec.hpp"

#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::protocol {
namespace {

// --- helpers ----------------------------------------------------------------

std::string B(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// A two-byte length prefix and the bytes (UTF-8 string or binary data).
std::string S(std::string_view s) {
  std::string out = B({static_cast<int>(s.size() >> 8), static_cast<int>(s.size() & 0xFF)});
  out.append(s);
  return out;
}

// A v5 properties block: varint length, then `raw`.
std::string P(std::string_view raw) {
  std::string out;
  append_varint(static_cast<uint32_t>(raw.size()), out);
  out.append(raw);
  return out;
}

std::string varint(uint32_t v) {
  std::string out;
  append_varint(v, out);
  return out;
}

// Splits one whole encoded packet into its fixed header and body.
FrameHeader split(const std::string& packet, std::string_view& body) {
  FrameHeader h;
  EXPECT_EQ(parse_frame_header(packet, h), FrameStatus::kComplete);
  EXPECT_EQ(size_t{h.header_length} + h.remaining_length, packet.size());
  body = std::string_view(packet).substr(h.header_length);
  return h;
}

// The encoding of the forwardable properties alone, without length prefix,
// in encode_properties() order.
std::string forward_bytes(const Properties& p) {
  Properties f;
  f.payload_format = p.payload_format;
  f.content_type = p.content_type;
  f.response_topic = p.response_topic;
  f.correlation_data = p.correlation_data;
  f.user = p.user;
  std::string out;
  encode_properties(f, out);
  std::string_view all = out;
  all.remove_prefix(varint_size(static_cast<uint32_t>(properties_size(f))));
  return std::string(all);
}

Properties all_publish_props() {
  Properties p;
  p.payload_format = 1;
  p.message_expiry = 3600;
  p.content_type = "application/json";
  p.response_topic = "reply/to/me";
  p.correlation_data = std::string("\x00\x01\xFF", 3);
  p.subscription_ids = {1, 268435455};
  p.topic_alias = 7;
  p.user = {{"k", "v1"}, {"k", "v2"}, {"other", ""}};
  return p;
}

// Decodes any packet type; false with err on failure.
bool decode_any(const FrameHeader& h, std::string_view body, Version v, DecodeError& err) {
  switch (h.type()) {
    case PacketType::kConnect: {
      ConnectPacket p;
      return decode_connect(body, p, err);
    }
    case PacketType::kConnack: {
      ConnackPacket p;
      return decode_connack(body, v, p, err);
    }
    case PacketType::kPublish: {
      PublishView p;
      return decode_publish(h.flags(), body, v, p, err);
    }
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: {
      AckPacket p;
      return decode_ack(h.type(), h.flags(), body, v, p, err);
    }
    case PacketType::kSubscribe: {
      SubscribePacket p;
      return decode_subscribe(h.flags(), body, v, p, err);
    }
    case PacketType::kSuback:
    case PacketType::kUnsuback: {
      SubackPacket p;
      return decode_suback(h.type(), body, v, p, err);
    }
    case PacketType::kUnsubscribe: {
      UnsubscribePacket p;
      return decode_unsubscribe(h.flags(), body, v, p, err);
    }
    case PacketType::kDisconnect:
    case PacketType::kAuth: {
      DisconnectPacket p;
      return decode_disconnect(h.type(), h.flags(), body, v, p, err);
    }
    default:
      return body.empty();
  }
}

ConnectPacket full_connect(Version v) {
  ConnectPacket c;
  c.version = v;
  c.clean_start = false;
  c.keep_alive = 0xABCD;
  c.client_id = "client-\xC3\xA9";
  c.username = "user";
  c.password = std::string("p\x00ss", 4);
  Will w;
  w.topic = "will/topic";
  w.payload = std::string("bye\x00", 4);
  w.qos = 2;
  w.retain = true;
  if (v == Version::kV5) {
    w.props.will_delay = 30;
    w.props.message_expiry = 60;
    w.props.payload_format = 0;
    w.props.content_type = "text/plain";
    w.props.response_topic = "will/reply";
    w.props.correlation_data = "corr";
    w.props.user = {{"wk", "wv"}};
    c.props.session_expiry = 120;
    c.props.receive_maximum = 10;
    c.props.maximum_packet_size = 4096;
    c.props.topic_alias_maximum = 5;
    c.props.request_response_info = 1;
    c.props.request_problem_info = 0;
    c.props.auth_method = "SCRAM";
    c.props.auth_data = std::string("\x01\x02", 2);
    c.props.user = {{"a", "b"}};
  }
  c.will = w;
  return c;
}

void expect_connect_eq(const ConnectPacket& got, const ConnectPacket& want) {
  EXPECT_EQ(got.version, want.version);
  EXPECT_EQ(got.clean_start, want.clean_start);
  EXPECT_EQ(got.keep_alive, want.keep_alive);
  EXPECT_EQ(got.client_id, want.client_id);
  EXPECT_EQ(got.username, want.username);
  EXPECT_EQ(got.password, want.password);
  EXPECT_EQ(got.props, want.props);
  ASSERT_EQ(got.will.has_value(), want.will.has_value());
  if (want.will) {
    EXPECT_EQ(got.will->topic, want.will->topic);
    EXPECT_EQ(got.will->payload, want.will->payload);
    EXPECT_EQ(got.will->qos, want.will->qos);
    EXPECT_EQ(got.will->retain, want.will->retain);
    Properties expected = want.will->props;
    expected.forward = forward_bytes(expected);
    EXPECT_EQ(got.will->props, expected);
  }
}

ConnectPacket connect_round_trip(const ConnectPacket& c) {
  std::string bytes;
  encode_connect(c, bytes);
  std::string_view body;
  const FrameHeader h = split(bytes, body);
  EXPECT_EQ(h.type(), PacketType::kConnect);
  EXPECT_EQ(h.flags(), 0);
  ConnectPacket out;
  DecodeError err;
  EXPECT_TRUE(decode_connect(body, out, err)) << err.message;
  return out;
}

// --- varint and frame header -------------------------------------------------

TEST(CodecVarint, EncodesBoundariesInMinimalBytes) {
  struct Case {
    uint32_t value;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {0, B({0x00})},
      {127, B({0x7F})},
      {128, B({0x80, 0x01})},
      {16383, B({0xFF, 0x7F})},
      {16384, B({0x80, 0x80, 0x01})},
      {2097151, B({0xFF, 0xFF, 0x7F})},
      {2097152, B({0x80, 0x80, 0x80, 0x01})},
      {268435455, B({0xFF, 0xFF, 0xFF, 0x7F})},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(varint(c.value), c.bytes) << c.value;
    EXPECT_EQ(varint_size(c.value), c.bytes.size()) << c.value;
    // Decoded back through the fixed header parser.
    const std::string frame = B({0x30}) + c.bytes;
    FrameHeader h;
    ASSERT_EQ(parse_frame_header(frame, h), FrameStatus::kComplete) << c.value;
    EXPECT_EQ(h.remaining_length, c.value);
    EXPECT_EQ(h.header_length, 1 + c.bytes.size());
    EXPECT_EQ(h.first_byte, 0x30);
    EXPECT_EQ(h.type(), PacketType::kPublish);
  }
}

TEST(CodecFrameHeader, NeedsMoreUntilTheLengthEnds) {
  FrameHeader h;
  EXPECT_EQ(parse_frame_header("", h), FrameStatus::kNeedMore);
  EXPECT_EQ(parse_frame_header(B({0x30}), h), FrameStatus::kNeedMore);
  EXPECT_EQ(parse_frame_header(B({0x30, 0x80}), h), FrameStatus::kNeedMore);
  EXPECT_EQ(parse_frame_header(B({0x30, 0x80, 0x80}), h), FrameStatus::kNeedMore);
  EXPECT_EQ(parse_frame_header(B({0x30, 0xFF, 0xFF, 0xFF}), h), FrameStatus::kNeedMore);
  // Four length bytes, the last with the continuation bit: a fifth would be needed.
  EXPECT_EQ(parse_frame_header(B({0x30, 0x80, 0x80, 0x80, 0x80}), h), FrameStatus::kMalformed);
  EXPECT_EQ(parse_frame_header(B({0x30, 0x80, 0x80, 0x80, 0x80, 0x01}), h),
            FrameStatus::kMalformed);
  EXPECT_EQ(parse_frame_header(B({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}), h),
            FrameStatus::kMalformed);
}

TEST(CodecFrameHeader, ReadsFlagsAndIgnoresTheBody) {
  FrameHeader h;
  ASSERT_EQ(parse_frame_header(B({0x62, 0x02}), h), FrameStatus::kComplete);
  EXPECT_EQ(h.type(), PacketType::kPubrel);
  EXPECT_EQ(h.flags(), 0x02);
  EXPECT_EQ(h.header_length, 2u);
  EXPECT_EQ(h.remaining_length, 2u);
}

TEST(CodecPacketName, NamesEveryType) {
  EXPECT_STREQ(packet_name(PacketType::kConnect), "CONNECT");
  EXPECT_STREQ(packet_name(PacketType::kPubcomp), "PUBCOMP");
  EXPECT_STREQ(packet_name(PacketType::kUnsuback), "UNSUBACK");
  EXPECT_STREQ(packet_name(PacketType::kAuth), "AUTH");
  EXPECT_STREQ(packet_name(static_cast<PacketType>(0)), "RESERVED");
}

// --- UTF-8, topic names and filters ----------------------------------------

TEST(CodecUtf8, AcceptsWellFormedStrings) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain ascii/topic"));
  EXPECT_TRUE(valid_utf8("\xC3\xA9"));          // é
  EXPECT_TRUE(valid_utf8("\xE2\x82\xAC"));      // €
  EXPECT_TRUE(valid_utf8("\xF0\x9D\x84\x9E"));  // U+1D11E
  EXPECT_TRUE(valid_utf8("\xEF\xBF\xBF"));      // U+FFFF (non-character, allowed)
  EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));      // U+D7FF, just below the surrogates
  EXPECT_TRUE(valid_utf8("\xEE\x80\x80"));      // U+E000, just above
}

TEST(CodecUtf8, RejectsMalformedStrings) {
  const std::vector<std::string> bad = {
      std::string("\0", 1),    // U+0000
      std::string("a\0b", 3),  // embedded U+0000
      "\xC0\xAF",              // overlong '/'
      "\xC1\xBF",              // overlong
      "\xE0\x80\xAF",          // overlong, 3 bytes
      "\xF0\x80\x80\xAF",      // overlong, 4 bytes
      "\xED\xA0\x80",          // U+D800 high surrogate
      "\xED\xBF\xBF",          // U+DFFF low surrogate
      "\xF4\x90\x80\x80",      // U+110000
      "\xF8\x88\x80\x80\x80",  // 5-byte form
      "\xFF",                  // never valid
      "\x80",                  // lone continuation byte
      "\xC3",                  // truncated 2-byte sequence
      "\xE2\x82",              // truncated 3-byte sequence
      "\xF0\x9D\x84",          // truncated 4-byte sequence
      "\xC3\x28",              // bad continuation
      "ok\xE2\x28\xA1",        // bad continuation after ASCII
  };
  for (const auto& s : bad) {
    std::string hex;
    for (unsigned char c : s) hex += std::to_string(c) + " ";
    EXPECT_FALSE(valid_utf8(s)) << hex;
  }
}

TEST(CodecTopics, ValidTopicNameTable) {
  struct Case {
    std::string topic;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"a", true},     {"a/b/c", true},       {"/", true},    {"//", true},         {"/a", true},
      {"a/", true},    {"$SYS/broker", true}, {"a b", true},  {"\xC3\xA9/x", true}, {"", false},
      {"+", false},    {"#", false},          {"a/+", false}, {"a/#", false},       {"a+b", false},
      {"a/b#", false}, {"+/a", false},
  };
  for (const auto& c : cases) EXPECT_EQ(valid_topic_name(c.topic), c.valid) << c.topic;
}

// codec.hpp documents valid_topic_name as "non-empty, no wildcards, no NUL".
TEST(CodecTopics, ValidTopicNameRejectsNul) {
  EXPECT_FALSE(valid_topic_name(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_topic_name(std::string("\0", 1)));
}

TEST(CodecTopics, ValidTopicFilterTable) {
  struct Case {
    std::string filter;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"a", true},      {"a/b", true}, {"+", true},      {"#", true},          {"a/+/c", true},
      {"a/#", true},    {"+/+", true}, {"+/#", true},    {"/", true},          {"//", true},
      {"/#", true},     {"/+/", true}, {"$SYS/#", true}, {"$share/g/a", true}, {"a//+", true},
      {"", false},      {"a+", false}, {"+a", false},    {"a/b#", false},      {"#/a", false},
      {"a/#/b", false}, {"++", false}, {"##", false},    {"a/+b", false},      {"#/", false},
      {"a/#/", false},  {"+#", false},
  };
  for (const auto& c : cases) EXPECT_EQ(valid_topic_filter(c.filter), c.valid) << c.filter;
}

// --- CONNECT -------------------------------------------------------------------

TEST(CodecConnect, MinimalV311HasExactBytes) {
  ConnectPacket c;
  c.client_id = "c1";
  c.keep_alive = 60;
  std::string bytes;
  encode_connect(c, bytes);
  EXPECT_EQ(bytes, B({0x10, 0x0E}) + S("MQTT") + B({0x04, 0x02, 0x00, 0x3C}) + S("c1"));
  const ConnectPacket out = connect_round_trip(c);
  expect_connect_eq(out, c);
  EXPECT_FALSE(out.will);
  EXPECT_FALSE(out.username);
  EXPECT_FALSE(out.password);
}

TEST(CodecConnect, RoundTripV311WithWillUserAndPassword) {
  const ConnectPacket c = full_connect(Version::kV311);
  std::string bytes;
  encode_connect(c, bytes);
  // Flags: user, password, will retain, will QoS 2, will; clean start off.
  EXPECT_EQ(static_cast<uint8_t>(bytes[2 + 6 + 1]), 0x80 | 0x40 | 0x20 | 0x10 | 0x04);
  expect_connect_eq(connect_round_trip(c), c);
}

TEST(CodecConnect, RoundTripV31MQIsdp) {
  ConnectPacket c = full_connect(Version::kV31);
  c.will->qos = 1;
  c.will->retain = false;
  std::string bytes;
  encode_connect(c, bytes);
  EXPECT_EQ(bytes.substr(2, 9), S("MQIsdp") + B({0x03}));
  const ConnectPacket out = connect_round_trip(c);
  EXPECT_EQ(out.version, Version::kV31);
  expect_connect_eq(out, c);
}

TEST(CodecConnect, RoundTripV5WithAllPropertiesAndWillProperties) {
  const ConnectPacket c = full_connect(Version::kV5);
  const ConnectPacket out = connect_round_trip(c);
  expect_connect_eq(out, c);
  // CONNECT's own properties are not forwarded anywhere.
  EXPECT_EQ(out.props.forward, "");
  // The will keeps exactly the forwardable properties, in wire order.
  EXPECT_EQ(out.will->props.forward, B({0x01, 0x00, 0x03}) + S("text/plain") + B({0x08}) +
                                         S("will/reply") + B({0x09}) + S("corr") + B({0x26}) +
                                         S("wk") + S("wv"));
  EXPECT_EQ(out.will->props.will_delay, 30u);
  EXPECT_EQ(out.will->props.message_expiry, 60u);
}

TEST(CodecConnect, RoundTripV5WithoutWillOrCredentials) {
  ConnectPacket c;
  c.version = Version::kV5;
  c.client_id = "";
  c.clean_start = true;
  const ConnectPacket out = connect_round_trip(c);
  expect_connect_eq(out, c);
  EXPECT_EQ(out.props, Properties{});
}

TEST(CodecConnect, V5AllowsPasswordWithoutUserName) {
  ConnectPacket c;
  c.version = Version::kV5;
  c.client_id = "x";
  c.password = "secret";
  const ConnectPacket out = connect_round_trip(c);
  EXPECT_FALSE(out.username);
  EXPECT_EQ(out.password, "secret");
}

TEST(CodecConnect, V5WillWithoutProperties) {
  ConnectPacket c;
  c.version = Version::kV5;
  c.client_id = "x";
  c.will = Will{"w", "", 0, false, {}};
  const ConnectPacket out = connect_round_trip(c);
  ASSERT_TRUE(out.will);
  EXPECT_EQ(out.will->topic, "w");
  EXPECT_EQ(out.will->payload, "");
  EXPECT_EQ(out.will->props, Properties{});
}

// The CONNECT body up to and including the connect flags and keep alive.
std::string connect_head(std::string_view name, int level, int flags) {
  return S(name) + B({level, flags, 0x00, 0x0A});
}

uint8_t connect_error(const std::string& body) {
  ConnectPacket out;
  DecodeError err;
  EXPECT_FALSE(decode_connect(body, out, err));
  return err.reason;
}

TEST(CodecConnectMalformed, ProtocolNameAndLevel) {
  EXPECT_EQ(connect_error(connect_head("MQTT", 3, 2) + S("c")),
            reason::kUnsupportedProtocolVersion);
  EXPECT_EQ(connect_error(connect_head("MQTT", 6, 2) + S("c")),
            reason::kUnsupportedProtocolVersion);
  EXPECT_EQ(connect_error(connect_head("MQTT", 0, 2) + S("c")),
            reason::kUnsupportedProtocolVersion);
  EXPECT_EQ(connect_error(connect_head("MQIsdp", 4, 2) + S("c")),
            reason::kUnsupportedProtocolVersion);
  EXPECT_EQ(connect_error(connect_head("MQTX", 4, 2) + S("c")), reason::kMalformedPacket);
  EXPECT_EQ(connect_error(connect_head("mqtt", 4, 2) + S("c")), reason::kMalformedPacket);
  EXPECT_EQ(connect_error(connect_head("", 4, 2) + S("c")), reason::kMalformedPacket);
  // MQIsdp level 3 is MQTT 3.1, accepted.
  ConnectPacket out;
  DecodeError err;
  ASSERT_TRUE(decode_connect(connect_head("MQIsdp", 3, 2) + S("c"), out, err)) << err.message;
  EXPECT_EQ(out.version, Version::kV31);
  EXPECT_EQ(out.keep_alive, 10);
  EXPECT_EQ(out.client_id, "c");
}

TEST(CodecConnectMalformed, Flags) {
  // Reserved bit 0.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x03) + S("c")), reason::kMalformedPacket);
  // Will QoS or will retain without the will flag.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x0A) + S("c")), reason::kMalformedPacket);
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x22) + S("c")), reason::kMalformedPacket);
  // Will QoS 3.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x1E) + S("c") + S("t") + S("p")),
            reason::kMalformedPacket);
  // v3.1.1: password without user name.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x42) + S("c") + S("pw")),
            reason::kMalformedPacket);
  EXPECT_EQ(connect_error(connect_head("MQIsdp", 3, 0x42) + S("c") + S("pw")),
            reason::kMalformedPacket);
}

TEST(CodecConnectMalformed, StringsAndTrailingBytes) {
  // Client id with invalid UTF-8 (surrogate) and with U+0000.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 2) + S("\xED\xA0\x80")),
            reason::kMalformedPacket);
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 2) + S(std::string("a\0", 2))),
            reason::kMalformedPacket);
  // User name overlong UTF-8.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x82) + S("c") + S("\xC0\x80")),
            reason::kMalformedPacket);
  // Will topic with a wildcard, and empty.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x06) + S("c") + S("a/+") + S("p")),
            reason::kTopicNameInvalid);
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x06) + S("c") + S("") + S("p")),
            reason::kTopicNameInvalid);
  // Will topic with invalid UTF-8.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x06) + S("c") + S("\xFF") + S("p")),
            reason::kMalformedPacket);
  // Trailing bytes after the last field.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 2) + S("c") + B({0x00})),
            reason::kMalformedPacket);
  // Flags say user name, none present.
  EXPECT_EQ(connect_error(connect_head("MQTT", 4, 0x82) + S("c")), reason::kMalformedPacket);
}

TEST(CodecConnectMalformed, V5Properties) {
  const std::string head = connect_head("MQTT", 5, 2);
  // Property only allowed in a will / in PUBLISH.
  EXPECT_EQ(connect_error(head + P(B({0x18, 0, 0, 0, 5})) + S("c")), reason::kProtocolError);
  EXPECT_EQ(connect_error(head + P(B({0x23, 0, 1})) + S("c")), reason::kProtocolError);
  EXPECT_EQ(connect_error(head + P(B({0x01, 0x01})) + S("c")), reason::kProtocolError);
  // Duplicate session expiry and receive maximum.
  EXPECT_EQ(connect_error(head + P(B({0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2})) + S("c")),
            reason::kProtocolError);
  EXPECT_EQ(connect_error(head + P(B({0x21, 0, 1, 0x21, 0, 2})) + S("c")), reason::kProtocolError);
  // Values out of range: receive maximum 0, maximum packet size 0,
  // request problem information 2.
  EXPECT_EQ(connect_error(head + P(B({0x21, 0, 0})) + S("c")), reason::kMalformedPacket);
  EXPECT_EQ(connect_error(head + P(B({0x27, 0, 0, 0, 0})) + S("c")), reason::kMalformedPacket);
  EXPECT_EQ(connect_error(head + P(B({0x17, 2})) + S("c")), reason::kMalformedPacket);
  // Unknown property id.
  EXPECT_EQ(connect_error(head + P(B({0x7F, 0})) + S("c")), reason::kMalformedPacket);
  EXPECT_EQ(connect_error(head + P(B({0x00})) + S("c")), reason::kMalformedPacket);
  // Property length longer than the packet.
  EXPECT_EQ(connect_error(head + B({0x05, 0x11})), reason::kMalformedPacket);
  // Property length varint of 5 bytes.
  EXPECT_EQ(connect_error(head + B({0x80, 0x80, 0x80, 0x80, 0x00}) + S("c")),
            reason::kMalformedPacket);
  // Will properties: session expiry is not a will property.
  EXPECT_EQ(connect_error(connect_head("MQTT", 5, 0x06) + P("") + S("c") +
                          P(B({0x11, 0, 0, 0, 1})) + S("t") + S("p")),
            reason::kProtocolError);
  // Will properties: duplicate will delay.
  EXPECT_EQ(connect_error(connect_head("MQTT", 5, 0x06) + P("") + S("c") +
                          P(B({0x18, 0, 0, 0, 1, 0x18, 0, 0, 0, 1})) + S("t") + S("p")),
            reason::kProtocolError);
  // User property with invalid UTF-8 key.
  EXPECT_EQ(connect_error(head + P(B({0x26}) + S("\xC0\x80") + S("v")) + S("c")),
            reason::kMalformedPacket);
}

// --- PUBLISH -------------------------------------------------------------------

struct DecodedPublish {
  FrameHeader header;
  PublishView view;
  bool ok = false;
  DecodeError err;
};

DecodedPublish decode_publish_packet(const std::string& bytes, Version v) {
  DecodedPublish d;
  std::string_view body;
  d.header = split(bytes, body);
  EXPECT_EQ(d.header.type(), PacketType::kPublish);
  d.ok = decode_publish(d.header.flags(), body, v, d.view, d.err);
  return d;
}

TEST(CodecPublish, RoundTripEveryQosV311) {
  for (uint8_t qos = 0; qos <= 2; ++qos) {
    for (bool retain : {false, true}) {
      PublishView p;
      p.topic = "sensors/temp";
      p.payload = std::string_view("\x00\x01payload", 9);
      p.qos = qos;
      p.retain = retain;
      p.dup = qos > 0;
      p.packet_id = qos > 0 ? 0xBEEF : 0;
      std::string bytes;
      encode_publish(p, Version::kV311, bytes);
      EXPECT_EQ(static_cast<uint8_t>(bytes[0]),
                0x30 | (p.dup ? 0x08 : 0) | (qos << 1) | (retain ? 1 : 0));
      const DecodedPublish d = decode_publish_packet(bytes, Version::kV311);
      ASSERT_TRUE(d.ok) << d.err.message;
      EXPECT_EQ(d.view.topic, p.topic);
      EXPECT_EQ(d.view.payload, p.payload);
      EXPECT_EQ(d.view.qos, qos);
      EXPECT_EQ(d.view.retain, retain);
      EXPECT_EQ(d.view.dup, p.dup);
      EXPECT_EQ(d.view.packet_id, p.packet_id);
      EXPECT_EQ(d.view.props, Properties{});
    }
  }
}

TEST(CodecPublish, V311Qos0HasExactBytes) {
  PublishView p;
  p.topic = "a/b";
  p.payload = "hi";
  std::string bytes;
  encode_publish(p, Version::kV311, bytes);
  EXPECT_EQ(bytes, B({0x30, 0x07}) + S("a/b") + "hi");
  std::string v5;
  encode_publish(p, Version::kV5, v5);
  EXPECT_EQ(v5, B({0x30, 0x08}) + S("a/b") + B({0x00}) + "hi");
}

TEST(CodecPublish, RoundTripV5WithAllProperties) {
  for (uint8_t qos = 0; qos <= 2; ++qos) {
    PublishView p;
    p.topic = "t/\xE2\x82\xAC";
    p.payload = "{\"x\":1}";
    p.qos = qos;
    p.packet_id = qos ? 1 : 0;
    p.props = all_publish_props();
    std::string bytes;
    encode_publish(p, Version::kV5, bytes);
    const DecodedPublish d = decode_publish_packet(bytes, Version::kV5);
    ASSERT_TRUE(d.ok) << d.err.message;
    EXPECT_EQ(d.view.topic, p.topic);
    EXPECT_EQ(d.view.payload, p.payload);
    EXPECT_EQ(d.view.packet_id, p.packet_id);
    Properties expected = p.props;
    expected.forward = forward_bytes(p.props);
    EXPECT_EQ(d.view.props, expected);
    // Exactly the forwardable properties: payload format, content type,
    // response topic, correlation data and the user properties in order.
    EXPECT_EQ(d.view.props.forward,
              B({0x01, 0x01, 0x03}) + S("application/json") + B({0x08}) + S("reply/to/me") +
                  B({0x09}) + S(std::string("\x00\x01\xFF", 3)) + B({0x26}) + S("k") + S("v1") +
                  B({0x26}) + S("k") + S("v2") + B({0x26}) + S("other") + S(""));
    EXPECT_EQ(d.view.props.subscription_ids, (std::vector<uint32_t>{1, 268435455}));
    EXPECT_EQ(d.view.props.topic_alias, 7);
    EXPECT_EQ(d.view.props.message_expiry, 3600u);
  }
}

TEST(CodecPublish, V5ForwardIsEmptyWithoutForwardableProperties) {
  PublishView p;
  p.topic = "t";
  p.props.message_expiry = 5;
  p.props.topic_alias = 2;
  p.props.subscription_ids = {9};
  std::string bytes;
  encode_publish(p, Version::kV5, bytes);
  const DecodedPublish d = decode_publish_packet(bytes, Version::kV5);
  ASSERT_TRUE(d.ok) << d.err.message;
  EXPECT_EQ(d.view.props.forward, "");
  EXPECT_EQ(d.view.payload, "");
}

TEST(CodecPublish, V5ForwardKeepsInterleavedWireOrder) {
  // Hand-made order: user property, expiry, content type, alias, user property.
  const std::string props = B({0x26}) + S("u") + S("1") + B({0x02, 0, 0, 0, 9, 0x03}) + S("ct") +
                            B({0x23, 0, 3, 0x26}) + S("u") + S("2");
  const std::string body = S("t") + P(props) + "x";
  PublishView v;
  DecodeError err;
  ASSERT_TRUE(decode_publish(0, body, Version::kV5, v, err)) << err.message;
  EXPECT_EQ(v.props.forward,
            B({0x26}) + S("u") + S("1") + B({0x03}) + S("ct") + B({0x26}) + S("u") + S("2"));
  EXPECT_EQ(v.props.user, (std::vector<UserProperty>{{"u", "1"}, {"u", "2"}}));
  EXPECT_EQ(v.payload, "x");
}

TEST(CodecPublish, V5TopicAliasWithEmptyTopic) {
  PublishView p;
  p.topic = "";
  p.props.topic_alias = 3;
  p.payload = "z";
  std::string bytes;
  encode_publish(p, Version::kV5, bytes);
  const DecodedPublish d = decode_publish_packet(bytes, Version::kV5);
  ASSERT_TRUE(d.ok) << d.err.message;
  EXPECT_EQ(d.view.topic, "");
  EXPECT_EQ(d.view.props.topic_alias, 3);
}

// encode_publish_header + payload must be the same bytes as encode_publish
// where both write the properties in the same order.
void expect_header_matches_publish(const PublishView& p, const PublishHeader& h, Version v) {
  std::string whole;
  encode_publish(p, v, whole);
  std::string split_form;
  encode_publish_header(h, v, p.payload.size(), split_form);
  EXPECT_EQ(publish_packet_size(h, v, p.payload.size()), split_form.size() + p.payload.size());
  split_form.append(p.payload);
  EXPECT_EQ(split_form, whole);
  EXPECT_EQ(publish_packet_size(h, v, p.payload.size()), whole.size());
}

TEST(CodecPublishHeader, MatchesEncodePublishV311) {
  for (uint8_t qos = 0; qos <= 2; ++qos) {
    PublishView p;
    p.topic = "a/b/c";
    p.payload = "payload bytes";
    p.qos = qos;
    p.packet_id = qos ? 513 : 0;
    p.retain = qos == 1;
    p.dup = qos == 2;
    PublishHeader h;
    h.topic = p.topic;
    h.packet_id = p.packet_id;
    h.qos = qos;
    h.retain = p.retain;
    h.dup = p.dup;
    // v5-only fields are ignored for v3.
    h.message_expiry = 10;
    h.topic_alias = 4;
    expect_header_matches_publish(p, h, Version::kV311);
  }
}

TEST(CodecPublishHeader, MatchesEncodePublishV5) {
  const Properties all = all_publish_props();
  const std::string forward = forward_bytes(all);
  const uint32_t ids[] = {5, 300};
  {
    SCOPED_TRACE("no properties");
    PublishView p;
    p.topic = "x";
    p.payload = "1";
    p.qos = 1;
    p.packet_id = 9;
    PublishHeader h;
    h.topic = "x";
    h.qos = 1;
    h.packet_id = 9;
    expect_header_matches_publish(p, h, Version::kV5);
  }
  {
    SCOPED_TRACE("forwardable properties only");
    PublishView p;
    p.topic = "x/y";
    p.payload = "data";
    p.qos = 2;
    p.packet_id = 65535;
    p.retain = true;
    p.props.payload_format = all.payload_format;
    p.props.content_type = all.content_type;
    p.props.response_topic = all.response_topic;
    p.props.correlation_data = all.correlation_data;
    p.props.user = all.user;
    PublishHeader h;
    h.topic = p.topic;
    h.qos = 2;
    h.packet_id = 65535;
    h.retain = true;
    h.forward_props = forward;
    expect_header_matches_publish(p, h, Version::kV5);
  }
  {
    SCOPED_TRACE("expiry, alias and user properties");
    PublishView p;
    p.topic = "x";
    p.payload = "";
    p.props.message_expiry = 77;
    p.props.topic_alias = 12;
    p.props.user = {{"a", "b"}};
    const std::string fwd = B({0x26}) + S("a") + S("b");
    PublishHeader h;
    h.topic = "x";
    h.message_expiry = 77;
    h.topic_alias = 12;
    h.forward_props = fwd;
    expect_header_matches_publish(p, h, Version::kV5);
  }
  {
    SCOPED_TRACE("expiry, subscription ids and user properties");
    PublishView p;
    p.topic = "x";
    p.payload = "pp";
    p.qos = 1;
    p.packet_id = 1;
    p.dup = true;
    p.props.message_expiry = 0;
    p.props.subscription_ids = {5, 300};
    p.props.user = {{"a", "b"}};
    const std::string fwd = B({0x26}) + S("a") + S("b");
    PublishHeader h;
    h.topic = "x";
    h.qos = 1;
    h.packet_id = 1;
    h.dup = true;
    h.message_expiry = 0;
    h.subscription_ids = ids;
    h.subscription_id_count = 2;
    h.forward_props = fwd;
    expect_header_matches_publish(p, h, Version::kV5);
  }
}

TEST(CodecPublishHeader, EveryFieldDecodesBack) {
  const Properties all = all_publish_props();
  const std::string forward = forward_bytes(all);
  const uint32_t ids[] = {1, 128, 16384, 268435455};
  PublishHeader h;
  h.topic = "dev/1/out";
  h.qos = 2;
  h.packet_id = 4242;
  h.retain = true;
  h.dup = true;
  h.topic_alias = 3;
  h.message_expiry = 99;
  h.forward_props = forward;
  h.subscription_ids = ids;
  h.subscription_id_count = 4;
  const std::string payload(300, 'p');
  std::string bytes;
  encode_publish_header(h, Version::kV5, payload.size(), bytes);
  EXPECT_EQ(publish_packet_size(h, Version::kV5, payload.size()), bytes.size() + payload.size());
  bytes += payload;
  const DecodedPublish d = decode_publish_packet(bytes, Version::kV5);
  ASSERT_TRUE(d.ok) << d.err.message;
  EXPECT_EQ(d.view.topic, h.topic);
  EXPECT_EQ(d.view.payload, payload);
  EXPECT_EQ(d.view.qos, 2);
  EXPECT_EQ(d.view.packet_id, 4242);
  EXPECT_TRUE(d.view.retain);
  EXPECT_TRUE(d.view.dup);
  EXPECT_EQ(d.view.props.topic_alias, 3);
  EXPECT_EQ(d.view.props.message_expiry, 99u);
  EXPECT_EQ(d.view.props.subscription_ids, (std::vector<uint32_t>{1, 128, 16384, 268435455}));
  EXPECT_EQ(d.view.props.forward, forward);
  EXPECT_EQ(d.view.props.user, all.user);
  EXPECT_EQ(d.view.props.content_type, all.content_type);
  EXPECT_EQ(d.view.props.correlation_data, all.correlation_data);
}

TEST(CodecPublishHeader, SizeAcrossRemainingLengthBoundaries) {
  // Payload sizes that put the remaining length on each side of every
  // varint boundary, without materialising the payloads.
  const uint32_t ids[] = {7};
  for (Version v : {Version::kV311, Version::kV5}) {
    for (uint8_t qos : {0, 1}) {
      PublishHeader h;
      h.topic = "abc";
      h.qos = qos;
      h.packet_id = qos ? 1 : 0;
      if (v == Version::kV5) {
        h.subscription_ids = ids;
        h.subscription_id_count = 1;
      }
      std::string probe;
      encode_publish_header(h, v, 0, probe);
      const size_t overhead = probe.size() - 2;  // remaining length without payload
      for (uint32_t boundary : {127u, 16383u, 2097151u, 268435455u}) {
        for (int delta : {-1, 0, 1}) {
          const int64_t remaining = int64_t{boundary} + delta;
          if (remaining > 268435455 || remaining < int64_t(overhead)) continue;
          const size_t payload = static_cast<size_t>(remaining) - overhead;
          std::string out;
          encode_publish_header(h, v, payload, out);
          FrameHeader fh;
          ASSERT_EQ(parse_frame_header(out, fh), FrameStatus::kComplete);
          EXPECT_EQ(fh.remaining_length, static_cast<uint32_t>(remaining));
          EXPECT_EQ(fh.header_length, 1 + varint_size(static_cast<uint32_t>(remaining)));
          EXPECT_EQ(out.size() + payload, fh.header_length + size_t{fh.remaining_length});
          EXPECT_EQ(publish_packet_size(h, v, payload), out.size() + payload)
              << "remaining " << remaining;
        }
      }
    }
  }
}

PublishView publish_ok(uint8_t flags, const std::string& body, Version v) {
  PublishView out;
  DecodeError err;
  EXPECT_TRUE(decode_publish(flags, body, v, out, err)) << err.message;
  return out;
}

uint8_t publish_error(uint8_t flags, const std::string& body, Version v) {
  PublishView out;
  DecodeError err;
  EXPECT_FALSE(decode_publish(flags, body, v, out, err));
  return err.reason;
}

TEST(CodecPublishMalformed, FixedHeaderFlags) {
  for (Version v : {Version::kV311, Version::kV5}) {
    const std::string tail = v == Version::kV5 ? P("") : "";
    // QoS 3, with and without DUP/retain.
    EXPECT_EQ(publish_error(0x06, S("t") + B({0, 1}) + tail, v), reason::kMalformedPacket);
    EXPECT_EQ(publish_error(0x0F, S("t") + B({0, 1}) + tail, v), reason::kMalformedPacket);
    // DUP on QoS 0.
    EXPECT_EQ(publish_error(0x08, S("t") + tail, v), reason::kMalformedPacket);
    EXPECT_EQ(publish_error(0x09, S("t") + tail, v), reason::kMalformedPacket);
    // Packet id 0 on QoS 1 and 2.
    EXPECT_EQ(publish_error(0x02, S("t") + B({0, 0}) + tail, v), reason::kProtocolError);
    EXPECT_EQ(publish_error(0x04, S("t") + B({0, 0}) + tail, v), reason::kProtocolError);
  }
}

TEST(CodecPublishMalformed, TopicName) {
  for (Version v : {Version::kV311, Version::kV5}) {
    const std::string tail = v == Version::kV5 ? P("") : "";
    EXPECT_EQ(publish_error(0, S("a/+") + tail, v), reason::kTopicNameInvalid);
    EXPECT_EQ(publish_error(0, S("#") + tail, v), reason::kTopicNameInvalid);
    EXPECT_EQ(publish_error(0, S("a#b") + tail, v), reason::kTopicNameInvalid);
    EXPECT_EQ(publish_error(0, S("\xC0\xAF") + tail, v), reason::kMalformedPacket);
    EXPECT_EQ(publish_error(0, S("\xED\xB0\x80") + tail, v), reason::kMalformedPacket);
    EXPECT_EQ(publish_error(0, S(std::string("a\0", 2)) + tail, v), reason::kMalformedPacket);
    // Length prefix longer than the body.
    EXPECT_EQ(publish_error(0, B({0, 9, 'a'}), v), reason::kMalformedPacket);
  }
  // Empty topic without an alias: malformed in 3.1.1, protocol error in 5.
  EXPECT_EQ(publish_error(0, S(""), Version::kV311), reason::kMalformedPacket);
  EXPECT_EQ(publish_error(0, S("") + P(""), Version::kV5), reason::kProtocolError);
  // The same bytes in 3.1.1 are payload, not properties.
  const std::string v3_body = S("t") + P(B({0x23, 0, 1}));  // the view points into it
  const PublishView v3 = publish_ok(0, v3_body, Version::kV311);
  EXPECT_EQ(v3.payload, P(B({0x23, 0, 1})));
  EXPECT_FALSE(v3.props.topic_alias);
}

TEST(CodecPublishMalformed, V5Properties) {
  const Version v = Version::kV5;
  auto with = [](const std::string& raw) { return S("t") + P(raw) + "payload"; };
  // Duplicates.
  EXPECT_EQ(publish_error(0, with(B({0x01, 0, 0x01, 1})), v), reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1})), v),
            reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x23, 0, 1, 0x23, 0, 2})), v), reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x03}) + S("a") + B({0x03}) + S("b")), v),
            reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x08}) + S("a") + B({0x08}) + S("b")), v),
            reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x09}) + S("a") + B({0x09}) + S("b")), v),
            reason::kProtocolError);
  // Not allowed in PUBLISH.
  EXPECT_EQ(publish_error(0, with(B({0x11, 0, 0, 0, 1})), v), reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x18, 0, 0, 0, 1})), v), reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x1F}) + S("why")), v), reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x21, 0, 5})), v), reason::kProtocolError);
  EXPECT_EQ(publish_error(0, with(B({0x15}) + S("m")), v), reason::kProtocolError);
  // Unknown property ids.
  EXPECT_EQ(publish_error(0, with(B({0x04, 0})), v), reason::kMalformedPacket);
  EXPECT_EQ(publish_error(0, with(B({0x7F})), v), reason::kMalformedPacket);
  // Bad values: payload format 2, subscription id 0, invalid UTF-8 content
  // type, response topic with a wildcard, truncated u32.
  EXPECT_EQ(publish_error(0, with(B({0x01, 2})), v), reason::kMalformedPacket);
  EXPECT_EQ(publish_error(0, with(B({0x0B, 0})), v), reason::kMalformedPacket);
  EXPECT_EQ(publish_error(0, with(B({0x03}) + S("\xED\xA0\x80")), v), reason::kMalformedPacket);
  EXPECT_EQ(publish_error(0, with(B({0x08}) + S("r/#")), v), reason::kMalformedPacket);
  EXPECT_EQ(publish_error(0, with(B({0x02, 0, 0})), v), reason::kMalformedPacket);
  // Subscription identifier varint of 5 bytes.
  EXPECT_EQ(publish_error(0, with(B({0x0B, 0x80, 0x80, 0x80, 0x80, 0x01})), v),
            reason::kMalformedPacket);
  // Property block longer than the packet.
  EXPECT_EQ(publish_error(0, S("t") + B({0x10, 0x01}), v), reason::kMalformedPacket);
  // Several subscription identifiers are fine in PUBLISH (server to client).
  const std::string ok_body = with(B({0x0B, 1, 0x0B, 2}));  // the view points into it
  const PublishView ok = publish_ok(0, ok_body, v);
  EXPECT_EQ(ok.props.subscription_ids, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(ok.payload, "payload");
}

// --- PUBACK / PUBREC / PUBREL / PUBCOMP ---------------------------------------

AckPacket ack_round_trip(const AckPacket& a, Version v, std::string* wire = nullptr) {
  std::string bytes;
  encode_ack(a, v, bytes);
  if (wire) *wire = bytes;
  std::string_view body;
  const FrameHeader h = split(bytes, body);
  EXPECT_EQ(h.type(), a.type);
  AckPacket out;
  DecodeError err;
  EXPECT_TRUE(decode_ack(h.type(), h.flags(), body, v, out, err)) << err.message;
  return out;
}

TEST(CodecAck, RoundTripAllTypesBothVersions) {
  for (PacketType t :
       {PacketType::kPuback, PacketType::kPubrec, PacketType::kPubrel, PacketType::kPubcomp}) {
    const int first = (static_cast<int>(t) << 4) | (t == PacketType::kPubrel ? 2 : 0);
    SCOPED_TRACE(packet_name(t));
    AckPacket a;
    a.type = t;
    a.packet_id = 0x1234;
    std::string wire;
    // v3: two bytes, no reason code.
    AckPacket out = ack_round_trip(a, Version::kV311, &wire);
    EXPECT_EQ(wire, B({first, 2, 0x12, 0x34}));
    EXPECT_EQ(out.packet_id, 0x1234);
    EXPECT_EQ(out.reason_code, 0);
    // v3 drops the reason code and properties.
    a.reason_code = 0x80;
    a.props.reason_string = "nope";
    out = ack_round_trip(a, Version::kV311, &wire);
    EXPECT_EQ(wire, B({first, 2, 0x12, 0x34}));
    EXPECT_EQ(out.reason_code, 0);
    // v5 success without properties: the short form.
    a.reason_code = 0;
    a.props = {};
    out = ack_round_trip(a, Version::kV5, &wire);
    EXPECT_EQ(wire, B({first, 2, 0x12, 0x34}));
    // v5 reason without properties: no property length byte.
    a.reason_code = reason::kNoMatchingSubscribers;
    out = ack_round_trip(a, Version::kV5, &wire);
    EXPECT_EQ(wire, B({first, 3, 0x12, 0x34, 0x10}));
    EXPECT_EQ(out.reason_code, 0x10);
    EXPECT_EQ(out.props, Properties{});
    // v5 reason with reason string and user properties.
    a.reason_code = reason::kPacketIdNotFound;
    a.props.reason_string = "unknown id";
    a.props.user = {{"x", "y"}};
    out = ack_round_trip(a, Version::kV5, &wire);
    EXPECT_EQ(wire, B({first, static_cast<int>(4 + 3 + 10 + 1 + 6), 0x12, 0x34, 0x92,
                       3 + 10 + 1 + 6, 0x1F}) +
                        S("unknown id") + B({0x26}) + S("x") + S("y"));
    EXPECT_EQ(out.reason_code, 0x92);
    EXPECT_EQ(out.props, a.props);
    // v5 success with properties keeps the reason byte.
    a.reason_code = 0;
    a.props = {};
    a.props.user = {{"k", "v"}};
    out = ack_round_trip(a, Version::kV5, &wire);
    EXPECT_EQ(wire.size(), 2u + 2 + 1 + 1 + 7);
    EXPECT_EQ(out.reason_code, 0);
    EXPECT_EQ(out.props.user, a.props.user);
  }
}

uint8_t ack_error(PacketType t, uint8_t flags, const std::string& body, Version v) {
  AckPacket out;
  DecodeError err;
  EXPECT_FALSE(decode_ack(t, flags, body, v, out, err));
  return err.reason;
}

TEST(CodecAckMalformed, Errors) {
  // Wrong fixed header flags: PUBREL needs 0x02, the others 0.
  EXPECT_EQ(ack_error(PacketType::kPuback, 0x02, B({0, 1}), Version::kV5),
            reason::kMalformedPacket);
  EXPECT_EQ(ack_error(PacketType::kPubrec, 0x01, B({0, 1}), Version::kV311),
            reason::kMalformedPacket);
  EXPECT_EQ(ack_error(PacketType::kPubrel, 0x00, B({0, 1}), Version::kV311),
            reason::kMalformedPacket);
  EXPECT_EQ(ack_error(PacketType::kPubcomp, 0x02, B({0, 1}), Version::kV5),
            reason::kMalformedPacket);
  // Packet id 0.
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, B({0, 0}), Version::kV311), reason::kProtocolError);
  EXPECT_EQ(ack_error(PacketType::kPubrel, 2, B({0, 0}), Version::kV5), reason::kProtocolError);
  // Truncated.
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, B({0}), Version::kV5), reason::kMalformedPacket);
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, "", Version::kV311), reason::kMalformedPacket);
  // v3 with a body longer than the packet id.
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, B({0, 1, 0}), Version::kV311),
            reason::kMalformedPacket);
  // v5 property not allowed in an ack, duplicate reason string, unknown id.
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, B({0, 1, 0}) + P(B({0x03}) + S("x")), Version::kV5),
            reason::kProtocolError);
  EXPECT_EQ(
      ack_error(PacketType::kPubcomp, 0, B({0, 1, 0}) + P(B({0x11, 0, 0, 0, 1})), Version::kV5),
      reason::kProtocolError);
  EXPECT_EQ(ack_error(PacketType::kPubrec, 0,
                      B({0, 1, 0x80}) + P(B({0x1F}) + S("a") + B({0x1F}) + S("b")), Version::kV5),
            reason::kProtocolError);
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, B({0, 1, 0}) + P(B({0x55, 0})), Version::kV5),
            reason::kMalformedPacket);
  // Trailing bytes after the properties.
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, B({0, 1, 0}) + P("") + B({0}), Version::kV5),
            reason::kMalformedPacket);
  // Reason string with invalid UTF-8.
  EXPECT_EQ(ack_error(PacketType::kPuback, 0, B({0, 1, 0x80}) + P(B({0x1F}) + S("\xC0\x80")),
                      Version::kV5),
            reason::kMalformedPacket);
}

TEST(CodecAck, V5EmptyPropertyBlockIsAccepted) {
  AckPacket out;
  DecodeError err;
  ASSERT_TRUE(decode_ack(PacketType::kPuback, 0, B({0, 7, 0x10, 0x00}), Version::kV5, out, err))
      << err.message;
  EXPECT_EQ(out.packet_id, 7);
  EXPECT_EQ(out.reason_code, 0x10);
}

// --- SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK ---------------------------------

TEST(CodecSubscribe, RoundTripV5AllOptions) {
  SubscribePacket s;
  s.packet_id = 77;
  s.props.subscription_ids = {268435455};
  s.props.user = {{"u", "v"}};
  for (uint8_t qos = 0; qos <= 2; ++qos) {
    for (uint8_t rh = 0; rh <= 2; ++rh) {
      for (int bits = 0; bits < 4; ++bits) {
        Subscription sub;
        sub.filter = "f/" + std::to_string(qos) + "/" + std::to_string(rh) + "/" +
                     std::to_string(bits) + "/+";
        sub.options = {qos, (bits & 1) != 0, (bits & 2) != 0, rh};
        s.subscriptions.push_back(sub);
      }
    }
  }
  s.subscriptions.push_back({"$share/group/#", {1, false, true, 0}});
  std::string bytes;
  encode_subscribe(s, Version::kV5, bytes);
  std::string_view body;
  const FrameHeader h = split(bytes, body);
  EXPECT_EQ(h.first_byte, 0x82);
  SubscribePacket out;
  DecodeError err;
  ASSERT_TRUE(decode_subscribe(h.flags(), body, Version::kV5, out, err)) << err.message;
  EXPECT_EQ(out.packet_id, 77);
  EXPECT_EQ(out.props, s.props);
  ASSERT_EQ(out.subscriptions.size(), s.subscriptions.size());
  for (size_t i = 0; i < s.subscriptions.size(); ++i) {
    EXPECT_EQ(out.subscriptions[i].filter, s.subscriptions[i].filter);
    EXPECT_EQ(out.subscriptions[i].options, s.subscriptions[i].options) << i;
  }
}

TEST(CodecSubscribe, V5OptionByteLayout) {
  SubscribePacket s;
  s.packet_id = 1;
  s.subscriptions = {{"a", {2, true, true, 2}}};
  std::string bytes;
  encode_subscribe(s, Version::kV5, bytes);
  EXPECT_EQ(bytes, B({0x82, 7, 0, 1, 0}) + S("a") + B({0x2E}));
}

TEST(CodecSubscribe, RoundTripV311) {
  SubscribePacket s;
  s.packet_id = 65535;
  s.subscriptions = {{"a/b", {0}}, {"c/+", {1}}, {"#", {2}}};
  std::string bytes;
  encode_subscribe(s, Version::kV311, bytes);
  EXPECT_EQ(bytes, B({0x82, 2 + 6 + 6 + 4, 0xFF, 0xFF}) + S("a/b") + B({0}) + S("c/+") + B({1}) +
                       S("#") + B({2}));
  std::string_view body;
  const FrameHeader h = split(bytes, body);
  SubscribePacket out;
  DecodeError err;
  ASSERT_TRUE(decode_subscribe(h.flags(), body, Version::kV311, out, err)) << err.message;
  EXPECT_EQ(out.packet_id, 65535);
  ASSERT_EQ(out.subscriptions.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out.subscriptions[i].filter, s.subscriptions[i].filter);
    EXPECT_EQ(out.subscriptions[i].options, s.subscriptions[i].options);
  }
}

uint8_t subscribe_error(uint8_t flags, const std::string& body, Version v) {
  SubscribePacket out;
  DecodeError err;
  EXPECT_FALSE(decode_subscribe(flags, body, v, out, err));
  return err.reason;
}

TEST(CodecSubscribeMalformed, Errors) {
  const Version v5 = Version::kV5, v3 = Version::kV311;
  const std::string id = B({0, 1});
  // Fixed header flags must be 0x02.
  EXPECT_EQ(subscribe_error(0x00, id + S("a") + B({0}), v3), reason::kMalformedPacket);
  EXPECT_EQ(subscribe_error(0x03, id + P("") + S("a") + B({0}), v5), reason::kMalformedPacket);
  // Packet id 0.
  EXPECT_EQ(subscribe_error(0x02, B({0, 0}) + S("a") + B({0}), v3), reason::kMalformedPacket);
  // No topic filters.
  EXPECT_EQ(subscribe_error(0x02, id, v3), reason::kProtocolError);
  EXPECT_EQ(subscribe_error(0x02, id + P(""), v5), reason::kProtocolError);
  // QoS 3.
  EXPECT_EQ(subscribe_error(0x02, id + S("a") + B({3}), v3), reason::kMalformedPacket);
  EXPECT_EQ(subscribe_error(0x02, id + P("") + S("a") + B({3}), v5), reason::kMalformedPacket);
  // Retain handling 3.
  EXPECT_EQ(subscribe_error(0x02, id + P("") + S("a") + B({0x30}), v5), reason::kMalformedPacket);
  // Reserved option bits: v5 bits 6-7, v3 bits 2-7.
  EXPECT_EQ(subscribe_error(0x02, id + P("") + S("a") + B({0x40}), v5), reason::kMalformedPacket);
  EXPECT_EQ(subscribe_error(0x02, id + P("") + S("a") + B({0x80}), v5), reason::kMalformedPacket);
  EXPECT_EQ(subscribe_error(0x02, id + S("a") + B({0x04}), v3), reason::kMalformedPacket);
  EXPECT_EQ(subscribe_error(0x02, id + S("a") + B({0x10}), v3), reason::kMalformedPacket);
  // Filter with invalid UTF-8 and with U+0000.
  EXPECT_EQ(subscribe_error(0x02, id + S("\xE0\x80\x80") + B({0}), v3), reason::kMalformedPacket);
  EXPECT_EQ(subscribe_error(0x02, id + S(std::string("a\0", 2)) + B({0}), v3),
            reason::kMalformedPacket);
  // Missing options byte.
  EXPECT_EQ(subscribe_error(0x02, id + S("a"), v3), reason::kMalformedPacket);
  // Two subscription identifiers, subscription identifier 0.
  EXPECT_EQ(subscribe_error(0x02, id + P(B({0x0B, 1, 0x0B, 2})) + S("a") + B({0}), v5),
            reason::kProtocolError);
  EXPECT_EQ(subscribe_error(0x02, id + P(B({0x0B, 0})) + S("a") + B({0}), v5),
            reason::kMalformedPacket);
  // Property not allowed in SUBSCRIBE.
  EXPECT_EQ(subscribe_error(0x02, id + P(B({0x01, 0})) + S("a") + B({0}), v5),
            reason::kProtocolError);
  EXPECT_EQ(subscribe_error(0x02, id + P(B({0x1F}) + S("r")) + S("a") + B({0}), v5),
            reason::kProtocolError);
  // Unknown property.
  EXPECT_EQ(subscribe_error(0x02, id + P(B({0x30, 0})) + S("a") + B({0}), v5),
            reason::kMalformedPacket);
}

TEST(CodecUnsubscribe, RoundTripBothVersions) {
  for (Version v : {Version::kV311, Version::kV5}) {
    UnsubscribePacket u;
    u.packet_id = 300;
    u.filters = {"a/#", "$share/g/b", "+/c"};
    if (v == Version::kV5) u.props.user = {{"p", "q"}};
    std::string bytes;
    encode_unsubscribe(u, v, bytes);
    std::string_view body;
    const FrameHeader h = split(bytes, body);
    EXPECT_EQ(h.first_byte, 0xA2);
    UnsubscribePacket out;
    DecodeError err;
    ASSERT_TRUE(decode_unsubscribe(h.flags(), body, v, out, err)) << err.message;
    EXPECT_EQ(out.packet_id, 300);
    EXPECT_EQ(out.filters, u.filters);
    EXPECT_EQ(out.props, u.props);
  }
}

uint8_t unsubscribe_error(uint8_t flags, const std::string& body, Version v) {
  UnsubscribePacket out;
  DecodeError err;
  EXPECT_FALSE(decode_unsubscribe(flags, body, v, out, err));
  return err.reason;
}

TEST(CodecUnsubscribeMalformed, Errors) {
  const Version v5 = Version::kV5, v3 = Version::kV311;
  EXPECT_EQ(unsubscribe_error(0x00, B({0, 1}) + S("a"), v3), reason::kMalformedPacket);
  EXPECT_EQ(unsubscribe_error(0x02, B({0, 0}) + S("a"), v3), reason::kMalformedPacket);
  EXPECT_EQ(unsubscribe_error(0x02, B({0, 1}), v3), reason::kProtocolError);
  EXPECT_EQ(unsubscribe_error(0x02, B({0, 1}) + P(""), v5), reason::kProtocolError);
  EXPECT_EQ(unsubscribe_error(0x02, B({0, 1}) + S("\xC3"), v3), reason::kMalformedPacket);
  EXPECT_EQ(unsubscribe_error(0x02, B({0, 1}) + P(B({0x0B, 1})) + S("a"), v5),
            reason::kProtocolError);
  EXPECT_EQ(unsubscribe_error(0x02, B({0, 1}) + B({0, 5, 'a'}), v3), reason::kMalformedPacket);
  EXPECT_EQ(unsubscribe_error(0x02, B({0}), v3), reason::kMalformedPacket);
}

TEST(CodecSuback, RoundTripSubackAndUnsubackBothVersions) {
  SubackPacket s;
  s.packet_id = 42;
  s.reason_codes = {0x00, 0x01, 0x02, 0x80, 0x8F, 0x87};
  {
    std::string bytes;
    encode_suback(PacketType::kSuback, s, Version::kV311, bytes);
    EXPECT_EQ(bytes, B({0x90, 8, 0, 42, 0x00, 0x01, 0x02, 0x80, 0x8F, 0x87}));
    std::string_view body;
    split(bytes, body);
    SubackPacket out;
    DecodeError err;
    ASSERT_TRUE(decode_suback(PacketType::kSuback, body, Version::kV311, out, err));
    EXPECT_EQ(out.packet_id, 42);
    EXPECT_EQ(out.reason_codes, s.reason_codes);
  }
  {
    // MQTT 3.1.1 UNSUBACK has no payload.
    std::string bytes;
    encode_suback(PacketType::kUnsuback, s, Version::kV311, bytes);
    EXPECT_EQ(bytes, B({0xB0, 2, 0, 42}));
  }
  for (PacketType t : {PacketType::kSuback, PacketType::kUnsuback}) {
    SubackPacket v5 = s;
    v5.reason_codes = {0x00, 0x11, 0x87};
    v5.props.reason_string = "partly";
    v5.props.user = {{"a", "b"}};
    std::string bytes;
    encode_suback(t, v5, Version::kV5, bytes);
    std::string_view body;
    const FrameHeader h = split(bytes, body);
    EXPECT_EQ(h.type(), t);
    EXPECT_EQ(h.flags(), 0);
    SubackPacket out;
    DecodeError err;
    ASSERT_TRUE(decode_suback(t, body, Version::kV5, out, err)) << err.message;
    EXPECT_EQ(out.packet_id, 42);
    EXPECT_EQ(out.reason_codes, v5.reason_codes);
    EXPECT_EQ(out.props, v5.props);
  }
}

TEST(CodecSubackMalformed, Errors) {
  SubackPacket out;
  DecodeError err;
  EXPECT_FALSE(decode_suback(PacketType::kSuback, B({0}), Version::kV311, out, err));
  EXPECT_EQ(err.reason, reason::kMalformedPacket);
  err = {};
  EXPECT_FALSE(decode_suback(PacketType::kSuback, B({0, 1}) + P(B({0x01, 0})) + B({0}),
                             Version::kV5, out, err));
  EXPECT_EQ(err.reason, reason::kProtocolError);
  err = {};
  EXPECT_FALSE(decode_suback(PacketType::kUnsuback, B({0, 1, 5}), Version::kV5, out, err));
  EXPECT_EQ(err.reason, reason::kMalformedPacket);
}

// --- PINGREQ / PINGRESP ----------------------------------------------------------

TEST(CodecPing, ExactBytes) {
  std::string req, resp;
  encode_pingreq(req);
  encode_pingresp(resp);
  EXPECT_EQ(req, B({0xC0, 0x00}));
  EXPECT_EQ(resp, B({0xD0, 0x00}));
  std::string_view body;
  EXPECT_EQ(split(req, body).type(), PacketType::kPingreq);
  EXPECT_TRUE(body.empty());
  EXPECT_EQ(split(resp, body).type(), PacketType::kPingresp);
  EXPECT_TRUE(body.empty());
}

// --- DISCONNECT / AUTH -------------------------------------------------------------

DisconnectPacket disconnect_round_trip(PacketType t, const DisconnectPacket& d, Version v,
                                       std::string* wire) {
  std::string bytes;
  encode_disconnect(t, d, v, bytes);
  *wire = bytes;
  std::string_view body;
  const FrameHeader h = split(bytes, body);
  EXPECT_EQ(h.type(), t);
  DisconnectPacket out;
  DecodeError err;
  EXPECT_TRUE(decode_disconnect(t, h.flags(), body, v, out, err)) << err.message;
  return out;
}

TEST(CodecDisconnect, RoundTrip) {
  std::string wire;
  DisconnectPacket d;
  // v3 and v5 normal disconnection: no body.
  disconnect_round_trip(PacketType::kDisconnect, d, Version::kV311, &wire);
  EXPECT_EQ(wire, B({0xE0, 0}));
  disconnect_round_trip(PacketType::kDisconnect, d, Version::kV5, &wire);
  EXPECT_EQ(wire, B({0xE0, 0}));
  // v3 cannot carry a reason.
  d.reason_code = reason::kServerShuttingDown;
  disconnect_round_trip(PacketType::kDisconnect, d, Version::kV311, &wire);
  EXPECT_EQ(wire, B({0xE0, 0}));
  // v5 reason only: reason byte plus an empty property block.
  DisconnectPacket out = disconnect_round_trip(PacketType::kDisconnect, d, Version::kV5, &wire);
  EXPECT_EQ(wire, B({0xE0, 2, 0x8B, 0}));
  EXPECT_EQ(out.reason_code, 0x8B);
  // v5 reason with properties.
  d.props.reason_string = "bye";
  d.props.session_expiry = 0;
  d.props.server_reference = "other:1883";
  d.props.user = {{"k", "v"}};
  out = disconnect_round_trip(PacketType::kDisconnect, d, Version::kV5, &wire);
  EXPECT_EQ(out.reason_code, 0x8B);
  EXPECT_EQ(out.props, d.props);
  // Reason 0 with properties keeps the reason byte.
  d.reason_code = 0;
  out = disconnect_round_trip(PacketType::kDisconnect, d, Version::kV5, &wire);
  EXPECT_EQ(static_cast<uint8_t>(wire[2]), 0);
  EXPECT_EQ(out.props, d.props);
}

TEST(CodecDisconnect, V5ReasonWithoutPropertyLengthIsAccepted) {
  DisconnectPacket out;
  DecodeError err;
  ASSERT_TRUE(decode_disconnect(PacketType::kDisconnect, 0, B({0x04}), Version::kV5, out, err));
  EXPECT_EQ(out.reason_code, 0x04);
}

TEST(CodecAuth, RoundTripV5) {
  DisconnectPacket a;
  a.reason_code = 0x18;  // continue authentication
  a.props.auth_method = "SCRAM-SHA-256";
  a.props.auth_data = std::string("\x00\xFF", 2);
  a.props.reason_string = "step";
  a.props.user = {{"x", "1"}};
  std::string wire;
  const DisconnectPacket out = disconnect_round_trip(PacketType::kAuth, a, Version::kV5, &wire);
  EXPECT_EQ(static_cast<uint8_t>(wire[0]), 0xF0);
  EXPECT_EQ(out.reason_code, 0x18);
  EXPECT_EQ(out.props, a.props);
}

uint8_t disconnect_error(PacketType t, uint8_t flags, const std::string& body, Version v) {
  DisconnectPacket out;
  DecodeError err;
  EXPECT_FALSE(decode_disconnect(t, flags, body, v, out, err));
  return err.reason;
}

TEST(CodecDisconnectMalformed, Errors) {
  const auto D = PacketType::kDisconnect, A = PacketType::kAuth;
  EXPECT_EQ(disconnect_error(D, 0x01, "", Version::kV311), reason::kMalformedPacket);
  EXPECT_EQ(disconnect_error(D, 0x02, "", Version::kV5), reason::kMalformedPacket);
  EXPECT_EQ(disconnect_error(A, 0x01, "", Version::kV5), reason::kMalformedPacket);
  // v3: DISCONNECT has no body; AUTH does not exist.
  EXPECT_EQ(disconnect_error(D, 0, B({0}), Version::kV311), reason::kMalformedPacket);
  EXPECT_EQ(disconnect_error(A, 0, "", Version::kV311), reason::kProtocolError);
  EXPECT_EQ(disconnect_error(A, 0, "", Version::kV31), reason::kProtocolError);
  // Properties only allowed elsewhere.
  EXPECT_EQ(disconnect_error(D, 0, B({0}) + P(B({0x15}) + S("m")), Version::kV5),
            reason::kProtocolError);
  EXPECT_EQ(disconnect_error(A, 0, B({0x18}) + P(B({0x11, 0, 0, 0, 1})), Version::kV5),
            reason::kProtocolError);
  EXPECT_EQ(disconnect_error(A, 0, B({0x18}) + P(B({0x1C}) + S("s")), Version::kV5),
            reason::kProtocolError);
  // Duplicate session expiry / auth method.
  EXPECT_EQ(
      disconnect_error(D, 0, B({0}) + P(B({0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1})), Version::kV5),
      reason::kProtocolError);
  EXPECT_EQ(
      disconnect_error(A, 0, B({0x18}) + P(B({0x15}) + S("a") + B({0x15}) + S("a")), Version::kV5),
      reason::kProtocolError);
  // Unknown property, truncated properties, trailing bytes.
  EXPECT_EQ(disconnect_error(D, 0, B({0}) + P(B({0x2B, 0})), Version::kV5),
            reason::kMalformedPacket);
  EXPECT_EQ(disconnect_error(D, 0, B({0, 3, 0x11}), Version::kV5), reason::kMalformedPacket);
  EXPECT_EQ(disconnect_error(D, 0, B({0}) + P("") + B({1}), Version::kV5),
            reason::kMalformedPacket);
}

// --- CONNACK ---------------------------------------------------------------------

TEST(CodecConnack, V311MapsReasonCodes) {
  struct Case {
    uint8_t v5;
    uint8_t v3;
  };
  const std::vector<Case> cases = {
      {reason::kSuccess, 0},
      {reason::kUnsupportedProtocolVersion, 1},
      {reason::kClientIdNotValid, 2},
      {reason::kServerUnavailable, 3},
      {reason::kServerBusy, 3},
      {reason::kServerShuttingDown, 3},
      {reason::kBadUserNameOrPassword, 4},
      {reason::kNotAuthorized, 5},
      {reason::kBanned, 5},
      {reason::kUnspecifiedError, 5},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(connack_v311_code(c.v5), c.v3) << int(c.v5);
    ConnackPacket p;
    p.reason_code = c.v5;
    p.session_present = c.v5 == 0;
    p.props.reason_string = "ignored in v3";
    std::string bytes;
    encode_connack(p, Version::kV311, bytes);
    EXPECT_EQ(bytes, B({0x20, 2, c.v5 == 0 ? 1 : 0, c.v3}));
    std::string_view body;
    split(bytes, body);
    ConnackPacket out;
    DecodeError err;
    ASSERT_TRUE(decode_connack(body, Version::kV311, out, err));
    EXPECT_EQ(out.reason_code, c.v3);
    EXPECT_EQ(out.session_present, c.v5 == 0);
  }
}

TEST(CodecConnack, RoundTripV5WithAllProperties) {
  ConnackPacket p;
  p.session_present = true;
  p.reason_code = 0;
  p.props.session_expiry = 3600;
  p.props.assigned_client_id = "bb-0123";
  p.props.server_keep_alive = 30;
  p.props.auth_method = "m";
  p.props.auth_data = "d";
  p.props.response_info = "resp/";
  p.props.server_reference = "srv";
  p.props.reason_string = "welcome";
  p.props.receive_maximum = 100;
  p.props.topic_alias_maximum = 64;
  p.props.maximum_qos = 1;
  p.props.retain_available = 1;
  p.props.maximum_packet_size = 262144;
  p.props.wildcard_sub_available = 1;
  p.props.sub_id_available = 0;
  p.props.shared_sub_available = 1;
  p.props.user = {{"a", "b"}};
  std::string bytes;
  encode_connack(p, Version::kV5, bytes);
  std::string_view body;
  const FrameHeader h = split(bytes, body);
  EXPECT_EQ(h.first_byte, 0x20);
  EXPECT_EQ(body.size(), 2 + varint_size(static_cast<uint32_t>(properties_size(p.props))) +
                             properties_size(p.props));
  ConnackPacket out;
  DecodeError err;
  ASSERT_TRUE(decode_connack(body, Version::kV5, out, err)) << err.message;
  EXPECT_TRUE(out.session_present);
  EXPECT_EQ(out.reason_code, 0);
  EXPECT_EQ(out.props, p.props);
  // Refusal without properties.
  ConnackPacket refuse;
  refuse.reason_code = reason::kNotAuthorized;
  bytes.clear();
  encode_connack(refuse, Version::kV5, bytes);
  EXPECT_EQ(bytes, B({0x20, 3, 0, 0x87, 0}));
}

TEST(CodecConnackMalformed, Errors) {
  auto error = [](const std::string& body, Version v) {
    ConnackPacket out;
    DecodeError err;
    EXPECT_FALSE(decode_connack(body, v, out, err));
    return err.reason;
  };
  EXPECT_EQ(error(B({0}), Version::kV311), reason::kMalformedPacket);
  EXPECT_EQ(error(B({0x02, 0}), Version::kV311), reason::kMalformedPacket);  // reserved flags
  EXPECT_EQ(error(B({0, 0, 0}), Version::kV311), reason::kMalformedPacket);  // trailing
  EXPECT_EQ(error(B({0, 0}), Version::kV5), reason::kMalformedPacket);       // no properties
  EXPECT_EQ(error(B({0, 0}) + P(B({0x24, 2})), Version::kV5), reason::kMalformedPacket);
  EXPECT_EQ(error(B({0, 0}) + P(B({0x17, 1})), Version::kV5), reason::kProtocolError);
  EXPECT_EQ(error(B({0, 0}) + P(B({0x24, 0, 0x24, 1})), Version::kV5), reason::kProtocolError);
}

// --- truncation: every prefix of every packet fails cleanly ----------------------------

struct TruncationCase {
  std::string name;
  std::string packet;
  Version version;
  // Body prefix lengths that are themselves valid packets.
  std::function<bool(size_t)> prefix_valid = [](size_t) { return false; };
  // Expected reason for an invalid prefix (0x81 unless said otherwise).
  std::function<uint8_t(size_t)> expected_reason = [](size_t) { return reason::kMalformedPacket; };
};

std::vector<TruncationCase> truncation_cases() {
  std::vector<TruncationCase> cases;
  {
    std::string b;
    encode_connect(full_connect(Version::kV311), b);
    cases.push_back({"CONNECT v3.1.1", b, Version::kV311});
    b.clear();
    encode_connect(full_connect(Version::kV5), b);
    cases.push_back({"CONNECT v5", b, Version::kV5});
    b.clear();
    encode_connect(full_connect(Version::kV31), b);
    cases.push_back({"CONNECT v3.1", b, Version::kV31});
  }
  for (Version v : {Version::kV311, Version::kV5}) {
    PublishView p;
    p.topic = "some/topic";
    p.payload = "0123456789";
    p.qos = 1;
    p.packet_id = 10;
    if (v == Version::kV5) p.props = all_publish_props();
    std::string b;
    encode_publish(p, v, b);
    FrameHeader fh;
    EXPECT_EQ(parse_frame_header(b, fh), FrameStatus::kComplete);
    const size_t payload_at = fh.remaining_length - p.payload.size();
    TruncationCase c{v == Version::kV5 ? "PUBLISH v5" : "PUBLISH v3.1.1", b, v};
    c.prefix_valid = [payload_at](size_t n) { return n >= payload_at; };
    cases.push_back(c);
  }
  {
    AckPacket a;
    a.type = PacketType::kPubrec;
    a.packet_id = 5;
    a.reason_code = 0x80;
    a.props.reason_string = "reason";
    a.props.user = {{"k", "v"}};
    std::string b;
    encode_ack(a, Version::kV5, b);
    TruncationCase c{"PUBREC v5", b, Version::kV5};
    c.prefix_valid = [](size_t n) { return n == 2 || n == 3; };
    cases.push_back(c);
    a.type = PacketType::kPubrel;
    b.clear();
    encode_ack(a, Version::kV311, b);
    cases.push_back({"PUBREL v3.1.1", b, Version::kV311});
  }
  for (Version v : {Version::kV311, Version::kV5}) {
    SubscribePacket s;
    s.packet_id = 3;
    s.subscriptions = {{"a/+/#", {1, false, false, 0}}};
    size_t filters_at = 2;
    if (v == Version::kV5) {
      s.props.subscription_ids = {200};
      s.props.user = {{"k", "v"}};
      filters_at += 1 + properties_size(s.props);
    }
    std::string b;
    encode_subscribe(s, v, b);
    TruncationCase c{v == Version::kV5 ? "SUBSCRIBE v5" : "SUBSCRIBE v3.1.1", b, v};
    c.expected_reason = [filters_at](size_t n) {
      return n == filters_at ? reason::kProtocolError : reason::kMalformedPacket;
    };
    cases.push_back(c);
    UnsubscribePacket u;
    u.packet_id = 3;
    u.filters = {"a/+/#"};
    if (v == Version::kV5) u.props.user = {{"k", "v"}};
    const size_t ufilters_at = 2 + (v == Version::kV5 ? 1 + properties_size(u.props) : 0);
    b.clear();
    encode_unsubscribe(u, v, b);
    TruncationCase uc{v == Version::kV5 ? "UNSUBSCRIBE v5" : "UNSUBSCRIBE v3.1.1", b, v};
    uc.expected_reason = [ufilters_at](size_t n) {
      return n == ufilters_at ? reason::kProtocolError : reason::kMalformedPacket;
    };
    cases.push_back(uc);
  }
  {
    SubackPacket s;
    s.packet_id = 9;
    s.reason_codes = {0, 1, 0x80};
    s.props.reason_string = "r";
    std::string b;
    encode_suback(PacketType::kSuback, s, Version::kV5, b);
    const size_t codes_at = 2 + 1 + properties_size(s.props);
    TruncationCase c{"SUBACK v5", b, Version::kV5};
    c.prefix_valid = [codes_at](size_t n) { return n >= codes_at; };
    cases.push_back(c);
  }
  for (PacketType t : {PacketType::kDisconnect, PacketType::kAuth}) {
    DisconnectPacket d;
    d.reason_code = t == PacketType::kAuth ? 0x18 : 0x8E;
    d.props.reason_string = "why";
    d.props.user = {{"k", "v"}};
    if (t == PacketType::kAuth) d.props.auth_method = "m";
    std::string b;
    encode_disconnect(t, d, Version::kV5, b);
    TruncationCase c{std::string(packet_name(t)) + " v5", b, Version::kV5};
    c.prefix_valid = [](size_t n) { return n <= 1; };
    cases.push_back(c);
  }
  {
    ConnackPacket a;
    a.props.assigned_client_id = "id";
    a.props.receive_maximum = 10;
    std::string b;
    encode_connack(a, Version::kV5, b);
    cases.push_back({"CONNACK v5", b, Version::kV5});
    b.clear();
    encode_connack(a, Version::kV311, b);
    cases.push_back({"CONNACK v3.1.1", b, Version::kV311});
  }
  return cases;
}

TEST(CodecTruncation, EveryPrefixOfEveryPacketFailsCleanly) {
  for (const TruncationCase& c : truncation_cases()) {
    SCOPED_TRACE(c.name);
    std::string_view full_body;
    const FrameHeader h = split(c.packet, full_body);
    DecodeError err;
    ASSERT_TRUE(decode_any(h, full_body, c.version, err)) << err.message;
    // The frame parser never claims a prefix of the packet is complete.
    for (size_t n = 0; n < c.packet.size(); ++n) {
      FrameHeader fh;
      const auto status = parse_frame_header(std::string_view(c.packet).substr(0, n), fh);
      if (status == FrameStatus::kComplete) {
        EXPECT_GT(size_t{fh.header_length} + fh.remaining_length, n);
      } else {
        EXPECT_EQ(status, FrameStatus::kNeedMore) << n;
      }
    }
    // Body prefixes, each in its own exactly sized heap buffer so a sanitizer
    // build catches any read past the end.
    for (size_t n = 0; n < full_body.size(); ++n) {
      std::unique_ptr<char[]> buf(new char[n == 0 ? 1 : n]);
      std::memcpy(buf.get(), full_body.data(), n);
      const std::string_view prefix(buf.get(), n);
      DecodeError e;
      const bool ok = decode_any(h, prefix, c.version, e);
      if (c.prefix_valid(n)) {
        EXPECT_TRUE(ok) << "prefix " << n << ": " << e.message;
      } else {
        EXPECT_FALSE(ok) << "prefix " << n << " of " << full_body.size() << " accepted";
        EXPECT_EQ(e.reason, c.expected_reason(n)) << "prefix " << n << ": " << e.message;
      }
    }
  }
}

}  // namespace
}  // namespace backbone::kernel::protocol
