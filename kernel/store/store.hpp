// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kernel/message/message.hpp"
#include "kernel/protocol/packets.hpp"

namespace backbone::kernel::store {

namespace detail {
// CRC-32C of the store's records (hardware instruction when available).
uint32_t crc32c(const char* data, size_t n);
uint32_t crc32c_portable(const char* data, size_t n);
}  // namespace detail

// How a record becomes durable before the broker acknowledges what it holds.
enum class Durability : uint8_t {
  kSync,      // written and fdatasync'ed (group commit): survives a power loss
  kPeriodic,  // written at once (survives kill -9), fdatasync'ed every flush interval
};

struct StoreSettings {
  bool enabled = true;  // only with a state_dir
  Durability durability = Durability::kSync;
  uint32_t flush_interval_ms = 100;          // kPeriodic
  uint64_t compact_min_bytes = 64ull << 20;  // rewrite the log once it is this large...
  uint32_t compact_ratio = 4;                // ...and this many times its live size
};

// One queued message of a persistent session.
struct QueuedRef {
  uint64_t message_id = 0;
  uint8_t qos = 0;
  bool retain = false;
  std::vector<uint32_t> subscription_ids;
};

struct SubscriptionRecord {
  protocol::SubscribeOptions options;
  uint32_t subscription_id = 0;
};

struct SessionRecord {
  std::string client_id;
  uint32_t expiry_interval_s = 0;
  uint8_t version = 4;
  std::string provider;  // the owner (SPEC §6); empty in logs written before owners
  std::string principal;
  std::map<std::string, SubscriptionRecord> subscriptions;
  std::map<uint64_t, QueuedRef> queue;  // by message id: the order of arrival
};

// The live state the log describes: what a restart restores.
struct State {
  std::map<uint64_t, SessionRecord> sessions;  // by session key
  struct StoredMessage {
    message::MessagePtr message;
    uint32_t references = 0;  // queue entries naming it
  };
  std::map<uint64_t, StoredMessage> messages;           // by message id
  std::map<std::string, message::MessagePtr> retained;  // by topic
  uint64_t next_session_key = 1;
  uint64_t next_message_id = 1;
};

// The embedded store (SPEC §10): an append-only log of state changes under
// <state_dir>/kernel/, replayed at start-up and rewritten from the live state
// when it has grown (and once after every start). Appends are cheap (encode
// into a buffer under one mutex) and made only for state that must survive a
// restart: retained messages and persistent sessions with their
// subscriptions and QoS 1/2 messages. One thread writes the buffer in batches
// (group commit) and runs the completions of what became durable.
// Thread-safe.
class Store {
 public:
  // Opens (or creates) the log in `dir`, replays it into `recovered` and
  // rewrites it. A torn or corrupt tail (a crash mid-write) is cut off with a
  // warning. Throws std::runtime_error naming the file on I/O errors.
  static std::unique_ptr<Store> open(const std::string& dir, const StoreSettings& settings,
                                     State& recovered);
  ~Store();  // writes and syncs what is pending
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Each returns the sequence number of its record, for when_durable().
  uint64_t set_retained(const message::MessagePtr& msg);  // empty payload: removed
  // A persistent session (created or changed) and its owner; `key` 0
  // allocates one.
  uint64_t put_session(uint64_t& key, std::string_view client_id, uint32_t expiry_interval_s,
                       uint8_t version, std::string_view provider = {},
                       std::string_view principal = {});
  uint64_t end_session(uint64_t key);
  uint64_t subscribe(uint64_t key, std::string_view filter, const SubscriptionRecord& sub);
  uint64_t unsubscribe(uint64_t key, std::string_view filter);
  // The message is written once however many sessions queue it: `id` 0
  // writes it and sets id.
  uint64_t enqueue(uint64_t key, uint64_t& id, const message::MessagePtr& msg, uint8_t qos,
                   bool retain, const uint32_t* subscription_ids, uint8_t subscription_id_count);
  // Delivered and acknowledged, expired or dropped.
  uint64_t done(uint64_t key, uint64_t id);

  bool durable(uint64_t seq) const;
  // Runs fn on the store's thread once every record up to seq is durable
  // (at once on the caller's thread when it already is).
  void when_durable(uint64_t seq, std::function<void()> fn);
  // Blocks until everything appended so far is durable.
  void sync();

  // For /metrics and /api/stats.
  struct Counters {
    uint64_t records = 0;        // appended since start
    uint64_t bytes_written = 0;  // by appends and rewrites
    uint64_t syncs = 0;
    double sync_seconds = 0;  // time spent in fdatasync
    uint64_t rewrites = 0;    // log rewritten from the live state
    uint64_t write_errors = 0;
    uint64_t log_bytes = 0;
  };
  Counters counters() const;

 private:
  Store(std::string dir, const StoreSettings& settings, int fd, uint64_t size, State state);
  uint64_t append_locked();  // the record in scratch_ → pending_
  void run();
  void compact(const State& snapshot);

  const std::string dir_;
  const std::string path_;
  const StoreSettings settings_;
  int fd_ = -1;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable synced_;
  std::string scratch_;  // one record being encoded
  std::string pending_;  // records not yet written
  uint64_t appended_seq_ = 0;
  uint64_t durable_seq_ = 0;
  uint64_t log_size_ = 0;    // bytes in the file plus pending_
  uint64_t live_bytes_ = 0;  // size of the log when last rewritten
  Counters counters_;        // under mutex_ (records and log_bytes filled in on reading)
  bool stopping_ = false;
  bool writer_idle_ = false;  // waiting for records: appends wake it
  State state_;               // what the log says, kept current on every append
  std::deque<std::pair<uint64_t, std::function<void()>>> waiting_;
  std::thread thread_;
};

}  // namespace backbone::kernel::store
