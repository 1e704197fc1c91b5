// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/store/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include <spdlog/spdlog.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace backbone::kernel::store {
namespace {

// CRC-32C (Castagnoli): the SSE4.2 instruction where the CPU has it (an
// order of magnitude faster than a table, and records are checksummed on the
// publishing thread), the same function from a table elsewhere.
uint32_t crc32c_table(uint32_t crc, const unsigned char* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const unsigned char* p,
                                                        size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
#endif

}  // namespace

namespace detail {

uint32_t crc32c_portable(const char* data, size_t n) {
  return ~crc32c_table(~0u, reinterpret_cast<const unsigned char*>(data), n);
}

uint32_t crc32c(const char* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return ~crc32c_sse42(~0u, p, n);
#endif
  return ~crc32c_table(~0u, p, n);
}

}  // namespace detail

namespace {

using detail::crc32c;

// Record layout: u32 length of (type + body), u32 CRC-32C of (type + body),
// u8 type, body. Integers little-endian; strings as u32 length + bytes.
enum RecordType : uint8_t {
  kRetained = 1,
  kSession = 2,
  kSessionEnd = 3,
  kSubscribe = 4,
  kUnsubscribe = 5,
  kMessage = 6,
  kEnqueue = 7,
  kDone = 8,
};
constexpr size_t kHeader = 8;
constexpr size_t kBatchBytes = 64 * 1024;
constexpr auto kBatchWindow = std::chrono::microseconds(500);
constexpr uint32_t kMaxRecord = 512u << 20;  // above any MQTT packet we accept

std::string errno_text() {
  return std::strerror(errno);
}

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void begin(RecordType type) {
    start_ = out_.size();
    out_.append(kHeader, '\0');
    u8(type);
  }
  void end() {
    const size_t body = out_.size() - start_ - kHeader;
    put_at(start_, static_cast<uint32_t>(body));
    put_at(start_ + 4, crc32c(out_.data() + start_ + kHeader, body));
  }
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 4);
  }
  void u64(uint64_t v) {
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
    out_.append(b, 8);
  }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }

 private:
  void put_at(size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) out_[at + i] = static_cast<char>(v >> (8 * i));
  }
  std::string& out_;
  size_t start_ = 0;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == in_.size(); }
  uint8_t u8() { return static_cast<uint8_t>(take(1)[0]); }
  uint32_t u32() { return static_cast<uint32_t>(le(take(4), 4)); }
  uint64_t u64() { return le(take(8), 8); }
  std::string_view str() {
    const uint32_t n = u32();
    return take(n);
  }

 private:
  static uint64_t le(std::string_view b, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < b.size(); ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(b[i])) << (8 * i);
    return v;
  }
  std::string_view take(size_t n) {
    static constexpr char kZero[8] = {};
    if (!ok_ || in_.size() - pos_ < n) {
      ok_ = false;
      return std::string_view(kZero, n <= 8 ? n : 0);
    }
    std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

int64_t to_unix_ms(const std::optional<message::Clock::time_point>& at) {
  if (!at) return 0;
  const auto left = *at - message::Clock::now();
  const auto wall = std::chrono::system_clock::now() +
                    std::chrono::duration_cast<std::chrono::system_clock::duration>(left);
  const int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count();
  return ms > 0 ? ms : 1;
}

std::optional<message::Clock::time_point> from_unix_ms(int64_t ms) {
  if (ms == 0) return std::nullopt;
  // A damaged record must not overflow the nanosecond arithmetic below
  // (undefined behaviour): before 1970 is expired all the same, and 9*10^12
  // ms (the year 2255) is as good as never.
  ms = std::clamp<int64_t>(ms, 1, 9'000'000'000'000);
  const auto wall = std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
  return message::Clock::now() + std::chrono::duration_cast<message::Clock::duration>(
                                    wall - std::chrono::system_clock::now());
}

void put_message(Writer& w, const message::Message& m) {
  w.u8(m.qos);
  w.u8(m.retain ? 1 : 0);
  w.u64(static_cast<uint64_t>(to_unix_ms(m.expires_at)));
  w.str(m.topic);
  w.str(m.payload);
  w.str(m.forward_props);
}

message::MessagePtr get_message(Reader& r) {
  auto m = std::make_shared<message::Message>();
  m->qos = r.u8();
  m->retain = r.u8() != 0;
  m->expires_at = from_unix_ms(static_cast<int64_t>(r.u64()));
  m->topic = r.str();
  m->payload = r.str();
  m->forward_props = r.str();
  return m;
}

uint8_t pack_options(const protocol::SubscribeOptions& o) {
  return static_cast<uint8_t>((o.qos & 3) | (o.no_local ? 4 : 0) | (o.retain_as_published ? 8 : 0) |
                              ((o.retain_handling & 3) << 4));
}

protocol::SubscribeOptions unpack_options(uint8_t b) {
  protocol::SubscribeOptions o;
  o.qos = b & 3;
  o.no_local = (b & 4) != 0;
  o.retain_as_published = (b & 8) != 0;
  o.retain_handling = (b >> 4) & 3;
  return o;
}

// --- the state a record changes; shared by replay and live appends ---

void release(State& s, uint64_t id) {
  auto it = s.messages.find(id);
  if (it != s.messages.end() && --it->second.references == 0) s.messages.erase(it);
}

void apply_session_end(State& s, uint64_t key) {
  auto it = s.sessions.find(key);
  if (it == s.sessions.end()) return;
  for (const auto& [id, ref] : it->second.queue) release(s, id);
  s.sessions.erase(it);
}

// A queue entry holds a reference to its message.
void apply_enqueue(SessionRecord& session, State::StoredMessage& message, QueuedRef&& ref) {
  const uint64_t id = ref.message_id;
  if (session.queue.emplace(id, std::move(ref)).second) ++message.references;
}

void apply_done(State& s, uint64_t key, uint64_t id) {
  auto it = s.sessions.find(key);
  if (it == s.sessions.end() || it->second.queue.erase(id) == 0) return;
  release(s, id);
}

void apply_retained(State& s, const message::MessagePtr& m) {
  if (m->payload.empty()) {
    s.retained.erase(m->topic);
  } else {
    s.retained[m->topic] = m;
  }
}

// Applies one record read from the log; false when it does not decode.
bool replay_record(State& s, uint8_t type, Reader& r) {
  switch (type) {
    case kRetained: {
      auto m = get_message(r);
      if (!r.ok() || !r.at_end()) return false;
      apply_retained(s, m);
      return true;
    }
    case kSession: {
      const uint64_t key = r.u64();
      std::string client_id(r.str());
      const uint32_t expiry = r.u32();
      const uint8_t version = r.u8();
      // The owner was appended later: older logs end here.
      std::string provider, principal;
      if (r.ok() && !r.at_end()) {
        provider = r.str();
        principal = r.str();
      }
      if (!r.ok() || !r.at_end() || key == 0) return false;
      SessionRecord& rec = s.sessions[key];
      rec.client_id = std::move(client_id);
      rec.expiry_interval_s = expiry;
      rec.version = version;
      rec.provider = std::move(provider);
      rec.principal = std::move(principal);
      s.next_session_key = std::max(s.next_session_key, key + 1);
      return true;
    }
    case kSessionEnd: {
      const uint64_t key = r.u64();
      if (!r.ok() || !r.at_end()) return false;
      apply_session_end(s, key);
      return true;
    }
    case kSubscribe: {
      const uint64_t key = r.u64();
      std::string filter(r.str());
      SubscriptionRecord sub;
      sub.options = unpack_options(r.u8());
      sub.subscription_id = r.u32();
      if (!r.ok() || !r.at_end()) return false;
      if (auto it = s.sessions.find(key); it != s.sessions.end())
        it->second.subscriptions[std::move(filter)] = sub;
      return true;
    }
    case kUnsubscribe: {
      const uint64_t key = r.u64();
      const std::string_view filter = r.str();
      if (!r.ok() || !r.at_end()) return false;
      if (auto it = s.sessions.find(key); it != s.sessions.end())
        it->second.subscriptions.erase(std::string(filter));
      return true;
    }
    case kMessage: {
      const uint64_t id = r.u64();
      auto m = get_message(r);
      if (!r.ok() || !r.at_end() || id == 0) return false;
      s.messages[id] = State::StoredMessage{m, 0};
      s.next_message_id = std::max(s.next_message_id, id + 1);
      return true;
    }
    case kEnqueue: {
      const uint64_t key = r.u64();
      QueuedRef ref;
      ref.message_id = r.u64();
      ref.qos = r.u8();
      ref.retain = r.u8() != 0;
      const uint8_t n = r.u8();
      for (uint8_t i = 0; i < n; ++i) ref.subscription_ids.push_back(r.u32());
      if (!r.ok() || !r.at_end()) return false;
      auto session = s.sessions.find(key);
      auto message = s.messages.find(ref.message_id);
      if (session == s.sessions.end() || message == s.messages.end()) return true;
      apply_enqueue(session->second, message->second, std::move(ref));
      return true;
    }
    case kDone: {
      const uint64_t key = r.u64();
      const uint64_t id = r.u64();
      if (!r.ok() || !r.at_end()) return false;
      apply_done(s, key, id);
      return true;
    }
    default:
      return false;
  }
}

// Messages written but never queued (a crash between the two records).
void drop_unreferenced(State& s) {
  std::erase_if(s.messages, [](const auto& kv) { return kv.second.references == 0; });
}

void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": write failed: " + errno_text());
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void sync_fd(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) throw std::runtime_error(path + ": fdatasync failed: " + errno_text());
}

