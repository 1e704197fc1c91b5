// SPDX-License-Identifier: GPL-3.0-or-later
// The resource logic of the k8s module: statements, conditions, the work
// queue, and the controller fed with Kubernetes objects as the reflectors
// would, against a recording BrokerSink.
#include <backbone/module_abi.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/base64/base64.hpp"
#include "config/k8s/conditions.hpp"
#include "config/k8s/controller.hpp"
#include "config/k8s/work_queue.hpp"

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---- conditions ----

TEST(K8sConditions, PatchOnlyWhenSomethingChanges) {
  ReadyCondition want{true, "Ready", "fine", 3};
  auto patch = status_patch(Json(), want, "2024-01-01T00:00:00Z");
  ASSERT_TRUE(patch);
  const Json status = (*patch)["status"];  // a copy: `patch` is reassigned below
  EXPECT_EQ(status["observedGeneration"], 3);
  ASSERT_EQ(status["conditions"].size(), 1u);
  const Json& ready = status["conditions"][0];
  EXPECT_EQ(ready["type"], "Ready");
  EXPECT_EQ(ready["status"], "True");
  EXPECT_EQ(ready["reason"], "Ready");
  EXPECT_EQ(ready["message"], "fine");
  EXPECT_EQ(ready["lastTransitionTime"], "2024-01-01T00:00:00Z");
  EXPECT_EQ(ready["observedGeneration"], 3);

  // The status as written: nothing more to write (no loop on our own MODIFIED).
  EXPECT_FALSE(status_patch(status, want, "2024-01-02T00:00:00Z"));

  // A new generation with the same verdict keeps the transition time.
  want.generation = 4;
  patch = status_patch(status, want, "2024-01-03T00:00:00Z");
  ASSERT_TRUE(patch);
  EXPECT_EQ((*patch)["status"]["conditions"][0]["lastTransitionTime"], "2024-01-01T00:00:00Z");

  // A flip to False moves it.
  want = ReadyCondition{false, "InvalidSpec", "bad", 4};
  patch = status_patch(status, want, "2024-01-04T00:00:00Z");
  ASSERT_TRUE(patch);
  EXPECT_EQ((*patch)["status"]["conditions"][0]["status"], "False");
  EXPECT_EQ((*patch)["status"]["conditions"][0]["lastTransitionTime"], "2024-01-04T00:00:00Z");
}

TEST(K8sConditions, KeepsOtherConditionsAndBoundsMessages) {
  Json status = {{"conditions",
                  {{{"type", "Synced"}, {"status", "True"}},
                   {{"type", "Ready"}, {"status", "False"}, {"reason", "X"}}}}};
  auto patch = status_patch(status, ReadyCondition{true, "Ready", std::string(5000, 'm'), 1}, "t");
  ASSERT_TRUE(patch);
  const Json& conditions = (*patch)["status"]["conditions"];
  ASSERT_EQ(conditions.size(), 2u);
  EXPECT_EQ(conditions[0]["type"], "Synced");
  EXPECT_LE(conditions[1]["message"].get<std::string>().size(), kMaxConditionMessage);
}

TEST(K8sConditions, Rfc3339) {
  EXPECT_EQ(rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(1700000000))),
            "2023-11-14T22:13:20Z");
}

// ---- work queue ----

TEST(K8sWorkQueue, DeduplicatesPausesAndRetries) {
  WorkQueue q(std::chrono::milliseconds(20), std::chrono::milliseconds(40));
  q.add("a");
  q.add("a");
  q.add("b");
  EXPECT_EQ(q.size(), 2u);
  q.set_paused(false);
  EXPECT_EQ(q.take(), "a");
  EXPECT_EQ(q.take(), "b");
  const auto start = std::chrono::steady_clock::now();
  q.retry("a");
  EXPECT_EQ(q.take(), "a");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(10));
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    q.stop();
  });
  EXPECT_EQ(q.take(), std::nullopt);
  stopper.join();
}

// ---- controller ----

struct RecordingSink : BrokerSink {
  struct Update {
    std::string principal;
    std::optional<std::vector<Statement>> statements;  // nullopt = revoked
  };
  std::vector<std::pair<std::string, std::optional<std::string>>> topics;
  std::vector<Update> updates;
  std::vector<std::string> logs;
  int32_t topic_status = BB_OK;
  std::string topic_error;
  int32_t principal_status = BB_OK;
  std::function<void(const std::string&)> on_update;  // runs inside update_principal

