// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The MQTT wire primitives the codec files share: a bounds-checked reader,
// big-endian writers and the property block by packet context. Private to
// kernel/protocol/codec*.cpp; callers use codec.hpp.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernel/protocol/codec.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::protocol::wire {

// Bit per packet type in which a property may appear (the packet type's
// number, plus one bit for a CONNECT's will).
enum PropertyContext : uint32_t {
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

inline bool fail(DecodeError& err, uint8_t reason, const char* message) {
  err.reason = reason;
  err.message = message;
  return false;
}

inline bool read_utf8(Reader& r, std::string_view& v, DecodeError& err) {
  if (!r.binary(v)) return fail(err, reason::kMalformedPacket, "truncated string");
  if (!valid_utf8(v)) return fail(err, reason::kMalformedPacket, "invalid UTF-8 string");
  return true;
}

// Reads a property block (length prefix included) into `props`, refusing
// properties the packet type `context` may not carry. For PUBLISH and the
// will, the properties a broker forwards are also copied, encoded, to
// props.forward.
bool read_properties(Reader& r, uint32_t context, Properties& props, DecodeError& err);

inline void put_u16(uint16_t v, std::string& out) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xFF));
}
inline void put_u32(uint32_t v, std::string& out) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}
inline void put_string(std::string_view s, std::string& out) {
  put_u16(static_cast<uint16_t>(s.size()), out);
  out.append(s);
}
inline void put_fixed_header(uint8_t first, size_t remaining, std::string& out) {
  out.push_back(static_cast<char>(first));
  append_varint(static_cast<uint32_t>(remaining), out);
}

// Properties are encoded into a scratch string first; control packets are
// rare, so simplicity wins over avoiding the copy here.
inline std::string encoded_properties(const Properties& p) {
  std::string out;
  encode_properties(p, out);
  return out;
}

inline bool version_is_v5(Version v) {
  return v == Version::kV5;
}

}  // namespace backbone::kernel::protocol::wire
