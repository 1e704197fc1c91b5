// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/protocol/codec.hpp"

#include "kernel/protocol/reason_code.hpp"

#include <cstring>

namespace backbone::kernel::protocol {
namespace {

// Bit per packet type in which a property may appear.
enum : uint32_t {
  kInConnect = 1u << 1,
  kInConnack = 1u << 2,
  kInPublish = 1u << 3,
  kInAck = 1u << 4,  // PUBACK..PUBCOMP
  kInSubscribe = 1u << 8,
  kInSuback = 1u << 9,
  kInUnsubscribe = 1u << 10,
  kInUnsuback = 1u << 11,
  kInDisconnect = 1u << 14,
  kInAuth = 1u << 15,
  kInWill = 1u << 16,
};

constexpr uint32_t kReasonStringAndUser =
    kInConnack | kInAck | kInSuback | kInUnsuback | kInDisconnect | kInAuth;

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  bool empty() const { return pos_ >= data_.size(); }
  size_t remaining() const { return data_.size() - pos_; }
  size_t pos() const { return pos_; }
  std::string_view rest() const { return data_.substr(pos_); }
  std::string_view slice(size_t from, size_t to) const { return data_.substr(from, to - from); }

  bool u8(uint8_t& v) {
    if (remaining() < 1) return false;
    v = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool u16(uint16_t& v) {
    if (remaining() < 2) return false;
    v = static_cast<uint16_t>((static_cast<uint8_t>(data_[pos_]) << 8) |
                              static_cast<uint8_t>(data_[pos_ + 1]));
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t& v) {
    if (remaining() < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_ + i]);
    pos_ += 4;
    return true;
  }
  bool varint(uint32_t& v) {
    v = 0;
    for (int i = 0; i < 4; ++i) {
      uint8_t b;
      if (!u8(b)) return false;
      v |= static_cast<uint32_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool binary(std::string_view& v) {
    uint16_t len;
    if (!u16(len) || remaining() < len) return false;
    v = data_.substr(pos_, len);
    pos_ += len;
    return true;
  }
  bool skip(size_t n) {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

bool fail(DecodeError& err, uint8_t reason, const char* message) {
  err.reason = reason;
  err.message = message;
  return false;
}

bool read_utf8(Reader& r, std::string_view& v, DecodeError& err) {
  if (!r.binary(v)) return fail(err, reason::kMalformedPacket, "truncated string");
  if (!valid_utf8(v)) return fail(err, reason::kMalformedPacket, "invalid UTF-8 string");
  return true;
}

template <class T>
bool set_once(std::optional<T>& slot, T value, DecodeError& err) {
  if (slot) return fail(err, reason::kProtocolError, "duplicate property");
  slot = std::move(value);
  return true;
}

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

void put_u16(uint16_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
void put_u32(uint32_t v, std::string& out) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}
void put_string(std::string_view s, std::string& out) {
  put_u16(static_cast<uint16_t>(s.size()), out);
  out.append(s);
}
void put_fixed_header(uint8_t first, size_t remaining, std::string& out) {
  out.push_back(static_cast<char>(first));
  append_varint(static_cast<uint32_t>(remaining), out);
}

// Properties are encoded into a scratch string first; control packets are
// rare, so simplicity wins over avoiding the copy here.
std::string encoded_properties(const Properties& p) {
  std::string out;
  encode_properties(p, out);
  return out;
}

bool version_is_v5(Version v) {
  return v == Version::kV5;
}

}  // namespace

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

bool decode_subscribe(uint8_t flags, std::string_view body, Version version, SubscribePacket& out,
                      DecodeError& err) {
  if (flags != 0x02) return fail(err, reason::kMalformedPacket, "bad SUBSCRIBE flags");
  Reader r(body);
  if (!r.u16(out.packet_id)) return fail(err, reason::kMalformedPacket, "truncated SUBSCRIBE");
  if (out.packet_id == 0) return fail(err, reason::kMalformedPacket, "packet id 0");
  const bool v5 = version_is_v5(version);
  if (v5 && !read_properties(r, kInSubscribe, out.props, err)) return false;
  while (!r.empty()) {
    std::string_view filter;
    if (!read_utf8(r, filter, err)) return false;
    uint8_t opts;
    if (!r.u8(opts)) return fail(err, reason::kMalformedPacket, "truncated SUBSCRIBE");
    if ((v5 && (opts & 0xC0)) || (!v5 && (opts & 0xFC)))
      return fail(err, reason::kMalformedPacket, "reserved subscription option bits");
    Subscription sub{std::string(filter), {}};
    sub.options.qos = opts & 0x03;
    if (sub.options.qos == 3) return fail(err, reason::kMalformedPacket, "subscription QoS 3");
    if (v5) {
      sub.options.no_local = opts & 0x04;
      sub.options.retain_as_published = opts & 0x08;
      sub.options.retain_handling = (opts >> 4) & 0x03;
      if (sub.options.retain_handling == 3)
        return fail(err, reason::kMalformedPacket, "retain handling 3");
    }
    out.subscriptions.push_back(std::move(sub));
  }
  if (out.subscriptions.empty())
    return fail(err, reason::kProtocolError, "SUBSCRIBE without topic filters");
  return true;
}

bool decode_unsubscribe(uint8_t flags, std::string_view body, Version version,
                        UnsubscribePacket& out, DecodeError& err) {
  if (flags != 0x02) return fail(err, reason::kMalformedPacket, "bad UNSUBSCRIBE flags");
  Reader r(body);
  if (!r.u16(out.packet_id)) return fail(err, reason::kMalformedPacket, "truncated UNSUBSCRIBE");
  if (out.packet_id == 0) return fail(err, reason::kMalformedPacket, "packet id 0");
  if (version_is_v5(version) && !read_properties(r, kInUnsubscribe, out.props, err)) return false;
  while (!r.empty()) {
    std::string_view filter;
    if (!read_utf8(r, filter, err)) return false;
    out.filters.emplace_back(filter);
  }
  if (out.filters.empty())
    return fail(err, reason::kProtocolError, "UNSUBSCRIBE without topic filters");
  return true;
}

bool decode_disconnect(PacketType type, uint8_t flags, std::string_view body, Version version,
                       DisconnectPacket& out, DecodeError& err) {
  if (flags != 0) return fail(err, reason::kMalformedPacket, "bad fixed header flags");
  if (!version_is_v5(version)) {
    if (type == PacketType::kAuth) return fail(err, reason::kProtocolError, "AUTH before MQTT 5");
    if (!body.empty()) return fail(err, reason::kMalformedPacket, "DISCONNECT with a body");
    return true;
  }
  Reader r(body);
  if (r.empty()) return true;
  if (!r.u8(out.reason_code)) return fail(err, reason::kMalformedPacket, "truncated packet");
  if (!r.empty() &&
      !read_properties(r, type == PacketType::kAuth ? kInAuth : kInDisconnect, out.props, err))
    return false;
  if (!r.empty()) return fail(err, reason::kMalformedPacket, "trailing bytes");
  return true;
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

bool decode_suback(PacketType type, std::string_view body, Version version, SubackPacket& out,
                   DecodeError& err) {
  Reader r(body);
  if (!r.u16(out.packet_id)) return fail(err, reason::kMalformedPacket, "truncated SUBACK");
  if (version_is_v5(version) &&
      !read_properties(r, type == PacketType::kSuback ? kInSuback : kInUnsuback, out.props, err))
    return false;
  while (!r.empty()) {
    uint8_t code;
    r.u8(code);
    out.reason_codes.push_back(code);
  }
  return true;
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

void encode_suback(PacketType type, const SubackPacket& p, Version version, std::string& out) {
  const uint8_t first = static_cast<uint8_t>(static_cast<uint8_t>(type) << 4);
  const bool v5 = version_is_v5(version);
  // MQTT 3.1.1 UNSUBACK carries no payload.
  const bool codes = v5 || type == PacketType::kSuback;
  const std::string props = v5 ? encoded_properties(p.props) : std::string();
  put_fixed_header(first, 2 + props.size() + (codes ? p.reason_codes.size() : 0), out);
  put_u16(p.packet_id, out);
  out.append(props);
  if (codes) {
    for (uint8_t c : p.reason_codes) out.push_back(static_cast<char>(c));
  }
}

void encode_pingresp(std::string& out) {
  out.append("\xD0\x00", 2);
}
void encode_pingreq(std::string& out) {
  out.append("\xC0\x00", 2);
}

void encode_disconnect(PacketType type, const DisconnectPacket& p, Version version,
                       std::string& out) {
  const uint8_t first = static_cast<uint8_t>(static_cast<uint8_t>(type) << 4);
  if (!version_is_v5(version)) {
    put_fixed_header(first, 0, out);
    return;
  }
  const bool has_props = properties_size(p.props) > 0;
  if (p.reason_code == 0 && !has_props) {
    put_fixed_header(first, 0, out);
    return;
  }
  const std::string props = encoded_properties(p.props);
  put_fixed_header(first, 1 + props.size(), out);
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

void encode_subscribe(const SubscribePacket& p, Version version, std::string& out) {
  std::string body;
  put_u16(p.packet_id, body);
  if (version_is_v5(version)) encode_properties(p.props, body);
  for (const auto& s : p.subscriptions) {
    put_string(s.filter, body);
    uint8_t o = s.options.qos;
    if (version_is_v5(version)) {
      o |= (s.options.no_local ? 0x04 : 0) | (s.options.retain_as_published ? 0x08 : 0) |
           static_cast<uint8_t>(s.options.retain_handling << 4);
    }
    body.push_back(static_cast<char>(o));
  }
  put_fixed_header(0x82, body.size(), out);
  out.append(body);
}

void encode_unsubscribe(const UnsubscribePacket& p, Version version, std::string& out) {
  std::string body;
  put_u16(p.packet_id, body);
  if (version_is_v5(version)) encode_properties(p.props, body);
  for (const auto& f : p.filters) put_string(f, body);
  put_fixed_header(0xA2, body.size(), out);
  out.append(body);
}

}  // namespace backbone::kernel::protocol
