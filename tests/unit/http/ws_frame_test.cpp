// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/ws_frame.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

using namespace backbone::kernel::http;

namespace {

std::vector<uint8_t> masked_frame(uint8_t first, std::vector<uint8_t> payload) {
  std::vector<uint8_t> f{first};
  const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
  if (payload.size() < 126) {
    f.push_back(static_cast<uint8_t>(0x80 | payload.size()));
  } else if (payload.size() < 65536) {
    f.push_back(0x80 | 126);
    f.push_back(static_cast<uint8_t>(payload.size() >> 8));
    f.push_back(static_cast<uint8_t>(payload.size()));
  } else {
    f.push_back(0x80 | 127);
    for (int i = 0; i < 8; ++i)
      f.push_back(static_cast<uint8_t>(uint64_t{payload.size()} >> (56 - 8 * i)));
  }
  f.insert(f.end(), mask, mask + 4);
  for (size_t i = 0; i < payload.size(); ++i) f.push_back(payload[i] ^ mask[i & 3]);
  return f;
}

WsParse parse(const std::vector<uint8_t>& f, WsFrame& out, bool in_message = false,
              uint64_t message_len = 0, uint64_t max_message = 1024) {
  return parse_ws_frame(f.data(), f.size(), in_message, message_len, max_message, out);
}

}  // namespace

TEST(WsFrame, BinaryFrameUnmasked) {
  auto f = masked_frame(0x82, {'m', 'q', 't', 't'});
  WsFrame frame;
  ASSERT_EQ(parse(f, frame), WsParse::kFrame);
  EXPECT_TRUE(frame.fin);
  EXPECT_EQ(frame.opcode, 0x2);
  EXPECT_EQ(frame.length, 4u);
  EXPECT_EQ(frame.header, 6u);
  unmask_ws_frame(f.data(), frame);
  EXPECT_EQ(std::vector<uint8_t>(f.begin() + 6, f.end()),
            (std::vector<uint8_t>{'m', 'q', 't', 't'}));
}

TEST(WsFrame, IncompleteFrameReportsItsSize) {
  auto f = masked_frame(0x82, std::vector<uint8_t>(300, 'x'));
  WsFrame frame;
  EXPECT_EQ(parse_ws_frame(f.data(), 1, false, 0, 1024, frame), WsParse::kNeedMore);
  EXPECT_EQ(frame.header, 0u);  // not even the length yet
  EXPECT_EQ(parse_ws_frame(f.data(), 3, false, 0, 1024, frame), WsParse::kNeedMore);
  EXPECT_EQ(frame.header, 0u);
  EXPECT_EQ(parse_ws_frame(f.data(), 100, false, 0, 1024, frame), WsParse::kNeedMore);
  EXPECT_EQ(frame.header + frame.length, f.size());
}

TEST(WsFrame, ProtocolErrors) {
  WsFrame frame;
  std::vector<uint8_t> unmasked{0x82, 0x01, 'x'};
  EXPECT_EQ(parse(unmasked, frame), WsParse::kProtocolError);
  EXPECT_EQ(parse(masked_frame(0xC2, {'x'}), frame), WsParse::kProtocolError);  // RSV1
  EXPECT_EQ(parse(masked_frame(0x83, {'x'}), frame), WsParse::kProtocolError);  // opcode 3
  EXPECT_EQ(parse(masked_frame(0x09, {}), frame), WsParse::kProtocolError);     // fragmented ping
  EXPECT_EQ(parse(masked_frame(0x89, std::vector<uint8_t>(126, 'p')), frame),
            WsParse::kProtocolError);  // control frame over 125 bytes
  EXPECT_EQ(parse(masked_frame(0x80, {'x'}), frame), WsParse::kProtocolError);        // no message
  EXPECT_EQ(parse(masked_frame(0x82, {'x'}), frame, true), WsParse::kProtocolError);  // in one
  std::vector<uint8_t> huge{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_EQ(parse(huge, frame), WsParse::kProtocolError);  // 64-bit length with the top bit
}

TEST(WsFrame, MessageLimitCountsFragments) {
  WsFrame frame;
  const auto part = masked_frame(0x00, std::vector<uint8_t>(100, 'x'));
  EXPECT_EQ(parse(part, frame, true, 924, 1024), WsParse::kFrame);
  EXPECT_EQ(parse(part, frame, true, 925, 1024), WsParse::kTooBig);
}

TEST(WsFrame, SixteenBitLengthUnmasks) {
  std::vector<uint8_t> payload(300);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i);
  auto f = masked_frame(0x82, payload);
  WsFrame frame;
  ASSERT_EQ(parse(f, frame), WsParse::kFrame);
  EXPECT_EQ(frame.length, 300u);
  EXPECT_EQ(frame.header, 8u);  // 2 + 2 length bytes + 4 mask bytes
  unmask_ws_frame(f.data(), frame);
  EXPECT_EQ(std::vector<uint8_t>(f.begin() + 8, f.end()), payload);
}

