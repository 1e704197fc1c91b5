// SPDX-License-Identifier: GPL-3.0-or-later
// Named clients: defined in the config file (token hashes and statements) or
// created at run time through the HTTP API (/api/clients; the broker makes
// the token, shows it once and keeps its hash). Login: username=client,
// password=<token>.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <backbone/json.hpp>
#include <backbone/quotas.hpp>
#include <backbone/sdk.hpp>

#include "common/base64/base64.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace backbone::modules::client {
namespace {

using nlohmann::json;

struct Triple {
  int32_t effect;
  std::string action;
  std::string resource;
  bool operator==(const Triple&) const = default;
};

struct ClientEntry {
  std::string name;
  std::string token_sha256;  // 32 raw bytes
  std::vector<Triple> statements;
  json statements_json;  // as given, for GET /api/clients
  // SPEC §6 quotas beside the statements; quotas_json as given (null: none).
  std::optional<bb_quotas> quotas;
  json quotas_json;
  bool same_grants(const ClientEntry& o) const {
    return statements == o.statements && quotas_json == o.quotas_json;
  }
};

// The entry's "quotas", when given: false (and `error`) when malformed.
bool read_quotas(const json& spec, const std::string& where, ClientEntry& entry,
                 std::string& error) {
  auto it = spec.find("quotas");
  if (it == spec.end()) return true;
  bb_quotas q{};
  if (!sdk::parse_quotas(*it, where + ".quotas", q, error)) return false;
  entry.quotas = q;
  entry.quotas_json = *it;
  return true;
}

// name -> entry; immutable once built, swapped whole on reload.
using ClientTable = std::map<std::string, ClientEntry>;

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string to_hex(std::string_view raw) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

bool from_hex(const std::string& hex, std::string& out) {
  if (hex.size() != 64) return false;
  out.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int value = 0;
    for (size_t k = 0; k < 2; ++k) {
      const char c = hex[i + k];
      int d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return false;
      }
      value = value * 16 + d;
    }
    out.push_back(static_cast<char>(value));
  }
  return true;
}

// 32 random bytes, base64url without padding: the token of an API client.
std::optional<std::string> random_token() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return std::nullopt;
  std::string out = base64url_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
  OPENSSL_cleanse(raw, sizeof raw);
  return out;
}

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

std::vector<bb_statement> abi_statements(const std::vector<Triple>& triples) {
  std::vector<bb_statement> list;
  for (const auto& t : triples)
    list.push_back(bb_statement{t.effect, 0, sdk::str(t.action), sdk::str(t.resource)});
  return list;
}

// Strict parse of IAM statements into (effect, action, resource) triples.
bool parse_statements(const json& j, const std::string& where, std::vector<Triple>& out,
                      std::string& error) {
  if (!j.is_array()) {
    error = where + ": expected an array of statements";
    return false;
  }
  for (size_t i = 0; i < j.size(); ++i) {
    const json& s = j[i];
    const std::string at = where + "[" + std::to_string(i) + "]";
    if (!s.is_object()) {
      error = at + ": expected an object";
      return false;
    }
    int32_t effect = 0;
    std::vector<std::string> actions, resources;
    for (const auto& [key, value] : s.items()) {
      if (key == "effect") {
        const std::string e = value.is_string() ? value.get<std::string>() : "";
        if (e == "allow") {
          effect = BB_EFFECT_ALLOW;
        } else if (e == "deny" || e == "disallow") {
          effect = BB_EFFECT_DENY;
        } else {
          error = at + ".effect: expected allow, deny or disallow";
          return false;
        }
      } else if (key == "actions" || key == "resources") {
        auto& list = key == "actions" ? actions : resources;
        if (value.is_string()) {
          list.push_back(value.get<std::string>());
        } else if (value.is_array() && !value.empty()) {
          for (const auto& v : value) {
            if (!v.is_string()) {
              error = at + "." + key + ": expected strings";
              return false;
            }
            list.push_back(v.get<std::string>());
          }
        } else {
          error = at + "." + key + ": expected a string or a non-empty array of strings";
          return false;
        }
      } else {
        error = at + ": unknown key '" + key + "'";
        return false;
      }
    }
    if (effect == 0 || actions.empty() || resources.empty()) {
      error = at + ": 'effect', 'actions' and 'resources' are required";
      return false;
    }
    for (const auto& a : actions) {
      for (const auto& r : resources) out.push_back(Triple{effect, a, r});
    }
  }
  return true;
}