  int32_t submit_topic(const std::string& name, const std::string* json,
                       std::string& error) override {
    topics.emplace_back(name, json ? std::optional<std::string>(*json) : std::nullopt);
    if (topic_status != BB_OK) error = topic_error;
    return json ? topic_status : BB_OK;
  }
  int32_t update_principal(const std::string& principal, const std::vector<Statement>* statements,
                           std::string& error) override {
    updates.push_back({principal, statements ? std::optional<std::vector<Statement>>(*statements)
                                             : std::nullopt});
    if (on_update) on_update(principal);
    if (principal_status != BB_OK) error = "refused pattern";
    return statements ? principal_status : BB_OK;
  }
  void update_quotas(const std::string& principal, const bb_quotas* quotas) override {
    quota_updates.push_back({principal, quotas ? std::optional<bb_quotas>(*quotas) : std::nullopt});
  }
  std::vector<std::pair<std::string, std::optional<bb_quotas>>> quota_updates;
  void log(int, const std::string& message) override { logs.push_back(message); }
  bool logged(const std::string& needle) const {
    for (const auto& l : logs) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }
};

Json client(const std::string& ns, const std::string& name, const Json& statements,
            const std::string& uid = "uid-1", int64_t generation = 1, const std::string& rv = "1") {
  Json obj = {{"apiVersion", "backbone.mortenolsen.pro/v1"},
              {"kind", "Client"},
              {"metadata",
               {{"name", name},
                {"namespace", ns},
                {"uid", uid},
                {"generation", generation},
                {"resourceVersion", rv}}},
              {"spec", Json::object()}};
  if (!statements.is_null()) obj["spec"]["statements"] = statements;
  return obj;
}

Json secret(const std::string& ns, const std::string& name, const std::optional<std::string>& token,
            const std::string& owner_uid = "uid-1") {
  Json obj = {
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"metadata",
       {{"name", name}, {"namespace", ns}, {"uid", "s-" + name}, {"resourceVersion", "1"}}}};
  if (!owner_uid.empty()) {
    obj["metadata"]["ownerReferences"] = {{{"apiVersion", "backbone.mortenolsen.pro/v1"},
                                           {"kind", "Client"},
                                           {"name", name},
                                           {"uid", owner_uid},
                                           {"controller", true}}};
  }
  if (token) obj["data"] = {{"token", base64_encode(*token)}};
  return obj;
}

Json topic(const std::string& ns, const std::string& name, const Json& spec, int64_t gen = 1) {
  return {{"metadata",
           {{"name", name},
            {"namespace", ns},
            {"uid", "t-" + name},
            {"generation", gen},
            {"resourceVersion", "1"}}},
          {"spec", spec}};
}

