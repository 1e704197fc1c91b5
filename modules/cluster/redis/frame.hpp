// SPDX-License-Identifier: GPL-3.0-or-later
// What the brokers of one cluster tell each other through Redis: binary
// frames, one per message or session start, versioned by their first byte so
// that a rolling upgrade can add kinds. A Redis stream entry holds a batch of
// frames (in its field kBatchField) after the id of the broker that sent it
// (which skips its own echo without reading the frames); a retained message
// in the Redis hash is one frame.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace backbone::modules::redis {

using BrokerId = std::array<uint8_t, 16>;

inline constexpr uint8_t kFrameVersion = 1;

struct Frame {
  // kSessionStartedBy (ABI 1.3 brokers) carries the session's principal;
  // kSessionStarted (older brokers) does not. kMessageShared is a kMessage
  // that names which broker serves which shared group; kSharedMembers says
  // how many members of a shared group are online on a broker.
  enum Kind : uint8_t {
    kMessage = 1,
    kSessionStarted = 2,
    kSessionStartedBy = 3,
    kMessageShared = 4,
    kSharedMembers = 5,
  };
  Kind kind = kMessage;
  // kMessage, kMessageShared
  uint8_t qos = 0;
  bool retain = false;
  uint64_t expires_at_ms = 0;  // Unix time in milliseconds; 0 = never
  std::string_view topic;
  std::string_view properties;  // MQTT 5, as bb_message.properties
  std::string_view payload;
  // kMessageShared: append_assignment() entries, (broker, "<group>/<filter>")
  std::string_view assignments;
  // kSharedMembers: on broker `node`, `online` members of "<group>/<filter>"
  std::string_view node;
  std::string_view group_filter;
  uint32_t online = 0;
  // kSessionStarted, kSessionStartedBy
  uint64_t connected_at_ms = 0;  // Unix time in milliseconds
  std::string_view client_id;
  // kSessionStartedBy: who, and whether it may take another principal's id
  std::string_view provider;
  std::string_view principal;
  bool may_take_over = false;
};

namespace detail {
inline void put_be(uint64_t v, int bytes, std::string& out) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xFF));
}
inline bool get_be(std::string_view& in, int bytes, uint64_t& v) {
  if (in.size() < static_cast<size_t>(bytes)) return false;
  v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  in.remove_prefix(bytes);
  return true;
}
inline bool get_bytes(std::string_view& in, size_t n, std::string_view& out) {
  if (in.size() < n) return false;
  out = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}
}  // namespace detail

// The size encode_frame() gives `f`.
inline size_t frame_size(const Frame& f) {
  if (f.kind == Frame::kSessionStarted) return 2 + 8 + f.client_id.size();
  if (f.kind == Frame::kSessionStartedBy)
    return 2 + 8 + 1 + 2 + f.provider.size() + 2 + f.principal.size() + f.client_id.size();
  if (f.kind == Frame::kSharedMembers) return 2 + 4 + 2 + f.node.size() + f.group_filter.size();
  const size_t assignments = f.kind == Frame::kMessageShared ? 4 + f.assignments.size() : 0;
  return 2 + 1 + 8 + 2 + f.topic.size() + 4 + f.properties.size() + assignments + f.payload.size();
}

// Appends the frame of `f` to `out`. The topic is at most 65535 bytes (an
// MQTT topic is), the properties at most 2^32-1.
inline void encode_frame(const Frame& f, std::string& out) {
  out.push_back(static_cast<char>(kFrameVersion));
  out.push_back(static_cast<char>(f.kind));
  if (f.kind == Frame::kSessionStarted || f.kind == Frame::kSessionStartedBy) {
    detail::put_be(f.connected_at_ms, 8, out);
    if (f.kind == Frame::kSessionStartedBy) {
      out.push_back(f.may_take_over ? 1 : 0);
      detail::put_be(f.provider.size(), 2, out);
      out.append(f.provider);
      detail::put_be(f.principal.size(), 2, out);
      out.append(f.principal);
    }
    out.append(f.client_id);
    return;
  }
  if (f.kind == Frame::kSharedMembers) {
    detail::put_be(f.online, 4, out);
    detail::put_be(f.node.size(), 2, out);
    out.append(f.node);
    out.append(f.group_filter);
    return;
  }
  out.push_back(static_cast<char>((f.qos & 3) | (f.retain ? 4 : 0)));
  detail::put_be(f.expires_at_ms, 8, out);
  detail::put_be(f.topic.size(), 2, out);
  out.append(f.topic);
  detail::put_be(f.properties.size(), 4, out);
  out.append(f.properties);
  if (f.kind == Frame::kMessageShared) {
    detail::put_be(f.assignments.size(), 4, out);
    out.append(f.assignments);
  }
  out.append(f.payload);
}

