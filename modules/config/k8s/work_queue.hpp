// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The reconcile queue: keys of resources whose cluster-side state (their
// Secret, their status) may need a write. A key is queued at most once;
// a key that failed comes back after a per-key exponential backoff.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "common/kube/backoff.hpp"

namespace backbone::modules::k8s {

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

  WorkQueue(Backoff::Ms initial, Backoff::Ms max) : initial_(initial), max_(max) {}

  // Thread: any.
  void add(const std::string& key) {
    std::lock_guard lock(mutex_);
    if (queued_.insert(key).second) ready_.push_back(key);
    cv_.notify_one();
  }

  // Queues `key` again after its own backoff (grows with each call until
  // forget()).
  void retry(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto [it, fresh] = failures_.try_emplace(key, initial_, max_);
    (void)fresh;
    const auto due = Clock::now() + it->second.next();
    auto d = delayed_.find(key);
    if (d == delayed_.end() || d->second > due) delayed_[key] = due;
    cv_.notify_one();
  }

  // The key succeeded: its next failure waits the initial delay again.
  void forget(const std::string& key) {
    std::lock_guard lock(mutex_);
    failures_.erase(key);
  }

  // The next key, blocking while there is none and neither paused nor
  // stopped. nullopt once stop() was called.
  std::optional<std::string> take() {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (stopped_) return std::nullopt;
      promote(Clock::now());
      if (!paused_ && !ready_.empty()) {
        std::string key = std::move(ready_.front());
        ready_.pop_front();
        queued_.erase(key);
        return key;
      }
      if (paused_ || delayed_.empty()) {
        cv_.wait(lock);
      } else {
        Clock::time_point next = Clock::time_point::max();
        for (const auto& [k, due] : delayed_) next = std::min(next, due);
        cv_.wait_until(lock, next);
      }
    }
  }

  // Keys are handed out only while not paused (before the first sync the
  // state is incomplete: a write then could be wrong).
  void set_paused(bool paused) {
    std::lock_guard lock(mutex_);
    paused_ = paused;
    cv_.notify_all();
  }

  void stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    cv_.notify_all();
  }

  size_t size() const {
    std::lock_guard lock(mutex_);
    return ready_.size() + delayed_.size();
  }

 private:
  // Moves delayed keys that are due to the ready queue. Caller holds mutex_.
  void promote(Clock::time_point now) {
    for (auto it = delayed_.begin(); it != delayed_.end();) {
      if (it->second <= now) {
        if (queued_.insert(it->first).second) ready_.push_back(it->first);
        it = delayed_.erase(it);
      } else {
        ++it;
      }
    }
  }

  Backoff::Ms initial_;
  Backoff::Ms max_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::string> ready_;
  std::set<std::string> queued_;
  std::map<std::string, Clock::time_point> delayed_;
  std::map<std::string, Backoff> failures_;
  bool paused_ = true;
  bool stopped_ = false;
};

}  // namespace backbone::modules::k8s
