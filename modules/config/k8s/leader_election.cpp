// SPDX-License-Identifier: GPL-3.0-or-later
#include "leader_election.hpp"

#include <backbone/module_abi.h>

#include <cstdio>
#include <ctime>
#include <utility>

#include "common/kube/watch_event.hpp"

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

std::string string_at(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t int_at(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

}  // namespace

std::string micro_time(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  int64_t secs = us / 1000000;
  int64_t frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<long long>(frac));
  return buf;
}

LeaderElector::LeaderElector(LeaderElectionConfig config, Request request, Changed changed, Log log,
                             Clock clock)
    : config_(std::move(config)),
      request_(std::move(request)),
      changed_(std::move(changed)),
      log_(std::move(log)),
      clock_(std::move(clock)) {
  jitter_state_ = std::hash<std::string>{}(config_.identity) ^
                  static_cast<uint64_t>(Steady::now().time_since_epoch().count()) ^
                  0x9e3779b97f4a7c15ULL;
  if (jitter_state_ == 0) jitter_state_ = 1;
}

LeaderElector::Record LeaderElector::record_of(const Json& lease) {
  Record r;
  auto spec = lease.find("spec");
  if (spec == lease.end() || !spec->is_object()) return r;
  r.holder = string_at(*spec, "holderIdentity");
  r.duration_s = int_at(*spec, "leaseDurationSeconds");
  r.acquire_time = string_at(*spec, "acquireTime");
  r.renew_time = string_at(*spec, "renewTime");
  r.transitions = int_at(*spec, "leaseTransitions");
  return r;
}

Json LeaderElector::lease_body(const Record& r, const std::string& resource_version) const {
  Json meta = {{"name", config_.name}, {"namespace", config_.ns}};
  if (!resource_version.empty()) meta["resourceVersion"] = resource_version;
  Json spec = {{"holderIdentity", r.holder},
               {"leaseDurationSeconds", r.duration_s},
               {"leaseTransitions", r.transitions}};
  if (!r.acquire_time.empty()) spec["acquireTime"] = r.acquire_time;
  if (!r.renew_time.empty()) spec["renewTime"] = r.renew_time;
  return Json{{"apiVersion", kLeases.api_version()},
              {"kind", kLeases.kind},
              {"metadata", meta},
              {"spec", spec}};
}

bool LeaderElector::try_acquire_or_renew(bool& other) {
  other = false;
  const Steady::time_point now = clock_.steady();
  const std::string stamp = micro_time(clock_.wall());
  const std::string what = "Lease " + config_.ns + "/" + config_.name;
  const int64_t duration_s = std::max<int64_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count());
  auto warn = [&](const std::string& message) {
    // One warning per run of failures; the rest at debug level.
    log_(warned_ ? BB_LOG_DEBUG : BB_LOG_WARN, message);
    warned_ = true;
  };
  auto observe = [&](const Json& lease, Steady::time_point at) {
    const Record r = record_of(lease);
    if (!observed_valid_ || !(r == observed_)) {
      observed_ = r;
      observed_time_ = at;
      observed_valid_ = true;
      std::lock_guard lock(holder_mutex_);
      holder_ = r.holder;
    }
    auto m = lease.find("metadata");
    observed_rv_ = m != lease.end() && m->is_object() ? string_at(*m, "resourceVersion") : "";
  };

  const HttpResponse got = request_("GET", object_path(kLeases, config_.ns, config_.name), {}, {});
  if (got.status == 404) {
    Record mine{config_.identity, duration_s, stamp, stamp, 0};
    const HttpResponse made = request_("POST", collection_path(kLeases, config_.ns),
                                       lease_body(mine, "").dump(), "application/json");
    if (made.status == 200 || made.status == 201) {
      const Json lease = Json::parse(made.body, nullptr, false);
      observe(lease.is_object() ? lease : lease_body(mine, ""), now);
      warned_ = false;
      return true;
    }
    if (made.status == 409) {
      log_(BB_LOG_DEBUG, "creating " + what + ": another replica was first");
    } else {
      warn("creating " + what + " failed: " + describe(made));
    }
    return false;
  }
  if (got.status != 200) {
    warn("reading " + what + " failed: " + describe(got));
    return false;
  }
  const Json lease = Json::parse(got.body, nullptr, false);
  if (!lease.is_object()) {
    warn("reading " + what + ": not a JSON object");
    return false;
  }
  observe(lease, now);
  const Record old = observed_;
  if (!old.holder.empty() && old.holder != config_.identity) {
    const int64_t d = old.duration_s > 0 ? old.duration_s : duration_s;
    if (observed_time_ + std::chrono::seconds(d) > now) {
      other = true;
      warned_ = false;
      return false;  // held by another and in force
    }
  }
  Record mine;
  mine.holder = config_.identity;
  mine.duration_s = duration_s;
  mine.renew_time = stamp;
  if (old.holder == config_.identity) {
    mine.acquire_time = old.acquire_time.empty() ? stamp : old.acquire_time;
    mine.transitions = old.transitions;
  } else {
    mine.acquire_time = stamp;
    mine.transitions = old.transitions + 1;
  }
  const HttpResponse put = request_("PUT", object_path(kLeases, config_.ns, config_.name),
                                    lease_body(mine, observed_rv_).dump(), "application/json");
  if (put.status == 200 || put.status == 201) {
    const Json updated = Json::parse(put.body, nullptr, false);
    observe(updated.is_object() ? updated : lease_body(mine, ""), now);
    warned_ = false;
    return true;
  }
  if (put.status == 409) {
    log_(BB_LOG_DEBUG, "updating " + what + ": conflict, another replica wrote it first");
  } else {
    warn("updating " + what + " failed: " + describe(put));
  }
  return false;
}

