// SPDX-License-Identifier: GPL-3.0-or-later
// The primitives every packet shares: the fixed header, variable byte
// integers, UTF-8 strings, topic names and filters, and the property block.
// Each packet family has its own file: codec_connect.cpp, codec_publish.cpp,
// codec_subscribe.cpp, codec_disconnect.cpp.
#include "kernel/protocol/codec.hpp"

#include <cstring>

#include "kernel/protocol/reason_code.hpp"
#include "kernel/protocol/wire.hpp"

namespace backbone::kernel::protocol {

using namespace wire;

namespace {

constexpr uint32_t kReasonStringAndUser =
    kInConnack | kInAck | kInSuback | kInUnsuback | kInDisconnect | kInAuth;

template <class T>
bool set_once(std::optional<T>& slot, T value, DecodeError& err) {
  if (slot) return fail(err, reason::kProtocolError, "duplicate property");
  slot = std::move(value);
  return true;
}

}  // namespace

namespace wire {

bool read_properties(Reader& r, uint32_t context, Properties& props, DecodeError& err) {
  uint32_t length;
  if (!r.varint(length) || r.remaining() < length)
    return fail(err, reason::kMalformedPacket, "bad property length");
  Reader pr(r.rest().substr(0, length));
  r.skip(length);
  const bool forwarding = (context & (kInPublish | kInWill)) != 0;
  while (!pr.empty()) {
    const size_t start = pr.pos();
    uint32_t id;
    if (!pr.varint(id)) return fail(err, reason::kMalformedPacket, "bad property id");
    uint32_t allowed = 0;
    bool ok = true;
    std::string_view s;
    uint8_t b;
    uint16_t w;
    uint32_t d;
    switch (id) {
      case property::kPayloadFormat:
        allowed = kInPublish | kInWill;
        ok = pr.u8(b) && b <= 1 && set_once(props.payload_format, b, err);
        break;
      case property::kMessageExpiry:
        allowed = kInPublish | kInWill;
        ok = pr.u32(d) && set_once(props.message_expiry, d, err);
        break;
      case property::kContentType:
        allowed = kInPublish | kInWill;
        ok = read_utf8(pr, s, err) && set_once(props.content_type, std::string(s), err);
        break;
      case property::kResponseTopic:
        allowed = kInPublish | kInWill;
        ok = read_utf8(pr, s, err) && valid_topic_name(s) &&
             set_once(props.response_topic, std::string(s), err);
        break;
      case property::kCorrelationData:
        allowed = kInPublish | kInWill;
        ok = pr.binary(s) && set_once(props.correlation_data, std::string(s), err);
        break;
      case property::kSubscriptionId:
        allowed = kInPublish | kInSubscribe;
        ok = pr.varint(d) && d != 0;
        if (ok && (context & kInSubscribe) && !props.subscription_ids.empty())
          return fail(err, reason::kProtocolError, "duplicate subscription identifier");
        if (ok) props.subscription_ids.push_back(d);
        break;
      case property::kSessionExpiry:
        allowed = kInConnect | kInConnack | kInDisconnect;
        ok = pr.u32(d) && set_once(props.session_expiry, d, err);
        break;
      case property::kAssignedClientId:
        allowed = kInConnack;
        ok = read_utf8(pr, s, err) && set_once(props.assigned_client_id, std::string(s), err);
        break;
      case property::kServerKeepAlive:
        allowed = kInConnack;
        ok = pr.u16(w) && set_once(props.server_keep_alive, w, err);
        break;
      case property::kAuthMethod:
        allowed = kInConnect | kInConnack | kInAuth;
        ok = read_utf8(pr, s, err) && set_once(props.auth_method, std::string(s), err);
        break;
      case property::kAuthData:
        allowed = kInConnect | kInConnack | kInAuth;
        ok = pr.binary(s) && set_once(props.auth_data, std::string(s), err);
        break;
      case property::kRequestProblemInfo:
        allowed = kInConnect;
        ok = pr.u8(b) && b <= 1 && set_once(props.request_problem_info, b, err);
        break;
      case property::kWillDelay:
        allowed = kInWill;
        ok = pr.u32(d) && set_once(props.will_delay, d, err);
        break;
      case property::kRequestResponseInfo:
        allowed = kInConnect;
        ok = pr.u8(b) && b <= 1 && set_once(props.request_response_info, b, err);
        break;
      case property::kResponseInfo:
        allowed = kInConnack;
        ok = read_utf8(pr, s, err) && set_once(props.response_info, std::string(s), err);
        break;
      case property::kServerReference:
        allowed = kInConnack | kInDisconnect;
        ok = read_utf8(pr, s, err) && set_once(props.server_reference, std::string(s), err);
        break;
      case property::kReasonString:
        allowed = kReasonStringAndUser;
        ok = read_utf8(pr, s, err) && set_once(props.reason_string, std::string(s), err);
        break;
      case property::kReceiveMaximum:
        allowed = kInConnect | kInConnack;
        ok = pr.u16(w) && w != 0 && set_once(props.receive_maximum, w, err);
        break;
      case property::kTopicAliasMaximum:
        allowed = kInConnect | kInConnack;
        ok = pr.u16(w) && set_once(props.topic_alias_maximum, w, err);
        break;
      case property::kTopicAlias:
        allowed = kInPublish;
        ok = pr.u16(w) && set_once(props.topic_alias, w, err);
        break;
      case property::kMaximumQos:
        allowed = kInConnack;
        ok = pr.u8(b) && b <= 1 && set_once(props.maximum_qos, b, err);
        break;
      case property::kRetainAvailable:
        allowed = kInConnack;
        ok = pr.u8(b) && b <= 1 && set_once(props.retain_available, b, err);
        break;
      case property::kUserProperty: {
        allowed = ~0u;
        std::string_view k;
        ok = read_utf8(pr, k, err) && read_utf8(pr, s, err);
        if (ok) props.user.push_back(UserProperty{std::string(k), std::string(s)});
        break;
      }
      case property::kMaximumPacketSize:
        allowed = kInConnect | kInConnack;
        ok = pr.u32(d) && d != 0 && set_once(props.maximum_packet_size, d, err);
        break;
      case property::kWildcardSubAvailable:
        allowed = kInConnack;
        ok = pr.u8(b) && b <= 1 && set_once(props.wildcard_sub_available, b, err);
        break;
      case property::kSubIdAvailable:
        allowed = kInConnack;
        ok = pr.u8(b) && b <= 1 && set_once(props.sub_id_available, b, err);
        break;
      case property::kSharedSubAvailable:
        allowed = kInConnack;
        ok = pr.u8(b) && b <= 1 && set_once(props.shared_sub_available, b, err);
        break;
      default:
        return fail(err, reason::kMalformedPacket, "unknown property");
    }
    if (!ok) {
      if (err.reason == 0) fail(err, reason::kMalformedPacket, "malformed property");
      return false;
    }
    if ((allowed & context) == 0)
      return fail(err, reason::kProtocolError, "property not allowed in this packet");
    if (forwarding && (id == property::kPayloadFormat || id == property::kContentType ||
                       id == property::kResponseTopic || id == property::kCorrelationData ||
                       id == property::kUserProperty)) {
      props.forward.append(pr.slice(start, pr.pos()));
    }
  }
  return true;
}

}  // namespace wire

const char* packet_name(PacketType type) {
  static constexpr const char* kNames[] = {"RESERVED",  "CONNECT",  "CONNACK",     "PUBLISH",
                                           "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                           "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                           "PINGREQ",   "PINGRESP", "DISCONNECT",  "AUTH"};
  return kNames[static_cast<uint8_t>(type) & 0x0F];
}

void append_varint(uint32_t value, std::string& out) {
  do {
    uint8_t b = value & 0x7F;
    value >>= 7;
    if (value) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (value);
}

size_t varint_size(uint32_t value) {
  return value < 128 ? 1 : value < 16384 ? 2 : value < 2097152 ? 3 : 4;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time: no high bit and no zero byte.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      constexpr uint64_t kHigh = 0x8080808080808080ull, kLow = 0x0101010101010101ull;
      if ((w & kHigh) == 0 && ((w - kLow) & ~w & kHigh) == 0) {
        i += 8;
        continue;
      }
    }
    const uint8_t c = p[i];
    if (c < 0x80) {
      if (c == 0) return false;  // U+0000 is forbidden in MQTT strings
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
      return false;  // overlong
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

bool forwardable_properties(std::string_view encoded, std::string& forward, DecodeError& err) {
  if (encoded.size() > 268435455) return fail(err, reason::kMalformedPacket, "properties too long");
  std::string block;
  append_varint(static_cast<uint32_t>(encoded.size()), block);
  block.append(encoded);
  Reader r(block);
  Properties props;
  if (!read_properties(r, kInPublish, props, err)) return false;
  forward = std::move(props.forward);
  return true;
}

bool valid_topic_name(std::string_view topic) {
  if (topic.empty()) return false;
  return topic.find_first_of(std::string_view("+#\0", 3)) == std::string_view::npos;
}

bool valid_topic_filter(std::string_view filter) {
  if (filter.empty()) return false;
  size_t start = 0;
  while (true) {
    const size_t end = filter.find('/', start);
    const std::string_view level =
        filter.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (level.find_first_of("+#") != std::string_view::npos) {
      if (level.size() != 1) return false;
      if (level == "#" && end != std::string_view::npos) return false;
    }
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

FrameStatus parse_frame_header(std::string_view buffer, FrameHeader& out) {
  if (buffer.size() < 2) return FrameStatus::kNeedMore;
  out.first_byte = static_cast<uint8_t>(buffer[0]);
  uint32_t value = 0;
  for (uint32_t i = 0; i < 4; ++i) {
    if (buffer.size() < 2 + i) return FrameStatus::kNeedMore;
    const uint8_t b = static_cast<uint8_t>(buffer[1 + i]);
    value |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
    if ((b & 0x80) == 0) {
      out.header_length = 2 + i;
      out.remaining_length = value;
      return FrameStatus::kComplete;
    }
  }
  return FrameStatus::kMalformed;
}

size_t properties_size(const Properties& p) {
  size_t n = 0;
  auto str = [&](const std::optional<std::string>& s) {
    if (s) n += 1 + 2 + s->size();
  };
  if (p.payload_format) n += 2;
  if (p.message_expiry) n += 5;
  str(p.content_type);
  str(p.response_topic);
  str(p.correlation_data);
  for (uint32_t id : p.subscription_ids) n += 1 + varint_size(id);
  if (p.session_expiry) n += 5;
  str(p.assigned_client_id);
  if (p.server_keep_alive) n += 3;
  str(p.auth_method);
  str(p.auth_data);
  if (p.request_problem_info) n += 2;
  if (p.will_delay) n += 5;
  if (p.request_response_info) n += 2;
  str(p.response_info);
  str(p.server_reference);
  str(p.reason_string);
  if (p.receive_maximum) n += 3;
  if (p.topic_alias_maximum) n += 3;
  if (p.topic_alias) n += 3;
  if (p.maximum_qos) n += 2;
  if (p.retain_available) n += 2;
  for (const auto& u : p.user) n += 1 + 2 + u.key.size() + 2 + u.value.size();
  if (p.maximum_packet_size) n += 5;
  if (p.wildcard_sub_available) n += 2;
  if (p.sub_id_available) n += 2;
  if (p.shared_sub_available) n += 2;
  return n;
}

void encode_properties(const Properties& p, std::string& out) {
  append_varint(static_cast<uint32_t>(properties_size(p)), out);
  auto byte = [&](uint8_t id, const std::optional<uint8_t>& v) {
    if (v) {
      out.push_back(static_cast<char>(id));
      out.push_back(static_cast<char>(*v));
    }
  };
  auto word = [&](uint8_t id, const std::optional<uint16_t>& v) {
    if (v) {
      out.push_back(static_cast<char>(id));
      put_u16(*v, out);
    }
  };
  auto dword = [&](uint8_t id, const std::optional<uint32_t>& v) {
    if (v) {
      out.push_back(static_cast<char>(id));
      put_u32(*v, out);
    }
  };
  auto str = [&](uint8_t id, const std::optional<std::string>& v) {
    if (v) {
      out.push_back(static_cast<char>(id));
      put_string(*v, out);
    }
  };
  byte(property::kPayloadFormat, p.payload_format);
  dword(property::kMessageExpiry, p.message_expiry);
  str(property::kContentType, p.content_type);
  str(property::kResponseTopic, p.response_topic);
  str(property::kCorrelationData, p.correlation_data);
  for (uint32_t id : p.subscription_ids) {
    out.push_back(static_cast<char>(property::kSubscriptionId));
    append_varint(id, out);
  }
  dword(property::kSessionExpiry, p.session_expiry);
  str(property::kAssignedClientId, p.assigned_client_id);
  word(property::kServerKeepAlive, p.server_keep_alive);
  str(property::kAuthMethod, p.auth_method);
  str(property::kAuthData, p.auth_data);
  byte(property::kRequestProblemInfo, p.request_problem_info);
  dword(property::kWillDelay, p.will_delay);
  byte(property::kRequestResponseInfo, p.request_response_info);
  str(property::kResponseInfo, p.response_info);
  str(property::kServerReference, p.server_reference);
  str(property::kReasonString, p.reason_string);
  word(property::kReceiveMaximum, p.receive_maximum);
  word(property::kTopicAliasMaximum, p.topic_alias_maximum);
  word(property::kTopicAlias, p.topic_alias);
  byte(property::kMaximumQos, p.maximum_qos);
  byte(property::kRetainAvailable, p.retain_available);
  for (const auto& u : p.user) {
    out.push_back(static_cast<char>(property::kUserProperty));
    put_string(u.key, out);
    put_string(u.value, out);
  }
  dword(property::kMaximumPacketSize, p.maximum_packet_size);
  byte(property::kWildcardSubAvailable, p.wildcard_sub_available);
  byte(property::kSubIdAvailable, p.sub_id_available);
  byte(property::kSharedSubAvailable, p.shared_sub_available);
}

}  // namespace backbone::kernel::protocol
