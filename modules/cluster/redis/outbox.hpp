// SPDX-License-Identifier: GPL-3.0-or-later
// What broker workers hand the sender thread: frames batched in sharded
// buffers with the acknowledgements their publishers wait for, the stream
// entries this broker has finished with, and the Redis commands that write
// a batch.
#pragma once

#include <backbone/module_abi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frame.hpp"

namespace backbone::modules::redis {

// What the sender writes next: frames for the stream, the hash updates of
// the retained ones and of this broker's shared groups (commands) with the
// number of replies they get, the
// holds to release once Redis has accepted the frames, and the ids of the
// stream entries to acknowledge.
struct Batch {
  std::string frames;  // append_batch_entry() entries
  std::string hash_commands;
  size_t hash_replies = 0;
  size_t count = 0;  // frames
  std::vector<bb_ack_hold> holds;
  std::string acks;  // RESP bulk strings: the entry ids for XACK
  size_t ack_count = 0;
  void clear() {
    frames.clear();
    hash_commands.clear();
    hash_replies = count = 0;
    holds.clear();
    acks.clear();
    ack_count = 0;
  }
  bool empty() const { return count == 0 && ack_count == 0; }
  // Appends everything `other` holds (after what this one holds): a batch
  // Redis did not take is written again before the next one.
  void append(const Batch& other);
};

// Frames waiting for the sender thread, sharded so that broker workers
// appending at once rarely meet on a lock. A worker encodes its message
// itself: the sender only frames the batch as Redis commands.
class Outbox {
 public:
  static constexpr size_t kShards = 16;

  Outbox(std::string retained_key, std::string shared_key)
      : retained_key_(std::move(retained_key)), shared_key_(std::move(shared_key)) {}

  // False when over `limit` bytes (Redis is slow or away): the frame is
  // dropped and `hold` left to the caller. Else `hold` (0: none) travels
  // with the frame.
  bool push(const Frame& f, uint64_t limit, bb_ack_hold hold = 0);
  // A stream entry this broker has finished with (delivered, durable).
  void push_ack(std::string_view entry_id);

  // Moves everything queued into `out` (cleared first). When nothing is
  // queued, waits up to `wait` for a push; after a round that found
  // something, lets `gather` pass first, so that messages arriving meanwhile
  // travel together and pushes need not wake the sender one by one.
  void take(Batch& out, std::chrono::milliseconds wait, std::chrono::microseconds gather);
  // Moves the holds of queued frames into `out`, leaving the frames: while
  // Redis is away publishers are not kept waiting for it.
  void take_holds(std::vector<bb_ack_hold>& out);

  void interrupt();

 private:
  struct alignas(64) Shard {
    std::mutex mutex;
    Batch batch;
  };
  void wake_sender();

  const std::string retained_key_;
  const std::string shared_key_;  // this broker's shared groups
  Shard shards_[kShards];
  Batch taken_[kShards];  // the sender's: swapped with the shards' batches
  std::mutex acks_mutex_;
  std::string acks_;
  size_t ack_count_ = 0;
  std::atomic<size_t> next_index_{0};
  std::atomic<uint64_t> pending_{0};  // bytes of frames and acks
  std::atomic<bool> waiting_{false};
  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool interrupted_ = false;
};

// Where a batch goes: the stream every broker of the cluster writes and
// reads, the hash of retained messages, and this broker's consumer group.
struct StreamNames {
  std::string stream;
  std::string group;
  uint64_t max_entries = 0;  // trimmed (approximately) to this many entries
  // > 0: each batch ends with WAIT for this many replicas (timeout in ms),
  // so that what publishers are acknowledged for survives a failover.
  uint32_t wait_replicas = 0;
  uint32_t wait_timeout_ms = 0;
};

// The commands that write `b` (its frames in XADDs of at most 1 MiB, cut
// between frames, after the `origin` broker's id, then one XACK of its
// acks, then WAIT when `names` asks for replicas); returns how many replies
// follow (the WAIT's last). Retained messages and shared
// groups update their hash in the same MULTI/EXEC as their XADD, so that the
// hash and the stream agree on the order of updates.
size_t to_commands(const Batch& b, const StreamNames& names, const BrokerId& origin,
                   std::string& out);

}  // namespace backbone::modules::redis
