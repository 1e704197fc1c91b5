// SPDX-License-Identifier: GPL-3.0-or-later
// The Lease election of the k8s module (modules/config/k8s/leader_election)
// against an in-memory Lease API and a fake clock: acquire, renew, expiry,
// optimistic concurrency (409), the renew deadline and release.
#include <backbone/module_abi.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "config/k8s/leader_election.hpp"

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kPath = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lease";
constexpr const char* kCollection = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";

// One Lease, as the API server keeps it: resourceVersion bumps on every
// write, a PUT with a stale resourceVersion is 409.
struct FakeLeaseApi {
  std::optional<Json> lease;
  int rv = 0;
  int fail_status = 0;         // >0: every request answered with this
  bool race_next_put = false;  // another writer slips in before the next PUT
  std::vector<std::string> calls;

  HttpResponse operator()(std::string_view method, const std::string& path, std::string_view body) {
    calls.push_back(std::string(method) + " " + path);
    if (fail_status != 0) return {fail_status, R"({"kind":"Status","code":500})", ""};
    if (method == "GET" && path == kPath) {
      if (!lease) return {404, R"({"kind":"Status","reason":"NotFound","code":404})", ""};
      return {200, lease->dump(), ""};
    }
    Json obj = Json::parse(body);
    if (method == "POST" && path == kCollection) {
      if (lease) return {409, R"({"kind":"Status","reason":"AlreadyExists","code":409})", ""};
      obj["metadata"]["resourceVersion"] = std::to_string(++rv);
      lease = obj;
      return {201, obj.dump(), ""};
    }
    if (method == "PUT" && path == kPath) {
      if (race_next_put) {
        race_next_put = false;
        (*lease)["spec"]["holderIdentity"] = "racer";
        (*lease)["metadata"]["resourceVersion"] = std::to_string(++rv);
      }
      if (!lease || obj["metadata"].value("resourceVersion", "") !=
                        (*lease)["metadata"]["resourceVersion"].get<std::string>()) {
        return {409, R"({"kind":"Status","reason":"Conflict","code":409})", ""};
      }
      obj["metadata"]["resourceVersion"] = std::to_string(++rv);
      lease = obj;
      return {200, obj.dump(), ""};
    }
    return {400, "{}", ""};
  }

  std::string holder() const {
    return lease ? (*lease)["spec"].value("holderIdentity", "") : std::string("<none>");
  }
};

struct FakeClock {
  LeaderElector::Steady::time_point steady{std::chrono::hours(1)};
  std::chrono::system_clock::time_point wall{std::chrono::seconds(1765000000)};
  void advance(std::chrono::milliseconds d) {
    steady += d;
    wall += d;
  }
  LeaderElector::Clock clock() {
    return {[this] { return steady; }, [this] { return wall; }};
  }
};

struct Candidate {
  std::vector<std::pair<bool, std::string>> changes;
  std::vector<std::string> logs;
  std::unique_ptr<LeaderElector> elector;

  Candidate(FakeLeaseApi& api, FakeClock& clock, const std::string& identity) {
    LeaderElectionConfig c;
    c.ns = "ns";
    c.name = "lease";
    c.identity = identity;
    c.lease_duration = 15s;
    c.renew_deadline = 10s;
    c.retry_period = 2s;
    elector = std::make_unique<LeaderElector>(
        c,
        [&api](std::string_view m, const std::string& p, std::string_view b, std::string_view) {
          return api(m, p, b);
        },
        [this](bool leading, const std::string& why) { changes.emplace_back(leading, why); },
        [this](int, const std::string& message) { logs.push_back(message); }, clock.clock());
  }
  LeaderElector* operator->() { return elector.get(); }
};

