// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The records of the store's log: their layout, one encoder per record type
// (for appends and for rewriting the log) and the pieces replay decodes.
// Private to kernel/store/.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernel/message/message.hpp"
#include "kernel/protocol/packets.hpp"
#include "kernel/store/store.hpp"

namespace backbone::kernel::store {

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
constexpr size_t kRecordHeader = 8;
constexpr uint32_t kMaxRecord = 512u << 20;  // above any MQTT packet we accept

class RecordWriter {
 public:
  explicit RecordWriter(std::string& out) : out_(out) {}
  void begin(RecordType type) {
    start_ = out_.size();
    out_.append(kRecordHeader, '\0');
    u8(type);
  }
  void end() {
    const size_t body = out_.size() - start_ - kRecordHeader;
    put_at(start_, static_cast<uint32_t>(body));
    put_at(start_ + 4, detail::crc32c(out_.data() + start_ + kRecordHeader, body));
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

// Reads one record body. A read past the end returns zeros and makes ok()
// false, so a decoder checks once at the end.
class RecordReader {
 public:
  explicit RecordReader(std::string_view in) : in_(in) {}
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

message::MessagePtr get_message(RecordReader& r);
protocol::SubscribeOptions unpack_options(uint8_t b);

void write_retained(RecordWriter& w, const message::Message& m);
void write_session(RecordWriter& w, uint64_t key, std::string_view client_id, uint32_t expiry,
                   uint8_t version, std::string_view provider, std::string_view principal);
void write_session_end(RecordWriter& w, uint64_t key);
void write_subscribe(RecordWriter& w, uint64_t key, std::string_view filter,
                     const SubscriptionRecord& sub);
void write_unsubscribe(RecordWriter& w, uint64_t key, std::string_view filter);
void write_message(RecordWriter& w, uint64_t id, const message::Message& m);
void write_enqueue(RecordWriter& w, uint64_t key, uint64_t id, uint8_t qos, bool retain,
                   const uint32_t* subscription_ids, size_t count);
void write_done(RecordWriter& w, uint64_t key, uint64_t id);

// The log that recreates `s`.
std::string encode_state(const State& s);

}  // namespace backbone::kernel::store
