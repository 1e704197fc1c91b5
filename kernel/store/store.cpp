// SPDX-License-Identifier: GPL-3.0-or-later
// The Store's interface: opening (replay and first rewrite) and the appends,
// which change the live state and encode their record under one mutex. The
// writer thread is in store_writer.cpp.
#include "kernel/store/store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <stdexcept>

#include <spdlog/spdlog.h>

#include "kernel/store/log_file.hpp"
#include "kernel/store/record.hpp"
#include "kernel/store/replay.hpp"

namespace backbone::kernel::store {

std::unique_ptr<Store> Store::open(const std::string& dir, const StoreSettings& settings,
                                   State& recovered) {
  const std::string path = dir + "/store.log";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(path + ": cannot open: " + errno_text());
  State state;
  std::string data;
  try {
    data = read_whole(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  const ReplayResult replayed = replay_log(data, state);
  if (replayed.valid_bytes != data.size()) {
    spdlog::warn(
        "{}: {} byte(s) after record {} do not form a valid record (a write cut short "
        "by a crash?); they are dropped",
        path, data.size() - replayed.valid_bytes, replayed.records);
  }
  recovered = state;
  auto store = std::unique_ptr<Store>(new Store(dir, settings, fd, data.size(), std::move(state)));
  // Start from the live state alone: no history, no torn tail.
  store->compact(store->state_);
  spdlog::info(
      "store {}: {} session(s), {} queued message(s), {} retained message(s) from {} "
      "record(s)",
      path, recovered.sessions.size(), recovered.messages.size(), recovered.retained.size(),
      replayed.records);
  store->thread_ = std::thread([s = store.get()] { s->run(); });
  return store;
}

Store::Store(std::string dir, const StoreSettings& settings, int fd, uint64_t size, State state)
    : dir_(std::move(dir)),
      path_(dir_ + "/store.log"),
      settings_(settings),
      fd_(fd),
      log_size_(size),
      state_(std::move(state)) {}

Store::~Store() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

uint64_t Store::append_locked() {
  log_size_ += scratch_.size();
  pending_.append(scratch_);
  scratch_.clear();
  const uint64_t seq = ++appended_seq_;
  if (writer_idle_) wake_.notify_one();
  return seq;
}

uint64_t Store::set_retained(const message::MessagePtr& msg) {
  std::lock_guard lock(mutex_);
  RecordWriter w(scratch_);
  write_retained(w, *msg);
  apply_retained(state_, msg);
  return append_locked();
}

uint64_t Store::put_session(uint64_t& key, std::string_view client_id, uint32_t expiry_interval_s,
                            uint8_t version, std::string_view provider,
                            std::string_view principal) {
  std::lock_guard lock(mutex_);
  if (key == 0) key = state_.next_session_key++;
  SessionRecord& rec = state_.sessions[key];
  rec.client_id.assign(client_id);
  rec.expiry_interval_s = expiry_interval_s;
  rec.version = version;
  rec.provider.assign(provider);
  rec.principal.assign(principal);
  RecordWriter w(scratch_);
  write_session(w, key, client_id, expiry_interval_s, version, provider, principal);
  return append_locked();
}

uint64_t Store::end_session(uint64_t key) {
  std::lock_guard lock(mutex_);
  apply_session_end(state_, key);
  RecordWriter w(scratch_);
  write_session_end(w, key);
  return append_locked();
}

uint64_t Store::subscribe(uint64_t key, std::string_view filter, const SubscriptionRecord& sub) {
  std::lock_guard lock(mutex_);
  if (auto it = state_.sessions.find(key); it != state_.sessions.end())
    it->second.subscriptions[std::string(filter)] = sub;
  RecordWriter w(scratch_);
  write_subscribe(w, key, filter, sub);
  return append_locked();
}

uint64_t Store::unsubscribe(uint64_t key, std::string_view filter) {
  std::lock_guard lock(mutex_);
  if (auto it = state_.sessions.find(key); it != state_.sessions.end())
    it->second.subscriptions.erase(std::string(filter));
  RecordWriter w(scratch_);
  write_unsubscribe(w, key, filter);
  return append_locked();
}

uint64_t Store::enqueue(uint64_t key, uint64_t& id, const message::MessagePtr& msg, uint8_t qos,
                        bool retain, const uint32_t* subscription_ids,
                        uint8_t subscription_id_count) {
  std::lock_guard lock(mutex_);
  auto session = state_.sessions.find(key);
  if (session == state_.sessions.end()) return appended_seq_;
  RecordWriter w(scratch_);
  if (id == 0) id = state_.next_message_id++;
  // Written once, by the first session that queues it.
  auto [message, first] = state_.messages.try_emplace(id, State::StoredMessage{msg, 0});
  if (first) write_message(w, id, *msg);
  QueuedRef ref;
  ref.message_id = id;
  ref.qos = qos;
  ref.retain = retain;
  ref.subscription_ids.assign(subscription_ids, subscription_ids + subscription_id_count);
  apply_enqueue(session->second, message->second, std::move(ref));
  write_enqueue(w, key, id, qos, retain, subscription_ids, subscription_id_count);
  return append_locked();
}

uint64_t Store::done(uint64_t key, uint64_t id) {
  std::lock_guard lock(mutex_);
  apply_done(state_, key, id);
  RecordWriter w(scratch_);
  write_done(w, key, id);
  return append_locked();
}

bool Store::durable(uint64_t seq) const {
  std::lock_guard lock(mutex_);
  return durable_seq_ >= seq;
}

void Store::when_durable(uint64_t seq, std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    if (durable_seq_ < seq) {
      waiting_.emplace_back(seq, std::move(fn));
      return;
    }
  }
  fn();
}

void Store::sync() {
  std::unique_lock lock(mutex_);
  const uint64_t target = appended_seq_;
  wake_.notify_all();
  synced_.wait(lock, [&] { return durable_seq_ >= target || stopping_; });
}

Store::Counters Store::counters() const {
  std::lock_guard lock(mutex_);
  Counters c = counters_;
  c.records = appended_seq_;
  c.log_bytes = log_size_;
  return c;
}

}  // namespace backbone::kernel::store
