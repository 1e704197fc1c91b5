// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: every decoder must reject or accept arbitrary bytes
// without crashing, and what it accepts must re-encode.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernel/protocol/codec.hpp"

using namespace backbone::kernel::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte picks the protocol version, the rest is a byte stream.
  const Version version = (data[0] & 1) ? Version::kV5 : Version::kV311;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  while (!stream.empty()) {
    FrameHeader h;
    if (parse_frame_header(stream, h) != FrameStatus::kComplete) break;
    if (stream.size() < h.header_length + h.remaining_length) break;
    const std::string_view body = stream.substr(h.header_length, h.remaining_length);
    stream.remove_prefix(h.header_length + h.remaining_length);
    DecodeError err;
    std::string out;
    switch (h.type()) {
      case PacketType::kConnect: {
        ConnectPacket p;
        if (decode_connect(body, p, err)) encode_connect(p, out);
        break;
      }
      case PacketType::kPublish: {
        PublishView p;
        if (decode_publish(h.flags(), body, version, p, err)) encode_publish(p, version, out);
        break;
      }
      case PacketType::kPuback:
      case PacketType::kPubrec:
      case PacketType::kPubrel:
      case PacketType::kPubcomp: {
        AckPacket p;
        if (decode_ack(h.type(), h.flags(), body, version, p, err)) encode_ack(p, version, out);
        break;
      }
      case PacketType::kSubscribe: {
        SubscribePacket p;
        if (decode_subscribe(h.flags(), body, version, p, err)) encode_subscribe(p, version, out);
        break;
      }
      case PacketType::kUnsubscribe: {
        UnsubscribePacket p;
        if (decode_unsubscribe(h.flags(), body, version, p, err))
          encode_unsubscribe(p, version, out);
        break;
      }
      case PacketType::kDisconnect:
      case PacketType::kAuth: {
        DisconnectPacket p;
        if (decode_disconnect(h.type(), h.flags(), body, version, p, err))
          encode_disconnect(h.type(), p, version, out);
        break;
      }
      case PacketType::kConnack: {
        ConnackPacket p;
        if (decode_connack(body, version, p, err)) encode_connack(p, version, out);
        break;
      }
      case PacketType::kSuback:
      case PacketType::kUnsuback: {
        SubackPacket p;
        if (decode_suback(h.type(), body, version, p, err))
          encode_suback(h.type(), p, version, out);
        break;
      }
      default:
        break;
    }
  }
  return 0;
}
