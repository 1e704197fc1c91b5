// SPDX-License-Identifier: GPL-3.0-or-later
// The client module's /api/clients routes through the fake host: tokens are
// made by the module, shown once, kept hashed, and log in afterwards.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <tuple>

#include "module_test_support.hpp"

namespace backbone::modules::client {
namespace {

using backbone::testing::FakeHost;
using backbone::testing::HttpRequest;
using backbone::testing::Statement;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const bb_module_descriptor* descriptor() {
  return test::module_descriptor(BB_TEST_CLIENT_MODULE);
}

HttpRequest request(std::string method, std::string path, std::string body = {}) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  return r;
}

constexpr const char* kStatements =
    R"({"statements": [{"effect": "allow", "actions": ["mqtt:*"], "resources": ["dev/#"]}]})";

TEST(ClientApi, PutCreatesAClientWhoseTokenLogsIn) {
  FakeHost host;
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  EXPECT_EQ(host.routes(), std::vector<std::string>{"/api/clients"});
  auto put = host.http(request("PUT", "/api/clients/dev", kStatements));
  ASSERT_EQ(put.status, 201) << put.body;
  const json body = json::parse(put.body);
  const std::string token = body["token"];
  EXPECT_EQ(token.size(), 43u);  // 32 random bytes, base64url
  EXPECT_EQ(body["name"], "dev");
  auto login = host.authenticate("client", token);
  EXPECT_EQ(login.verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(login.principal, "dev");
  EXPECT_THAT(login.statements, ElementsAre(Statement{BB_EFFECT_ALLOW, "mqtt:*", "dev/#"}));
  EXPECT_FALSE(host.leaked(token));

  // Replacing the statements keeps the token and is pushed to live sessions.
  auto replace = host.http(request(
      "PUT", "/api/clients/dev",
      R"({"statements": [{"effect": "allow", "actions": ["mqtt:read"], "resources": ["dev/#"]}]})"));
  EXPECT_EQ(replace.status, 200);
  EXPECT_FALSE(json::parse(replace.body).contains("token"));
  EXPECT_EQ(host.authenticate("client", token).statements,
            (std::vector<Statement>{{BB_EFFECT_ALLOW, "mqtt:read", "dev/#"}}));
  ASSERT_FALSE(host.principal_updates().empty());
  EXPECT_EQ(host.principal_updates().back().principal, "dev");
  EXPECT_FALSE(host.principal_updates().back().revoked);

  // Rotation: a new token, the old one stops working, sessions are cut.
  auto rotate = request("PUT", "/api/clients/dev", kStatements);
  rotate.query = "rotate=true";
  auto rotated = host.http(rotate);
  EXPECT_EQ(rotated.status, 200);
  const std::string fresh = json::parse(rotated.body)["token"];
  EXPECT_NE(fresh, token);
  EXPECT_EQ(host.authenticate("client", token).verdict, BB_AUTH_DENY);
  EXPECT_EQ(host.authenticate("client", fresh).verdict, BB_AUTH_ALLOW);
  EXPECT_TRUE(host.principal_updates().back().revoked);
  EXPECT_THAT(host.violations(), IsEmpty());
}

TEST(ClientApi, DeleteRevokes) {
  FakeHost host;
  ASSERT_EQ(host.load(descriptor()), BB_OK);
  const std::string token =
      json::parse(host.http(request("PUT", "/api/clients/gone", kStatements)).body)["token"];
  EXPECT_EQ(host.http(request("DELETE", "/api/clients/gone")).status, 204);
  EXPECT_EQ(host.authenticate("client", token).verdict, BB_AUTH_DENY);
  ASSERT_FALSE(host.principal_updates().empty());
  EXPECT_TRUE(host.principal_updates().back().revoked);
  EXPECT_EQ(host.http(request("DELETE", "/api/clients/gone")).status, 404);
  EXPECT_EQ(host.http(request("GET", "/api/clients/gone")).status, 404);
}

TEST(ClientApi, ListShowsSourcesAndNeverTokens) {
  FakeHost host(R"({"clients": {"filed": {"token_sha256": ")" + std::string(64, 'a') +
                R"(", "statements": []}}})");
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  host.http(request("PUT", "/api/clients/made", kStatements));
  auto list = host.http(request("GET", "/api/clients"));
  ASSERT_EQ(list.status, 200);
  const json body = json::parse(list.body);
  ASSERT_EQ(body.size(), 2u);
  EXPECT_EQ(body[0]["name"], "filed");
  EXPECT_EQ(body[0]["source"], "config");
  EXPECT_EQ(body[1]["name"], "made");
  EXPECT_EQ(body[1]["source"], "api");
  EXPECT_EQ(list.body.find("token"), std::string::npos);
  // Clients of the config file are changed there, not through the API.
  EXPECT_EQ(host.http(request("PUT", "/api/clients/filed", kStatements)).status, 409);
  EXPECT_EQ(host.http(request("DELETE", "/api/clients/filed")).status, 409);
}

