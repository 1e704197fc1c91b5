// SPDX-License-Identifier: GPL-3.0-or-later
// The http-api module through the fake host: its routes, the management
// actions it checks, field validation and the answers it gives.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

#include "module_test_support.hpp"

namespace backbone::modules::http_api {
namespace {

using backbone::testing::FakeHost;
using backbone::testing::HttpRequest;
using nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

const bb_module_descriptor* descriptor() {
  return test::module_descriptor(BB_TEST_HTTP_API_MODULE);
}

HttpRequest request(std::string method, std::string path, std::string body = {}) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

class HttpApi : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text(); }
  json body_of(const backbone::testing::HttpResponse& r) {
    return json::parse(r.body, nullptr, false);
  }
  FakeHost host;
};

TEST_F(HttpApi, RegistersEveryRouteWhileConfiguring) {
  EXPECT_EQ(host.routes(), (std::vector<std::string>{"/health", "/ready", "/metrics",
                                                     "/api/message", "/api/topics", "/api/stats",
                                                     "/api/sessions", "/api/openapi.json"}));
  EXPECT_THAT(host.violations(), IsEmpty());
}

TEST_F(HttpApi, UnknownSettingIsRefused) {
  FakeHost other(R"({"port": 1})");
  EXPECT_EQ(other.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(other.logged("setting 'port': unknown key", BB_LOG_ERROR)) << other.log_text();
}

TEST_F(HttpApi, HealthAndReady) {
  auto health = host.http(request("GET", "/health"));
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(body_of(health), json({{"status", "ok"}}));

  host.set_inspect("ready",
                   R"({"ready": false, "waiting": ["k8s"], "reason": "waiting for modules"})");
  auto not_ready = host.http(request("GET", "/ready"));
  EXPECT_EQ(not_ready.status, 503);
  EXPECT_EQ(body_of(not_ready)["waiting"], json::array({"k8s"}));
  EXPECT_EQ(body_of(not_ready)["status"], "not ready");

  host.set_inspect("ready", R"({"ready": true, "waiting": []})");
  auto ready = host.http(request("GET", "/ready"));
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(body_of(ready)["status"], "ready");
}

TEST_F(HttpApi, MetricsAreTextFormat) {
  host.set_inspect("metrics", "backbone_connections 3\n");
  auto r = host.http(request("GET", "/metrics"));
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_EQ(r.body, "backbone_connections 3\n");
}

TEST_F(HttpApi, MessageIsPublishedThroughTheHost) {
  auto r =
      host.http(request("POST", "/api/message",
                        R"({"topic": "a/b", "payload": "aGVsbG8=", "qos": 1, "retain": true})"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body_of(r), json({{"success", true}}));
  ASSERT_EQ(host.published().size(), 1u);
  EXPECT_EQ(host.published()[0].topic, "a/b");
  EXPECT_EQ(host.published()[0].payload, "hello");
  EXPECT_EQ(host.published()[0].qos, 1);
  EXPECT_TRUE(host.published()[0].retain);
}

TEST_F(HttpApi, MessageFieldsAreValidated) {
  struct Case {
    const char* body;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"payload": "aGk="})", "field 'topic': expected a non-empty string"},
           Case{R"({"topic": ""})", "field 'topic': expected a non-empty string"},
           Case{R"({"topic": 5})", "field 'topic': expected a non-empty string"},
           Case{R"({"topic": "a", "payload": "not base64!"})", "field 'payload': not valid base64"},
           Case{R"({"topic": "a", "payload": 1})", "field 'payload': expected a base64 string"},
           Case{R"({"topic": "a", "qos": 3})", "field 'qos': expected 0, 1 or 2"},
           Case{R"({"topic": "a", "qos": -1})", "field 'qos': expected 0, 1 or 2"},
           Case{R"({"topic": "a", "retain": "yes"})", "field 'retain': expected true or false"},
           Case{R"({"topic": "a", "extra": 1})", "field 'extra': unknown field"},
           Case{R"([1, 2])", "the body must be a JSON object"},
           Case{"{\"topic\": \"\xff\xfe\"}", "the body is not valid JSON"},
           Case{"{", "the body is not valid JSON"},
       }) {
    auto r = host.http(request("POST", "/api/message", c.body));
    EXPECT_EQ(r.status, 400) << c.body;
    EXPECT_EQ(body_of(r)["error"], "bad_request") << c.body;
    EXPECT_THAT(body_of(r)["message"].get<std::string>(), HasSubstr(c.message)) << c.body;
  }
  EXPECT_THAT(host.published(), IsEmpty());
}

TEST_F(HttpApi, MessageRefusalsMapToHttpStatus) {
  host.set_publish_reason(0x87, "not authorized");
  EXPECT_EQ(host.http(request("POST", "/api/message", R"({"topic": "a"})")).status, 403);
  host.set_publish_reason(0x99, "topic rule 'r' pattern 'a': payload is not valid JSON");
  auto r = host.http(request("POST", "/api/message", R"({"topic": "a"})"));
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(body_of(r)["message"], "topic rule 'r' pattern 'a': payload is not valid JSON");
  EXPECT_EQ(body_of(r)["error"], "rejected_by_topic_rule");
}

