// SPDX-License-Identifier: GPL-3.0-or-later
// PUBLISH and its acknowledgements (PUBACK, PUBREC, PUBREL, PUBCOMP).
#include "kernel/protocol/codec.hpp"

#include "kernel/protocol/reason_code.hpp"
#include "kernel/protocol/wire.hpp"

namespace backbone::kernel::protocol {

using namespace wire;

bool decode_publish(uint8_t flags, std::string_view body, Version version, PublishView& out,
                    DecodeError& err) {
  out.dup = flags & 0x08;
  out.qos = (flags >> 1) & 0x03;
  out.retain = flags & 0x01;
  if (out.qos == 3) return fail(err, reason::kMalformedPacket, "PUBLISH with QoS 3");
  if (out.qos == 0 && out.dup) return fail(err, reason::kMalformedPacket, "DUP set on QoS 0");
  Reader r(body);
  if (!r.binary(out.topic)) return fail(err, reason::kMalformedPacket, "truncated PUBLISH");
  if (!valid_utf8(out.topic)) return fail(err, reason::kMalformedPacket, "topic is not UTF-8");
  if (out.topic.find_first_of("+#") != std::string_view::npos)
    return fail(err, reason::kTopicNameInvalid, "wildcard in topic name");
  if (out.qos > 0) {
    if (!r.u16(out.packet_id)) return fail(err, reason::kMalformedPacket, "truncated PUBLISH");
    if (out.packet_id == 0) return fail(err, reason::kProtocolError, "packet id 0");
  }
  if (version_is_v5(version) && !read_properties(r, kInPublish, out.props, err)) return false;
  if (out.topic.empty() && !out.props.topic_alias)
    return fail(err, version_is_v5(version) ? reason::kProtocolError : reason::kMalformedPacket,
                "empty topic");
  out.payload = r.rest();
  return true;
}

bool decode_ack(PacketType type, uint8_t flags, std::string_view body, Version version,
                AckPacket& out, DecodeError& err) {
  const uint8_t expected_flags = type == PacketType::kPubrel ? 0x02 : 0x00;
  if (flags != expected_flags) return fail(err, reason::kMalformedPacket, "bad fixed header flags");
  out.type = type;
  Reader r(body);
  if (!r.u16(out.packet_id)) return fail(err, reason::kMalformedPacket, "truncated ack");
  if (out.packet_id == 0) return fail(err, reason::kProtocolError, "packet id 0");
  if (!version_is_v5(version)) {
    if (!r.empty()) return fail(err, reason::kMalformedPacket, "trailing bytes in ack");
    return true;
  }
  if (r.empty()) return true;
  if (!r.u8(out.reason_code)) return fail(err, reason::kMalformedPacket, "truncated ack");
  if (!r.empty() && !read_properties(r, kInAck, out.props, err)) return false;
  if (!r.empty()) return fail(err, reason::kMalformedPacket, "trailing bytes in ack");
  return true;
}

void encode_ack(const AckPacket& p, Version version, std::string& out) {
  const uint8_t first = static_cast<uint8_t>(static_cast<uint8_t>(p.type) << 4) |
                        (p.type == PacketType::kPubrel ? 0x02 : 0x00);
  const bool has_props = properties_size(p.props) > 0;
  if (!version_is_v5(version) || (p.reason_code == 0 && !has_props)) {
    put_fixed_header(first, 2, out);
    put_u16(p.packet_id, out);
    return;
  }
  const std::string props = has_props ? encoded_properties(p.props) : std::string();
  put_fixed_header(first, 3 + props.size(), out);
  put_u16(p.packet_id, out);
  out.push_back(static_cast<char>(p.reason_code));
  out.append(props);
}

namespace {
size_t publish_props_size(const PublishHeader& h) {
  size_t n = h.forward_props.size();
  if (h.topic_alias) n += 3;
  if (h.message_expiry) n += 5;
  for (size_t i = 0; i < h.subscription_id_count; ++i) n += 1 + varint_size(h.subscription_ids[i]);
  return n;
}
size_t publish_remaining(const PublishHeader& h, Version version, size_t payload_size) {
  size_t n = 2 + h.topic.size() + (h.qos > 0 ? 2 : 0) + payload_size;
  if (version_is_v5(version)) {
    const size_t props = publish_props_size(h);
    n += varint_size(static_cast<uint32_t>(props)) + props;
  }
  return n;
}
}  // namespace

size_t publish_packet_size(const PublishHeader& h, Version version, size_t payload_size) {
  const size_t remaining = publish_remaining(h, version, payload_size);
  return 1 + varint_size(static_cast<uint32_t>(remaining)) + remaining;
}

void encode_publish_header(const PublishHeader& h, Version version, size_t payload_size,
                           std::string& out) {
  const uint8_t first =
      0x30 | (h.dup ? 0x08 : 0) | static_cast<uint8_t>(h.qos << 1) | (h.retain ? 0x01 : 0);
  put_fixed_header(first, publish_remaining(h, version, payload_size), out);
  put_string(h.topic, out);
  if (h.qos > 0) put_u16(h.packet_id, out);
  if (!version_is_v5(version)) return;
  append_varint(static_cast<uint32_t>(publish_props_size(h)), out);
  if (h.message_expiry) {
    out.push_back(static_cast<char>(property::kMessageExpiry));
    put_u32(*h.message_expiry, out);
  }
  if (h.topic_alias) {
    out.push_back(static_cast<char>(property::kTopicAlias));
    put_u16(h.topic_alias, out);
  }
  for (size_t i = 0; i < h.subscription_id_count; ++i) {
    out.push_back(static_cast<char>(property::kSubscriptionId));
    append_varint(h.subscription_ids[i], out);
  }
  out.append(h.forward_props);
}

void encode_publish(const PublishView& p, Version version, std::string& out) {
  std::string body;
  put_string(p.topic, body);
  if (p.qos > 0) put_u16(p.packet_id, body);
  if (version_is_v5(version)) encode_properties(p.props, body);
  body.append(p.payload);
  const uint8_t first =
      0x30 | (p.dup ? 0x08 : 0) | static_cast<uint8_t>(p.qos << 1) | (p.retain ? 0x01 : 0);
  put_fixed_header(first, body.size(), out);
  out.append(body);
}

}  // namespace backbone::kernel::protocol
