// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/route_table.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "kernel/http/openapi.hpp"

using namespace backbone::kernel::http;

namespace {

void handle(void*, const bb_http_request*, bb_http_exchange) {}
bb_status ws_open(void*, bb_ws_id, const bb_conn_info*, const bb_http_request*, void**) {
  return BB_OK;
}
void ws_data(void*, bb_bytes) {}
void ws_backpressure(void*, int32_t) {}
void ws_closed(void*) {}

bb_str str(const char* s) {
  return bb_str{s, std::char_traits<char>::length(s)};
}

bb_http_route http_route(const char* path, const char* methods, uint32_t flags = 0) {
  bb_http_route r{};
  r.struct_size = sizeof(r);
  r.flags = flags;
  r.path = str(path);
  r.methods = str(methods);
  r.summary = str("a route");
  r.handle = handle;
  return r;
}

bb_http_route websocket_route(const char* path, const char* subprotocols) {
  bb_http_route r{};
  r.struct_size = sizeof(r);
  r.flags = BB_HTTP_WEBSOCKET;
  r.path = str(path);
  r.subprotocols = str(subprotocols);
  r.ws_open = ws_open;
  r.ws_data = ws_data;
  r.ws_backpressure = ws_backpressure;
  r.ws_closed = ws_closed;
  return r;
}

// The table keeps pointers to the registered bb_http_route, as the module
// host's modules do: the tests keep theirs alive in the fixture.
class RouteTableTest : public ::testing::Test {
 protected:
  bb_status add(const bb_http_route& r, const char* module = "m", void* user = nullptr) {
    error_.clear();
    return table_.add(module, r, user, &error_);
  }

