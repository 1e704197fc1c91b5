// SPDX-License-Identifier: GPL-3.0-or-later
// Read-only views of the broker for the management API and metrics.
#include <spdlog/spdlog.h>

#include "kernel/broker/broker.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::broker {

using nlohmann::json;

namespace {

const char* version_name(protocol::Version v) {
  switch (v) {
    case protocol::Version::kV31:
      return "3.1";
    case protocol::Version::kV311:
      return "3.1.1";
    case protocol::Version::kV5:
      return "5.0";
  }
  return "?";
}

}  // namespace

json Broker::stats_json() {
  const Metrics::Traffic traffic = metrics_.traffic();
  json out = {
      {"uptime_s", uptime_s()},
      {"connections", stats_.connections.load()},
      {"connections_total", stats_.connections_total.load()},
      {"sessions", session_count()},
      {"subscriptions", subscription_count()},
      {"retained", retained_.size()},
      {"messages",
       {{"in", traffic.messages_in},
        {"out", traffic.messages_out},
        {"dropped", stats_.messages_dropped.load()}}},
      {"bytes", {{"in", traffic.bytes_in}, {"out", traffic.bytes_out}}},
      {"denied",
       {{"publish", stats_.publish_denied.load()}, {"subscribe", stats_.subscribe_denied.load()}}},
      {"rule_rejections", stats_.rule_rejected.load()},
      {"auth_failures", stats_.auth_failures.load()}};
  if (store_) {
    const store::Store::Counters c = store_->counters();
    out["store"] = {{"log_bytes", c.log_bytes},         {"records", c.records},
                    {"bytes_written", c.bytes_written}, {"syncs", c.syncs},
                    {"sync_seconds", c.sync_seconds},   {"rewrites", c.rewrites},
                    {"write_errors", c.write_errors}};
  }
  metrics_.write_json(out);
  return out;
}

namespace {

// A principal's quotas (the limited ones; SPEC §6 names) and what it uses.
json quotas_json(const quota::Principal& p) {
  const quota::Quotas q = p.quotas();
  json limits = json::object();
  const std::pair<const char*, uint64_t> fields[] = {{"maxConnections", q.max_connections},
                                                     {"maxSubscriptions", q.max_subscriptions},
                                                     {"maxQueuedMessages", q.max_queued_messages},
                                                     {"maxSessionExpiry", q.max_session_expiry_s},
                                                     {"maxRetained", q.max_retained},
                                                     {"maxRetainedBytes", q.max_retained_bytes},
                                                     {"publishRate", q.publish_rate},
                                                     {"publishBurst", q.publish_burst},
                                                     {"publishBytesRate", q.publish_bytes_rate},
                                                     {"publishBytesBurst", q.publish_bytes_burst}};
  for (const auto& [name, value] : fields) {
    if (value) limits[name] = value;
  }
  return {{"limits", std::move(limits)},
          {"connections", p.connections.load(std::memory_order_relaxed)},
          {"retained", p.retained.load(std::memory_order_relaxed)},
          {"retainedBytes", p.retained_bytes.load(std::memory_order_relaxed)}};
}

}  // namespace

json Broker::sessions_json() const {
  std::vector<session::SessionPtr> all;
  {
    std::lock_guard lock(sessions_mutex_);
    all.reserve(sessions_.size());
    for (const auto& [id, s] : sessions_) all.push_back(s);
  }
  json out = json::array();
  for (const auto& s : all) {
    std::lock_guard lock(s->mutex());
    json subs = json::array();
    for (const auto& [filter, entry] : s->subscriptions)
      subs.push_back({{"filter", filter}, {"qos", entry.options.qos}});
    out.push_back({{"client_id", s->client_id()},
                   {"connected", s->online()},
                   {"provider", s->provider},
                   {"principal", s->principal},
                   {"protocol", version_name(s->version)},
                   {"expiry_interval_s", s->expiry_interval_s},
                   {"queued", s->queue.size()},
                   {"inflight", s->inflight.size()},
                   {"subscriptions", std::move(subs)}});
    if (s->usage) out.back()["quotas"] = quotas_json(*s->usage);
  }
  return out;
}

json Broker::topic_rules_json() {
  std::lock_guard lock(rules_mutex_);
  json out = json::object();
  for (const auto& [name, spec] : rule_specs_) out[name] = spec;
  return out;
}