TEST_F(HttpApi, TopicsCrudChecksManagementActions) {
  host.set_inspect("topics", R"({"temp": {"patterns": [{"pattern": "t"}]}})");
  auto list = host.http(request("GET", "/api/topics"));
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(body_of(list),
            json::parse(R"([{"name": "temp", "spec": {"patterns": [{"pattern": "t"}]}}])"));
  EXPECT_EQ(host.http(request("GET", "/api/topics/temp")).status, 200);
  EXPECT_EQ(host.http(request("GET", "/api/topics/none")).status, 404);

  auto put = host.http(request("PUT", "/api/topics/new", R"({"patterns": [{"pattern": "x"}]})"));
  EXPECT_EQ(put.status, 201) << put.body;
  ASSERT_EQ(host.submissions().size(), 1u);
  EXPECT_EQ(host.submissions()[0].kind, "topic");
  EXPECT_EQ(host.submissions()[0].name, "new");
  EXPECT_EQ(json::parse(host.submissions()[0].json),
            json::parse(R"({"patterns": [{"pattern": "x"}]})"));

  EXPECT_EQ(host.http(request("PUT", "/api/topics/new", R"({"pattern": []})")).status, 400);
  EXPECT_EQ(host.http(request("PUT", "/api/topics/new", R"({})")).status, 400);
  EXPECT_EQ(host.http(request("PUT", "/api/topics", R"({})")).status, 405);
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  auto too_deep = host.http(request("PUT", "/api/topics/new", R"({"patterns": )" + deep + "}"));
  EXPECT_EQ(too_deep.status, 400);
  EXPECT_EQ(body_of(too_deep)["message"], "the body is nested deeper than 64 levels");

  host.set_submit_status(BB_E_INVALID);
  host.set_last_error("topic rule 'new': patterns[0]: unknown key 'x'");
  auto refused = host.http(request("PUT", "/api/topics/new", R"({"patterns": [{"x": 1}]})"));
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(body_of(refused)["message"], "topic rule 'new': patterns[0]: unknown key 'x'");
  host.set_submit_status(BB_OK);

  EXPECT_EQ(host.http(request("DELETE", "/api/topics/temp")).status, 204);
  EXPECT_EQ(host.http(request("DELETE", "/api/topics/none")).status, 404);
  EXPECT_THAT(host.authorize_calls(), Contains(Pair("mgmt:put-topic", "topics/new")));
  EXPECT_THAT(host.authorize_calls(), Contains(Pair("mgmt:delete-topic", "topics/temp")));
  EXPECT_THAT(host.authorize_calls(), Contains(Pair("mgmt:list-topics", "topics")));
  EXPECT_TRUE(host.logged("audit: provider=admin principal=\"tester\"")) << host.log_text();
}

TEST_F(HttpApi, ForbiddenWithoutTheAction) {
  host.set_authorization({{{"mgmt:read-stats", "stats"}, false}}, true);
  host.set_inspect("stats", "{}");
  auto r = host.http(request("GET", "/api/stats"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(body_of(r)["error"], "forbidden");
  EXPECT_TRUE(host.logged("action=mgmt:read-stats target=\"stats\" result=denied"))
      << host.log_text();
  host.set_authorization({}, false);
  EXPECT_EQ(host.http(request("PUT", "/api/topics/x", R"({"patterns": []})")).status, 403);
  EXPECT_THAT(host.submissions(), IsEmpty());
}

TEST_F(HttpApi, SessionsListAndKick) {
  host.set_inspect("sessions", R"([{"client_id": "c1"}])");
  auto list = host.http(request("GET", "/api/sessions"));
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(body_of(list)[0]["client_id"], "c1");
  EXPECT_EQ(host.http(request("DELETE", "/api/sessions/c1")).status, 204);
  EXPECT_EQ(host.kicked(), std::vector<std::string>{"c1"});
  EXPECT_EQ(host.http(request("DELETE", "/api/sessions")).status, 405);
  EXPECT_EQ(host.http(request("GET", "/api/sessions/c1")).status, 405);
}

TEST_F(HttpApi, OpenApiComesFromTheHost) {
  host.set_inspect("openapi", R"({"openapi": "3.0.3"})");
  auto r = host.http(request("GET", "/api/openapi.json"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_of(r)["openapi"], "3.0.3");
}

}  // namespace
}  // namespace backbone::modules::http_api

namespace backbone::modules::http_api {
namespace {

TEST(HttpApiState, TopicRulesOfTheApiAreStoredAndRestored) {
  const std::string dir = test::temp_path("http_api_state");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    FakeHost host;
    host.set_state_path(dir);
    ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
    EXPECT_EQ(
        host.http(request("PUT", "/api/topics/a", R"({"patterns": [{"pattern": "a"}]})")).status,
        201);
    EXPECT_EQ(
        host.http(request("PUT", "/api/topics/b", R"({"patterns": [{"pattern": "b"}]})")).status,
        201);
    host.set_inspect("topics", R"({"a": {"patterns": [{"pattern": "a"}]}, "b": {}})");
    EXPECT_EQ(host.http(request("DELETE", "/api/topics/b")).status, 204);
  }
  FakeHost restarted;
  restarted.set_state_path(dir);
  ASSERT_EQ(restarted.load(descriptor()), BB_OK) << restarted.log_text();
  ASSERT_EQ(restarted.submissions().size(), 1u);
  EXPECT_EQ(restarted.submissions()[0].name, "a");
  EXPECT_EQ(json::parse(restarted.submissions()[0].json),
            json::parse(R"({"patterns": [{"pattern": "a"}]})"));

  // A stored rule the kernel now refuses stops start-up (fail closed).
  FakeHost refusing;
  refusing.set_state_path(dir);
  refusing.set_submit_status(BB_E_INVALID);
  refusing.set_last_error("patterns[0]: bad");
  EXPECT_EQ(refusing.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(refusing.logged("stored topic rule 'a' is refused: patterns[0]: bad", BB_LOG_ERROR))
      << refusing.log_text();
}

}  // namespace
}  // namespace backbone::modules::http_api
