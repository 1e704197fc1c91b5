// SPDX-License-Identifier: GPL-3.0-or-later
// SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
#include "kernel/protocol/codec.hpp"

#include "kernel/protocol/reason_code.hpp"
#include "kernel/protocol/wire.hpp"

namespace backbone::kernel::protocol {

using namespace wire;

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