TEST(K8sLeaderElection, MicroTimeIsRfc3339WithMicroseconds) {
  const auto t = std::chrono::system_clock::time_point(std::chrono::microseconds(1765000000123456));
  EXPECT_EQ(micro_time(t), "2025-12-06T05:46:40.123456Z");
  EXPECT_EQ(micro_time(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00.000000Z");
}

TEST(K8sLeaderElection, CreatesTheLeaseWhenAbsentAndLeads) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  EXPECT_FALSE(a->is_leading());
  EXPECT_EQ(a->step(), 2s);  // a leader's period is not jittered
  EXPECT_TRUE(a->is_leading());
  ASSERT_EQ(a.changes.size(), 1u);
  EXPECT_TRUE(a.changes[0].first);
  ASSERT_TRUE(api.lease);
  const Json& spec = (*api.lease)["spec"];
  EXPECT_EQ(spec["holderIdentity"], "pod-a");
  EXPECT_EQ(spec["leaseDurationSeconds"], 15);
  EXPECT_EQ(spec["leaseTransitions"], 0);
  const std::regex micro(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  EXPECT_TRUE(std::regex_match(spec["renewTime"].get<std::string>(), micro));
  EXPECT_EQ(spec["acquireTime"], spec["renewTime"]);
  EXPECT_EQ((*api.lease)["apiVersion"], "coordination.k8s.io/v1");
  EXPECT_EQ(api.calls, (std::vector<std::string>{std::string("GET ") + kPath,
                                                 std::string("POST ") + kCollection}));
}

TEST(K8sLeaderElection, RenewsKeepingAcquireTimeAndTransitions) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  a->step();
  const std::string acquired = (*api.lease)["spec"]["acquireTime"];
  const std::string first_renew = (*api.lease)["spec"]["renewTime"];
  clock.advance(2s);
  a->step();
  EXPECT_TRUE(a->is_leading());
  EXPECT_EQ((*api.lease)["spec"]["acquireTime"], acquired);
  EXPECT_NE((*api.lease)["spec"]["renewTime"], first_renew);
  EXPECT_EQ((*api.lease)["spec"]["leaseTransitions"], 0);
  EXPECT_EQ(a.changes.size(), 1u);  // no second "became leader"
}

TEST(K8sLeaderElection, FollowerWaitsForExpiryThenTakesOver) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  Candidate b(api, clock, "pod-b");
  a->step();
  const auto delay = b->step();
  EXPECT_GE(delay, 2s);
  EXPECT_LT(delay, 2400ms);  // jittered up to +20%
  EXPECT_FALSE(b->is_leading());
  EXPECT_EQ(b->observed_holder(), "pod-a");
  // a stops renewing (killed); b keeps seeing the same record.
  for (int i = 0; i < 7; ++i) {
    clock.advance(2s);
    b->step();
    EXPECT_FALSE(b->is_leading()) << i;  // 14 s since b first saw it: not expired
  }
  EXPECT_EQ(api.holder(), "pod-a");
  clock.advance(2s);  // 16 s > leaseDurationSeconds 15
  b->step();
  EXPECT_TRUE(b->is_leading());
  EXPECT_EQ(api.holder(), "pod-b");
  EXPECT_EQ((*api.lease)["spec"]["leaseTransitions"], 1);
  EXPECT_EQ((*api.lease)["spec"]["acquireTime"], (*api.lease)["spec"]["renewTime"]);
}

TEST(K8sLeaderElection, ExpiryCountsFromTheLastChangeSeenNotTheRenewTime) {
  // A renewTime far in the past (clock skew) does not make a live lease expired.
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  Candidate b(api, clock, "pod-b");
  a->step();
  (*api.lease)["spec"]["renewTime"] = "2000-01-01T00:00:00.000000Z";
  b->step();
  EXPECT_FALSE(b->is_leading());
  // a keeps renewing: b never takes over.
  for (int i = 0; i < 20; ++i) {
    clock.advance(2s);
    a->step();
    b->step();
    ASSERT_TRUE(a->is_leading());
    ASSERT_FALSE(b->is_leading());
  }
}

