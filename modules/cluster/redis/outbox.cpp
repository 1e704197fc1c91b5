// SPDX-License-Identifier: GPL-3.0-or-later
#include "outbox.hpp"

#include <thread>
#include <utility>

#include "resp.hpp"

namespace backbone::modules::redis {

bool Outbox::push(const Frame& f, uint64_t limit) {
  if (pending_.load(std::memory_order_relaxed) > limit) return false;
  thread_local const size_t index = next_index_.fetch_add(1) % kShards;
  Shard& shard = shards_[index];
  bool wake;
  {
    std::lock_guard lock(shard.mutex);
    Batch& b = shard.batch;
    const size_t before = b.frames.size() + b.retained_commands.size();
    const size_t frame_at = b.frames.size() + kBatchEntryHeader;
    append_batch_entry(f, b.frames);
    ++b.count;
    if (f.kind == Frame::kMessage && f.retain) {
      // The hash keeps each topic's last retained frame (none once cleared).
      std::string& out = b.retained_commands;
      const bool clear = f.payload.empty();
      resp_header('*', clear ? 3 : 4, out);
      resp_bulk(clear ? "HDEL" : "HSET", out);
      resp_bulk(retained_key_, out);
      resp_bulk(f.topic, out);
      if (!clear) resp_bulk(std::string_view(b.frames).substr(frame_at), out);
      ++b.retained_replies;
    }
    // Counted before the sender can take it: pending_ never falls below
    // what the shards hold, so an idle sender always sees zero and sleeps.
    const size_t added = b.frames.size() + b.retained_commands.size() - before;
    // Only a sleeping sender is woken (seq_cst: either this sees waiting_
    // or the sender sees the count); a busy one takes it on its next round.
    pending_.fetch_add(added);
    wake = waiting_.load();
  }
  if (wake) {
    std::lock_guard lock(wake_mutex_);
    wake_.notify_one();
  }
  return true;
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
    out.frames.append(taken.frames);
    out.retained_commands.append(taken.retained_commands);
    out.retained_replies += taken.retained_replies;
    out.count += taken.count;
    taken.clear();
  }
  pending_.fetch_sub(out.frames.size() + out.retained_commands.size());
}

void Outbox::interrupt() {
  std::lock_guard lock(wake_mutex_);
  interrupted_ = true;
  wake_.notify_all();
}

size_t to_commands(const Batch& b, const std::string& channel, const BrokerId& origin,
                   std::string& out) {
  static constexpr size_t kMaxPublishBytes = 1 << 20;
  out.clear();
  if (b.count == 0) return 0;
  size_t replies = 0;
  const bool transaction = b.retained_replies > 0;
  if (transaction) {
    resp_header('*', 1, out);
    resp_bulk("MULTI", out);
    out.append(b.retained_commands);
    replies += 1 + b.retained_replies;
  }
  std::string_view rest = b.frames;
  while (!rest.empty()) {
    size_t cut = 0;
    while (cut < rest.size() && (cut == 0 || cut < kMaxPublishBytes))
      cut += batch_entry_size(rest.substr(cut));
    resp_header('*', 3, out);
    resp_bulk("PUBLISH", out);
    resp_bulk(channel, out);
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
  return replies;
}

}  // namespace backbone::modules::redis
