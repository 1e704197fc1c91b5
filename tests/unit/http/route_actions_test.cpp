// SPDX-License-Identifier: GPL-3.0-or-later
// The management actions a route declares (ABI 1.4): the grammar the kernel
// refuses at registration, the resource it derives from a request's path,
// and what the OpenAPI document says of it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <backbone/route_actions.hpp>

#include <cstddef>
#include <optional>
#include <string>

#include "kernel/http/openapi.hpp"
#include "kernel/http/route_table.hpp"

using namespace backbone::kernel::http;
using backbone::sdk::RequiredAction;

namespace {

void handle(void*, const bb_http_request*, bb_http_exchange) {}

bb_str str(const std::string& s) {
  return bb_str{s.data(), s.size()};
}

constexpr const char* kTopicActions =
    "GET=mgmt:list-topics, GET/*=mgmt:get-topic ,PUT/*=mgmt:put-topic,DELETE/*=mgmt:delete-topic";

// A route and the strings it points to, kept alive together.
struct Declared {
  std::string path = "/api/topics", methods = "GET,PUT,DELETE", resource = "topics",
              actions = kTopicActions, openapi;
  uint32_t flags = BB_HTTP_AUTH | BB_HTTP_PREFIX;
  bb_http_route table{};

  const bb_http_route& route() {
    table = bb_http_route{};
    table.struct_size = sizeof(table);
    table.flags = flags;
    table.path = str(path);
    table.methods = str(methods);
    table.summary = bb_str{"topic rules", 11};
    table.openapi = str(openapi);
    table.resource = str(resource);
    table.actions = str(actions);
    table.handle = handle;
    return table;
  }
};

class RouteActionsTest : public ::testing::Test {
 protected:
  bb_status add(Declared& d) {
    error_.clear();
    return table_.add("http-api", d.route(), nullptr, &error_);
  }

  // What a `method` request to `path` needs on the route registered for it.
  std::optional<RequiredAction> required(std::string_view method, std::string_view path) {
    const RouteMatch found = table_.find(path, method);
    if (!found.route) return std::nullopt;
    return found.route->actions.required(found.route->path, method, path);
  }

