// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace backbone::kernel::quota {

// Back-off for failed logins per source address: after `free_failures` in a
// row, the address waits before its next login is even tried (0.5 s, doubling
// up to `max_delay`); a success clears it. Guards slow authenticators and
// tokens against guessing. Thread-safe; bounded to kMaxAddresses entries.
class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxAddresses = 65536;

  LoginThrottle(uint32_t free_failures, std::chrono::milliseconds max_delay)
      : free_failures_(free_failures), max_delay_(max_delay) {}

  // The address part of a peer ("10.0.0.1:5000" -> "10.0.0.1", "[::1]:5000" -> "::1").
  static std::string_view address_of(std::string_view peer);

  // How long `address` must still wait; zero when it may log in now.
  Clock::duration wait(std::string_view address, Clock::time_point now);
  void failed(std::string_view address, Clock::time_point now);
  void succeeded(std::string_view address);

 private:
  struct Entry {
    uint32_t failures = 0;
    Clock::time_point until{};
  };
  const uint32_t free_failures_;
  const Clock::duration max_delay_;
  std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace backbone::kernel::quota