  RouteTable table_;
  std::string error_;
};

TEST_F(RouteTableTest, ExactPathMatchesOnlyItself) {
  const auto health = http_route("/health", "GET");
  ASSERT_EQ(add(health), BB_OK);
  const RouteMatch found = table_.find("/health", "GET");
  ASSERT_NE(found.route, nullptr);
  EXPECT_EQ(found.route->path, "/health");
  EXPECT_EQ(found.route->table, &health);
  EXPECT_FALSE(table_.find("/health/x", "GET").path_known);  // not a prefix route: 404
  EXPECT_FALSE(table_.find("/healthz", "GET").path_known);
  EXPECT_FALSE(table_.find("/", "GET").path_known);
}

TEST_F(RouteTableTest, PrefixPathMatchesItselfAndWhatIsBelowIt) {
  const auto clients = http_route("/api/clients", "GET,PUT,DELETE", BB_HTTP_PREFIX);
  ASSERT_EQ(add(clients), BB_OK);
  EXPECT_NE(table_.find("/api/clients", "GET").route, nullptr);
  EXPECT_NE(table_.find("/api/clients/alice", "PUT").route, nullptr);
  EXPECT_NE(table_.find("/api/clients/alice/x", "DELETE").route, nullptr);
  // Only below a '/': "/api/clientsX" is another path.
  const RouteMatch other = table_.find("/api/clientsX", "GET");
  EXPECT_EQ(other.route, nullptr);
  EXPECT_FALSE(other.path_known);
  EXPECT_FALSE(table_.find("/api", "GET").path_known);
}

TEST_F(RouteTableTest, LongestMatchWins) {
  const auto api = http_route("/api", "GET", BB_HTTP_PREFIX);
  const auto clients = http_route("/api/clients", "GET", BB_HTTP_PREFIX);
  ASSERT_EQ(add(api, "api"), BB_OK);
  ASSERT_EQ(add(clients, "client"), BB_OK);
  EXPECT_EQ(table_.find("/api/clients/bob", "GET").route->module, "client");
  EXPECT_EQ(table_.find("/api/topics", "GET").route->module, "api");
  EXPECT_EQ(table_.find("/api", "GET").route->module, "api");
}

TEST_F(RouteTableTest, MethodMismatchIsMethodNotAllowedUnknownPathIsNotFound) {
  const auto clients = http_route("/api/clients", "GET, PUT", BB_HTTP_PREFIX);
  ASSERT_EQ(add(clients), BB_OK);
  const RouteMatch wrong_method = table_.find("/api/clients/a", "POST");
  EXPECT_EQ(wrong_method.route, nullptr);
  EXPECT_TRUE(wrong_method.path_known);
  EXPECT_TRUE(wrong_method.method_not_allowed());  // 405
  EXPECT_EQ(wrong_method.allow, "GET, PUT");       // the Allow header
  const RouteMatch unknown = table_.find("/nothing", "GET");
  EXPECT_EQ(unknown.route, nullptr);
  EXPECT_FALSE(unknown.method_not_allowed());  // 404
  // Methods are case-sensitive, as HTTP says.
  EXPECT_TRUE(table_.find("/api/clients", "get").method_not_allowed());
}

TEST_F(RouteTableTest, LongerPathWithoutTheMethodShadowsAShorterOne) {
  // As the server answers today: the longest matching path decides, so a
  // method only the shorter prefix serves is not allowed below the longer.
  const auto api = http_route("/api", "GET,POST", BB_HTTP_PREFIX);
  const auto clients = http_route("/api/clients", "GET", BB_HTTP_PREFIX);
  ASSERT_EQ(add(api), BB_OK);
  ASSERT_EQ(add(clients), BB_OK);
  const RouteMatch found = table_.find("/api/clients/a", "POST");
  EXPECT_TRUE(found.method_not_allowed());
  EXPECT_EQ(found.allow, "GET");
}

TEST_F(RouteTableTest, ModulesShareAPathWithDifferentMethods) {
  const auto reader = http_route("/api/things", "GET");
  const auto writer = http_route("/api/things", "PUT,DELETE");
  ASSERT_EQ(add(reader, "reader"), BB_OK);
  ASSERT_EQ(add(writer, "writer"), BB_OK);
  EXPECT_EQ(table_.find("/api/things", "GET").route->module, "reader");
  EXPECT_EQ(table_.find("/api/things", "DELETE").route->module, "writer");
  const RouteMatch found = table_.find("/api/things", "POST");
  EXPECT_TRUE(found.method_not_allowed());
  EXPECT_EQ(found.allow, "GET, PUT, DELETE");
}

TEST_F(RouteTableTest, AMethodServedTwiceOnAPathIsRefused) {
  const auto first = http_route("/api/x", "GET,PUT");
  const auto second = http_route("/api/x", "POST,PUT");
  ASSERT_EQ(add(first, "one"), BB_OK);
  EXPECT_EQ(add(second, "two"), BB_E_INVALID);
  EXPECT_EQ(error_, "PUT /api/x is already served by module 'one'");
  EXPECT_TRUE(table_.find("/api/x", "POST").method_not_allowed());
}

TEST_F(RouteTableTest, InvalidRoutesAreRefused) {
  for (const char* path : {"", "api", "/api/"}) {
    const auto r = http_route(path, "GET");
    EXPECT_EQ(add(r), BB_E_INVALID) << path;
    EXPECT_EQ(error_, "invalid route path '" + std::string(path) + "'");
  }
  auto no_handler = http_route("/x", "GET");
  no_handler.handle = nullptr;
  EXPECT_EQ(add(no_handler), BB_E_INVALID);
  EXPECT_EQ(error_, "route '/x' needs a handler and methods");
  const auto no_methods = http_route("/x", " , ");
  EXPECT_EQ(add(no_methods), BB_E_INVALID);
  auto bad_openapi = http_route("/x", "GET");
  bad_openapi.openapi = str("[1]");
  EXPECT_EQ(add(bad_openapi), BB_E_INVALID);
  EXPECT_EQ(error_, "route '/x': openapi is not a JSON object");
  auto no_subprotocols = websocket_route("/mqtt", "");
  EXPECT_EQ(add(no_subprotocols), BB_E_INVALID);
  auto no_callbacks = websocket_route("/mqtt", "mqtt");
  no_callbacks.ws_closed = nullptr;
  EXPECT_EQ(add(no_callbacks), BB_E_INVALID);
  EXPECT_EQ(error_, "WebSocket route '/mqtt' needs ws_* callbacks and subprotocols");
  EXPECT_TRUE(table_.empty());
  const auto root = http_route("/", "GET");
  EXPECT_EQ(add(root), BB_OK);
  EXPECT_FALSE(table_.empty());
}

TEST_F(RouteTableTest, LookupCarriesTheRoutesFlagsModuleAndUser) {
  int user = 0;
  const auto open = http_route("/api/health", "GET");
  const auto guarded = http_route("/api/sessions", "GET,DELETE", BB_HTTP_AUTH | BB_HTTP_PREFIX);
  ASSERT_EQ(add(open, "health"), BB_OK);
  ASSERT_EQ(add(guarded, "sessions", &user), BB_OK);
  const Route* health = table_.find("/api/health", "GET").route;
  ASSERT_NE(health, nullptr);
  EXPECT_FALSE(health->auth);
  EXPECT_FALSE(health->websocket);
  const Route* sessions = table_.find("/api/sessions/c1", "DELETE").route;
  ASSERT_NE(sessions, nullptr);
  EXPECT_TRUE(sessions->auth);
  EXPECT_TRUE(sessions->prefix);
  EXPECT_EQ(sessions->module, "sessions");
  EXPECT_EQ(sessions->user, &user);
  EXPECT_EQ(sessions->table, &guarded);
  EXPECT_EQ(sessions->methods, (std::vector<std::string>{"GET", "DELETE"}));
}

TEST_F(RouteTableTest, WebSocketRoutesServeGetAndChooseASubprotocol) {
  auto mqtt = websocket_route("/mqtt", "mqtt, mqttv3.1");
  mqtt.methods = str("POST");  // ignored: an upgrade is a GET
  mqtt.max_message_size = 4096;
  ASSERT_EQ(add(mqtt), BB_OK);
  const Route* route = table_.find("/mqtt", "GET").route;
  ASSERT_NE(route, nullptr);
  EXPECT_TRUE(route->websocket);
  EXPECT_EQ(route->max_message_size, 4096u);
  EXPECT_TRUE(table_.find("/mqtt", "POST").method_not_allowed());
  // The client's first offer the route serves, spelled as the route spells it.
  EXPECT_EQ(route->choose_subprotocol("chat, MQTTv3.1 ,mqtt"), "mqttv3.1");
  EXPECT_EQ(route->choose_subprotocol("mqtt"), "mqtt");
  EXPECT_EQ(route->choose_subprotocol("chat"), "");
  EXPECT_EQ(route->choose_subprotocol(""), "");
}

TEST_F(RouteTableTest, RemoveNewestTakesBackTheLastRoute) {
  const auto a = http_route("/a", "GET");
  const auto b = http_route("/b", "GET");
  ASSERT_EQ(add(a), BB_OK);
  ASSERT_EQ(add(b), BB_OK);
  table_.remove_newest();
  EXPECT_NE(table_.find("/a", "GET").route, nullptr);
  EXPECT_FALSE(table_.find("/b", "GET").path_known);
}

TEST_F(RouteTableTest, OpenApiDescribesAuthenticationFromTheRouteFlag) {
  const auto open = http_route("/health", "GET");
  const auto guarded = http_route("/api/sessions", "GET,DELETE", BB_HTTP_AUTH);
  const auto mqtt = websocket_route("/mqtt", "mqtt");
  auto own = http_route("/api/clients", "GET", BB_HTTP_PREFIX | BB_HTTP_AUTH);
  own.openapi = str(R"({"/api/clients/{name}": {"get": {"summary": "one client"}}})");
  for (const bb_http_route* r :
       std::initializer_list<const bb_http_route*>{&open, &guarded, &mqtt, &own})
    ASSERT_EQ(add(*r), BB_OK);
  const nlohmann::json doc = openapi_document(table_);
  EXPECT_EQ(doc["openapi"], "3.0.3");
  const auto& paths = doc["paths"];
  EXPECT_FALSE(paths["/health"]["get"].contains("security"));
  EXPECT_EQ(paths["/health"]["get"]["responses"]["200"]["description"], "OK");
  for (const char* method : {"get", "delete"}) {
    const auto& op = paths["/api/sessions"][method];
    EXPECT_TRUE(op.contains("security")) << method;
    EXPECT_EQ(op["responses"]["401"]["$ref"], "#/components/responses/Unauthorized");
    EXPECT_EQ(op["responses"]["403"]["$ref"], "#/components/responses/Forbidden");
  }
  EXPECT_EQ(paths["/mqtt"]["get"]["responses"]["101"]["description"],
            "Switching Protocols (subprotocols: mqtt)");
  // A module describing its own paths replaces the generated item.
  EXPECT_FALSE(paths.contains("/api/clients"));
  EXPECT_EQ(paths["/api/clients/{name}"]["get"]["summary"], "one client");
  EXPECT_TRUE(doc["components"]["securitySchemes"].contains("bearer"));
}

}  // namespace