TEST(ClientApi, BadRequests) {
  FakeHost host;
  ASSERT_EQ(host.load(descriptor()), BB_OK);
  for (const char* body : {"{", "[]", R"({"statements": 1})", R"({"statements": [], "x": 1})",
                           R"({})", R"({"statements": [{"effect": "maybe"}]})"}) {
    EXPECT_EQ(host.http(request("PUT", "/api/clients/a", body)).status, 400) << body;
  }
  EXPECT_EQ(host.http(request("PUT", "/api/clients/bad name", kStatements)).status, 400);
  EXPECT_EQ(host.http(request("PUT", "/api/clients", kStatements)).status, 405);
  host.set_authorization({}, false);
  EXPECT_EQ(host.http(request("PUT", "/api/clients/a", kStatements)).status, 403);
  EXPECT_EQ(host.http(request("GET", "/api/clients")).status, 403);
}

// The route declares its actions (ABI 1.4): the host refuses a requester
// without the action before the module reads the name or the body, so an
// invalid name from someone who may not put it is a 403, not a 400.
TEST(ClientApi, TheHostChecksTheDeclaredActionFirst) {
  FakeHost host;
  ASSERT_EQ(host.load(descriptor()), BB_OK);
  host.set_authorization({{{"mgmt:get-client", "clients/a"}, true}}, false);
  EXPECT_EQ(host.http(request("GET", "/api/clients/a")).status, 404);  // allowed, absent
  for (const auto& [method, path, message] :
       {std::tuple{"GET", "/api/clients/b", "not allowed: mgmt:get-client on clients/b"},
        std::tuple{"PUT", "/api/clients/bad name",
                   "not allowed: mgmt:put-client on clients/bad name"},
        std::tuple{"DELETE", "/api/clients/a", "not allowed: mgmt:delete-client on clients/a"},
        std::tuple{"GET", "/api/clients/", "not allowed: mgmt:list-clients on clients"}}) {
    const auto r =
        host.http(request(method, path, method == std::string("PUT") ? kStatements : ""));
    EXPECT_EQ(r.status, 403) << method << " " << path;
    EXPECT_EQ(r.body, std::string(R"({"error":"forbidden","message":")") + message + "\"}");
  }
  EXPECT_TRUE(host.logged("action=mgmt:delete-client target=\"clients/a\" result=denied"));
  EXPECT_TRUE(host.violations().empty());
}

TEST(ClientApi, DeepBodiesAreRefusedWithTheLimit) {
  FakeHost host;
  ASSERT_EQ(host.load(descriptor()), BB_OK);
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  auto r = host.http(request("PUT", "/api/clients/a", R"({"statements": )" + deep + "}"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["message"], "the body is nested deeper than 64 levels");
}

}  // namespace
}  // namespace backbone::modules::client

namespace backbone::modules::client {
namespace {

std::string make_state_dir(const std::string& name) {
  const std::string dir = test::temp_path(name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(ClientApi, StoredClientsSurviveARestart) {
  const std::string dir = make_state_dir("client_state");
  std::string token;
  {
    FakeHost host;
    host.set_state_path(dir);
    ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
    token = json::parse(host.http(request("PUT", "/api/clients/kept", kStatements)).body)["token"];
    host.http(request("PUT", "/api/clients/dropped", kStatements));
    EXPECT_EQ(host.http(request("DELETE", "/api/clients/dropped")).status, 204);
  }
  const auto file = std::filesystem::path(dir) / "clients.json";
  ASSERT_TRUE(std::filesystem::exists(file));
  EXPECT_EQ(std::filesystem::status(file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find(token), std::string::npos) << "only the token's hash is stored";
  EXPECT_EQ(json::parse(text).size(), 1u);

  FakeHost restarted;
  restarted.set_state_path(dir);
  ASSERT_EQ(restarted.load(descriptor()), BB_OK) << restarted.log_text();
  auto login = restarted.authenticate("client", token);
  EXPECT_EQ(login.verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(login.principal, "kept");
  EXPECT_EQ(restarted.http(request("GET", "/api/clients/dropped")).status, 404);
}

TEST(ClientApi, CorruptStoredClientsStopStartUp) {
  const std::string dir = make_state_dir("client_corrupt");
  std::ofstream(std::filesystem::path(dir) / "clients.json") << R"({"x": {"token_sha256": "zz"}})";
  FakeHost host;
  host.set_state_path(dir);
  EXPECT_EQ(host.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(host.logged("client 'x' is invalid", BB_LOG_ERROR)) << host.log_text();
}

}  // namespace
}  // namespace backbone::modules::client
