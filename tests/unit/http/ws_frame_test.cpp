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
  } else {
    f.push_back(0x80 | 126);
    f.push_back(static_cast<uint8_t>(payload.size() >> 8));
    f.push_back(static_cast<uint8_t>(payload.size()));
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
