// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/store/record.hpp"

#include <algorithm>
#include <chrono>
#include <memory>

namespace backbone::kernel::store {
namespace {

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

void put_message(RecordWriter& w, const message::Message& m) {
  w.u8(m.qos);
  w.u8(m.retain ? 1 : 0);
  w.u64(static_cast<uint64_t>(to_unix_ms(m.expires_at)));
  w.str(m.topic);
  w.str(m.payload);
  w.str(m.forward_props);
}

uint8_t pack_options(const protocol::SubscribeOptions& o) {
  return static_cast<uint8_t>((o.qos & 3) | (o.no_local ? 4 : 0) | (o.retain_as_published ? 8 : 0) |
                              ((o.retain_handling & 3) << 4));
}

}  // namespace

message::MessagePtr get_message(RecordReader& r) {
  auto m = std::make_shared<message::Message>();
  m->qos = r.u8();
  m->retain = r.u8() != 0;
  m->expires_at = from_unix_ms(static_cast<int64_t>(r.u64()));
  m->topic = r.str();
  m->payload = r.str();
  m->forward_props = r.str();
  return m;
}

protocol::SubscribeOptions unpack_options(uint8_t b) {
  protocol::SubscribeOptions o;
  o.qos = b & 3;
  o.no_local = (b & 4) != 0;
  o.retain_as_published = (b & 8) != 0;
  o.retain_handling = (b >> 4) & 3;
  return o;
}

void write_retained(RecordWriter& w, const message::Message& m) {
  w.begin(kRetained);
  put_message(w, m);
  w.end();
}

void write_session(RecordWriter& w, uint64_t key, std::string_view client_id, uint32_t expiry,
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

void write_subscribe(RecordWriter& w, uint64_t key, std::string_view filter,
                     const SubscriptionRecord& sub) {
  w.begin(kSubscribe);
  w.u64(key);
  w.str(filter);
  w.u8(pack_options(sub.options));
  w.u32(sub.subscription_id);
  w.end();
}

void write_message(RecordWriter& w, uint64_t id, const message::Message& m) {
  w.begin(kMessage);
  w.u64(id);
  put_message(w, m);
  w.end();
}

void write_enqueue(RecordWriter& w, uint64_t key, uint64_t id, uint8_t qos, bool retain,
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

void write_session_end(RecordWriter& w, uint64_t key) {
  w.begin(kSessionEnd);
  w.u64(key);
  w.end();
}

void write_unsubscribe(RecordWriter& w, uint64_t key, std::string_view filter) {
  w.begin(kUnsubscribe);
  w.u64(key);
  w.str(filter);
  w.end();
}

void write_done(RecordWriter& w, uint64_t key, uint64_t id) {
  w.begin(kDone);
  w.u64(key);
  w.u64(id);
  w.end();
}

std::string encode_state(const State& s) {
  std::string out;
  RecordWriter w(out);
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

}  // namespace backbone::kernel::store
