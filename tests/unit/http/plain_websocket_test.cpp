// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/plain_websocket.hpp"

#include <gtest/gtest.h>

using namespace backbone::kernel::http;

TEST(PlainWebSocket, AcceptKeyOfRfc6455) {
  // RFC 6455 §1.3's example handshake.
  EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