class ClientModule : public sdk::Module {
 public:
  using sdk::Module::Module;

  bb_status configure(bool reloading) override {
    const auto text = host().config("");
    const json settings = text ? sdk::parse_json(*text) : json::object();
    auto table = std::make_shared<ClientTable>();
    std::string error;
    if (!parse(settings, *table, error)) {
      host().error(error + (reloading ? "; keeping the previous clients" : ""));
      return BB_E_INVALID;
    }
    std::shared_ptr<const ClientTable> previous;
    std::vector<std::string> displaced;  // API clients whose name the file now uses
    {
      std::unique_lock lock(mutex_);
      previous = table_;
      table_ = table;
      for (auto it = api_.begin(); it != api_.end();) {
        if (table->contains(it->first)) {
          displaced.push_back(it->first);
          it = api_.erase(it);
        } else {
          ++it;
        }
      }
      rebuild_index_locked();
    }
    for (const auto& name : displaced) {
      host().warn("client '" + name + "' is now defined in the config file: the API client " +
                  "of that name is removed and its sessions cut");
      host().api()->principal_update(host().ctx(), {"client", 6}, sdk::str(name), nullptr, 0, 1);
    }
    if (!reloading) {
      if (const bb_status s = load_api_clients(*table); s != BB_OK) return s;
      reauthorize_restored_sessions();
      static const bb_authenticator kAuth{
          sizeof(bb_authenticator), 0, {"client", 6}, &ClientModule::authenticate, nullptr};
      if (host().api()->register_authenticator(host().ctx(), &kAuth, this) != BB_OK)
        return BB_E_INVALID;
      host().info(std::to_string(table->size()) + " client(s) configured");
      return register_routes();
    }
    push_changes(previous ? *previous : ClientTable{}, *table);
    return BB_OK;
  }

 private:
  static bool parse(const json& settings, ClientTable& table, std::string& error) {
    if (!settings.is_object()) {
      error = "settings must be an object";
      return false;
    }
    for (const auto& [key, value] : settings.items()) {
      if (key != "clients" && key != "enabled") {
        error = "unknown setting '" + key + "'";
        return false;
      }
    }
    if (!settings.contains("clients")) return true;
    const json& clients = settings["clients"];
    if (!clients.is_object()) {
      error = "setting 'clients': expected an object of named clients";
      return false;
    }
    std::unordered_map<std::string, std::string> seen;
    for (const auto& [name, spec] : clients.items()) {
      const std::string where = "clients." + name;
      if (!spec.is_object()) {
        error = where + ": expected an object";
        return false;
      }
      ClientEntry entry;
      entry.name = name;
      if (spec.contains("statements")) entry.statements_json = spec["statements"];
      for (const auto& [key, value] : spec.items()) {
        if (key == "token_sha256") {
          if (!value.is_string() || !from_hex(value.get<std::string>(), entry.token_sha256)) {
            error = where + ".token_sha256: expected 64 hex digits (sha256 of the token)";
            return false;
          }
        } else if (key == "statements") {
          if (!parse_statements(value, where + ".statements", entry.statements, error))
            return false;
        } else if (key == "quotas") {
          if (!read_quotas(spec, where, entry, error)) return false;
        } else {
          error = where + ": unknown key '" + key + "'";
          return false;
        }
      }
      if (entry.token_sha256.empty()) {
        error = where + ": 'token_sha256' is required";
        return false;
      }
      if (auto [it, fresh] = seen.emplace(entry.token_sha256, name); !fresh) {
        error = where + ": same token as client '" + it->second + "'";
        return false;
      }
      table.emplace(name, std::move(entry));
    }
    return true;
  }