std::chrono::milliseconds LeaderElector::step() {
  const Steady::time_point started = clock_.steady();
  bool other = false;
  const bool ok = try_acquire_or_renew(other);
  const std::string what = "Lease " + config_.ns + "/" + config_.name;
  if (ok) {
    renewed_ns_.store(started.time_since_epoch().count());
    if (!leading_.load()) set_leading(true, "acquired " + what + " as '" + config_.identity + "'");
  } else if (leading_.load()) {
    const auto since = clock_.steady() - Steady::time_point(Steady::duration(renewed_ns_.load()));
    if (other) {
      set_leading(false, what + " is held by '" + observed_holder() + "'");
    } else if (since >= config_.renew_deadline) {
      set_leading(false, "could not renew " + what + " within the renew deadline (" +
                             std::to_string(config_.renew_deadline.count()) + " ms)");
    }
  }
  std::chrono::milliseconds delay = config_.retry_period;
  if (!leading_.load()) {
    // xorshift64: followers spread their attempts (client-go's JitterFactor 1.2).
    jitter_state_ ^= jitter_state_ << 13;
    jitter_state_ ^= jitter_state_ >> 7;
    jitter_state_ ^= jitter_state_ << 17;
    const int64_t span = config_.retry_period.count() / 5;
    if (span > 0) delay += std::chrono::milliseconds(static_cast<int64_t>(jitter_state_ % span));
  }
  return delay;
}

bool LeaderElector::is_leading() const {
  if (!leading_.load()) return false;
  const auto renewed = Steady::time_point(Steady::duration(renewed_ns_.load()));
  return clock_.steady() - renewed < config_.renew_deadline;
}

void LeaderElector::set_leading(bool leading, const std::string& why) {
  leading_.store(leading);
  if (changed_) changed_(leading, why);
}

std::string LeaderElector::observed_holder() const {
  std::lock_guard lock(holder_mutex_);
  return holder_;
}

void LeaderElector::release() {
  const bool was_leading = leading_.load();
  if (was_leading) set_leading(false, "stopping");
  if (!observed_valid_ || observed_.holder != config_.identity) return;
  const std::string what = "Lease " + config_.ns + "/" + config_.name;
  const HttpResponse got = request_("GET", object_path(kLeases, config_.ns, config_.name), {}, {});
  if (got.status != 200) {
    log_(BB_LOG_WARN, "releasing " + what + ": reading it failed: " + describe(got));
    return;
  }
  const Json lease = Json::parse(got.body, nullptr, false);
  if (!lease.is_object()) return;
  const Record old = record_of(lease);
  if (old.holder != config_.identity) return;  // someone else took it meanwhile
  auto m = lease.find("metadata");
  const std::string rv = m != lease.end() && m->is_object() ? string_at(*m, "resourceVersion") : "";
  const std::string stamp = micro_time(clock_.wall());
  Record released{"", 1, stamp, stamp, old.transitions};
  const HttpResponse put = request_("PUT", object_path(kLeases, config_.ns, config_.name),
                                    lease_body(released, rv).dump(), "application/json");
  if (put.status == 200) {
    observed_ = released;
    {
      std::lock_guard lock(holder_mutex_);
      holder_.clear();
    }
    log_(BB_LOG_INFO, "released " + what);
  } else {
    log_(BB_LOG_WARN, "releasing " + what + " failed: " + describe(put));
  }
}

}  // namespace backbone::modules::k8s