const Json kPublishA =
    Json::parse(R"([{"effect":"allow","actions":["mqtt:publish"],"resources":["a/#"]}])");
const Json kPublishB =
    Json::parse(R"([{"effect":"allow","actions":["mqtt:publish"],"resources":["b/#"]}])");

struct ControllerTest : ::testing::Test {
  RecordingSink sink;
  std::vector<std::string> dirty;
  int synced_calls = 0;
  int next_token = 0;
  Controller controller{sink, [this](const std::string& k) { dirty.push_back(k); }, 3,
                        [this] { ++synced_calls; },
                        [this] { return "generated-token-" + std::to_string(++next_token); }};

  void sync_all() {
    controller.synced(kClients, "");
    controller.synced(kTopics, "");
    controller.synced(kSecrets, "");
  }
};

TEST_F(ControllerTest, ReadyOnlyAfterEveryReflectorSynced) {
  controller.synced(kClients, "");
  controller.synced(kTopics, "");
  EXPECT_FALSE(controller.is_synced());
  EXPECT_EQ(synced_calls, 0);
  controller.synced(kSecrets, "");
  EXPECT_TRUE(controller.is_synced());
  EXPECT_EQ(synced_calls, 1);
}

TEST_F(ControllerTest, TokenLogsInAsItsClient) {
  controller.replace(kClients, "", {client("prod", "sensor", kPublishA)});
  controller.replace(kSecrets, "", {secret("prod", "sensor-secret", "s3cret")});
  AuthDecision d = controller.authenticate("s3cret");
  EXPECT_EQ(d.verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(d.principal, "prod/sensor");
  ASSERT_TRUE(d.statements);
  EXPECT_THAT(*d.statements, ElementsAre(Statement{BB_EFFECT_ALLOW, "mqtt:publish", "a/#"}));
  EXPECT_EQ(controller.authenticate("wrong").verdict, BB_AUTH_DENY);
  EXPECT_EQ(controller.authenticate("").verdict, BB_AUTH_DENY);
  // The statements were validated by the broker once, for the live sessions.
  ASSERT_EQ(sink.updates.size(), 1u);
  EXPECT_EQ(sink.updates[0].principal, "prod/sensor");
  for (const auto& l : sink.logs) EXPECT_THAT(l, ::testing::Not(HasSubstr("s3cret")));
}

TEST_F(ControllerTest, QuotasTravelWithTheLoginAndChangeLive) {
  Json c = client("prod", "sensor", kPublishA);
  c["spec"]["quotas"] = {{"maxConnections", 2}, {"publishRate", 50}};
  controller.replace(kClients, "", {c});
  controller.replace(kSecrets, "", {secret("prod", "sensor-secret", "s3cret")});
  AuthDecision d = controller.authenticate("s3cret");
  ASSERT_EQ(d.verdict, BB_AUTH_ALLOW);
  ASSERT_TRUE(d.quotas);
  EXPECT_EQ(d.quotas->max_connections, 2u);
  EXPECT_EQ(d.quotas->publish_rate, 50u);
  ASSERT_EQ(sink.quota_updates.size(), 1u);
  c["spec"]["quotas"]["publishRate"] = 10;
  c["metadata"]["resourceVersion"] = "2";
  controller.apply(kClients, EventType::kModified, c);
  ASSERT_EQ(sink.quota_updates.size(), 2u);
  EXPECT_EQ(sink.quota_updates[1].second->publish_rate, 10u);
  EXPECT_EQ(sink.updates.size(), 1u);  // the statements did not change
  // A malformed quota makes the spec invalid: nobody logs in with it.
  c["spec"]["quotas"] = {{"publishRate", "fast"}};
  c["metadata"]["resourceVersion"] = "3";
  controller.apply(kClients, EventType::kModified, c);
  d = controller.authenticate("s3cret");
  EXPECT_EQ(d.verdict, BB_AUTH_FORBIDDEN);
  EXPECT_THAT(d.reason, HasSubstr("spec.quotas.publishRate"));
}

TEST_F(ControllerTest, StatementChangeUpdatesLiveSessions) {
  controller.apply(kClients, EventType::kAdded, client("prod", "sensor", kPublishA));
  controller.apply(kClients, EventType::kModified,
                   client("prod", "sensor", kPublishA, "uid-1", 1, "2"));
  EXPECT_EQ(sink.updates.size(), 1u);  // a status-only change is no statement change
  controller.apply(kClients, EventType::kModified,
                   client("prod", "sensor", kPublishB, "uid-1", 2, "3"));
  ASSERT_EQ(sink.updates.size(), 2u);
  ASSERT_TRUE(sink.updates[1].statements);
  EXPECT_EQ((*sink.updates[1].statements)[0].resource, "b/#");
}

TEST_F(ControllerTest, DeletedClientIsRevokedAndForgotten) {
  controller.apply(kClients, EventType::kAdded, client("prod", "sensor", kPublishA));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "sensor-secret", "tok"));
  EXPECT_EQ(controller.authenticate("tok").verdict, BB_AUTH_ALLOW);
  controller.apply(kClients, EventType::kDeleted, client("prod", "sensor", kPublishA));
  ASSERT_FALSE(sink.updates.empty());
  EXPECT_EQ(sink.updates.back().principal, "prod/sensor");
  EXPECT_FALSE(sink.updates.back().statements);  // revoked
  EXPECT_EQ(controller.authenticate("tok").verdict, BB_AUTH_DENY);
}

TEST_F(ControllerTest, ARevokedTokenNoLongerLogsInWhenSessionsAreCut) {
  // A client cut off and reconnecting at once must not get back in.
  controller.apply(kClients, EventType::kAdded, client("prod", "sensor", kPublishA));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "sensor-secret", "tok"));
  std::vector<int32_t> verdicts_at_cut;
  sink.on_update = [&](const std::string&) {
    verdicts_at_cut.push_back(controller.authenticate("tok").verdict);
  };
  controller.apply(kSecrets, EventType::kModified, secret("prod", "sensor-secret", "tok-2"));
  controller.apply(kClients, EventType::kDeleted, client("prod", "sensor", kPublishA));
  EXPECT_EQ(verdicts_at_cut, (std::vector<int32_t>{BB_AUTH_DENY, BB_AUTH_DENY}));
}

