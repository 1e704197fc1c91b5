// SPDX-License-Identifier: GPL-3.0-or-later
// The redis module's settings and their strict reader.
#pragma once

#include <nlohmann/json.hpp>

#include "shared_groups.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace backbone::modules::redis {

// A "host:port" of the settings.
struct Endpoint {
  std::string host;
  int port = 0;
  bool operator==(const Endpoint&) const = default;
  std::string where() const { return host + ":" + std::to_string(port); }
};

struct Settings {
  std::string host = "127.0.0.1";  // `address`; unused with sentinels
  int port = 6379;
  std::vector<Endpoint> sentinels;  // Redis Sentinel: the master is asked of these
  std::string master_name = "mymaster";
  std::string sentinel_password;  // read from sentinel_password_file
  std::string prefix = "backbone";
  std::string username;  // Redis 6 ACL user; empty = the default user
  std::string password;  // read from password_file
  uint32_t timeout_ms = 2000;
  uint64_t max_pending_bytes = 64ull << 20;
  std::string node;  // this broker's name in the cluster; empty = kept in the state directory
  uint64_t stream_max_entries = 100000;
  Strategy shared_strategy = Strategy::kLocal;
  uint32_t forget_after_s = 86400;
  uint32_t wait_replicas = 0;  // WAIT for this many replicas before acknowledging publishers  // a
                               // broker not seen this long is removed from Redis

  bool operator==(const Settings&) const = default;
  // The Redis server as logs name it: "host:port", or the master's name
  // with sentinels (its address changes at failover).
  std::string where() const {
    return sentinels.empty() ? host + ":" + std::to_string(port)
                             : "master '" + master_name + "' (via sentinel)";
  }
  std::string stream() const { return prefix + ":stream"; }
  std::string members_key() const { return prefix + ":members"; }
  // A broker's shared groups: "<group>/<filter>" -> its online members.
  std::string shared_key(std::string_view node) const {
    return prefix + ":shared:" + std::string(node);
  }
  std::string retained_key() const { return prefix + ":retained"; }
};

// Reads {"address": "host:port" | "sentinels": ["host:port", ...],
// "master_name": "...", "sentinel_password_file": "...", "prefix": "...",
// "username": "...", "password_file": "...", "timeout_ms": n,
// "max_pending_bytes": n, "node": "...", "stream_max_entries": n,
// "shared_strategy": "local" | "round_robin" | "random", "forget_after_s": n,
// "wait_replicas": n} into
// `out` (defaults for what is absent). False with `error` set on the first
// bad setting.
bool parse_settings(const nlohmann::json& doc, Settings& out, std::string& error);

}  // namespace backbone::modules::redis