  // Sessions the broker restored from its store keep their principal (SPEC
  // §6). This module is the source of its clients' statements, so before any
  // transport starts it puts each restored session of a client under that
  // client's statements, and ends those of clients that no longer exist.
  void reauthorize_restored_sessions() {
    const json sessions = json::parse(host().inspect("sessions").value_or("[]"), nullptr, false);
    if (!sessions.is_array()) return;
    std::set<std::string> principals;
    for (const json& s : sessions) {
      if (s.is_object() && s.value("provider", "") == "client")
        principals.insert(s.value("principal", ""));
    }
    const bb_str provider{"client", 6};
    for (const std::string& name : principals) {
      std::optional<ClientEntry> entry;
      {
        std::shared_lock lock(mutex_);
        if (table_ && table_->contains(name)) {
          entry = table_->at(name);
        } else if (auto it = api_.find(name); it != api_.end()) {
          entry = it->second;
        }
      }
      if (!entry) {
        host().info("restored sessions of client '" + name + "': the client no longer exists");
        host().api()->principal_update(host().ctx(), provider, sdk::str(name), nullptr, 0, 1);
        continue;
      }
      const auto list = abi_statements(entry->statements);
      host().api()->principal_update(host().ctx(), provider, sdk::str(name), list.data(),
                                     list.size(), 0);
    }
  }

  // Tells the kernel which live sessions must change (SPEC §6).
  void push_changes(const ClientTable& before, const ClientTable& after) {
    const auto* api = host().api();
    const bb_str provider{"client", 6};
    for (const auto& [name, old] : before) {
      auto it = after.find(name);
      const bb_str principal = sdk::str(name);
      if (it == after.end() || it->second.token_sha256 != old.token_sha256) {
        api->principal_update(host().ctx(), provider, principal, nullptr, 0, 1);
        host().info("client '" + name + "' removed or its token changed: sessions cut");
      } else if (!it->second.same_grants(old)) {
        const auto list = abi_statements(it->second.statements);
        api->principal_update(host().ctx(), provider, principal, list.data(), list.size(), 0);
        push_quotas(name, it->second);
        host().info("client '" + name + "': statements updated");
      }
    }
  }

  // The client's quotas to its live sessions (ABI 1.3).
  void push_quotas(const std::string& name, const ClientEntry& e) {
    const auto* api = host().api();
    if (!BB_HAS(api, bb_host_api, principal_quotas)) return;
    api->principal_quotas(host().ctx(), {"client", 6}, sdk::str(name),
                          e.quotas ? &*e.quotas : nullptr);
  }

  static bb_status authenticate(void* user, const bb_auth_request* req, bb_auth_ticket,
                                bb_auth_result* out) noexcept {
    auto* self = static_cast<ClientModule*>(user);
    // Per-thread storage: the host copies the result before this thread
    // calls the module again.
    thread_local std::vector<Triple> triples;
    thread_local std::vector<bb_statement> statements;
    thread_local std::string principal;
    thread_local std::optional<bb_quotas> quotas;
    const std::string digest = sha256(sdk::view(req->password));
    bool found = false;
    {
      std::shared_lock lock(self->mutex_);
      auto it = self->by_hash_.find(digest);
      if (it != self->by_hash_.end() &&
          CRYPTO_memcmp(it->second->token_sha256.data(), digest.data(), digest.size()) == 0) {
        found = true;
        principal = it->second->name;
        triples = it->second->statements;  // API clients change under the lock
        quotas = it->second->quotas;
      }
    }
    if (!found) {
      out->verdict = BB_AUTH_DENY;
      out->log_reason = sdk::str("unknown client token");
      return BB_OK;
    }
    statements = abi_statements(triples);
    out->verdict = BB_AUTH_ALLOW;
    out->principal = sdk::str(principal);
    out->statements = statements.data();
    out->statement_count = statements.size();
    if (quotas && BB_HAS(out, bb_auth_result, quotas)) out->quotas = &*quotas;
    return BB_OK;
  }

  void rebuild_index_locked() {
    by_hash_.clear();
    if (table_)
      for (const auto& [name, entry] : *table_) by_hash_[entry.token_sha256] = &entry;
    for (const auto& [name, entry] : api_) by_hash_[entry.token_sha256] = &entry;
  }

  // --- /api/clients ---

