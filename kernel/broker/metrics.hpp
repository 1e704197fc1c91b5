// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace backbone::kernel::broker {

// Traffic of one transport ("tcp", "ws"). A connection keeps a pointer to its
// transport's counters, so counting costs one relaxed atomic add.
struct TransportCounters {
  std::string name;
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> messages_in{0};
  std::atomic<uint64_t> messages_out{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
};

// Counters of an authentication provider (MQTT and HTTP logins).
struct ProviderCounters {
  static constexpr std::array<double, 10> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                   0.025,  0.05,  0.1,    0.5,   1.0};
  std::atomic<uint64_t> sessions{0};  // connected MQTT clients logged in through it
  std::array<std::atomic<uint64_t>, 5>
      logins{};  // by verdict: allow, deny, forbidden, unavailable, other
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> latency_buckets{};  // last = +Inf
  std::atomic<uint64_t> latency_sum_us{0};
  std::atomic<uint64_t> latency_count{0};
};

// Labelled counters behind GET /metrics and /api/stats. Lookups by name take a
// mutex; they happen per connection or per login, never per message.
class Metrics {
 public:
  // Sums over every transport.
  struct Traffic {
    uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  };
  Traffic traffic() const;

  TransportCounters& transport(std::string_view name);
  ProviderCounters& provider(std::string_view name);
  void observe_login(std::string_view provider, int32_t verdict,
                     std::chrono::steady_clock::duration latency);
  // An authorization denial by action ("mqtt:publish", "mgmt:...").
  void count_denial(std::string_view action);
  void count_rule_rejection(std::string_view rule);
  // A quota or broker-wide cap reached, by its name ("maxRetained").
  void count_quota(std::string_view quota);

  // A module's own metric (bb_host_api.metric_set): backbone_<module>_<name>
  // ('-' in the module's name becomes '_'). An empty result means it is set;
  // otherwise why not (bad name, help or value, too many metrics).
  static constexpr size_t kMaxModuleMetrics = 64;  // per module
  std::string set_module_metric(std::string_view module, std::string_view name,
                                std::string_view help, bool counter, double value);

  // Prometheus text lines of the labelled families.
  void write_prometheus(std::string& out) const;
  // {"transports": {...}, "providers": {...}, "modules": {...}} for /api/stats.
  void write_json(nlohmann::json& out) const;

 private:
  mutable std::mutex mutex_;
  // std::map nodes never move: references handed out stay valid.
  std::map<std::string, std::unique_ptr<TransportCounters>, std::less<>> transports_;
  std::map<std::string, std::unique_ptr<ProviderCounters>, std::less<>> providers_;
  using CounterMap = std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>, std::less<>>;
  // A denial or rejection can happen per message: each thread remembers the
  // counter of a name after its first lookup, so counting is lock-free.
  static void count(std::mutex& mutex, CounterMap& map, std::string_view name);
  using KnownCounters = std::map<std::string, std::atomic<uint64_t>*, std::less<>>;
  struct ModuleMetric {
    std::string module;
    std::string help;
    bool counter;
    double value;
  };
  std::map<std::string, ModuleMetric, std::less<>> module_metrics_;  // by full name
  CounterMap denials_;
  CounterMap rule_rejections_;
  CounterMap quotas_;
};

}  // namespace backbone::kernel::broker