TEST(K8sLeaderElection, ConflictMeansAnotherWon) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  Candidate b(api, clock, "pod-b");
  a->step();
  a->release();
  // released: b may take it at once, but another writer slips in first
  api.race_next_put = true;
  b->step();
  EXPECT_FALSE(b->is_leading());
  EXPECT_EQ(api.holder(), "racer");
  EXPECT_TRUE(b.changes.empty());
}

TEST(K8sLeaderElection, ReleaseLetsASuccessorTakeOverAtOnce) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  Candidate b(api, clock, "pod-b");
  a->step();
  b->step();
  EXPECT_FALSE(b->is_leading());
  a->release();
  EXPECT_FALSE(a->is_leading());
  ASSERT_EQ(a.changes.size(), 2u);
  EXPECT_FALSE(a.changes[1].first);
  EXPECT_EQ(api.holder(), "");
  EXPECT_EQ((*api.lease)["spec"]["leaseDurationSeconds"], 1);
  clock.advance(100ms);
  b->step();
  EXPECT_TRUE(b->is_leading());
  EXPECT_EQ((*api.lease)["spec"]["leaseTransitions"], 1);
  // releasing a lease one does not hold writes nothing
  const size_t calls = api.calls.size();
  a->release();
  EXPECT_EQ(api.calls.size(), calls);
  EXPECT_EQ(api.holder(), "pod-b");
}

TEST(K8sLeaderElection, StopsLeadingWhenRenewalFailsPastTheDeadline) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  a->step();
  ASSERT_TRUE(a->is_leading());
  api.fail_status = 500;
  clock.advance(2s);
  a->step();
  EXPECT_TRUE(a->is_leading());  // 2 s without a renewal: within the 10 s deadline
  clock.advance(7s);
  a->step();
  EXPECT_TRUE(a->is_leading());  // 9 s
  clock.advance(1500ms);
  // 10.5 s: no writes any more even before the next step says so
  EXPECT_FALSE(a->is_leading());
  EXPECT_EQ(a.changes.size(), 1u);
  a->step();
  ASSERT_EQ(a.changes.size(), 2u);
  EXPECT_FALSE(a.changes[1].first);
  EXPECT_NE(a.changes[1].second.find("renew deadline"), std::string::npos);
  // the API comes back: it is still our lease, so we lead again at once
  api.fail_status = 0;
  clock.advance(2s);
  a->step();
  EXPECT_TRUE(a->is_leading());
  EXPECT_EQ((*api.lease)["spec"]["leaseTransitions"], 0);
}

TEST(K8sLeaderElection, LeaderThatSeesAnotherHolderStopsAtOnce) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  a->step();
  (*api.lease)["spec"]["holderIdentity"] = "pod-z";
  (*api.lease)["metadata"]["resourceVersion"] = std::to_string(++api.rv);
  clock.advance(2s);
  a->step();
  EXPECT_FALSE(a->is_leading());
  ASSERT_EQ(a.changes.size(), 2u);
  EXPECT_NE(a.changes[1].second.find("pod-z"), std::string::npos);
}

TEST(K8sLeaderElection, CreateRaceLosesQuietly) {
  FakeLeaseApi api;
  FakeClock clock;
  Candidate a(api, clock, "pod-a");
  Candidate b(api, clock, "pod-b");
  // b reads 404, a creates meanwhile, b's POST is 409
  FakeLeaseApi* p = &api;
  LeaderElectionConfig c = b->config();
  bool first = true;
  LeaderElector racer(
      c,
      [&](std::string_view m, const std::string& path, std::string_view body, std::string_view) {
        HttpResponse r = (*p)(m, path, body);
        if (first && m == "GET") {
          first = false;
          a->step();
        }
        return r;
      },
      nullptr, [](int, const std::string&) {}, clock.clock());
  racer.step();
  EXPECT_FALSE(racer.is_leading());
  EXPECT_TRUE(a->is_leading());
  EXPECT_EQ(api.holder(), "pod-a");
}

}  // namespace
}  // namespace backbone::modules::k8s