  bb_status register_routes() {
    if (!host().has_http()) return BB_OK;
    const json item_ops = {
        {"parameters", json::array({{{"name", "name"},
                                     {"in", "path"},
                                     {"required", true},
                                     {"schema", {{"type", "string"}}}}})},
        {"get", operation("Get a client", "mgmt:get-client")},
        {"put", operation("Create a client (201, the token is shown once) or replace its "
                          "statements (200); ?rotate=true issues a new token",
                          "mgmt:put-client", true)},
        {"delete", operation("Delete a client: its token stops working and its sessions are cut",
                             "mgmt:delete-client")}};
    openapi_ = json{
        {"/api/clients", {{"get", operation("List clients", "mgmt:list-clients")}}},
        {"/api/clients/{name}",
         item_ops}}.dump();
    route_ = bb_http_route{};
    route_.struct_size = sizeof(route_);
    route_.flags = BB_HTTP_AUTH | BB_HTTP_PREFIX;
    route_.path = sdk::str("/api/clients");
    route_.methods = sdk::str("GET,PUT,DELETE");
    route_.summary = sdk::str("Clients of the 'client' provider");
    route_.openapi = sdk::str(openapi_);
    route_.handle = &ClientModule::handle;
    const bb_status status = host().route(route_, this);
    if (status == BB_E_UNSUPPORTED) {
      host().info("not serving /api/clients: " + host().last_error());
      return BB_OK;
    }
    if (status != BB_OK) host().error("cannot serve /api/clients: " + host().last_error());
    return status;
  }

