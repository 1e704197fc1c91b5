// SPDX-License-Identifier: GPL-3.0-or-later
// The store's thread: writes appended records in batches (group commit),
// syncs them, runs the completions of what became durable, and rewrites the
// log from the live state when it has grown.
#include "kernel/store/store.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "kernel/store/log_file.hpp"
#include "kernel/store/record.hpp"

namespace backbone::kernel::store {
namespace {

constexpr size_t kBatchBytes = 64 * 1024;
constexpr auto kBatchWindow = std::chrono::microseconds(500);

}  // namespace

// Writes the live state to a new file and puts it in place of the log.
// Called with the mutex released, on the store's thread (or in open()).
void Store::compact(const State& snapshot) {
  const std::string text = encode_state(snapshot);
  const int fd = replace_file(dir_, path_, text);
  const int old = fd_;
  std::lock_guard lock(mutex_);
  fd_ = fd;
  ++counters_.rewrites;
  counters_.bytes_written += text.size();
  live_bytes_ = text.size();
  log_size_ = text.size() + pending_.size();
  if (old >= 0) ::close(old);
}

void Store::run() {
  using namespace std::chrono;
  const bool periodic = settings_.durability == Durability::kPeriodic;
  const auto interval = milliseconds(settings_.flush_interval_ms ? settings_.flush_interval_ms : 1);
  bool unsynced = false;
  auto next_sync = steady_clock::now() + interval;
  auto last_error_log = steady_clock::time_point{};
  std::unique_lock lock(mutex_);
  for (;;) {
    if (pending_.empty() && !stopping_) {
      writer_idle_ = true;
      if (unsynced) {
        wake_.wait_until(lock, next_sync);
      } else {
        wake_.wait(lock);
      }
      writer_idle_ = false;
      // Without a sync to wait for, a short window gathers the records of
      // many publishers into one write (and one completion each).
      if (periodic && !stopping_ && pending_.size() < kBatchBytes)
        wake_.wait_for(lock, kBatchWindow);
    }
    const bool sync_due = unsynced && (stopping_ || steady_clock::now() >= next_sync);
    if (pending_.empty() && !sync_due) {
      if (stopping_) break;
      continue;
    }
    std::string batch;
    batch.swap(pending_);
    const uint64_t seq = appended_seq_;
    const bool compact_due =
        !batch.empty() && log_size_ >= settings_.compact_min_bytes &&
        log_size_ >= settings_.compact_ratio * std::max<uint64_t>(live_bytes_, 1);
    State snapshot;
    if (compact_due) snapshot = state_;
    const int fd = fd_;
    uint64_t written = 0;
    double sync_time = 0;
    bool synced = false;
    lock.unlock();
    try {
      if (compact_due) {
        // The snapshot already holds the batch.
        compact(snapshot);
        unsynced = false;
      } else {
        write_all(fd, batch, path_);
        written = batch.size();
        if (!periodic || sync_due) {
          const auto start = steady_clock::now();
          sync_fd(fd, path_);
          sync_time = duration<double>(steady_clock::now() - start).count();
          synced = true;
          unsynced = false;
          next_sync = steady_clock::now() + interval;
        } else {
          unsynced = true;
        }
      }
    } catch (const std::exception& e) {
      // Nothing is acknowledged that is not written: retry the batch after
      // a pause (publishers wait for their acknowledgements meanwhile).
      if (steady_clock::now() - last_error_log > seconds(10)) {
        spdlog::error("store: {}; retrying", e.what());
        last_error_log = steady_clock::now();
      }
      lock.lock();
      ++counters_.write_errors;
      batch.append(pending_);
      pending_.swap(batch);
      if (stopping_) break;
      wake_.wait_for(lock, seconds(1));
      continue;
    }
    lock.lock();
    counters_.bytes_written += written;
    if (synced) {
      ++counters_.syncs;
      counters_.sync_seconds += sync_time;
    }
    durable_seq_ = seq;
    std::vector<std::function<void()>> ready;
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (it->first <= seq) {
        ready.push_back(std::move(it->second));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
    synced_.notify_all();
    if (!ready.empty()) {
      lock.unlock();
      for (auto& fn : ready) fn();
      lock.lock();
    }
  }
  synced_.notify_all();
}

}  // namespace backbone::kernel::store