// --- one encoder per record type, for appends and for rewriting the log ---

void write_retained(Writer& w, const message::Message& m) {
  w.begin(kRetained);
  put_message(w, m);
  w.end();
}

void write_session(Writer& w, uint64_t key, std::string_view client_id, uint32_t expiry,
                   uint8_t version, std::string_view provider, std::string_view principal) {
  w.begin(kSession);
  w.u64(key);
  w.str(client_id);
  w.u32(expiry);
  w.u8(version);
  w.str(provider);
  w.str(principal);
  w.end();
}

void write_subscribe(Writer& w, uint64_t key, std::string_view filter,
                     const SubscriptionRecord& sub) {
  w.begin(kSubscribe);
  w.u64(key);
  w.str(filter);
  w.u8(pack_options(sub.options));
  w.u32(sub.subscription_id);
  w.end();
}

void write_message(Writer& w, uint64_t id, const message::Message& m) {
  w.begin(kMessage);
  w.u64(id);
  put_message(w, m);
  w.end();
}

void write_enqueue(Writer& w, uint64_t key, uint64_t id, uint8_t qos, bool retain,
                   const uint32_t* subscription_ids, size_t count) {
  w.begin(kEnqueue);
  w.u64(key);
  w.u64(id);
  w.u8(qos);
  w.u8(retain ? 1 : 0);
  w.u8(static_cast<uint8_t>(count));
  for (size_t i = 0; i < count; ++i) w.u32(subscription_ids[i]);
  w.end();
}

