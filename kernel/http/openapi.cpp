// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/openapi.hpp"

#include <cctype>
#include <string>
#include <string_view>

#include "kernel/http/route_table.hpp"

namespace backbone::kernel::http {

namespace {

using nlohmann::json;

std::string joined(const std::vector<std::string>& items) {
  std::string s;
  for (const auto& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

constexpr std::string_view kOperations[] = {"get",  "put",     "post", "delete",
                                            "head", "options", "patch"};

std::string upper(std::string_view s) {
  std::string out;
  for (char c : s) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// What every operation of a BB_HTTP_AUTH route answers and needs, derived
// from the route rather than written by each module: the credentials, 401,
// 403 and, when the route declares one (ABI 1.4), the management `action`.
void secure(json& op, const Route& r, std::string_view action) {
  if (!r.auth || !op.is_object()) return;
  op["security"] = json::array({{{"bearer", json::array()}, {"provider", json::array()}}});
  op["responses"]["401"] = {{"$ref", "#/components/responses/Unauthorized"}};
  op["responses"]["403"] = {{"$ref", "#/components/responses/Forbidden"}};
  if (action.empty()) return;
  std::string description = "Requires the management action '" + std::string(action) + "'.";
  if (auto d = op.find("description"); d != op.end() && d->is_string())
    description += " " + d->get<std::string>();
  op["description"] = std::move(description);
}

// The path item of a route that does not describe its paths itself.
json path_item(const Route& r) {
  json item = json::object();
  for (const auto& m : r.methods) {
    std::string lower;
    for (char c : m) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    json op = {{"summary", r.summary}, {"responses", json::object()}};
    if (r.websocket) {
      op["responses"]["101"] = {
          {"description", "Switching Protocols (subprotocols: " + joined(r.subprotocols) + ")"}};
    } else {
      op["responses"]["200"] = {{"description", "OK"}};
    }
    secure(op, r, r.actions.action_of(m, false));
    item[lower] = std::move(op);
  }
  if (r.openapi.is_object()) item.update(r.openapi, true);
  return item;
}

// A path item the module wrote for `path`, its operations secured: the
// route's own path is the collection, a path below it ("path/{name}") an
// item; any other path the module describes gets no action.
json described_item(const Route& r, const std::string& path, json item) {
  if (!item.is_object()) return item;
  const bool is_item = path.size() > r.path.size() + 1 && path.rfind(r.path + "/", 0) == 0;
  const bool declared = is_item || path == r.path;
  for (const std::string_view m : kOperations) {
    auto op = item.find(std::string(m));
    if (op == item.end()) continue;
    secure(*op, r, declared ? r.actions.action_of(upper(m), is_item) : std::string_view());
  }
  return item;
}

json components() {
  const json error_schema = {
      {"type", "object"},
      {"required", {"error", "message"}},
      {"properties", {{"error", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}};
  auto error_response = [](const char* description) {
    return json{{"description", description},
                {"content",
                 {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}};
  };
  return {{"securitySchemes",
           {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}},
            {"provider", {{"type", "apiKey"}, {"in", "header"}, {"name", "X-Auth-Provider"}}}}},
          {"schemas", {{"Error", error_schema}}},
          {"responses",
           {{"Unauthorized", error_response("Missing or invalid credentials")},
            {"Forbidden", error_response("The statements do not allow the action")},
            {"BadRequest", error_response("Malformed JSON or a wrong field")},
            {"NotFound", error_response("No such resource")}}}};
}

}  // namespace

json openapi_document(const RouteTable& routes) {
  json paths = json::object();
  routes.for_each([&](const Route& r) {
    if (r.openapi.is_object() && !r.openapi.empty() && r.openapi.begin().key().front() == '/') {
      // The module describes its paths itself ("/api/clients/{name}"...).
      for (const auto& [p, item] : r.openapi.items()) paths[p].update(described_item(r, p, item));
      return;
    }
    paths[r.path].update(path_item(r));
  });
  return json{{"openapi", "3.0.3"},
              {"info", {{"title", "Backbone management API"}, {"version", BACKBONE_VERSION}}},
              {"paths", paths},
              {"components", components()}};
}

}  // namespace backbone::kernel::http
