// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace backbone::kernel::broker {

// A value swapped rarely (policies, rule sets) and read on every message.
// Readers keep a per-thread copy and look at a shared version counter, so a
// read takes no lock and touches no shared reference count unless the value
// changed since the thread last looked.
template <class T>
class Versioned {
 public:
  Versioned() : instance_(next_instance()) {}

  void set(std::shared_ptr<const T> value) {
    std::lock_guard lock(mutex_);
    value_ = std::move(value);
    version_.fetch_add(1, std::memory_order_release);
  }

  std::shared_ptr<const T> get() const {
    std::lock_guard lock(mutex_);
    return value_;
  }

  // Valid until the calling thread calls local() again after a change.
  const T* local() const {
    struct Slot {
      uint64_t instance;
      uint64_t version;
      std::shared_ptr<const T> value;
    };
    thread_local std::vector<Slot> slots;
    const uint64_t version = version_.load(std::memory_order_acquire);
    for (auto& slot : slots) {
      if (slot.instance == instance_) {
        if (slot.version != version) {
          slot.value = get();
          slot.version = version;
        }
        return slot.value.get();
      }
    }
    slots.push_back(Slot{instance_, version, get()});
    return slots.back().value.get();
  }

 private:
  static uint64_t next_instance() {
    static std::atomic<uint64_t> counter{1};
    return counter.fetch_add(1);
  }
  const uint64_t instance_;
  mutable std::mutex mutex_;
  std::shared_ptr<const T> value_;
  std::atomic<uint64_t> version_{0};
};

}  // namespace backbone::kernel::broker