TEST_F(ControllerTest, InvalidSpecAuthenticatesNobody) {
  controller.apply(kClients, EventType::kAdded,
                   client("prod", "bad", Json::parse(R"([{"effect":"allow"}])")));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "bad-secret", "tok"));
  AuthDecision d = controller.authenticate("tok");
  EXPECT_EQ(d.verdict, BB_AUTH_FORBIDDEN);
  EXPECT_THAT(d.reason, HasSubstr("spec.statements[0].actions: missing"));
  EXPECT_TRUE(sink.updates.empty());  // live sessions keep their last good statements
  EXPECT_TRUE(sink.logged("invalid spec"));

  // The status says why.
  controller.synced(kClients, "");
  Action a = controller.next_action("clients/prod/bad");
  ASSERT_EQ(a.kind, Action::Kind::kPatchStatus);
  Json body = Json::parse(a.body);
  EXPECT_EQ(body["status"]["conditions"][0]["status"], "False");
  EXPECT_EQ(body["status"]["conditions"][0]["reason"], "InvalidSpec");
  EXPECT_THAT(body["status"]["conditions"][0]["message"].get<std::string>(),
              HasSubstr("actions: missing"));
}

TEST_F(ControllerTest, StatementsTheBrokerRefusesAreInvalidToo) {
  sink.principal_status = BB_E_INVALID;
  controller.apply(kClients, EventType::kAdded, client("prod", "c", kPublishA));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "c-secret", "tok"));
  AuthDecision d = controller.authenticate("tok");
  EXPECT_EQ(d.verdict, BB_AUTH_FORBIDDEN);
  EXPECT_THAT(d.reason, HasSubstr("refused by the broker: refused pattern"));
  // The same spec again (our status write echoes) is not resubmitted.
  controller.apply(kClients, EventType::kModified, client("prod", "c", kPublishA, "uid-1", 1, "2"));
  EXPECT_EQ(sink.updates.size(), 1u);
}

TEST_F(ControllerTest, MissingStatementsAreInvalid) {
  controller.apply(kClients, EventType::kAdded, client("prod", "c", Json()));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "c-secret", "tok"));
  AuthDecision d = controller.authenticate("tok");
  EXPECT_EQ(d.verdict, BB_AUTH_FORBIDDEN);
  EXPECT_THAT(d.reason, HasSubstr("spec.statements: missing"));
}

TEST_F(ControllerTest, TokenChangeCutsSessions) {
  controller.apply(kClients, EventType::kAdded, client("prod", "c", kPublishA));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "c-secret", "old"));
  const size_t before = sink.updates.size();
  controller.apply(kSecrets, EventType::kModified, secret("prod", "c-secret", "new"));
  ASSERT_EQ(sink.updates.size(), before + 1);
  EXPECT_FALSE(sink.updates.back().statements);
  EXPECT_EQ(controller.authenticate("old").verdict, BB_AUTH_DENY);
  EXPECT_EQ(controller.authenticate("new").verdict, BB_AUTH_ALLOW);
  // The same token again changes nothing.
  controller.apply(kSecrets, EventType::kModified, secret("prod", "c-secret", "new"));
  EXPECT_EQ(sink.updates.size(), before + 1);
}