  RouteTable table_;
  std::string error_;
};

MATCHER_P2(Needs, action, resource, "") {
  return arg && arg->action == action && arg->resource == resource;
}

TEST_F(RouteActionsTest, ReadsEveryEntryBlanksAround) {
  Declared topics;
  ASSERT_EQ(add(topics), BB_OK) << error_;
  const RouteMatch found = table_.find("/api/topics", "GET");
  ASSERT_NE(found.route, nullptr);
  const auto& actions = found.route->actions;
  EXPECT_EQ(actions.resource, "topics");
  ASSERT_EQ(actions.entries.size(), 4u);
  EXPECT_EQ(actions.action_of("GET", false), "mgmt:list-topics");
  EXPECT_EQ(actions.action_of("GET", true), "mgmt:get-topic");
  EXPECT_EQ(actions.action_of("PUT", true), "mgmt:put-topic");
  EXPECT_EQ(actions.action_of("PUT", false), "");
  EXPECT_EQ(actions.action_of("DELETE", true), "mgmt:delete-topic");
}

TEST_F(RouteActionsTest, RefusesAMalformedDeclarationSayingWhy) {
  struct Case {
    std::string actions;
    const char* resource;
    uint32_t flags;
    const char* why;
  };
  constexpr uint32_t kAuthPrefix = BB_HTTP_AUTH | BB_HTTP_PREFIX;
  const Case cases[] = {
      {"GET", "topics", kAuthPrefix, "'GET' is not METHOD=action"},
      {"GET=mgmt:list-topics,", "topics", kAuthPrefix, "'' is not METHOD=action"},
      {"GET=", "topics", kAuthPrefix, "invalid action ''"},
      {"GET=mgmt list", "topics", kAuthPrefix, "invalid action 'mgmt list'"},
      {"GET=mgmt:a=b", "topics", kAuthPrefix, "invalid action 'mgmt:a=b'"},
      {"GET=" + std::string(129, 'a'), "topics", kAuthPrefix, "invalid action"},
      {"PATCH=mgmt:x", "topics", kAuthPrefix, "unknown method 'PATCH'"},
      {"get=mgmt:x", "topics", kAuthPrefix, "unknown method 'get'"},
      {"BREW/*=mgmt:x", "topics", kAuthPrefix, "unknown method 'BREW'"},
      {"=mgmt:x", "topics", kAuthPrefix, "unknown method ''"},
      {"GET/**=mgmt:x", "topics", kAuthPrefix, "unknown method 'GET/**'"},
      {"GET=mgmt:a,GET=mgmt:b", "topics", kAuthPrefix, "GET is given twice"},
      {"GET/*=mgmt:a,GET/*=mgmt:a", "topics", kAuthPrefix, "GET/* is given twice"},
      {"GET/*=mgmt:a", "topics", BB_HTTP_AUTH, "need BB_HTTP_PREFIX"},
      {"GET=mgmt:a", "topics", BB_HTTP_PREFIX, "actions need BB_HTTP_AUTH"},
      {"GET=mgmt:a", "", kAuthPrefix, "actions without a resource"},
      {"", "topics", kAuthPrefix, "a resource without actions"},
      {"GET=mgmt:a", "topics/#", kAuthPrefix, "invalid resource 'topics/#'"},
      {"GET=mgmt:a", "topics/+", kAuthPrefix, "invalid resource"},
      {"GET=mgmt:a", "/topics", kAuthPrefix, "invalid resource"},
      {"GET=mgmt:a", "topics/", kAuthPrefix, "invalid resource"},
  };
  for (const Case& c : cases) {
    Declared d;
    d.actions = c.actions;
    d.resource = c.resource;
    d.flags = c.flags;
    EXPECT_EQ(add(d), BB_E_INVALID) << c.actions;
    EXPECT_NE(error_.find(c.why), std::string::npos) << c.actions << ": " << error_;
    EXPECT_EQ(error_.rfind("route '/api/topics': ", 0), 0u) << error_;
  }
  EXPECT_TRUE(table_.empty());
}

TEST_F(RouteActionsTest, RefusesActionsOnAWebSocketRoute) {
  Declared d;
  d.flags = BB_HTTP_AUTH | BB_HTTP_WEBSOCKET;
  d.actions = "GET=mgmt:watch";
  d.route();
  d.table.subprotocols = bb_str{"mqtt", 4};
  d.table.ws_open = [](void*, bb_ws_id, const bb_conn_info*, const bb_http_request*,
                       void**) -> bb_status { return BB_OK; };
  d.table.ws_data = [](void*, bb_bytes) {};
  d.table.ws_backpressure = [](void*, int32_t) {};
  d.table.ws_closed = [](void*) {};
  EXPECT_EQ(table_.add("ws", d.table, nullptr, &error_), BB_E_INVALID);
  EXPECT_NE(error_.find("WebSocket"), std::string::npos) << error_;
}

// A module built against ABI 1.1-1.3 has a shorter struct: what follows
// ws_closed in memory is not its declaration and is never read.
TEST_F(RouteActionsTest, AnOlderModulesRouteDeclaresNothing) {
  Declared d;
  d.actions = "garbage that would be refused";
  d.route();
  d.table.struct_size = offsetof(bb_http_route, resource);
  ASSERT_EQ(table_.add("old", d.table, nullptr, &error_), BB_OK) << error_;
  EXPECT_TRUE(table_.find("/api/topics", "GET").route->actions.empty());
  EXPECT_FALSE(required("GET", "/api/topics/x"));
}

TEST_F(RouteActionsTest, DerivesTheResourceFromThePathAsTheModuleReadsIt) {
  Declared topics;
  ASSERT_EQ(add(topics), BB_OK) << error_;
  EXPECT_THAT(required("GET", "/api/topics"), Needs("mgmt:list-topics", "topics"));
  EXPECT_THAT(required("GET", "/api/topics/x"), Needs("mgmt:get-topic", "topics/x"));
  EXPECT_THAT(required("PUT", "/api/topics/x"), Needs("mgmt:put-topic", "topics/x"));
  EXPECT_THAT(required("DELETE", "/api/topics/x"), Needs("mgmt:delete-topic", "topics/x"));
  // The trailing slash, an empty item name: the module lists the collection,
  // so the collection's action is the one checked.
  EXPECT_THAT(required("GET", "/api/topics/"), Needs("mgmt:list-topics", "topics"));
  // Dot segments are never resolved: the name stays under "topics/", which
  // a statement on "clients/..." cannot match.
  EXPECT_THAT(required("GET", "/api/topics/../clients"),
              Needs("mgmt:get-topic", "topics/../clients"));
  EXPECT_THAT(required("DELETE", "/api/topics/.."), Needs("mgmt:delete-topic", "topics/.."));
  // "%2F" is decoded before routing (http_connection.cpp): the module and
  // the check both see the '/' in the name.
  EXPECT_THAT(required("GET", "/api/topics/a/b"), Needs("mgmt:get-topic", "topics/a/b"));
  EXPECT_THAT(required("GET", "/api/topics//x"), Needs("mgmt:get-topic", "topics//x"));
  EXPECT_THAT(required("GET", "/api/topics/+"), Needs("mgmt:get-topic", "topics/+"));
  const std::string huge(100 * 1024, 'n');
  EXPECT_THAT(required("GET", "/api/topics/" + huge), Needs("mgmt:get-topic", "topics/" + huge));
  // No entry: the module answers (405 here), unchecked.
  EXPECT_FALSE(required("PUT", "/api/topics"));
  EXPECT_FALSE(required("DELETE", "/api/topics/"));
  EXPECT_FALSE(required("BREW", "/api/topics/x"));
  // Never derived for a path the route does not serve.
  const auto& actions = table_.find("/api/topics", "GET").route->actions;
  EXPECT_FALSE(actions.required("/api/topics", "GET", "/api/topicsx"));
  EXPECT_FALSE(actions.required("/api/topics", "GET", "/api/clients/x"));
  EXPECT_FALSE(actions.required("/api/topics", "GET", "/api"));
}

TEST_F(RouteActionsTest, OpenApiDerivesSecurityAndTheActionOnPathsTheModuleDescribes) {
  Declared topics;
  topics.openapi = R"({"/api/topics": {"get": {"summary": "List topic rules"}},
                       "/elsewhere": {"get": {"summary": "not under the route"}},
                       "/api/topics/{name}": {"get": {"summary": "one"},
                                              "put": {"summary": "set", "description": "Body."},
                                              "delete": {"summary": "drop"}}})";
  Declared message;
  message.path = "/api/message";
  message.methods = "POST";
  message.flags = BB_HTTP_AUTH;
  message.resource = message.actions = "";  // the body decides: the module checks
  message.openapi = R"({"/api/message": {"post": {"summary": "publish"}}})";
  Declared stats;
  stats.path = "/api/stats";
  stats.methods = "GET";
  stats.flags = BB_HTTP_AUTH;
  stats.resource = "stats";
  stats.actions = "GET=mgmt:read-stats";
  ASSERT_EQ(add(topics), BB_OK) << error_;
  ASSERT_EQ(add(message), BB_OK) << error_;
  ASSERT_EQ(add(stats), BB_OK) << error_;
  const nlohmann::json paths = openapi_document(table_)["paths"];
  const auto secured = [](const nlohmann::json& op) {
    return op["security"] == nlohmann::json::parse(R"([{"bearer": [], "provider": []}])") &&
           op["responses"]["401"]["$ref"] == "#/components/responses/Unauthorized" &&
           op["responses"]["403"]["$ref"] == "#/components/responses/Forbidden";
  };
  const auto requires_ = [](const std::string& action) {
    return "Requires the management action '" + action + "'.";
  };
  EXPECT_TRUE(secured(paths["/api/topics"]["get"]));
  EXPECT_EQ(paths["/api/topics"]["get"]["description"], requires_("mgmt:list-topics"));
  EXPECT_EQ(paths["/api/topics"]["get"]["summary"], "List topic rules");
  const auto& item = paths["/api/topics/{name}"];
  for (const char* m : {"get", "put", "delete"}) EXPECT_TRUE(secured(item[m])) << m;
  EXPECT_EQ(item["get"]["description"], requires_("mgmt:get-topic"));
  EXPECT_EQ(item["put"]["description"], requires_("mgmt:put-topic") + " Body.");
  EXPECT_EQ(item["delete"]["description"], requires_("mgmt:delete-topic"));
  EXPECT_TRUE(secured(paths["/elsewhere"]["get"]));
  EXPECT_FALSE(paths["/elsewhere"]["get"].contains("description"));
  EXPECT_TRUE(secured(paths["/api/message"]["post"]));
  EXPECT_FALSE(paths["/api/message"]["post"].contains("description"));
  EXPECT_TRUE(secured(paths["/api/stats"]["get"]));
  EXPECT_EQ(paths["/api/stats"]["get"]["description"], requires_("mgmt:read-stats"));
}

}  // namespace