void write_session_end(Writer& w, uint64_t key) {
  w.begin(kSessionEnd);
  w.u64(key);
  w.end();
}

void write_unsubscribe(Writer& w, uint64_t key, std::string_view filter) {
  w.begin(kUnsubscribe);
  w.u64(key);
  w.str(filter);
  w.end();
}

void write_done(Writer& w, uint64_t key, uint64_t id) {
  w.begin(kDone);
  w.u64(key);
  w.u64(id);
  w.end();
}

// The log that recreates `s`.
std::string encode_state(const State& s) {
  std::string out;
  Writer w(out);
  for (const auto& [key, rec] : s.sessions) {
    write_session(w, key, rec.client_id, rec.expiry_interval_s, rec.version, rec.provider,
                  rec.principal);
    for (const auto& [filter, sub] : rec.subscriptions) write_subscribe(w, key, filter, sub);
  }
  for (const auto& [id, stored] : s.messages) write_message(w, id, *stored.message);
  for (const auto& [key, rec] : s.sessions) {
    for (const auto& [id, ref] : rec.queue)
      write_enqueue(w, key, id, ref.qos, ref.retain, ref.subscription_ids.data(),
                    ref.subscription_ids.size());
  }
  for (const auto& [topic, m] : s.retained) write_retained(w, *m);
  return out;
}