TEST_F(ControllerTest, SecretOfAnotherOwnerIsNotTrusted) {
  controller.apply(kClients, EventType::kAdded, client("prod", "c", kPublishA, "uid-new"));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "c-secret", "tok", "uid-old"));
  EXPECT_EQ(controller.authenticate("tok").verdict, BB_AUTH_DENY);
  sync_all();
  Action a = controller.next_action("clients/prod/c");
  ASSERT_EQ(a.kind, Action::Kind::kPatchStatus);  // no Secret write: wait for GC
  EXPECT_THAT(a.body, HasSubstr("SecretConflict"));
  // An unowned Secret (made by an operator) is used as it is.
  controller.apply(kSecrets, EventType::kModified, secret("prod", "c-secret", "tok", ""));
  EXPECT_EQ(controller.authenticate("tok").verdict, BB_AUTH_ALLOW);
}

TEST_F(ControllerTest, DuplicateTokensLogInNobody) {
  controller.apply(kClients, EventType::kAdded, client("prod", "a", kPublishA, "ua"));
  controller.apply(kClients, EventType::kAdded, client("prod", "b", kPublishB, "ub"));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "a-secret", "same", "ua"));
  controller.apply(kSecrets, EventType::kAdded, secret("prod", "b-secret", "same", "ub"));
  EXPECT_EQ(controller.authenticate("same").verdict, BB_AUTH_DENY);
  EXPECT_TRUE(sink.logged("same token"));
}