  static json operation(const std::string& summary, const std::string& action, bool body = false) {
    json op = {
        {"summary", summary},
        {"description", "Requires the management action '" + action + "'."},
        {"security", json::array({{{"bearer", json::array()}, {"provider", json::array()}}})},
        {"responses",
         {{"200", {{"description", "OK"}}},
          {"401", {{"$ref", "#/components/responses/Unauthorized"}}},
          {"403", {{"$ref", "#/components/responses/Forbidden"}}}}}};
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

  static void handle(void* user, const bb_http_request* r, bb_http_exchange ex) noexcept {
    auto* self = static_cast<ClientModule*>(user);
    try {
      self->serve(*r, ex);
    } catch (const std::exception& e) {
      self->host().error(std::string("/api/clients failed: ") + e.what());
      self->host().respond_error(ex, 500, "internal", "internal error");
    }
  }

  bool permitted(const bb_http_request& r, bb_http_exchange ex, const std::string& action,
                 const std::string& resource) {
    if (host().authorize(ex, action, resource)) return true;
    host().audit(r, action, resource, "denied");
    host().respond_error(ex, 403, "forbidden", "not allowed: " + action + " on " + resource);
    return false;
  }

  json describe_locked(const ClientEntry& e, const char* source) const {
    json out{{"name", e.name},
             {"source", source},
             {"statements", e.statements_json.is_null() ? json::array() : e.statements_json}};
    if (!e.quotas_json.is_null()) out["quotas"] = e.quotas_json;
    return out;
  }

  void serve(const bb_http_request& r, bb_http_exchange ex) {
    const std::string method(sdk::view(r.method));
    const std::string_view path = sdk::view(r.path);
    const std::string name =
        path.size() > 13 ? std::string(path.substr(13)) : std::string();  // "/api/clients/"
    if (name.empty()) {
      if (method != "GET")
        return void(host().method_not_allowed(
            ex, "GET", method + " needs a client name: /api/clients/{name}"));
      if (!permitted(r, ex, "mgmt:list-clients", "clients")) return;
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
      if (!permitted(r, ex, "mgmt:get-client", resource)) return;
      std::shared_lock lock(mutex_);
      if (table_ && table_->contains(name))
        return void(host().respond(ex, 200, describe_locked(table_->at(name), "config").dump()));
      if (api_.contains(name))
        return void(host().respond(ex, 200, describe_locked(api_.at(name), "api").dump()));
      return void(host().respond_error(ex, 404, "not_found", "no client '" + name + "'"));
    }
    if (method == "DELETE") {
      if (!permitted(r, ex, "mgmt:delete-client", resource)) return;
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
      if (!found)
        return void(host().respond_error(ex, 404, "not_found", "no client '" + name + "'"));
      host().api()->principal_update(host().ctx(), {"client", 6}, sdk::str(name), nullptr, 0, 1);
      host().audit(r, "mgmt:delete-client", resource, "ok");
      return void(host().respond(ex, 204, ""));
    }
    // PUT
    if (!permitted(r, ex, "mgmt:put-client", resource)) return;
    const auto text = sdk::view(r.body);
    sdk::JsonError json_error;
    const json body = sdk::parse_json(text, &json_error);
    if (body.is_discarded())
      return void(
          host().respond_error(ex, 400, "bad_request", "the body is " + json_error.message));
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
    if (!parse_statements(body["statements"], "statements", entry.statements, error) ||
        !read_quotas(body, "field 'quotas'", entry, error))
      return void(host().respond_error(ex, 400, "bad_request", error));
    const auto list = abi_statements(entry.statements);
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
    if (host().api()->principal_update(host().ctx(), {"client", 6}, sdk::str(name), list.data(),
                                       list.size(), 0) != BB_OK) {
      host().audit(r, "mgmt:put-client", resource, "refused");
      return void(host().respond_error(ex, 400, "bad_request",
                                       "field 'statements': " + host().last_error()));
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
      host().api()->principal_update(host().ctx(), {"client", 6}, sdk::str(name), nullptr, 0, 1);
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

  // --- durable API clients: <state_path>/clients.json ---

  using ApiClients = std::map<std::string, ClientEntry>;

  // Applies `change` to a copy of the API clients, stores the copy when the
  // broker has a state directory, and only then makes it current: a change
  // that cannot be stored changes nothing.
  template <class Change>
  bool commit_api_clients(Change&& change, std::string& error) {
    std::lock_guard save(save_mutex_);
    ApiClients next;
    {
      std::shared_lock lock(mutex_);
      next = api_;
    }
    change(next);
    if (!state_file_.empty()) {
      json doc = json::object();
      for (const auto& [name, e] : next) {
        doc[name] = {
            {"token_sha256", to_hex(e.token_sha256)},
            {"statements", e.statements_json.is_null() ? json::array() : e.statements_json}};
        if (!e.quotas_json.is_null()) doc[name]["quotas"] = e.quotas_json;
      }
      if (!sdk::write_private_file(state_file_, doc.dump(2) + "\n", error)) return false;
    }
    std::unique_lock lock(mutex_);
    api_ = std::move(next);
    rebuild_index_locked();
    return true;
  }

  // Reads the clients created through the API before a restart. A file that
  // cannot be read or parsed stops start-up: silently dropping it would lose
  // clients.
  bb_status load_api_clients(const ClientTable& file_clients) {
    const auto dir = host().state_path();
    if (!dir) {
      host().info("no state directory: clients created through the API live in memory");
      return BB_OK;
    }
    state_file_ = *dir + "/clients.json";
    std::string error;
    const auto text = sdk::read_file(state_file_, error);
    if (!text) {
      if (error.empty()) return BB_OK;  // none stored yet
      host().error("cannot read the stored clients: " + error);
      return BB_E_INVALID;
    }
    const json doc = sdk::parse_json(*text);
    if (!doc.is_object()) {
      host().error(state_file_ + ": not a JSON object; move it away to start without it");
      return BB_E_INVALID;
    }
    ApiClients loaded;
    for (const auto& [name, spec] : doc.items()) {
      ClientEntry entry;
      entry.name = name;
      if (!valid_name(name) || !spec.is_object() || !spec.contains("token_sha256") ||
          !spec["token_sha256"].is_string() ||
          !from_hex(spec["token_sha256"].get<std::string>(), entry.token_sha256) ||
          !spec.contains("statements") ||
          !parse_statements(spec["statements"], "statements", entry.statements, error) ||
          !read_quotas(spec, "quotas", entry, error)) {
        host().error(state_file_ + ": client '" + name + "' is invalid" +
                     (error.empty() ? std::string() : ": " + error) +
                     "; move the file away to start without it");
        return BB_E_INVALID;
      }
      entry.statements_json = spec["statements"];
      if (file_clients.contains(name)) {
        host().warn("stored API client '" + name + "' is shadowed by the config file's");
        continue;
      }
      loaded.emplace(name, std::move(entry));
    }
    {
      std::unique_lock lock(mutex_);
      api_ = std::move(loaded);
      rebuild_index_locked();
    }
    host().info(std::to_string(api_.size()) + " client(s) created through the API restored");
    return BB_OK;
  }

  std::shared_mutex mutex_;
  std::mutex save_mutex_;  // one stored change at a time, in order
  std::string state_file_;
  std::shared_ptr<const ClientTable> table_;
  ApiClients api_;  // created through the API
  std::unordered_map<std::string, const ClientEntry*> by_hash_;
  std::string openapi_;
  bb_http_route route_{};
};

}  // namespace
}  // namespace backbone::modules::client

BACKBONE_MODULE(backbone::modules::client::ClientModule, "client", "1.0.0", BB_KIND_AUTH, 0)
