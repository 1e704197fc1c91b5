// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Jittered exponential backoff for reconnects: the n-th delay is drawn from
// [base/2, base] with base = initial * 2^n capped at `max`, so many brokers
// restarting together do not hammer the API server in lockstep.

#include <chrono>
#include <cstdint>
#include <random>

namespace backbone::modules::k8s {

class Backoff {
 public:
  using Ms = std::chrono::milliseconds;

  Backoff(Ms initial, Ms max, uint64_t seed = std::random_device{}())
      : initial_(initial.count() > 0 ? initial : Ms(1)),
        max_(max < initial_ ? initial_ : max),
        rng_(seed) {}

  // The delay before the next attempt; each call doubles the base.
  Ms next() {
    const Ms base = ceiling();
    if (attempts_ < 62) ++attempts_;
    const int64_t half = base.count() / 2;
    std::uniform_int_distribution<int64_t> jitter(0, base.count() - half);
    return Ms(half + jitter(rng_));
  }

  // The upper bound of the next delay.
  Ms ceiling() const {
    int64_t base = initial_.count();
    for (int i = 0; i < attempts_ && base < max_.count(); ++i) base *= 2;
    return Ms(base < max_.count() ? base : max_.count());
  }

  // After a success: the next failure waits `initial` again.
  void reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }

 private:
  Ms initial_;
  Ms max_;
  int attempts_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace backbone::modules::k8s
