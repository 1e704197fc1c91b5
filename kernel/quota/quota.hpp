// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <backbone/module_abi.h>

namespace backbone::kernel::quota {

// How much one principal may use (SPEC §6): statements say what, quotas how
// much. 0 = no limit.
struct Quotas {
  uint64_t max_connections = 0;
  uint64_t max_subscriptions = 0;    // per session
  uint64_t max_queued_messages = 0;  // per session
  uint64_t max_session_expiry_s = 0;
  uint64_t max_retained = 0;
  uint64_t max_retained_bytes = 0;
  uint64_t publish_rate = 0;  // messages per second
  uint64_t publish_burst = 0;
  uint64_t publish_bytes_rate = 0;  // payload bytes per second
  uint64_t publish_bytes_burst = 0;

  // `given` over `defaults`: a field given as 0 takes the default,
  // BB_QUOTA_UNLIMITED lifts the limit. Null = the defaults.
  static Quotas resolve(const bb_quotas* given, const Quotas& defaults);
  bool operator==(const Quotas&) const = default;
};

// What a quota refusal names, for the reason string and the metric label.
inline constexpr std::string_view kMaxConnections = "maxConnections";
inline constexpr std::string_view kMaxSubscriptions = "maxSubscriptions";
inline constexpr std::string_view kMaxQueuedMessages = "maxQueuedMessages";
inline constexpr std::string_view kMaxRetained = "maxRetained";
inline constexpr std::string_view kMaxRetainedBytes = "maxRetainedBytes";
inline constexpr std::string_view kPublishRate = "publishRate";
inline constexpr std::string_view kPublishBytesRate = "publishBytesRate";
inline constexpr std::string_view kBrokerRetained = "limits.max_retained_messages";
inline constexpr std::string_view kBrokerRetainedBytes = "limits.max_retained_bytes";

// A rate limit as GCRA (the token bucket's equivalent kept in one atomic):
// spending never blocks and never refuses, it says how long the spender must
// wait before the next spend fits in the bucket. Lock-free, shared by every
// connection of a principal.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // Zero when `cost` fits, else how long to pause before the next spend.
  Clock::duration spend(uint64_t cost, uint64_t rate, uint64_t burst, Clock::time_point now) {
    return take(cost, rate, burst, now, true);
  }
  // Spends only when `cost` fits (a request that can be refused instead of
  // paused); otherwise nothing is spent and the wait is returned.
  Clock::duration try_spend(uint64_t cost, uint64_t rate, uint64_t burst, Clock::time_point now) {
    return take(cost, rate, burst, now, false);
  }

 private:
  Clock::duration take(uint64_t cost, uint64_t rate, uint64_t burst, Clock::time_point now,
                       bool always);
  std::atomic<int64_t> tat_ns_{0};  // theoretical arrival time, steady clock ns
};

// The live usage of one principal (provider + name), shared by its sessions,
// connections and retained messages; quotas change live (principal_quotas,
// a later login with other quotas).
class Principal : public std::enable_shared_from_this<Principal> {
 public:
  Principal(std::string provider, std::string name)
      : provider_(std::move(provider)), name_(std::move(name)) {}
  const std::string& provider() const { return provider_; }
  const std::string& name() const { return name_; }

  Quotas quotas() const {
    std::lock_guard lock(mutex_);
    return quotas_;
  }
  void set_quotas(const Quotas& q) {
    std::lock_guard lock(mutex_);
    quotas_ = q;
    known_ = true;
  }
  // Sets q; true when the principal had other quotas before (its live
  // sessions must hear of the change).
  bool replace_quotas(const Quotas& q) {
    std::lock_guard lock(mutex_);
    const bool changed = known_ && !(quotas_ == q);
    quotas_ = q;
    known_ = true;
    return changed;
  }

  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> retained{0};
  std::atomic<uint64_t> retained_bytes{0};
  RateLimiter messages;
  RateLimiter bytes;

 private:
  const std::string provider_;
  const std::string name_;
  mutable std::mutex mutex_;
  Quotas quotas_;
  bool known_ = false;  // quotas_ set by a login or the principal's source
};

using PrincipalPtr = std::shared_ptr<Principal>;

// Every principal with something alive (a session, a connection, a retained
// message), found by (provider, name). Entries go when the last holder does.
class PrincipalTable {
 public:
  PrincipalPtr get(std::string_view provider, std::string_view name);
  // Null when nothing of the principal is alive.
  PrincipalPtr find(std::string_view provider, std::string_view name);

 private:
  static std::string key(std::string_view provider, std::string_view name);
  std::mutex mutex_;
  std::unordered_map<std::string, std::weak_ptr<Principal>> principals_;
  size_t sweep_at_ = 64;
};

}  // namespace backbone::kernel::quota
