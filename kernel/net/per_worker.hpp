// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::net {

// Objects that live on one worker each (connections, WebSockets, io
// watches), named by 64-bit ids whose low byte is their worker's index. Each
// worker's map is touched only by that worker's thread: no lock.
template <class Ptr>
class PerWorker {
 public:
  using Element = typename Ptr::element_type;

  explicit PerWorker(size_t workers) : maps_(workers) {}

  static uint32_t worker_of(uint64_t id) { return static_cast<uint32_t>(id & 0xFF); }
  size_t workers() const { return maps_.size(); }

  // A new id on `worker` (any thread); never reused.
  uint64_t next_id(const Worker& worker) {
    return (next_.fetch_add(1, std::memory_order_relaxed) << 8) | worker.index();
  }
  // Adds `p` under `id` on its worker: at once from that worker's thread,
  // queued otherwise (calls for the id posted later run after it).
  void add(Worker& worker, uint64_t id, Ptr p) {
    auto* map = &maps_[worker.index()];
    if (WorkerPool::current() == &worker) {
      map->emplace(id, std::move(p));
    } else {
      worker.post([map, id, p = std::move(p)]() mutable { map->emplace(id, std::move(p)); });
    }
  }
  // On the id's worker: null when there is none (or never was).
  Element* find(uint64_t id) {
    const uint32_t w = worker_of(id);
    if (w >= maps_.size()) return nullptr;
    auto it = maps_[w].find(id);
    return it == maps_[w].end() ? nullptr : &*it->second;
  }
  void erase(uint64_t id) {
    if (const uint32_t w = worker_of(id); w < maps_.size()) maps_[w].erase(id);
  }
  // The ids on `worker` now: acting on one may add or remove others.
  std::vector<uint64_t> ids(uint32_t worker) const {
    std::vector<uint64_t> out;
    out.reserve(maps_[worker].size());
    for (const auto& [id, p] : maps_[worker]) out.push_back(id);
    return out;
  }
  std::unordered_map<uint64_t, Ptr>& on(uint32_t worker) { return maps_[worker]; }

 private:
  std::vector<std::unordered_map<uint64_t, Ptr>> maps_;
  std::atomic<uint64_t> next_{1};
};

}  // namespace backbone::kernel::net
