// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>

#include "kernel/quota/quota.hpp"

namespace backbone::kernel::config {

// Resource limits. Every one is configurable under "limits" in the config
// file; the defaults are what a shared, multi-tenant broker should start with.
struct Limits {
  uint32_t max_packet_size = 256 * 1024;             // bytes, after authentication
  uint32_t max_packet_size_before_auth = 16 * 1024;  // CONNECT and anything before CONNACK
  uint32_t max_connections = 100000;
  uint16_t max_inflight = 100;           // our QoS 1/2 window towards a client (v3, or v5 cap)
  uint16_t receive_maximum = 100;        // QoS 1/2 PUBLISHes we accept unacknowledged
  uint32_t max_queued_messages = 10000;  // per session
  uint64_t max_queued_bytes = 64ull * 1024 * 1024;  // per session
  uint32_t max_topic_length = 1024;                 // bytes
  uint32_t max_topic_levels = 32;
  uint32_t max_subscriptions_per_session = 1000;
  uint16_t max_keep_alive = 3600;  // seconds; larger requests are lowered (v5)
  uint32_t connect_timeout_ms = 10000;
  uint32_t auth_timeout_ms = 10000;
  // A client whose queue stays full (or whose socket stays blocked) this long
  // without taking anything is disconnected (reason 0x97), which resumes the
  // publishers held back for it.
  uint32_t slow_consumer_timeout_ms = 10000;
  uint32_t max_session_expiry_s = 7 * 24 * 3600;
  uint16_t topic_alias_maximum = 64;
  uint32_t sys_interval_s = 10;               // $SYS statistics period, 0 = off
  uint32_t shutdown_grace_ms = 5000;          // SIGTERM: time for connections to drain
  bool disconnect_on_denied_publish = false;  // v3.1.1 only; v5 always gets 0x87
  // Retained messages of the whole broker: a publish that would go beyond
  // is refused (0x97), so no tenant can fill the memory with them.
  uint64_t max_retained_messages = 1000000;
  uint64_t max_retained_bytes = 1ull << 30;
  // Persistent sessions kept while offline: beyond it a new persistent
  // session is refused (0x97) rather than growing the memory without bound.
  uint64_t max_offline_sessions = 1000000;
  // Failed logins from one address before each further login from it waits
  // (0.5 s, doubling up to login_backoff_max_ms; a success clears it).
  uint32_t login_failures_before_backoff = 10;
  uint32_t login_backoff_max_ms = 30000;
  // Default quotas of every principal ("limits.principal", SPEC §6), where
  // its own quotas do not say otherwise; 0 = no limit.
  quota::Quotas principal;
};

}  // namespace backbone::kernel::config