TEST_F(ControllerTest, CreatesTheSecretThenWritesReady) {
  controller.replace(kClients, "", {client("prod", "sensor", kPublishA, "uid-7")});
  controller.replace(kTopics, "", {});
  controller.replace(kSecrets, "", {});
  sync_all();
  Action a = controller.next_action("clients/prod/sensor");
  ASSERT_EQ(a.kind, Action::Kind::kCreateSecret);
  EXPECT_EQ(a.method, "POST");
  EXPECT_EQ(a.path, "/api/v1/namespaces/prod/secrets");
  Json body = Json::parse(a.body);
  EXPECT_EQ(body["metadata"]["name"], "sensor-secret");
  EXPECT_EQ(body["type"], "Opaque");
  EXPECT_EQ(*base64_decode(body["data"]["token"].get<std::string>()), "generated-token-1");
  const Json& owner = body["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner["apiVersion"], "backbone.mortenolsen.pro/v1");
  EXPECT_EQ(owner["kind"], "Client");
  EXPECT_EQ(owner["name"], "sensor");
  EXPECT_EQ(owner["uid"], "uid-7");
  EXPECT_EQ(owner["controller"], true);
  EXPECT_EQ(owner["blockOwnerDeletion"], true);

  // The API server answers with the created Secret.
  HttpResponse created{201, body.dump(), ""};
  EXPECT_EQ(controller.action_done("clients/prod/sensor", a, created), Next::kContinue);
  EXPECT_EQ(controller.authenticate("generated-token-1").verdict, BB_AUTH_ALLOW);

  Action s = controller.next_action("clients/prod/sensor");
  ASSERT_EQ(s.kind, Action::Kind::kPatchStatus);
  EXPECT_EQ(s.method, "PATCH");
  EXPECT_EQ(s.content_type, "application/merge-patch+json");
  EXPECT_EQ(s.path, "/apis/backbone.mortenolsen.pro/v1/namespaces/prod/clients/sensor/status");
  Json status = Json::parse(s.body)["status"];
  EXPECT_EQ(status["conditions"][0]["status"], "True");
  EXPECT_EQ(status["secretName"], "sensor-secret");
  EXPECT_EQ(status["observedGeneration"], 1);
  EXPECT_EQ(controller.action_done("clients/prod/sensor", s, HttpResponse{200, "{}", ""}),
            Next::kContinue);
  // Written: nothing more until the object changes.
  EXPECT_EQ(controller.next_action("clients/prod/sensor").kind, Action::Kind::kNone);

  // The echo of our write (new resourceVersion, our status): still nothing.
  Json echo = client("prod", "sensor", kPublishA, "uid-7", 1, "2");
  echo["status"] = status;
  echo["metadata"]["generation"] = 1;
  controller.apply(kClients, EventType::kModified, echo);
  controller.apply(kSecrets, EventType::kAdded, body);  // the watch delivers the Secret late
  EXPECT_EQ(controller.next_action("clients/prod/sensor").kind, Action::Kind::kNone);
}

TEST_F(ControllerTest, ExistingTokenIsKeptAndAnEmptyOneFilled) {
  controller.replace(kClients, "", {client("prod", "a", kPublishA)});
  controller.replace(kSecrets, "", {secret("prod", "a-secret", std::nullopt)});
  sync_all();
  Action a = controller.next_action("clients/prod/a");
  ASSERT_EQ(a.kind, Action::Kind::kSetSecretToken);
  EXPECT_EQ(a.path, "/api/v1/namespaces/prod/secrets/a-secret");
  EXPECT_EQ(a.content_type, "application/merge-patch+json");
  EXPECT_TRUE(Json::parse(a.body)["data"].contains("token"));

  controller.apply(kSecrets, EventType::kModified, secret("prod", "a-secret", "kept"));
  a = controller.next_action("clients/prod/a");
  EXPECT_EQ(a.kind, Action::Kind::kPatchStatus);  // no Secret write: the token stays
}

TEST_F(ControllerTest, SecretWriteFailures) {
  controller.replace(kClients, "", {client("prod", "a", kPublishA)});
  sync_all();
  Action a = controller.next_action("clients/prod/a");
  ASSERT_EQ(a.kind, Action::Kind::kCreateSecret);
  // Unreachable or 5xx: retried later with backoff.
  EXPECT_EQ(controller.action_done("clients/prod/a", a, HttpResponse{0, "", "refused"}),
            Next::kRetryLater);
  EXPECT_EQ(controller.next_action("clients/prod/a").kind, Action::Kind::kCreateSecret);
  // Forbidden: the status says so, and no retry loop.
  const std::string forbidden =
      R"({"kind":"Status","code":403,"reason":"Forbidden","message":"cannot create secrets"})";
  EXPECT_EQ(controller.action_done("clients/prod/a", a, HttpResponse{403, forbidden, ""}),
            Next::kContinue);
  Action s = controller.next_action("clients/prod/a");
  ASSERT_EQ(s.kind, Action::Kind::kPatchStatus);
  EXPECT_THAT(s.body, HasSubstr("SecretError"));
  EXPECT_THAT(s.body, HasSubstr("cannot create secrets"));
  EXPECT_TRUE(sink.logged("cannot create secrets"));
}

TEST_F(ControllerTest, ASecretThatExistsUnseenIsReportedOnTheSecondConflict) {
  controller.replace(kClients, "", {client("prod", "a", kPublishA)});
  sync_all();
  Action a = controller.next_action("clients/prod/a");
  ASSERT_EQ(a.kind, Action::Kind::kCreateSecret);
  const HttpResponse conflict{409, R"({"kind":"Status","code":409,"reason":"AlreadyExists"})", ""};
  // Once: probably our watch is just late.
  EXPECT_EQ(controller.action_done("clients/prod/a", a, conflict), Next::kRetryLater);
  a = controller.next_action("clients/prod/a");
  ASSERT_EQ(a.kind, Action::Kind::kCreateSecret);
  EXPECT_EQ(controller.action_done("clients/prod/a", a, conflict), Next::kContinue);
  Action s = controller.next_action("clients/prod/a");
  ASSERT_EQ(s.kind, Action::Kind::kPatchStatus);
  EXPECT_THAT(s.body, HasSubstr("Opaque"));
}

TEST_F(ControllerTest, RelistDropsWhatIsGone) {
  controller.replace(kClients, "",
                     {client("a", "x", kPublishA, "u1"), client("b", "y", kPublishA, "u2")});
  controller.replace(kTopics, "", {topic("a", "t", {{"patterns", Json::array()}})});
  sink.updates.clear();
  sink.topics.clear();
  // After a 410 the new list lacks b/y and a/t.
  controller.replace(kClients, "", {client("a", "x", kPublishA, "u1")});
  controller.replace(kTopics, "", {});
  ASSERT_EQ(sink.updates.size(), 1u);
  EXPECT_EQ(sink.updates[0].principal, "b/y");
  EXPECT_FALSE(sink.updates[0].statements);
  ASSERT_EQ(sink.topics.size(), 1u);
  EXPECT_EQ(sink.topics[0].first, "a/t");
  EXPECT_FALSE(sink.topics[0].second);
  EXPECT_EQ(controller.client_count(), 1u);
}

TEST_F(ControllerTest, RelistOfOneNamespaceLeavesOthers) {
  controller.replace(kClients, "a", {client("a", "x", kPublishA, "u1")});
  controller.replace(kClients, "b", {client("b", "y", kPublishA, "u2")});
  controller.replace(kClients, "a", {});
  EXPECT_EQ(controller.client_count(), 1u);
}

TEST_F(ControllerTest, TopicsBecomeRulesAndRefusalsAStatus) {
  const Json spec = Json::parse(R"({"patterns":[{"pattern":"s/#","maxMessageSize":10}]})");
  controller.apply(kTopics, EventType::kAdded, topic("prod", "t", spec));
  ASSERT_EQ(sink.topics.size(), 1u);
  EXPECT_EQ(sink.topics[0].first, "prod/t");
  EXPECT_EQ(Json::parse(*sink.topics[0].second), spec);
  // The same spec again (a status echo): not resubmitted.
  controller.apply(kTopics, EventType::kModified, topic("prod", "t", spec));
  EXPECT_EQ(sink.topics.size(), 1u);

  sink.topic_status = BB_E_INVALID;
  sink.topic_error = "patterns[0].qos: expected non-empty array of integers 0..2";
  controller.apply(
      kTopics, EventType::kModified,
      topic("prod", "t", Json::parse(R"({"patterns":[{"pattern":"s/#","qos":[]}]})"), 2));
  ASSERT_EQ(sink.topics.size(), 2u);
  sync_all();
  Action a = controller.next_action("topics/prod/t");
  ASSERT_EQ(a.kind, Action::Kind::kPatchStatus);
  EXPECT_EQ(a.path, "/apis/backbone.mortenolsen.pro/v1/namespaces/prod/topics/t/status");
  Json cond = Json::parse(a.body)["status"]["conditions"][0];
  EXPECT_EQ(cond["status"], "False");
  EXPECT_EQ(cond["reason"], "InvalidSpec");
  EXPECT_EQ(cond["message"], sink.topic_error);
  EXPECT_EQ(cond["observedGeneration"], 2);

  controller.apply(kTopics, EventType::kDeleted, topic("prod", "t", spec));
  EXPECT_EQ(sink.topics.back().first, "prod/t");
  EXPECT_FALSE(sink.topics.back().second);
  EXPECT_EQ(controller.next_action("topics/prod/t").kind, Action::Kind::kNone);
}

TEST_F(ControllerTest, TopicWithoutPatternsIsSubmittedForTheBrokerToRefuse) {
  sink.topic_status = BB_E_INVALID;
  sink.topic_error = "patterns: missing";
  controller.apply(kTopics, EventType::kAdded, topic("prod", "t", Json::object()));
  ASSERT_EQ(sink.topics.size(), 1u);
  EXPECT_EQ(*sink.topics[0].second, "{}");
}

TEST_F(ControllerTest, StatusWriteErrors) {
  controller.apply(kTopics, EventType::kAdded, topic("prod", "t", {{"patterns", Json::array()}}));
  sync_all();
  Action a = controller.next_action("topics/prod/t");
  ASSERT_EQ(a.kind, Action::Kind::kPatchStatus);
  EXPECT_EQ(controller.action_done("topics/prod/t", a, HttpResponse{503, "", ""}),
            Next::kRetryLater);
  EXPECT_EQ(controller.next_action("topics/prod/t").kind, Action::Kind::kPatchStatus);
  // No status subresource: warned once, not retried until the object changes.
  EXPECT_EQ(controller.action_done("topics/prod/t", a, HttpResponse{404, "", ""}), Next::kDone);
  EXPECT_EQ(controller.next_action("topics/prod/t").kind, Action::Kind::kNone);
  EXPECT_TRUE(sink.logged("status subresource"));
}

TEST(K8sTokens, RandomTokensAreLongAndDistinct) {
  const std::string a = random_token();
  const std::string b = random_token();
  EXPECT_EQ(a.size(), 43u);  // 32 bytes, base64url without padding
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
            std::string::npos);
  EXPECT_EQ(sha256("abc").size(), 32u);
}

}  // namespace
}  // namespace backbone::modules::k8s
