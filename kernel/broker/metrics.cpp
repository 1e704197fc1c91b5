// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/broker/metrics.hpp"

#include <backbone/module_abi.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace backbone::kernel::broker {
namespace {

// A Prometheus label value: backslash, double quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

constexpr std::array<const char*, 5> kVerdicts{"allow", "deny", "forbidden", "unavailable",
                                               "other"};

size_t verdict_index(int32_t verdict) {
  switch (verdict) {
    case BB_AUTH_ALLOW:
      return 0;
    case BB_AUTH_DENY:
      return 1;
    case BB_AUTH_FORBIDDEN:
      return 2;
    case BB_AUTH_UNAVAILABLE:
      return 3;
    default:
      return 4;
  }
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, const std::string& labels, uint64_t value) {
  out += name;
  if (!labels.empty()) out += "{" + labels + "}";
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}

}  // namespace

TransportCounters& Metrics::transport(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = transports_.find(name);
  if (it == transports_.end()) {
    auto c = std::make_unique<TransportCounters>();
    c->name = std::string(name);
    it = transports_.emplace(std::string(name), std::move(c)).first;
  }
  return *it->second;
}

ProviderCounters& Metrics::provider(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto it = providers_.find(name);
  if (it == providers_.end())
    it = providers_.emplace(std::string(name), std::make_unique<ProviderCounters>()).first;
  return *it->second;
}

void Metrics::observe_login(std::string_view provider_name, int32_t verdict,
                            std::chrono::steady_clock::duration latency) {
  ProviderCounters& p = provider(provider_name);
  p.logins[verdict_index(verdict)].fetch_add(1, std::memory_order_relaxed);
  const double seconds = std::chrono::duration<double>(latency).count();
  size_t bucket = 0;
  while (bucket < ProviderCounters::kBuckets.size() && seconds > ProviderCounters::kBuckets[bucket])
    ++bucket;
  p.latency_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  p.latency_sum_us.fetch_add(
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(latency).count()),
      std::memory_order_relaxed);
  p.latency_count.fetch_add(1, std::memory_order_relaxed);
}

Metrics::Traffic Metrics::traffic() const {
  std::lock_guard lock(mutex_);
  Traffic t;
  for (const auto& [name, c] : transports_) {
    t.messages_in += c->messages_in.load(std::memory_order_relaxed);
    t.messages_out += c->messages_out.load(std::memory_order_relaxed);
    t.bytes_in += c->bytes_in.load(std::memory_order_relaxed);
    t.bytes_out += c->bytes_out.load(std::memory_order_relaxed);
  }
  return t;
}

void Metrics::count(std::mutex& mutex, CounterMap& map, std::string_view name) {
  // A hit costs a lookup by string_view: no allocation per counted event.
  thread_local std::map<const CounterMap*, KnownCounters> known;
  KnownCounters& mine = known[&map];
  auto hit = mine.find(name);
  if (hit == mine.end()) {
    std::lock_guard lock(mutex);
    auto it = map.find(name);
    if (it == map.end())
      it = map.emplace(std::string(name), std::make_unique<std::atomic<uint64_t>>(0)).first;
    hit = mine.emplace(std::string(name), it->second.get()).first;
  }
  hit->second->fetch_add(1, std::memory_order_relaxed);
}

void Metrics::count_denial(std::string_view action) {
  count(mutex_, denials_, action);
}

void Metrics::count_rule_rejection(std::string_view rule) {
  count(mutex_, rule_rejections_, rule);
}

void Metrics::count_quota(std::string_view quota) {
  count(mutex_, quotas_, quota);
}

