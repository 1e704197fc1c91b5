// SPDX-License-Identifier: GPL-3.0-or-later
#include "outbox.hpp"

#include <thread>
#include <utility>

#include "resp.hpp"

namespace backbone::modules::redis {

void Batch::append(const Batch& other) {
  frames.append(other.frames);
  hash_commands.append(other.hash_commands);
  hash_replies += other.hash_replies;
  count += other.count;
  holds.insert(holds.end(), other.holds.begin(), other.holds.end());
  acks.append(other.acks);
  ack_count += other.ack_count;
}

bool Outbox::push(const Frame& f, uint64_t limit, bb_ack_hold hold) {
  if (pending_.load(std::memory_order_relaxed) > limit) return false;
  thread_local const size_t index = next_index_.fetch_add(1) % kShards;
  Shard& shard = shards_[index];
  bool wake;
  {
    std::lock_guard lock(shard.mutex);
    Batch& b = shard.batch;
    const size_t before = b.frames.size() + b.hash_commands.size();
    const size_t frame_at = b.frames.size() + kBatchEntryHeader;
    append_batch_entry(f, b.frames);
    ++b.count;
    if (hold != 0) b.holds.push_back(hold);
    if ((f.kind == Frame::kMessage || f.kind == Frame::kMessageShared) && f.retain) {
      // The hashes keep each topic's last retained frame (none once cleared)
      // and this broker's online members per shared group.
      std::string& out = b.hash_commands;
      const bool clear = f.payload.empty();
      resp_header('*', clear ? 3 : 4, out);
      resp_bulk(clear ? "HDEL" : "HSET", out);
      resp_bulk(retained_key_, out);
      resp_bulk(f.topic, out);
      if (!clear) resp_bulk(std::string_view(b.frames).substr(frame_at), out);
      ++b.hash_replies;
    } else if (f.kind == Frame::kSharedMembers) {
      std::string& out = b.hash_commands;
      const bool gone = f.online == 0;
      resp_header('*', gone ? 3 : 4, out);
      resp_bulk(gone ? "HDEL" : "HSET", out);
      resp_bulk(shared_key_, out);
      resp_bulk(f.group_filter, out);
      if (!gone) resp_bulk(std::to_string(f.online), out);
      ++b.hash_replies;
    }
    // Counted before the sender can take it: pending_ never falls below
    // what the shards hold, so an idle sender always sees zero and sleeps.
    const size_t added = b.frames.size() + b.hash_commands.size() - before;
    // Only a sleeping sender is woken (seq_cst: either this sees waiting_
    // or the sender sees the count); a busy one takes it on its next round.
    pending_.fetch_add(added);
    wake = waiting_.load();
  }
  if (wake) wake_sender();
  return true;
}

void Outbox::push_ack(std::string_view entry_id) {
  bool wake;
  {
    std::lock_guard lock(acks_mutex_);
    const size_t before = acks_.size();
    resp_bulk(entry_id, acks_);
    ++ack_count_;
    pending_.fetch_add(acks_.size() - before);
    wake = waiting_.load();
  }
  if (wake) wake_sender();
}

void Outbox::wake_sender() {
  std::lock_guard lock(wake_mutex_);
  wake_.notify_one();
}

void Outbox::take(Batch& out, std::chrono::milliseconds wait, std::chrono::microseconds gather) {
  out.clear();
  if (pending_.load() == 0) {
    std::unique_lock lock(wake_mutex_);
    waiting_.store(true);
    wake_.wait_for(lock, wait, [&] { return pending_.load() != 0 || interrupted_; });
    waiting_.store(false);
  } else if (gather.count() > 0) {
    std::this_thread::sleep_for(gather);
  }
  for (size_t i = 0; i < kShards; ++i) {
    Batch& taken = taken_[i];
    {
      std::lock_guard lock(shards_[i].mutex);
      std::swap(taken, shards_[i].batch);  // the shard keeps the cleared buffers
    }
    out.append(taken);
    taken.clear();
  }
  {
    std::lock_guard lock(acks_mutex_);
    out.acks.swap(acks_);
    out.ack_count = ack_count_;
    acks_.clear();
    ack_count_ = 0;
  }
  pending_.fetch_sub(out.frames.size() + out.hash_commands.size() + out.acks.size());
}

void Outbox::take_holds(std::vector<bb_ack_hold>& out) {
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mutex);
    out.insert(out.end(), shard.batch.holds.begin(), shard.batch.holds.end());
    shard.batch.holds.clear();
  }
}

void Outbox::interrupt() {
  std::lock_guard lock(wake_mutex_);
  interrupted_ = true;
  wake_.notify_all();
}

size_t to_commands(const Batch& b, const StreamNames& names, const BrokerId& origin,
                   std::string& out) {
  static constexpr size_t kMaxEntryBytes = 1 << 20;
  out.clear();
  size_t replies = 0;
  const bool transaction = b.hash_replies > 0;
  if (transaction) {
    resp_header('*', 1, out);
    resp_bulk("MULTI", out);
    out.append(b.hash_commands);
    replies += 1 + b.hash_replies;
  }
  const std::string max_entries = std::to_string(names.max_entries);
  std::string_view rest = b.frames;
  while (!rest.empty()) {
    size_t cut = 0;
    while (cut < rest.size() && (cut == 0 || cut < kMaxEntryBytes))
      cut += batch_entry_size(rest.substr(cut));
    // XADD <stream> MAXLEN ~ <n> * b <origin><entries>
    resp_header('*', 8, out);
    resp_bulk("XADD", out);
    resp_bulk(names.stream, out);
    resp_bulk("MAXLEN", out);
    resp_bulk("~", out);
    resp_bulk(max_entries, out);
    resp_bulk("*", out);
    resp_bulk(kBatchField, out);
    resp_header('$', origin.size() + cut, out);
    out.append(reinterpret_cast<const char*>(origin.data()), origin.size());
    out.append(rest.substr(0, cut));
    out.append("\r\n");
    rest.remove_prefix(cut);
    ++replies;
  }
  if (transaction) {
    resp_header('*', 1, out);
    resp_bulk("EXEC", out);
    ++replies;
  }
  if (b.ack_count > 0) {
    resp_header('*', 3 + b.ack_count, out);
    resp_bulk("XACK", out);
    resp_bulk(names.stream, out);
    resp_bulk(names.group, out);
    out.append(b.acks);
    ++replies;
  }
  if (names.wait_replicas > 0 && !out.empty()) {
    resp_header('*', 3, out);
    resp_bulk("WAIT", out);
    resp_bulk(std::to_string(names.wait_replicas), out);
    resp_bulk(std::to_string(names.wait_timeout_ms), out);
    ++replies;
  }
  return replies;
}

}  // namespace backbone::modules::redis
