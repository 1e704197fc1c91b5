// SPDX-License-Identifier: GPL-3.0-or-later
// CONNECT and CONNACK. AUTH shares the shape of DISCONNECT: codec_disconnect.cpp.
#include "kernel/protocol/codec.hpp"

#include "kernel/protocol/reason_code.hpp"
#include "kernel/protocol/wire.hpp"

namespace backbone::kernel::protocol {

using namespace wire;

bool decode_connect(std::string_view body, ConnectPacket& out, DecodeError& err) {
  Reader r(body);
  std::string_view protocol_name;
  if (!r.binary(protocol_name)) return fail(err, reason::kMalformedPacket, "truncated CONNECT");
  uint8_t level;
  if (!r.u8(level)) return fail(err, reason::kMalformedPacket, "truncated CONNECT");
  if (level == 3 && protocol_name == "MQIsdp") {
    out.version = Version::kV31;
  } else if (protocol_name == "MQTT" && (level == 4 || level == 5)) {
    out.version = static_cast<Version>(level);
  } else if (protocol_name == "MQTT" || protocol_name == "MQIsdp") {
    return fail(err, reason::kUnsupportedProtocolVersion, "unsupported protocol version");
  } else {
    return fail(err, reason::kMalformedPacket, "unknown protocol name");
  }
  uint8_t flags;
  if (!r.u8(flags) || !r.u16(out.keep_alive))
    return fail(err, reason::kMalformedPacket, "truncated CONNECT");
  if (flags & 0x01) return fail(err, reason::kMalformedPacket, "reserved CONNECT flag set");
  const bool has_user = flags & 0x80, has_password = flags & 0x40, will_retain = flags & 0x20;
  const uint8_t will_qos = (flags >> 3) & 0x03;
  const bool has_will = flags & 0x04;
  out.clean_start = flags & 0x02;
  if (!has_will && (will_qos != 0 || will_retain))
    return fail(err, reason::kMalformedPacket, "will flags without will");
  if (will_qos > 2) return fail(err, reason::kMalformedPacket, "will QoS 3");
  if (out.version != Version::kV5 && has_password && !has_user)
    return fail(err, reason::kMalformedPacket, "password without user name");
  const bool v5 = out.version == Version::kV5;
  if (v5 && !read_properties(r, kInConnect, out.props, err)) return false;
  std::string_view s;
  if (!read_utf8(r, s, err)) return false;
  out.client_id = std::string(s);
  if (has_will) {
    Will will;
    will.qos = will_qos;
    will.retain = will_retain;
    if (v5 && !read_properties(r, kInWill, will.props, err)) return false;
    if (!read_utf8(r, s, err)) return false;
    if (!valid_topic_name(s)) return fail(err, reason::kTopicNameInvalid, "invalid will topic");
    will.topic = std::string(s);
    if (!r.binary(s)) return fail(err, reason::kMalformedPacket, "truncated will payload");
    will.payload = std::string(s);
    out.will = std::move(will);
  }
  if (has_user) {
    if (!read_utf8(r, s, err)) return false;
    out.username = std::string(s);
  }
  if (has_password) {
    if (!r.binary(s)) return fail(err, reason::kMalformedPacket, "truncated password");
    out.password = std::string(s);
  }
  if (!r.empty()) return fail(err, reason::kMalformedPacket, "trailing bytes in CONNECT");
  return true;
}

void encode_connack(const ConnackPacket& p, Version version, std::string& out) {
  if (!version_is_v5(version)) {
    put_fixed_header(0x20, 2, out);
    out.push_back(static_cast<char>(p.session_present ? 1 : 0));
    out.push_back(static_cast<char>(connack_v311_code(p.reason_code)));
    return;
  }
  const std::string props = encoded_properties(p.props);
  put_fixed_header(0x20, 2 + props.size(), out);
  out.push_back(static_cast<char>(p.session_present ? 1 : 0));
  out.push_back(static_cast<char>(p.reason_code));
  out.append(props);
}

bool decode_connack(std::string_view body, Version version, ConnackPacket& out, DecodeError& err) {
  Reader r(body);
  uint8_t ack_flags;
  if (!r.u8(ack_flags) || !r.u8(out.reason_code))
    return fail(err, reason::kMalformedPacket, "truncated CONNACK");
  if (ack_flags & 0xFE) return fail(err, reason::kMalformedPacket, "reserved CONNACK flags");
  out.session_present = ack_flags & 0x01;
  if (version_is_v5(version) && !read_properties(r, kInConnack, out.props, err)) return false;
  if (!r.empty()) return fail(err, reason::kMalformedPacket, "trailing bytes in CONNACK");
  return true;
}

void encode_connect(const ConnectPacket& p, std::string& out) {
  std::string body;
  const bool v5 = p.version == Version::kV5;
  put_string(p.version == Version::kV31 ? "MQIsdp" : "MQTT", body);
  body.push_back(static_cast<char>(p.version));
  uint8_t flags = p.clean_start ? 0x02 : 0;
  if (p.will) {
    flags |= 0x04 | static_cast<uint8_t>(p.will->qos << 3) | (p.will->retain ? 0x20 : 0);
  }
  if (p.password) flags |= 0x40;
  if (p.username) flags |= 0x80;
  body.push_back(static_cast<char>(flags));
  put_u16(p.keep_alive, body);
  if (v5) encode_properties(p.props, body);
  put_string(p.client_id, body);
  if (p.will) {
    if (v5) encode_properties(p.will->props, body);
    put_string(p.will->topic, body);
    put_string(p.will->payload, body);
  }
  if (p.username) put_string(*p.username, body);
  if (p.password) put_string(*p.password, body);
  put_fixed_header(0x10, body.size(), out);
  out.append(body);
}

}  // namespace backbone::kernel::protocol
