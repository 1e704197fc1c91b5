// SPDX-License-Identifier: GPL-3.0-or-later
// What broker workers hand the sender thread: frames batched in sharded
// buffers, and the Redis commands that publish a batch.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "frame.hpp"

namespace backbone::modules::redis {

// What the sender writes next: the frames for the channel, and the hash
// updates of the retained ones (commands) with the number of replies they get.
struct Batch {
  std::string frames;  // append_batch_entry() entries
  std::string retained_commands;
  size_t retained_replies = 0;
  size_t count = 0;  // frames
  void clear() {
    frames.clear();
    retained_commands.clear();
    retained_replies = count = 0;
  }
};

// Frames waiting for the sender thread, sharded so that broker workers
// appending at once rarely meet on a lock. A worker encodes its message
// itself: the sender only frames the batch as Redis commands.
class Outbox {
 public:
  static constexpr size_t kShards = 16;

  explicit Outbox(std::string retained_key) : retained_key_(std::move(retained_key)) {}

  // False when over `limit` bytes (Redis is slow or away): the frame is dropped.
  bool push(const Frame& f, uint64_t limit);

  // Moves everything queued into `out` (cleared first). When nothing is
  // queued, waits up to `wait` for a push; after a round that found
  // something, lets `gather` pass first, so that messages arriving meanwhile
  // travel together and pushes need not wake the sender one by one.
  void take(Batch& out, std::chrono::milliseconds wait, std::chrono::microseconds gather);

  void interrupt();

 private:
  struct alignas(64) Shard {
    std::mutex mutex;
    Batch batch;
  };
  const std::string retained_key_;
  Shard shards_[kShards];
  Batch taken_[kShards];  // the sender's: swapped with the shards' batches
  std::atomic<size_t> next_index_{0};
  std::atomic<uint64_t> pending_{0};
  std::atomic<bool> waiting_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool interrupted_ = false;
};

// The commands that send `b` on `channel` (its frames in PUBLISHes of at
// most 1 MiB, cut between frames, after the `origin` broker's id); returns
// how many replies follow. Retained messages update the hash in the same
// MULTI/EXEC as their PUBLISH, so that the hash and the channel agree on the
// order of updates.
size_t to_commands(const Batch& b, const std::string& channel, const BrokerId& origin,
                   std::string& out);

}  // namespace backbone::modules::redis
