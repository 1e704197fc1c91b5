// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstddef>
#include <cstdint>

// RFC 6455 frames as a server reads and writes them, apart from any socket
// so that the fuzzer (tests/fuzz/fuzz_ws_frame.cpp) and the unit tests reach
// the same code as ws:// (plain_websocket.cpp).
namespace backbone::kernel::http {

struct WsFrame {
  bool fin = false;
  uint8_t opcode = 0;
  uint64_t length = 0;  // of the payload
  size_t header = 0;    // bytes before the payload, mask key included; 0 = not known yet
};

enum class WsParse { kNeedMore, kFrame, kProtocolError, kTooBig };

// Reads the client frame starting at `f` (`size` bytes available). The
// current message holds `message_len` bytes so far when `in_message` (a
// fragmented message); messages may not exceed `max_message`. kNeedMore with
// `out.header` set: the header is valid and the frame needs
// out.header + out.length bytes in all.
inline WsParse parse_ws_frame(const uint8_t* f, size_t size, bool in_message, uint64_t message_len,
                              uint64_t max_message, WsFrame& out) {
  out = WsFrame{};
  if (size < 2) return WsParse::kNeedMore;
  const bool fin = f[0] & 0x80;
  const uint8_t rsv = f[0] & 0x70;
  const uint8_t opcode = f[0] & 0x0f;
  const bool masked = f[1] & 0x80;
  uint64_t len = f[1] & 0x7f;
  size_t header = 2;
  if (len == 126) {
    if (size < 4) return WsParse::kNeedMore;
    len = (uint64_t{f[2]} << 8) | f[3];
    header = 4;
  } else if (len == 127) {
    if (size < 10) return WsParse::kNeedMore;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | f[2 + i];
    header = 10;
    if (len >> 63) return WsParse::kProtocolError;
  }
  if (rsv || !masked) return WsParse::kProtocolError;
  const bool control = opcode & 0x08;
  if (control && (!fin || len > 125)) return WsParse::kProtocolError;
  if (!control) {
    if (opcode != 0x0 && opcode != 0x1 && opcode != 0x2) return WsParse::kProtocolError;
    // A continuation without a message, or a new message within one.
    if ((opcode == 0x0) != in_message) return WsParse::kProtocolError;
    if (message_len + len > max_message) return WsParse::kTooBig;
  } else if (opcode != 0x8 && opcode != 0x9 && opcode != 0xA) {
    return WsParse::kProtocolError;
  }
  out = WsFrame{fin, opcode, len, header + 4};
  if (size < out.header || size - out.header < len) return WsParse::kNeedMore;
  return WsParse::kFrame;
}

// The longest frame header a server writes (no mask key).
constexpr size_t kWsMaxServerHeader = 10;

// Writes the header of an unfragmented, unmasked server frame with a
// payload of `len` bytes to `h` (kWsMaxServerHeader bytes); returns its
// length.
inline size_t write_ws_frame_header(uint8_t* h, uint8_t opcode, uint64_t len) {
  h[0] = static_cast<uint8_t>(0x80 | opcode);
  if (len < 126) {
    h[1] = static_cast<uint8_t>(len);
    return 2;
  }
  if (len < 65536) {
    h[1] = 126;
    h[2] = static_cast<uint8_t>(len >> 8);
    h[3] = static_cast<uint8_t>(len);
    return 4;
  }
  h[1] = 127;
  for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<uint8_t>(len >> (56 - 8 * i));
  return 10;
}

// Unmasks the payload of a complete frame in place (RFC 6455 §5.3).
inline void unmask_ws_frame(uint8_t* f, const WsFrame& frame) {
  const uint8_t* mask = f + frame.header - 4;
  uint8_t* payload = f + frame.header;
  for (uint64_t i = 0; i < frame.length; ++i) payload[i] ^= mask[i & 3];
}

}  // namespace backbone::kernel::http
