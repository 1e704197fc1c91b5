// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernel/protocol/packets.hpp"

namespace backbone::kernel::protocol {

// Why a packet was refused: the v5 reason code to close with, and a fixed
// message for the log. Untrusted input never throws.
struct DecodeError {
  uint8_t reason = 0;
  const char* message = "";
};

// The fixed header of the packet at the start of a receive buffer.
struct FrameHeader {
  uint8_t first_byte = 0;
  uint32_t header_length = 0;     // fixed header bytes (1 + length bytes)
  uint32_t remaining_length = 0;  // body bytes
  PacketType type() const { return static_cast<PacketType>(first_byte >> 4); }
  uint8_t flags() const { return first_byte & 0x0F; }
};

enum class FrameStatus { kComplete, kNeedMore, kMalformed };

// Reads the fixed header only, so an oversized packet can be refused before
// its body is buffered.
FrameStatus parse_frame_header(std::string_view buffer, FrameHeader& out);

// Decoders take the packet body (after the fixed header); views in the
// results point into `body`. Encoders append one whole packet to `out`.
// Decoders of client-side packets (CONNACK, SUBACK) and encoders of
// client-side packets (CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ)
// serve tests, the fuzzer and the load generator.

// CONNECT and CONNACK (codec_connect.cpp).
bool decode_connect(std::string_view body, ConnectPacket& out, DecodeError& err);
void encode_connack(const ConnackPacket& p, Version version, std::string& out);
bool decode_connack(std::string_view body, Version version, ConnackPacket& out, DecodeError& err);
void encode_connect(const ConnectPacket& p, std::string& out);

// PUBLISH, PUBACK, PUBREC, PUBREL and PUBCOMP (codec_publish.cpp).
bool decode_publish(uint8_t flags, std::string_view body, Version version, PublishView& out,
                    DecodeError& err);
bool decode_ack(PacketType type, uint8_t flags, std::string_view body, Version version,
                AckPacket& out, DecodeError& err);
void encode_ack(const AckPacket& p, Version version, std::string& out);
// PUBLISH as the broker sends it: fixed header, topic, packet id and
// properties go to `out`; the caller sends `payload_size` payload bytes right
// after, from the shared message buffer.
struct PublishHeader {
  std::string_view topic;  // empty when only a topic alias is sent
  uint16_t packet_id = 0;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t topic_alias = 0;                    // v5, 0 = none
  std::optional<uint32_t> message_expiry;      // v5, remaining lifetime
  std::string_view forward_props;              // v5, pre-encoded
  const uint32_t* subscription_ids = nullptr;  // v5
  size_t subscription_id_count = 0;
};
void encode_publish_header(const PublishHeader& h, Version version, size_t payload_size,
                           std::string& out);
size_t publish_packet_size(const PublishHeader& h, Version version, size_t payload_size);
void encode_publish(const PublishView& p, Version version, std::string& out);

// SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK (codec_subscribe.cpp).
bool decode_subscribe(uint8_t flags, std::string_view body, Version version, SubscribePacket& out,
                      DecodeError& err);
bool decode_unsubscribe(uint8_t flags, std::string_view body, Version version,
                        UnsubscribePacket& out, DecodeError& err);
// `type` is kSuback or kUnsuback: they share a shape.
void encode_suback(PacketType type, const SubackPacket& p, Version version, std::string& out);
bool decode_suback(PacketType type, std::string_view body, Version version, SubackPacket& out,
                   DecodeError& err);
void encode_subscribe(const SubscribePacket& p, Version version, std::string& out);
void encode_unsubscribe(const UnsubscribePacket& p, Version version, std::string& out);

// DISCONNECT, AUTH, PINGREQ and PINGRESP (codec_disconnect.cpp).
// `type` is kDisconnect or kAuth: they share a shape.
bool decode_disconnect(PacketType type, uint8_t flags, std::string_view body, Version version,
                       DisconnectPacket& out, DecodeError& err);
void encode_disconnect(PacketType type, const DisconnectPacket& p, Version version,
                       std::string& out);
void encode_pingresp(std::string& out);
void encode_pingreq(std::string& out);

// The primitives every packet shares (codec.cpp).

// Encodes the properties block (length prefix included).
void encode_properties(const Properties& props, std::string& out);
size_t properties_size(const Properties& props);  // without the length prefix

void append_varint(uint32_t value, std::string& out);
size_t varint_size(uint32_t value);

bool valid_utf8(std::string_view s);
// A topic name a client may publish to: non-empty, no wildcards, no NUL.
bool valid_topic_name(std::string_view topic);
// The properties a broker forwards with a message (payload format, content
// type, response topic, correlation data, user properties) out of `encoded`,
// a PUBLISH's property block without its length; false when the block is
// malformed or holds a property a PUBLISH may not carry.
bool forwardable_properties(std::string_view encoded, std::string& forward, DecodeError& err);
// A topic filter: '+' and '#' only as whole levels, '#' last.
bool valid_topic_filter(std::string_view filter);

}  // namespace backbone::kernel::protocol
