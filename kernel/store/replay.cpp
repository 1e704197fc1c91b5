// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/store/replay.hpp"

#include <algorithm>
#include <string>

#include "kernel/store/record.hpp"

namespace backbone::kernel::store {
namespace {

void release(State& s, uint64_t id) {
  auto it = s.messages.find(id);
  if (it != s.messages.end() && --it->second.references == 0) s.messages.erase(it);
}

}  // namespace

void apply_session_end(State& s, uint64_t key) {
  auto it = s.sessions.find(key);
  if (it == s.sessions.end()) return;
  for (const auto& [id, ref] : it->second.queue) release(s, id);
  s.sessions.erase(it);
}

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

namespace {

// Applies one record read from the log; false when it does not decode.
bool replay_record(State& s, uint8_t type, RecordReader& r) {
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

}  // namespace

ReplayResult replay_log(std::string_view log, State& s) {
  ReplayResult result;
  size_t& pos = result.valid_bytes;
  while (log.size() - pos >= kRecordHeader) {
    RecordReader header(log.substr(pos, kRecordHeader));
    const uint32_t len = header.u32();
    const uint32_t crc = header.u32();
    if (len == 0 || len > kMaxRecord || log.size() - pos - kRecordHeader < len) break;
    const std::string_view body = log.substr(pos + kRecordHeader, len);
    if (detail::crc32c(body.data(), body.size()) != crc) break;
    RecordReader r(body.substr(1));
    if (!replay_record(s, static_cast<uint8_t>(body[0]), r)) break;
    pos += kRecordHeader + len;
    ++result.records;
  }
  drop_unreferenced(s);
  return result;
}

}  // namespace backbone::kernel::store