std::string Broker::prometheus() {
  const Metrics::Traffic traffic = metrics_.traffic();
  std::string out;
  out.reserve(8192);
  auto gauge = [&](const char* name, const char* type, const char* help, uint64_t value) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " " + std::to_string(value) + "\n";
  };
  gauge("backbone_uptime_seconds", "gauge", "Seconds since the broker started.", uptime_s());
  gauge("backbone_connections", "gauge", "Open MQTT connections.", stats_.connections.load());
  gauge("backbone_sessions", "gauge", "Sessions, connected or persisted.", session_count());
  gauge("backbone_subscriptions", "gauge", "Subscriptions.", subscription_count());
  gauge("backbone_retained_messages", "gauge", "Retained messages.", retained_.size());
  gauge("backbone_messages_received_total", "counter", "PUBLISH packets received.",
        traffic.messages_in);
  gauge("backbone_messages_sent_total", "counter", "PUBLISH packets sent.", traffic.messages_out);
  gauge("backbone_messages_dropped_total", "counter", "Messages dropped (limits, expiry).",
        stats_.messages_dropped.load());
  gauge("backbone_bytes_received_total", "counter", "Bytes received.", traffic.bytes_in);
  gauge("backbone_bytes_sent_total", "counter", "Bytes sent.", traffic.bytes_out);
  if (store_) {
    const store::Store::Counters c = store_->counters();
    gauge("backbone_store_log_bytes", "gauge", "Size of the store's log.", c.log_bytes);
    gauge("backbone_store_records_total", "counter", "Records appended to the store.", c.records);
    gauge("backbone_store_bytes_written_total", "counter", "Bytes the store wrote.",
          c.bytes_written);
    gauge("backbone_store_syncs_total", "counter", "fdatasync calls of the store (group commits).",
          c.syncs);
    out +=
        "# HELP backbone_store_sync_seconds_total Time the store spent in fdatasync.\n"
        "# TYPE backbone_store_sync_seconds_total counter\n"
        "backbone_store_sync_seconds_total " +
        fmt::format("{:.6f}", c.sync_seconds) + "\n";
    gauge("backbone_store_rewrites_total", "counter", "Rewrites of the log from the live state.",
          c.rewrites);
    gauge("backbone_store_write_errors_total", "counter",
          "Failed writes (retried; acknowledgements wait).", c.write_errors);
  }
  metrics_.write_prometheus(out);
  return out;
}

bool Broker::kick(const std::string& client_id, uint8_t reason, uint64_t connected_before,
                  const Login* by) {
  session::SessionPtr s;
  {
    std::lock_guard lock(sessions_mutex_);
    auto it = sessions_.find(client_id);
    if (it == sessions_.end()) return false;
    session::Session& found = *it->second;
    std::lock_guard session_lock(found.mutex());
    if (connected_before) {
      // The client connected here again after it did elsewhere, or is
      // connecting right now (attached, no time yet): it stays. An offline
      // session (restored from the store, never resumed) moves away.
      if (found.connected_at_unix_ms >= connected_before ||
          (found.connected_at_unix_ms == 0 && found.conn() != 0))
        return false;
    }
    // Another principal's session stays unless the newcomer may take it.
    if (by && !found.provider.empty() &&
        (found.provider != by->provider || found.principal != by->principal) &&
        !by->may_take_over) {
      spdlog::info("client id '{}' of '{}' ({}) kept: '{}' ({}) connected elsewhere with it",
                   client_id, found.principal, found.provider, by->principal, by->provider);
      return false;
    }
    s = it->second;
    sessions_.erase(it);
  }
  const bool takeover = reason == protocol::reason::kSessionTakenOver;
  spdlog::info(
      "session '{}' {}", client_id,
      takeover ? "taken over by a connection to another broker" : "kicked by an administrator");
  const session::ConnId conn = s->conn();
  {
    std::lock_guard lock(s->mutex());
    s->expiry_interval_s = 0;
  }
  if (conn != 0) {
    connections_->disconnect(
        conn, reason,
        takeover ? "session taken over on another broker" : "disconnected by an administrator");
  }
  end_session(s);
  return true;
}

}  // namespace backbone::kernel::broker
