// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace backbone::kernel::message {

using Clock = std::chrono::steady_clock;

// An application message as it travels through the broker. Immutable once
// routed: every subscriber shares the same instance and payload bytes.
struct Message {
  std::string topic;
  std::string payload;
  std::string forward_props;  // v5 properties forwarded verbatim
  uint8_t qos = 0;
  bool retain = false;
  std::optional<Clock::time_point> expires_at;
  uint64_t origin = 0;  // id of the publishing session, for no-local

  bool expired(Clock::time_point now) const { return expires_at && now >= *expires_at; }
  // Remaining lifetime in seconds for the Message Expiry property.
  std::optional<uint32_t> remaining_expiry(Clock::time_point now) const {
    if (!expires_at) return std::nullopt;
    const auto left = std::chrono::ceil<std::chrono::seconds>(*expires_at - now).count();
    return static_cast<uint32_t>(left > 0 ? left : 0);
  }
};

using MessagePtr = std::shared_ptr<const Message>;

}  // namespace backbone::kernel::message