std::string read_whole(int fd, const std::string& path) {
  std::string data;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) data.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": read failed: " + errno_text());
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

}  // namespace

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
  size_t pos = 0;
  size_t records = 0;
  while (data.size() - pos >= kHeader) {
    Reader header(std::string_view(data).substr(pos, kHeader));
    const uint32_t len = header.u32();
    const uint32_t crc = header.u32();
    if (len == 0 || len > kMaxRecord || data.size() - pos - kHeader < len) break;
    const std::string_view body = std::string_view(data).substr(pos + kHeader, len);
    if (crc32c(body.data(), body.size()) != crc) break;
    Reader r(body.substr(1));
    if (!replay_record(state, static_cast<uint8_t>(body[0]), r)) break;
    pos += kHeader + len;
    ++records;
  }
  if (pos != data.size()) {
    spdlog::warn(
        "{}: {} byte(s) after record {} do not form a valid record (a write cut short "
        "by a crash?); they are dropped",
        path, data.size() - pos, records);
  }
  drop_unreferenced(state);
  recovered = state;
  auto store = std::unique_ptr<Store>(new Store(dir, settings, fd, data.size(), std::move(state)));
  // Start from the live state alone: no history, no torn tail.
  store->compact(store->state_);
  spdlog::info(
      "store {}: {} session(s), {} queued message(s), {} retained message(s) from {} "
      "record(s)",
      path, recovered.sessions.size(), recovered.messages.size(), recovered.retained.size(),
      records);
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
  Writer w(scratch_);
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
  Writer w(scratch_);
  write_session(w, key, client_id, expiry_interval_s, version, provider, principal);
  return append_locked();
}

uint64_t Store::end_session(uint64_t key) {
  std::lock_guard lock(mutex_);
  apply_session_end(state_, key);
  Writer w(scratch_);
  write_session_end(w, key);
  return append_locked();
}

uint64_t Store::subscribe(uint64_t key, std::string_view filter, const SubscriptionRecord& sub) {
  std::lock_guard lock(mutex_);
  if (auto it = state_.sessions.find(key); it != state_.sessions.end())
    it->second.subscriptions[std::string(filter)] = sub;
  Writer w(scratch_);
  write_subscribe(w, key, filter, sub);
  return append_locked();
}

uint64_t Store::unsubscribe(uint64_t key, std::string_view filter) {
  std::lock_guard lock(mutex_);
  if (auto it = state_.sessions.find(key); it != state_.sessions.end())
    it->second.subscriptions.erase(std::string(filter));
  Writer w(scratch_);
  write_unsubscribe(w, key, filter);
  return append_locked();
}

uint64_t Store::enqueue(uint64_t key, uint64_t& id, const message::MessagePtr& msg, uint8_t qos,
                        bool retain, const uint32_t* subscription_ids,
                        uint8_t subscription_id_count) {
  std::lock_guard lock(mutex_);
  auto session = state_.sessions.find(key);
  if (session == state_.sessions.end()) return appended_seq_;
  Writer w(scratch_);
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
  Writer w(scratch_);
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

// Writes the live state to a new file and puts it in place of the log.
// Called with the mutex released, on the store's thread (or in open()).
void Store::compact(const State& snapshot) {
  const std::string text = encode_state(snapshot);
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(tmp + ": cannot open: " + errno_text());
  try {
    write_all(fd, text, tmp);
    sync_fd(fd, tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    ::close(fd);
    throw std::runtime_error(path_ + ": rename failed: " + errno_text());
  }
  // The rename itself is durable once the directory is synced.
  if (const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
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