TEST(WsFrame, SixtyFourBitLength) {
  std::vector<uint8_t> payload(70000, 'z');
  auto f = masked_frame(0x82, payload);
  WsFrame frame;
  ASSERT_EQ(parse(f, frame, false, 0, 100000), WsParse::kFrame);
  EXPECT_EQ(frame.length, 70000u);
  EXPECT_EQ(frame.header, 14u);  // 2 + 8 length bytes + 4 mask bytes
  unmask_ws_frame(f.data(), frame);
  EXPECT_EQ(std::vector<uint8_t>(f.begin() + 14, f.end()), payload);
  // The length is known from the tenth byte on, before the mask arrives.
  EXPECT_EQ(parse_ws_frame(f.data(), 9, false, 0, 100000, frame), WsParse::kNeedMore);
  EXPECT_EQ(frame.header, 0u);
  EXPECT_EQ(parse_ws_frame(f.data(), 10, false, 0, 100000, frame), WsParse::kNeedMore);
  EXPECT_EQ(frame.header + frame.length, f.size());
}

TEST(WsFrame, ZeroLengthFrame) {
  const auto f = masked_frame(0x82, {});
  WsFrame frame;
  ASSERT_EQ(parse(f, frame), WsParse::kFrame);
  EXPECT_EQ(frame.length, 0u);
  EXPECT_EQ(frame.header, f.size());
}

