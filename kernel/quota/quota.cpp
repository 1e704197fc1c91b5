// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/quota/quota.hpp"

#include <algorithm>

namespace backbone::kernel::quota {

Quotas Quotas::resolve(const bb_quotas* given, const Quotas& defaults) {
  struct Field {
    uint64_t bb_quotas::*abi;
    uint64_t Quotas::*mine;
  };
  static constexpr Field kFields[] = {
      {&bb_quotas::max_connections, &Quotas::max_connections},
      {&bb_quotas::max_subscriptions, &Quotas::max_subscriptions},
      {&bb_quotas::max_queued_messages, &Quotas::max_queued_messages},
      {&bb_quotas::max_session_expiry_s, &Quotas::max_session_expiry_s},
      {&bb_quotas::max_retained, &Quotas::max_retained},
      {&bb_quotas::max_retained_bytes, &Quotas::max_retained_bytes},
      {&bb_quotas::publish_rate, &Quotas::publish_rate},
      {&bb_quotas::publish_burst, &Quotas::publish_burst},
      {&bb_quotas::publish_bytes_rate, &Quotas::publish_bytes_rate},
      {&bb_quotas::publish_bytes_burst, &Quotas::publish_bytes_burst},
  };
  Quotas q = defaults;
  if (!given) return q;
  for (const Field& f : kFields) {
    const uint64_t& value = given->*f.abi;
    // Appended fields: read only what the sender's struct holds (BB_HAS).
    const auto end =
        reinterpret_cast<const char*>(&value + 1) - reinterpret_cast<const char*>(given);
    if (given->struct_size < static_cast<size_t>(end)) continue;
    if (value == BB_QUOTA_UNLIMITED) {
      q.*f.mine = 0;
    } else if (value != 0) {
      q.*f.mine = value;
    }
  }
  return q;
}

RateLimiter::Clock::duration RateLimiter::take(uint64_t cost, uint64_t rate, uint64_t burst,
                                               Clock::time_point now, bool always) {
  using std::chrono::nanoseconds;
  if (rate == 0 || cost == 0) return Clock::duration::zero();
  if (burst == 0) burst = rate;  // one second's worth
  // Emission interval of `cost`, and how far ahead of now the bucket may run.
  const auto per_unit = 1e9 / static_cast<double>(rate);
  const auto interval = static_cast<int64_t>(per_unit * static_cast<double>(cost));
  const auto tolerance = static_cast<int64_t>(per_unit * static_cast<double>(burst));
  const int64_t t = std::chrono::duration_cast<nanoseconds>(now.time_since_epoch()).count();
  int64_t tat = tat_ns_.load(std::memory_order_relaxed);
  int64_t next;
  do {
    next = std::max(tat, t) + interval;
    if (!always && next - t > tolerance) return nanoseconds(next - t - tolerance);
  } while (!tat_ns_.compare_exchange_weak(tat, next, std::memory_order_relaxed));
  // The message is taken either way (nothing is dropped); once the bucket
  // runs past its tolerance the spender waits until it is back within it.
  return next - t > tolerance ? nanoseconds(next - t - tolerance) : Clock::duration::zero();
}

std::string PrincipalTable::key(std::string_view provider, std::string_view name) {
  std::string k;
  k.reserve(provider.size() + 1 + name.size());
  k.append(provider).push_back('\0');
  k.append(name);
  return k;
}

PrincipalPtr PrincipalTable::get(std::string_view provider, std::string_view name) {
  std::lock_guard lock(mutex_);
  auto& slot = principals_[key(provider, name)];
  if (auto p = slot.lock()) return p;
  auto p = std::make_shared<Principal>(std::string(provider), std::string(name));
  slot = p;
  // Forget principals nothing holds any more, amortised over the additions.
  if (principals_.size() >= sweep_at_) {
    std::erase_if(principals_, [](const auto& e) { return e.second.expired(); });
    sweep_at_ = std::max<size_t>(64, principals_.size() * 2);
  }
  return p;
}

PrincipalPtr PrincipalTable::find(std::string_view provider, std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = principals_.find(key(provider, name));
  return it == principals_.end() ? nullptr : it->second.lock();
}

}  // namespace backbone::kernel::quota
