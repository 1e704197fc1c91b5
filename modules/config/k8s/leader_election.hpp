// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Leader election on a coordination.k8s.io/v1 Lease, with client-go's
// semantics (k8s.io/client-go/tools/leaderelection), so that of several
// replicas only one writes to the cluster (token Secrets, statuses):
//
// - try_acquire_or_renew(): GET the Lease; absent: create it holding it
//   (POST); held by another identity whose record has not changed for its
//   leaseDurationSeconds (measured on our own steady clock from when we
//   last saw the record change, as client-go does, so clock skew between
//   replicas does not matter): not ours; otherwise (expired, released, or
//   ours) PUT our record with the resourceVersion read, so that of two
//   candidates only one wins (the other gets 409 Conflict).
// - A leader renews every retry period; when no renewal has succeeded for
//   the renew deadline it stops leading (is_leading() turns false even while
//   a request hangs) and competes again like a follower.
// - release() (on stop) writes holderIdentity "" and leaseDurationSeconds 1
//   so a successor takes over at its next attempt.
//
// No threads here: the module calls step() in a loop on its own thread and
// sleeps for what it returns; tests drive it with a fake clock and API.

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "common/kube/api_paths.hpp"
#include "common/kube/kube_http.hpp"

namespace backbone::modules::k8s {

inline constexpr ResourceType kLeases{"coordination.k8s.io", "v1", "leases", "Lease"};

struct LeaderElectionConfig {
  std::string ns = "default";
  std::string name = "backbone";
  std::string identity;
  std::chrono::milliseconds lease_duration{15000};  // written as whole seconds (at least 1)
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

// Kubernetes MicroTime: "2006-01-02T15:04:05.000000Z" (RFC 3339, UTC, µs).
std::string micro_time(std::chrono::system_clock::time_point t);

// Steady time (expiry, deadlines) and wall time (what the Lease says).
struct ElectionClock {
  std::function<std::chrono::steady_clock::time_point()> steady = [] {
    return std::chrono::steady_clock::now();
  };
  std::function<std::chrono::system_clock::time_point()> wall = [] {
    return std::chrono::system_clock::now();
  };
};

class LeaderElector {
 public:
  using Steady = std::chrono::steady_clock;
  // One request to the API server (method, path, body, content type).
  using Request = std::function<HttpResponse(std::string_view method, const std::string& path,
                                             std::string_view body, std::string_view content_type)>;
  using Clock = ElectionClock;
  // Called on the step() thread when leadership is gained (true) or lost
  // (false); `why` is for the log.
  using Changed = std::function<void(bool leading, const std::string& why)>;
  using Log = std::function<void(int level, const std::string& message)>;

  LeaderElector(LeaderElectionConfig config, Request request, Changed changed, Log log,
                Clock clock = {});

  // One attempt to acquire or renew; returns how long to wait before the
  // next (the retry period; a follower's is jittered up to +20%).
  std::chrono::milliseconds step();

  // Whether writes may happen now: leading, and the last successful renewal
  // is younger than the renew deadline. Thread: any.
  bool is_leading() const;

  // Gives the Lease up if we hold it (holderIdentity "", leaseDurationSeconds
  // 1). Call after the last write, when step() no longer runs.
  void release();

  const LeaderElectionConfig& config() const { return config_; }
  // The holder last observed ("" when none); for logs and tests.
  std::string observed_holder() const;

 private:
  struct Record {
    std::string holder;
    int64_t duration_s = 0;
    std::string acquire_time;
    std::string renew_time;
    int64_t transitions = 0;
    bool operator==(const Record&) const = default;
  };
  static Record record_of(const nlohmann::json& lease);
  nlohmann::json lease_body(const Record& r, const std::string& resource_version) const;
  // true: we hold the Lease now. `other` is set when another holder's lease
  // is in force.
  bool try_acquire_or_renew(bool& other);
  void set_leading(bool leading, const std::string& why);

  LeaderElectionConfig config_;
  Request request_;
  Changed changed_;
  Log log_;
  Clock clock_;
  uint64_t jitter_state_;

  // step() thread only.
  Record observed_;
  bool observed_valid_ = false;
  std::string observed_rv_;
  Steady::time_point observed_time_{};
  bool warned_ = false;

  mutable std::mutex holder_mutex_;
  std::string holder_;  // observed_.holder, for other threads

  std::atomic<bool> leading_{false};
  std::atomic<int64_t> renewed_ns_{0};  // steady time of the last successful renewal
};

}  // namespace backbone::modules::k8s
