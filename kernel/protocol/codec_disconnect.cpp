// SPDX-License-Identifier: GPL-3.0-or-later
// PINGREQ, PINGRESP, DISCONNECT and AUTH (which shares the shape of DISCONNECT).
#include "kernel/protocol/codec.hpp"

#include "kernel/protocol/reason_code.hpp"
#include "kernel/protocol/wire.hpp"

namespace backbone::kernel::protocol {

using namespace wire;

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

void encode_pingresp(std::string& out) {
  out.append("\xD0\x00", 2);
}
void encode_pingreq(std::string& out) {
  out.append("\xC0\x00", 2);
}

}  // namespace backbone::kernel::protocol
