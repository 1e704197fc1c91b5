// SPDX-License-Identifier: GPL-3.0-or-later
// /api/clients: list, show, create or replace (the token is made here and
// shown once), rotate and delete the clients created through the API.
#include <openssl/crypto.h>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>

#include <optional>
#include <string>

#include "client_module.hpp"

namespace backbone::modules::client {
namespace {

// An OpenAPI operation of /api/clients. Its security, 401, 403 and the
// management action it needs come from the route's declaration
// (bb_http_route.actions): the kernel adds them to the document.
json operation(const std::string& summary, bool body = false) {
  json op = {{"summary", summary}, {"responses", {{"200", {{"description", "OK"}}}}}};
  if (body) {
    json schema = {{"type", "object"},
                   {"required", {"statements"}},
                   {"properties", {{"statements", {{"type", "array"}}}}}};
    json content = json::object();
    content["application/json"]["schema"] = std::move(schema);
    op["requestBody"] = {{"required", true}, {"content", std::move(content)}};
    op["responses"]["201"] = {{"description", "Created; the body holds the token, once"}};
    op["responses"]["400"] = {{"$ref", "#/components/responses/BadRequest"}};
  }
  return op;
}

}  // namespace

bb_status ClientModule::register_routes() {
  if (!host().has_http()) return BB_OK;
  const json item_ops = {
      {"parameters", json::array({{{"name", "name"},
                                   {"in", "path"},
                                   {"required", true},
                                   {"schema", {{"type", "string"}}}}})},
      {"get", operation("Get a client")},
      {"put", operation("Create a client (201, the token is shown once) or replace its "
                        "statements (200); ?rotate=true issues a new token",
                        true)},
      {"delete", operation("Delete a client: its token stops working and its sessions are cut")}};
  openapi_ = json{
      {"/api/clients", {{"get", operation("List clients")}}},
      {"/api/clients/{name}",
       item_ops}}.dump();
  route_ = bb_http_route{};
  route_.struct_size = sizeof(route_);
  route_.flags = BB_HTTP_AUTH | BB_HTTP_PREFIX;
  route_.path = sdk::str("/api/clients");
  route_.methods = sdk::str("GET,PUT,DELETE");
  route_.summary = sdk::str("Clients of the 'client' provider");
  route_.openapi = sdk::str(openapi_);
  route_.resource = sdk::str("clients");
  route_.actions = sdk::str(
      "GET=mgmt:list-clients,GET/*=mgmt:get-client,PUT/*=mgmt:put-client,"
      "DELETE/*=mgmt:delete-client");
  route_.handle = &ClientModule::handle;
  const bb_status status = host().route(route_, this);
  if (status == BB_E_UNSUPPORTED) {
    host().info("not serving /api/clients: " + host().last_error());
    return BB_OK;
  }
  if (status != BB_OK) host().error("cannot serve /api/clients: " + host().last_error());
  return status;
}

void ClientModule::handle(void* user, const bb_http_request* r, bb_http_exchange ex) noexcept {
  auto* self = static_cast<ClientModule*>(user);
  try {
    self->serve(*r, ex);
  } catch (const std::exception& e) {
    self->host().error(std::string("/api/clients failed: ") + e.what());
    self->host().respond_error(ex, 500, "internal", "internal error");
  }
}

json ClientModule::describe_locked(const ClientEntry& e, const char* source) const {
  json out{{"name", e.name},
           {"source", source},
           {"statements", e.statements_json.is_null() ? json::array() : e.statements_json}};
  if (!e.quotas_json.is_null()) out["quotas"] = e.quotas_json;
  return out;
}

void ClientModule::serve(const bb_http_request& r, bb_http_exchange ex) {
  const std::string method(sdk::view(r.method));
  const std::string_view path = sdk::view(r.path);
  const std::string name =
      path.size() > 13 ? std::string(path.substr(13)) : std::string();  // "/api/clients/"
  if (name.empty()) {
    if (method != "GET")
      return void(host().method_not_allowed(ex, "GET",
                                            method + " needs a client name: /api/clients/{name}"));
    json list = json::array();
    {
      std::shared_lock lock(mutex_);
      if (table_)
        for (const auto& [n, e] : *table_) list.push_back(describe_locked(e, "config"));
      for (const auto& [n, e] : api_) list.push_back(describe_locked(e, "api"));
    }
    return void(host().respond(ex, 200, list.dump()));
  }
  const std::string resource = "clients/" + name;
  if (!valid_name(name))
    return void(host().respond_error(ex, 400, "bad_request",
                                     "invalid client name (1-128 of A-Z a-z 0-9 . _ -)"));
  if (method == "GET") {
    std::shared_lock lock(mutex_);
    if (table_ && table_->contains(name))
      return void(host().respond(ex, 200, describe_locked(table_->at(name), "config").dump()));
    if (api_.contains(name))
      return void(host().respond(ex, 200, describe_locked(api_.at(name), "api").dump()));
    return void(host().respond_error(ex, 404, "not_found", "no client '" + name + "'"));
  }
  if (method == "DELETE") {
    {
      std::shared_lock lock(mutex_);
      if (table_ && table_->contains(name)) {
        lock.unlock();
        host().audit(r, "mgmt:delete-client", resource, "refused (config file)");
        return void(host().respond_error(
            ex, 409, "conflict",
            "client '" + name + "' is defined in the config file; remove it there"));
      }
    }
    bool found = false;
    std::string error;
    if (!commit_api_clients([&](ApiClients& next) { found = next.erase(name) > 0; }, error)) {
      host().error("deleting client '" + name + "' failed, nothing changed: " + error);
      return void(host().respond_error(ex, 500, "internal", "the change could not be stored"));
    }
    if (!found) return void(host().respond_error(ex, 404, "not_found", "no client '" + name + "'"));
    host().revoke_principal(kProvider, name);
    host().audit(r, "mgmt:delete-client", resource, "ok");
    return void(host().respond(ex, 204, ""));
  }
  // PUT
  const auto text = sdk::view(r.body);
  sdk::JsonError json_error;
  const json body = sdk::parse_json(text, &json_error);
  if (body.is_discarded())
    return void(host().respond_error(ex, 400, "bad_request", "the body is " + json_error.message));
  if (!body.is_object())
    return void(host().respond_error(ex, 400, "bad_request", "the body must be a JSON object"));
  for (const auto& [key, value] : body.items()) {
    if (key != "statements" && key != "quotas")
      return void(host().respond_error(
          ex, 400, "bad_request", "field '" + key + "': unknown (expected statements, quotas)"));
  }
  if (!body.contains("statements"))
    return void(host().respond_error(ex, 400, "bad_request", "field 'statements': missing"));
  ClientEntry entry;
  entry.name = name;
  entry.statements_json = body["statements"];
  std::string error;
  if (!sdk::parse_statements(body["statements"], "statements", entry.statements, error) ||
      !read_quotas(body, "field 'quotas'", entry, error))
    return void(host().respond_error(ex, 400, "bad_request", error));
  const auto list = sdk::abi_statements(entry.statements);
  if (!host().permit_grant(r, ex, "mgmt:put-client", resource, list)) return;
  const bool rotate = sdk::view(r.query).find("rotate=true") != std::string_view::npos;
  bool exists;
  {
    std::shared_lock lock(mutex_);
    if (table_ && table_->contains(name)) {
      lock.unlock();
      return void(host().respond_error(
          ex, 409, "conflict",
          "client '" + name + "' is defined in the config file; change it there"));
    }
    exists = api_.contains(name);
  }
  // The kernel compiles the statements (resource patterns included) and,
  // for an existing client, switches its live sessions to them.
  if (host().update_principal(kProvider, name, list) != BB_OK) {
    host().audit(r, "mgmt:put-client", resource, "refused");
    return void(
        host().respond_error(ex, 400, "bad_request", "field 'statements': " + host().last_error()));
  }
  std::optional<std::string> token;
  if (!exists || rotate) {
    token = random_token();
    if (!token)
      return void(host().respond_error(ex, 500, "internal", "no random bytes for a token"));
    entry.token_sha256 = sha256(*token);
  }
  bool vanished = false;
  error.clear();
  const bool stored = commit_api_clients(
      [&](ApiClients& next) {
        auto it = next.find(name);
        if (!token) {
          // Same token; a client deleted meanwhile is not silently recreated.
          if (it == next.end()) {
            vanished = true;
            return;
          }
          entry.token_sha256 = it->second.token_sha256;
        }
        next[name] = entry;
      },
      error);
  if (!stored) {
    host().error("storing client '" + name + "' failed, nothing changed: " + error);
    return void(host().respond_error(ex, 500, "internal", "the change could not be stored"));
  }
  if (vanished)
    return void(host().respond_error(ex, 409, "conflict", "the client was deleted meanwhile"));
  if (exists && rotate) {
    // The old token stops working: sessions that used it end.
    host().revoke_principal(kProvider, name);
  } else if (exists) {
    push_quotas(name, entry);
  }
  host().audit(r, "mgmt:put-client", resource,
               !exists ? "created" : (rotate ? "replaced, token rotated" : "replaced"));
  json reply = {{"name", name}, {"statements", entry.statements_json}};
  if (!entry.quotas_json.is_null()) reply["quotas"] = entry.quotas_json;
  if (token) reply["token"] = *token;
  host().respond(ex, exists ? 200 : 201, reply.dump());
  if (token) OPENSSL_cleanse(token->data(), token->size());
}

}  // namespace backbone::modules::client
