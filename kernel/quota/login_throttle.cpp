// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/quota/login_throttle.hpp"

#include <algorithm>

namespace backbone::kernel::quota {

std::string_view LoginThrottle::address_of(std::string_view peer) {
  if (peer.starts_with('[')) {
    const size_t end = peer.find(']');
    return end == std::string_view::npos ? peer : peer.substr(1, end - 1);
  }
  const size_t colon = peer.rfind(':');
  // One colon: host and port; more: an IPv6 address (with or without a port).
  if (colon != std::string_view::npos && peer.find(':') == colon) return peer.substr(0, colon);
  return peer;
}

LoginThrottle::Clock::duration LoginThrottle::wait(std::string_view address,
                                                   Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(std::string(address));
  if (it == entries_.end() || it->second.until <= now) return Clock::duration::zero();
  return it->second.until - now;
}

void LoginThrottle::failed(std::string_view address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (entries_.size() >= kMaxAddresses) {
    // Addresses whose back-off ended are forgotten first; beyond that a new
    // address is not tracked rather than the table growing.
    std::erase_if(entries_, [&](const auto& e) { return e.second.until + max_delay_ <= now; });
    if (entries_.size() >= kMaxAddresses && !entries_.contains(std::string(address))) return;
  }
  Entry& e = entries_[std::string(address)];
  ++e.failures;
  if (e.failures <= free_failures_) return;
  const uint32_t doublings = std::min<uint32_t>(e.failures - free_failures_ - 1, 16);
  const Clock::duration delay =
      std::min<Clock::duration>(std::chrono::milliseconds(500) * (1u << doublings), max_delay_);
  e.until = now + delay;
}

void LoginThrottle::succeeded(std::string_view address) {
  std::lock_guard lock(mutex_);
  entries_.erase(std::string(address));
}

}  // namespace backbone::kernel::quota