void Metrics::write_prometheus(std::string& out) const {
  std::lock_guard lock(mutex_);
  struct TransportFamily {
    const char* name;
    const char* type;
    const char* help;
    std::atomic<uint64_t> TransportCounters::*field;
  };
  const TransportFamily families[] = {
      {"backbone_transport_connections", "gauge", "Open MQTT connections by transport.",
       &TransportCounters::connections},
      {"backbone_transport_connections_total", "counter", "MQTT connections accepted by transport.",
       &TransportCounters::connections_total},
      {"backbone_transport_messages_received_total", "counter",
       "PUBLISH packets received by transport.", &TransportCounters::messages_in},
      {"backbone_transport_messages_sent_total", "counter", "PUBLISH packets sent by transport.",
       &TransportCounters::messages_out},
      {"backbone_transport_bytes_received_total", "counter", "Bytes received by transport.",
       &TransportCounters::bytes_in},
      {"backbone_transport_bytes_sent_total", "counter", "Bytes sent by transport.",
       &TransportCounters::bytes_out},
  };
  for (const auto& f : families) {
    family(out, f.name, f.type, f.help);
    for (const auto& [name, c] : transports_)
      sample(out, f.name, "transport=\"" + label(name) + "\"", ((*c).*(f.field)).load());
  }
  family(out, "backbone_provider_sessions", "gauge",
         "Connected MQTT clients by authentication provider.");
  for (const auto& [name, p] : providers_)
    sample(out, "backbone_provider_sessions", "provider=\"" + label(name) + "\"",
           p->sessions.load());
  family(out, "backbone_auth_logins_total", "counter",
         "Logins (MQTT and HTTP) by provider and result.");
  for (const auto& [name, p] : providers_) {
    for (size_t v = 0; v < kVerdicts.size(); ++v) {
      sample(out, "backbone_auth_logins_total",
             "provider=\"" + label(name) + "\",result=\"" + kVerdicts[v] + "\"",
             p->logins[v].load());
    }
  }
  family(out, "backbone_auth_latency_seconds", "histogram",
         "Time an authentication provider took to decide.");
  for (const auto& [name, p] : providers_) {
    const std::string provider = "provider=\"" + label(name) + "\"";
    uint64_t cumulative = 0;
    for (size_t b = 0; b < ProviderCounters::kBuckets.size(); ++b) {
      cumulative += p->latency_buckets[b].load();
      char le[32];
      std::snprintf(le, sizeof le, "%g", ProviderCounters::kBuckets[b]);
      sample(out, "backbone_auth_latency_seconds_bucket", provider + ",le=\"" + le + "\"",
             cumulative);
    }
    cumulative += p->latency_buckets.back().load();
    sample(out, "backbone_auth_latency_seconds_bucket", provider + ",le=\"+Inf\"", cumulative);
    char sum[64];
    std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(p->latency_sum_us.load()) / 1e6);
    out += "backbone_auth_latency_seconds_sum{" + provider + "} " + sum + "\n";
    sample(out, "backbone_auth_latency_seconds_count", provider, p->latency_count.load());
  }
  family(out, "backbone_authz_denials_total", "counter", "Authorization denials by action.");
  for (const char* action : {"mqtt:publish", "mqtt:subscribe", "mqtt:read"}) {
    auto it = denials_.find(std::string_view(action));
    sample(out, "backbone_authz_denials_total", std::string("action=\"") + action + "\"",
           it == denials_.end() ? 0 : it->second->load());
  }
  for (const auto& [action, n] : denials_) {
    if (action == "mqtt:publish" || action == "mqtt:subscribe" || action == "mqtt:read") continue;
    sample(out, "backbone_authz_denials_total", "action=\"" + label(action) + "\"", n->load());
  }
  family(out, "backbone_topic_rule_rejections_total", "counter",
         "Messages refused by topic rules, by rule.");
  for (const auto& [rule, n] : rule_rejections_)
    sample(out, "backbone_topic_rule_rejections_total", "rule=\"" + label(rule) + "\"", n->load());
  family(out, "backbone_quota_exceeded_total", "counter",
         "Requests refused or paused by a principal's quota or a broker-wide cap, by quota.");
  for (const auto& [quota, n] : quotas_)
    sample(out, "backbone_quota_exceeded_total", "quota=\"" + label(quota) + "\"", n->load());
  for (const auto& [name, m] : module_metrics_) {
    family(out, name.c_str(), m.counter ? "counter" : "gauge", m.help.c_str());
    out += name + " " + fmt::format("{}", m.value) + "\n";
  }
}

std::string Metrics::set_module_metric(std::string_view module, std::string_view name,
                                       std::string_view help, bool counter, double value) {
  if (name.empty() || name.size() > 64 ||
      name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string_view::npos)
    return "metric names are 1-64 characters of a-z, 0-9 and _";
  if (help.size() > 256 ||
      std::any_of(help.begin(), help.end(), [](char c) { return c == '\n' || c == '\\'; }))
    return "metric help is at most 256 characters, without newline or backslash";
  if (!std::isfinite(value)) return "metric values are finite";
  std::string full = "backbone_";
  for (char c : module) full += c == '-' ? '_' : c;
  full += '_';
  full += name;
  std::lock_guard lock(mutex_);
  auto it = module_metrics_.find(full);
  if (it == module_metrics_.end()) {
    const auto mine = std::count_if(module_metrics_.begin(), module_metrics_.end(),
                                    [&](const auto& m) { return m.second.module == module; });
    if (static_cast<size_t>(mine) >= kMaxModuleMetrics)
      return "at most " + std::to_string(kMaxModuleMetrics) + " metrics per module";
    it = module_metrics_
             .emplace(full, ModuleMetric{std::string(module), std::string(help), counter, value})
             .first;
  } else if (it->second.counter != counter) {
    return "metric '" + full + "' was set as a " + (it->second.counter ? "counter" : "gauge");
  }
  it->second.value = value;
  return {};
}

void Metrics::write_json(nlohmann::json& out) const {
  std::lock_guard lock(mutex_);
  nlohmann::json transports = nlohmann::json::object();
  for (const auto& [name, c] : transports_) {
    transports[name] = {
        {"connections", c->connections.load()}, {"connections_total", c->connections_total.load()},
        {"messages_in", c->messages_in.load()}, {"messages_out", c->messages_out.load()},
        {"bytes_in", c->bytes_in.load()},       {"bytes_out", c->bytes_out.load()}};
  }
  nlohmann::json providers = nlohmann::json::object();
  for (const auto& [name, p] : providers_) {
    nlohmann::json logins = nlohmann::json::object();
    for (size_t v = 0; v < kVerdicts.size(); ++v) logins[kVerdicts[v]] = p->logins[v].load();
    providers[name] = {{"sessions", p->sessions.load()}, {"logins", logins}};
  }
  nlohmann::json modules = nlohmann::json::object();
  for (const auto& [name, m] : module_metrics_) modules[name] = m.value;
  out["transports"] = std::move(transports);
  out["providers"] = std::move(providers);
  out["modules"] = std::move(modules);
}

}  // namespace backbone::kernel::broker
