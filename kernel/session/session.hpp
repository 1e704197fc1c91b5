// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "kernel/authz/decision_cache.hpp"
#include "kernel/message/message.hpp"
#include "kernel/protocol/packets.hpp"
#include "kernel/quota/quota.hpp"
#include "kernel/session/delivery_queue.hpp"

namespace backbone::kernel::session {

using ConnId = uint64_t;

// Up to four subscription identifiers travel with one delivery; more
// overlapping subscriptions with identifiers than that are rare enough to cut.
struct SubIds {
  std::array<uint32_t, 4> ids{};
  uint8_t count = 0;
  void add(uint32_t id) {
    if (id != 0 && count < ids.size()) ids[count++] = id;
  }
};

// A shared group's "<group>/<filter>" (as after "$share/"), one instance per
// group, shared by its members' subscriptions and deliveries.
using SharedKey = std::shared_ptr<const std::string>;

struct Delivery {
  message::MessagePtr msg;
  uint8_t qos = 0;
  bool retain = false;
  SubIds sub_ids;
  uint64_t store_id = 0;  // the message's id in the store; 0 = not stored
  // Set when it came through a shared subscription: when the session ends
  // before it was acknowledged, another member of the group here gets it.
  // Not stored: deliveries restored from the store have none.
  SharedKey shared = nullptr;
};

struct Inflight {
  Delivery delivery;
  bool released = false;  // QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
};

struct SubscriptionEntry {
  protocol::SubscribeOptions options;
  uint32_t subscription_id = 0;
};

// MQTT session state that outlives connections (persistent sessions).
// Threading: deliveries arrive from any worker, so the mutable state below
// is guarded by mutex(); the connection's worker takes it while flushing.
class Session {
 public:
  Session(std::string client_id, uint64_t id) : client_id_(std::move(client_id)), id_(id) {}

  const std::string& client_id() const { return client_id_; }
  uint64_t id() const { return id_; }  // unique for the broker's lifetime; never reused
  bool online() const { return conn_.load(std::memory_order_acquire) != 0; }
  ConnId conn() const { return conn_.load(std::memory_order_acquire); }
  std::mutex& mutex() { return mutex_; }

  // --- guarded by mutex() ---
  void set_conn(ConnId c) { conn_.store(c, std::memory_order_release); }
  RingQueue<Delivery> queue;
  uint64_t queued_bytes = 0;
  std::map<uint16_t, Inflight> inflight;  // ordered: resent in order on reconnect
  uint16_t next_packet_id = 1;
  bool flush_scheduled = false;
  std::optional<authz::DecisionCache> read_cache;
  uint64_t dropped = 0;
  uint64_t queue_limit = UINT64_MAX;  // messages; the limit or the principal's quota
  uint64_t store_key = 0;             // the store's key of a persisted session; 0 = not persisted
  // Publishers paused because this session's queue was full; resumed when it
  // drains (push back instead of dropping QoS 1/2).
  std::unordered_set<ConnId> paused_publishers;
  // --- end guarded ---

  // Connection-thread state (only the bound connection's worker touches it,
  // and the broker while no connection is bound).
  std::map<std::string, SubscriptionEntry, std::less<>> subscriptions;
  std::unordered_set<uint16_t> incoming_qos2;  // received PUBLISH ids awaiting PUBREL
  protocol::Version version = protocol::Version::kV311;
  uint32_t expiry_interval_s = 0;
  bool persistent() const { return expiry_interval_s > 0; }
  message::Clock::time_point offline_since{};
  uint64_t connected_at_unix_ms = 0;  // wall clock: compared with other brokers' (takeover)
  std::string principal;
  std::string provider;
  quota::PrincipalPtr usage;  // the principal's live usage and quotas (SPEC §6)

  uint16_t allocate_packet_id() {
    for (int i = 0; i < 65536; ++i) {
      const uint16_t id = next_packet_id++;
      if (next_packet_id == 0) next_packet_id = 1;
      if (id != 0 && !inflight.contains(id)) return id;
    }
    return 0;
  }

 private:
  std::string client_id_;
  uint64_t id_;
  std::atomic<ConnId> conn_{0};
  std::mutex mutex_;
};

using SessionPtr = std::shared_ptr<Session>;

}  // namespace backbone::kernel::session