TEST(WsFrame, UnmaskedFramesAreRefusedWhateverTheirLength) {
  WsFrame frame;
  const std::vector<uint8_t> short_len{0x82, 0x00};
  const std::vector<uint8_t> len16{0x82, 126, 0x01, 0x00};
  const std::vector<uint8_t> len64{0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
  EXPECT_EQ(parse(short_len, frame), WsParse::kProtocolError);
  EXPECT_EQ(parse(len16, frame), WsParse::kProtocolError);
  EXPECT_EQ(parse(len64, frame), WsParse::kProtocolError);
}

TEST(WsFrame, EveryPrefixOfAFrameNeedsMore) {
  for (size_t payload : {0u, 5u, 125u, 126u, 1000u}) {
    const auto f = masked_frame(0x82, std::vector<uint8_t>(payload, 'a'));
    WsFrame frame;
    for (size_t n = 0; n < f.size(); ++n) {
      ASSERT_EQ(parse_ws_frame(f.data(), n, false, 0, 4096, frame), WsParse::kNeedMore)
          << payload << " bytes of payload, " << n << " bytes available";
      if (frame.header != 0) {
        EXPECT_EQ(frame.header + frame.length, f.size());
      }
    }
    EXPECT_EQ(parse_ws_frame(f.data(), f.size(), false, 0, 4096, frame), WsParse::kFrame);
  }
}

TEST(WsFrame, AFrameIsReadAloneFromABufferHoldingMore) {
  auto f = masked_frame(0x82, {'a', 'b'});
  const auto next = masked_frame(0x82, {'c'});
  f.insert(f.end(), next.begin(), next.end());
  WsFrame frame;
  ASSERT_EQ(parse(f, frame), WsParse::kFrame);
  EXPECT_EQ(frame.header + frame.length, 8u);
  ASSERT_EQ(parse_ws_frame(f.data() + 8, f.size() - 8, false, 0, 1024, frame), WsParse::kFrame);
  EXPECT_EQ(frame.length, 1u);
}

TEST(WsFrame, FragmentedMessage) {
  WsFrame frame;
  // First fragment: binary, no FIN.
  ASSERT_EQ(parse(masked_frame(0x02, {'a'}), frame, false, 0), WsParse::kFrame);
  EXPECT_FALSE(frame.fin);
  EXPECT_EQ(frame.opcode, 0x2);
  // Middle and last fragments: continuations within the message.
  ASSERT_EQ(parse(masked_frame(0x00, {'b'}), frame, true, 1), WsParse::kFrame);
  EXPECT_FALSE(frame.fin);
  EXPECT_EQ(frame.opcode, 0x0);
  ASSERT_EQ(parse(masked_frame(0x80, {'c'}), frame, true, 2), WsParse::kFrame);
  EXPECT_TRUE(frame.fin);
  // A text message is parsed too (the server refuses it after reading it).
  ASSERT_EQ(parse(masked_frame(0x01, {'t'}), frame), WsParse::kFrame);
  EXPECT_EQ(frame.opcode, 0x1);
}

TEST(WsFrame, ControlFrames) {
  WsFrame frame;
  for (uint8_t opcode : {0x8, 0x9, 0xA}) {
    ASSERT_EQ(parse(masked_frame(0x80 | opcode, std::vector<uint8_t>(125, 'p')), frame),
              WsParse::kFrame)
        << int{opcode};
    EXPECT_TRUE(frame.fin);
    EXPECT_EQ(frame.opcode, opcode);
    EXPECT_EQ(frame.length, 125u);
  }
  // Between the fragments of a message, and not counted against its limit.
  EXPECT_EQ(parse(masked_frame(0x89, std::vector<uint8_t>(100, 'p')), frame, true, 1024, 1024),
            WsParse::kFrame);
  // A close frame over 125 bytes, or fragmented.
  EXPECT_EQ(parse(masked_frame(0x88, std::vector<uint8_t>(126, 'c')), frame),
            WsParse::kProtocolError);
  EXPECT_EQ(parse(masked_frame(0x0A, {}), frame), WsParse::kProtocolError);
}

TEST(WsFrame, ReservedOpcodesAreProtocolErrors) {
  WsFrame frame;
  for (uint8_t opcode : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(parse(masked_frame(0x80 | opcode, {'x'}), frame), WsParse::kProtocolError)
        << int{opcode};
  }
  for (uint8_t rsv : {0x40, 0x20, 0x10}) {
    EXPECT_EQ(parse(masked_frame(0x82 | rsv, {'x'}), frame), WsParse::kProtocolError) << int{rsv};
  }
}

TEST(WsFrame, OversizeIsKnownFromTheHeader) {
  WsFrame frame;
  // A message over the limit is refused before its payload arrives.
  const auto big = masked_frame(0x82, std::vector<uint8_t>(2000, 'x'));
  EXPECT_EQ(parse_ws_frame(big.data(), 4, false, 0, 1024, frame), WsParse::kTooBig);
  EXPECT_EQ(parse(masked_frame(0x82, std::vector<uint8_t>(1024, 'x')), frame), WsParse::kFrame);
  EXPECT_EQ(parse(masked_frame(0x82, std::vector<uint8_t>(1025, 'x')), frame), WsParse::kTooBig);
  // The largest 64-bit length without the top bit: too big, not an overflow.
  const std::vector<uint8_t> huge{0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_EQ(parse(huge, frame), WsParse::kTooBig);
  // An incomplete 64-bit length is not judged yet.
  EXPECT_EQ(parse_ws_frame(huge.data(), 9, false, 0, 1024, frame), WsParse::kNeedMore);
}

TEST(WsFrame, ServerFrameHeaders) {
  uint8_t h[kWsMaxServerHeader];
  ASSERT_EQ(write_ws_frame_header(h, 0x2, 0), 2u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 0x00);  // no mask bit: the server does not mask
  ASSERT_EQ(write_ws_frame_header(h, 0xA, 125), 2u);
  EXPECT_EQ(h[0], 0x8A);
  EXPECT_EQ(h[1], 125);
  ASSERT_EQ(write_ws_frame_header(h, 0x2, 126), 4u);
  EXPECT_EQ(std::vector<uint8_t>(h, h + 4), (std::vector<uint8_t>{0x82, 126, 0x00, 126}));
  ASSERT_EQ(write_ws_frame_header(h, 0x2, 65535), 4u);
  EXPECT_EQ(std::vector<uint8_t>(h, h + 4), (std::vector<uint8_t>{0x82, 126, 0xFF, 0xFF}));
  ASSERT_EQ(write_ws_frame_header(h, 0x2, 65536), 10u);
  EXPECT_EQ(std::vector<uint8_t>(h, h + 10),
            (std::vector<uint8_t>{0x82, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
  ASSERT_EQ(write_ws_frame_header(h, 0x2, uint64_t{1} << 40), 10u);
  EXPECT_EQ(std::vector<uint8_t>(h, h + 10),
            (std::vector<uint8_t>{0x82, 127, 0, 0, 0x01, 0, 0, 0, 0, 0}));
}