// One entry of a kMessageShared frame's assignments: `node` serves the
// shared group "<group>/<filter>". Names are at most 65535 bytes.
inline void append_assignment(std::string_view node, std::string_view group_filter,
                              std::string& out) {
  detail::put_be(node.size(), 2, out);
  out.append(node);
  detail::put_be(group_filter.size(), 2, out);
  out.append(group_filter);
}

// Calls fn(node, group_filter) for each assignment; false when cut short.
template <class Fn>
bool for_each_assignment(std::string_view in, Fn&& fn) {
  while (!in.empty()) {
    uint64_t n;
    std::string_view node, group_filter;
    if (!detail::get_be(in, 2, n) || !detail::get_bytes(in, n, node) || !detail::get_be(in, 2, n) ||
        !detail::get_bytes(in, n, group_filter))
      return false;
    fn(node, group_filter);
  }
  return true;
}

// The stream entry's one field: the batch.
inline constexpr std::string_view kBatchField = "b";

// A batch: the sender's BrokerId, then frames, each after its length (u32,
// big-endian), so that one stream entry serves many messages.
inline constexpr size_t kBatchEntryHeader = 4;
inline void append_batch_entry(const Frame& f, std::string& out) {
  detail::put_be(frame_size(f), kBatchEntryHeader, out);
  encode_frame(f, out);
}

// The size of the first entry of `entries` (which this broker wrote: whole).
inline size_t batch_entry_size(std::string_view entries) {
  uint64_t length = 0;
  detail::get_be(entries, kBatchEntryHeader, length);
  return kBatchEntryHeader + length;
}

// The sender of a batch and its entries; false when too short to have one.
inline bool split_batch(std::string_view batch, BrokerId& origin, std::string_view& entries) {
  if (batch.size() < origin.size()) return false;
  for (size_t i = 0; i < origin.size(); ++i) origin[i] = static_cast<uint8_t>(batch[i]);
  entries = batch.substr(origin.size());
  return true;
}

// Calls fn(frame bytes) for each frame of a batch's entries; false when they
// are cut short (the frames before the cut were handed over).
template <class Fn>
bool for_each_batch_entry(std::string_view entries, Fn&& fn) {
  std::string_view batch = entries;
  while (!batch.empty()) {
    uint64_t length;
    std::string_view frame;
    if (!detail::get_be(batch, kBatchEntryHeader, length) ||
        !detail::get_bytes(batch, length, frame))
      return false;
    fn(frame);
  }
  return true;
}

// Reads a frame; views point into `in`. False for anything malformed or of
// another version (the caller skips it).
inline bool decode_frame(std::string_view in, Frame& f) {
  uint64_t v;
  if (!detail::get_be(in, 1, v) || v != kFrameVersion) return false;
  if (!detail::get_be(in, 1, v) || v < Frame::kMessage || v > Frame::kSharedMembers) return false;
  f.kind = static_cast<Frame::Kind>(v);
  if (f.kind == Frame::kSessionStarted || f.kind == Frame::kSessionStartedBy) {
    if (!detail::get_be(in, 8, f.connected_at_ms) || f.connected_at_ms == 0) return false;
    if (f.kind == Frame::kSessionStartedBy) {
      if (!detail::get_be(in, 1, v) || v > 1) return false;
      f.may_take_over = v == 1;
      if (!detail::get_be(in, 2, v) || !detail::get_bytes(in, v, f.provider)) return false;
      if (!detail::get_be(in, 2, v) || !detail::get_bytes(in, v, f.principal)) return false;
    }
    f.client_id = in;
    return true;
  }
  if (f.kind == Frame::kSharedMembers) {
    if (!detail::get_be(in, 4, v)) return false;
    f.online = static_cast<uint32_t>(v);
    if (!detail::get_be(in, 2, v) || !detail::get_bytes(in, v, f.node) || f.node.empty() ||
        in.empty())
      return false;
    f.group_filter = in;
    return true;
  }
  if (!detail::get_be(in, 1, v) || (v & ~7u) || (v & 3) == 3) return false;
  f.qos = static_cast<uint8_t>(v & 3);
  f.retain = (v & 4) != 0;
  if (!detail::get_be(in, 8, f.expires_at_ms)) return false;
  if (!detail::get_be(in, 2, v) || !detail::get_bytes(in, v, f.topic)) return false;
  if (!detail::get_be(in, 4, v) || !detail::get_bytes(in, v, f.properties)) return false;
  if (f.kind == Frame::kMessageShared) {
    if (!detail::get_be(in, 4, v) || !detail::get_bytes(in, v, f.assignments) ||
        !for_each_assignment(f.assignments, [](std::string_view, std::string_view) {}))
      return false;
  }
  f.payload = in;
  return true;
}

}  // namespace backbone::modules::redis
