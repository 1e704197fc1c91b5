// SPDX-License-Identifier: GPL-3.0-or-later
// The management REST API, health, readiness and metrics on the kernel's
// HTTP listener. Requests under /api/ are authenticated by the kernel with the
// same providers as MQTT, which also checks the management action each route
// declares; this module checks what depends on the body (the topic of
// /api/message, the topics a rule binds).
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>

#include "common/base64/base64.hpp"

#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace backbone::modules::http_api {
namespace {

using nlohmann::json;

// The parsed JSON body, or an error already answered (400).
std::optional<json> parse_body(const sdk::Host& host, const bb_http_request& r,
                               bb_http_exchange ex) {
  const auto body = sdk::view(r.body);
  sdk::JsonError error;
  json j = sdk::parse_json(body, &error);
  if (j.is_discarded()) {
    host.respond_error(ex, 400, "bad_request", "the body is " + error.message);
    return std::nullopt;
  }
  if (!j.is_object()) {
    host.respond_error(ex, 400, "bad_request", "the body must be a JSON object");
    return std::nullopt;
  }
  return j;
}

const char* kErrorRef = "#/components/responses/BadRequest";

// An operation of the API. Its security, 401, 403 and the management action
// it needs come from the route's declaration (bb_http_route.actions): the
// kernel adds them to the document.
json operation(std::string summary, bool body = false) {
  json op = {{"summary", std::move(summary)}, {"responses", {{"200", {{"description", "OK"}}}}}};
  if (body) {
    op["requestBody"] = {{"required", true},
                         {"content", {{"application/json", {{"schema", {{"type", "object"}}}}}}}};
    op["responses"]["400"] = {{"$ref", kErrorRef}};
  }
  return op;
}

class HttpApiModule : public sdk::Module {
 public:
  using sdk::Module::Module;

  bb_status configure(bool reloading) override {
    if (reloading) return BB_OK;  // nothing to reload
    const auto text = host().config("");
    const json doc = text ? sdk::parse_json(*text) : json::object();
    sdk::Settings settings(doc);
    if (!settings.known({}))
      return fail(settings.error() + " (the listener is configured under \"http\")");
    if (!host().has_http()) return fail("this kernel has no HTTP listener (needs module ABI 1.1)");
    if (const bb_status s = restore_topics(); s != BB_OK) return s;
    // Registered while configuring, so /health and /ready answer while the
    // other modules start and sync.
    add("/health", "GET", 0, "Liveness: 200 while the process serves requests", &health);
    add("/ready", "GET", 0, "Readiness: 200 once every module started and synced, else 503",
        &ready);
    add("/metrics", "GET", 0, "Prometheus metrics (text format 0.0.4)", &metrics);
    // Its action depends on the body's topic: checked here, by http_publish.
    add("/api/message", "POST", BB_HTTP_AUTH,
        "Publish a message (action mqtt:publish on the topic; topic rules apply)", &message,
        json{{"/api/message",
              {{"post", [] {
                  json op = operation("Publish a message", true);
                  op["description"] = "Requires the action 'mqtt:publish' on the message's topic.";
                  op["requestBody"]["content"]["application/json"]["schema"] = {
                      {"type", "object"},
                      {"required", {"topic"}},
                      {"properties",
                       {{"topic", {{"type", "string"}}},
                        {"payload", {{"type", "string"}, {"format", "byte"}}},
                        {"qos", {{"type", "integer"}, {"enum", {0, 1, 2}}}},
                        {"retain", {{"type", "boolean"}}}}}};
                  op["responses"]["422"] = {{"description", "Refused by a topic rule"}};
                  return op;
                }()}}}});
    add("/api/topics", "GET,PUT,DELETE", BB_HTTP_AUTH | BB_HTTP_PREFIX, "Topic rules", &topics,
        json{{"/api/topics", {{"get", operation("List topic rules")}}},
             {"/api/topics/{name}",
              {{"parameters", json::array({{{"name", "name"},
                                            {"in", "path"},
                                            {"required", true},
                                            {"schema", {{"type", "string"}}}}})},
               {"get", operation("Get a topic rule")},
               {"put", operation("Create or replace a topic rule ({\"patterns\": [...]})", true)},
               {"delete", operation("Delete a topic rule")}}}},
        "topics",
        "GET=mgmt:list-topics,GET/*=mgmt:get-topic,PUT/*=mgmt:put-topic,"
        "DELETE/*=mgmt:delete-topic");
    add("/api/stats", "GET", BB_HTTP_AUTH, "Broker statistics", &stats,
        json{{"/api/stats", {{"get", operation("Broker statistics")}}}}, "stats",
        "GET=mgmt:read-stats");
    add("/api/sessions", "GET,DELETE", BB_HTTP_AUTH | BB_HTTP_PREFIX, "Sessions", &sessions,
        json{{"/api/sessions", {{"get", operation("List sessions")}}},
             {"/api/sessions/{clientId}",
              {{"parameters", json::array({{{"name", "clientId"},
                                            {"in", "path"},
                                            {"required", true},
                                            {"schema", {{"type", "string"}}}}})},
               {"delete", operation("Disconnect a client and end its session")}}}},
        "sessions", "GET=mgmt:list-sessions,DELETE/*=mgmt:kick-session");
    // Any authenticated requester may read the document: no action.
    add("/api/openapi.json", "GET", BB_HTTP_AUTH, "This OpenAPI document", &openapi);
    for (auto& r : routes_) {
      const bb_status status = host().route(r->table, this);
      if (status == BB_E_UNSUPPORTED) {
        host().info("not serving " + r->path + ": " + host().last_error());
        continue;
      }
      if (status != BB_OK) return fail("cannot serve " + r->path + ": " + host().last_error());
    }
    return BB_OK;
  }

 private:
  using Handler = void (*)(HttpApiModule&, const bb_http_request&, bb_http_exchange);

  struct RouteEntry {
    std::string path, methods, summary, openapi, resource, actions;
    Handler handler = nullptr;
    bb_http_route table{};
  };

  void add(std::string path, std::string methods, uint32_t flags, std::string summary,
           Handler handler, const json& openapi = nullptr, std::string resource = {},
           std::string actions = {}) {
    auto e = std::make_unique<RouteEntry>();
    e->path = std::move(path);
    e->methods = std::move(methods);
    e->summary = std::move(summary);
    e->openapi = openapi.is_null() ? std::string() : openapi.dump();
    e->resource = std::move(resource);
    e->actions = std::move(actions);
    e->handler = handler;
    e->table.struct_size = sizeof(bb_http_route);
    e->table.flags = flags;
    e->table.path = sdk::str(e->path);
    e->table.methods = sdk::str(e->methods);
    e->table.summary = sdk::str(e->summary);
    e->table.openapi = sdk::str(e->openapi);
    e->table.resource = sdk::str(e->resource);
    e->table.actions = sdk::str(e->actions);
    e->table.handle = &dispatch;
    routes_.push_back(std::move(e));
  }

  static void dispatch(void* user, const bb_http_request* r, bb_http_exchange ex) noexcept {
    auto* self = static_cast<HttpApiModule*>(user);
    const std::string_view path = sdk::view(r->path);
    try {
      for (const auto& e : self->routes_) {
        if (path == e->path ||
            (path.size() > e->path.size() && path.substr(0, e->path.size() + 1) == e->path + "/")) {
          e->handler(*self, *r, ex);
          return;
        }
      }
      self->host().respond_error(ex, 404, "not_found", "no such resource");
    } catch (const std::exception& e) {
      self->host().error(std::string("request failed: ") + e.what());
      self->host().respond_error(ex, 500, "internal", "internal error");
    }
  }

  void audit(const bb_http_request& r, std::string_view action, std::string_view target,
             std::string_view result) {
    host().audit(r, action, target, result);
  }

  // The part of the path after `base` + "/", or "" for `base` itself.
  static std::string name_after(const bb_http_request& r, std::string_view base) {
    const std::string_view path = sdk::view(r.path);
    return path.size() > base.size() + 1 ? std::string(path.substr(base.size() + 1))
                                         : std::string();
  }

  static void health(HttpApiModule& m, const bb_http_request&, bb_http_exchange ex) {
    m.host().respond(ex, 200, R"({"status":"ok"})");
  }

  static void ready(HttpApiModule& m, const bb_http_request&, bb_http_exchange ex) {
    json state = sdk::parse_json(m.host().inspect("ready").value_or("{}"));
    const bool is_ready = state.is_object() && state.value("ready", false);
    json body = {{"status", is_ready ? "ready" : "not ready"}};
    if (state.is_object() && !is_ready) {
      body["reason"] = state.value("reason", "waiting for modules");
      body["waiting"] = state.value("waiting", json::array());
    }
    m.host().respond(ex, is_ready ? 200 : 503, body.dump());
  }

  static void metrics(HttpApiModule& m, const bb_http_request&, bb_http_exchange ex) {
    const auto text = m.host().inspect("metrics");
    if (!text) return void(m.host().respond_error(ex, 500, "internal", "metrics unavailable"));
    m.host().respond(ex, 200, *text, "text/plain; version=0.0.4; charset=utf-8");
  }

  static void message(HttpApiModule& m, const bb_http_request& r, bb_http_exchange ex) {
    auto body = parse_body(m.host(), r, ex);
    if (!body) return;
    auto bad = [&](const std::string& field, const std::string& why) {
      m.host().respond_error(ex, 400, "bad_request", "field '" + field + "': " + why);
    };
    for (const auto& [key, value] : body->items()) {
      if (key != "topic" && key != "payload" && key != "qos" && key != "retain")
        return bad(key, "unknown field (expected topic, payload, qos, retain)");
    }
    if (!body->contains("topic") || !(*body)["topic"].is_string() ||
        (*body)["topic"].get<std::string>().empty())
      return bad("topic", "expected a non-empty string");
    const std::string topic = (*body)["topic"].get<std::string>();
    std::string payload;
    if (body->contains("payload")) {
      if (!(*body)["payload"].is_string()) return bad("payload", "expected a base64 string");
      auto decoded = base64_decode((*body)["payload"].get<std::string>());
      if (!decoded) return bad("payload", "not valid base64");
      payload = std::move(*decoded);
    }
    uint8_t qos = 0;
    if (body->contains("qos")) {
      const json& q = (*body)["qos"];
      if (!q.is_number_unsigned() || q.get<uint64_t>() > 2) return bad("qos", "expected 0, 1 or 2");
      qos = q.get<uint8_t>();
    }
    bool retain = false;
    if (body->contains("retain")) {
      if (!(*body)["retain"].is_boolean()) return bad("retain", "expected true or false");
      retain = (*body)["retain"].get<bool>();
    }
    bb_message msg{};
    msg.struct_size = sizeof(msg);
    msg.qos = qos;
    msg.retain = retain ? 1 : 0;
    msg.topic = sdk::str(topic);
    msg.payload = sdk::bytes(payload);
    int32_t reason = 0;
    bb_str reason_string{};
    const bb_status status = m.host().http_publish(ex, msg, reason, reason_string);
    if (status == BB_E_INVALID) {
      const std::string why = m.host().last_error();
      return bad("topic", why.empty() ? "not a valid topic name" : why);
    }
    if (status != BB_OK)
      return void(m.host().respond_error(ex, 500, "internal", "the message was not published"));
    if (reason == 0x87) {
      return void(
          m.host().respond_error(ex, 403, "forbidden", "not allowed: mqtt:publish on " + topic));
    }
    if (reason == 0x97) {  // a quota of the requester (SPEC §6)
      return void(
          m.host().respond_error(ex, 429, "quota_exceeded", std::string(sdk::view(reason_string))));
    }
    if (reason >= 0x80) {
      return void(m.host().respond_error(ex, 422, "rejected_by_topic_rule",
                                         std::string(sdk::view(reason_string))));
    }
    m.host().respond(ex, 200, R"({"success":true})");
  }

  // The topics a rule spec binds, as "mqtt:publish" grants its author must
  // hold: every "pattern" and "matches" entry. Shapes the kernel would
  // refuse add nothing here; the kernel's compile refuses them after.
  static std::vector<bb_statement> rule_scope(const json& spec) {
    std::vector<bb_statement> scope;
    const auto add = [&](const json& p) {
      if (p.is_string())
        scope.push_back(bb_statement{BB_EFFECT_ALLOW, 0, sdk::str("mqtt:publish"),
                                     sdk::str(p.get_ref<const std::string&>())});
    };
    const auto patterns = spec.find("patterns");
    if (patterns == spec.end() || !patterns->is_array()) return scope;
    for (const json& entry : *patterns) {
      if (!entry.is_object()) continue;
      if (auto p = entry.find("pattern"); p != entry.end()) add(*p);
      if (auto list = entry.find("matches"); list != entry.end() && list->is_array())
        for (const json& p : *list) add(p);
    }
    return scope;
  }

  static void topics(HttpApiModule& m, const bb_http_request& r, bb_http_exchange ex) {
    const std::string method(sdk::view(r.method));
    const std::string name = name_after(r, "/api/topics");
    const json all = sdk::parse_json(m.host().inspect("topics").value_or("{}"));
    if (name.empty()) {
      if (method != "GET")
        return void(m.host().method_not_allowed(ex, "GET",
                                                method + " needs a rule name: /api/topics/{name}"));
      json list = json::array();
      for (const auto& [n, spec] : all.items()) list.push_back({{"name", n}, {"spec", spec}});
      return void(m.host().respond(ex, 200, list.dump()));
    }
    const std::string resource = "topics/" + name;
    if (method == "GET") {
      if (!all.contains(name))
        return void(m.host().respond_error(ex, 404, "not_found", "no topic rule '" + name + "'"));
      return void(m.host().respond(ex, 200, json{{"name", name}, {"spec", all[name]}}.dump()));
    }
    if (method == "DELETE") {
      if (!all.contains(name)) {
        return void(m.host().respond_error(ex, 404, "not_found", "no topic rule '" + name + "'"));
      }
      if (!m.host().permit_grant(r, ex, "mgmt:delete-topic", resource, rule_scope(all[name])))
        return;
      const bb_status status = m.host().submit("topic", name, "", true);
      if (status != BB_OK) {
        m.audit(r, "mgmt:delete-topic", resource, "failed");
        return void(m.host().respond_error(ex, 500, "internal", m.host().last_error()));
      }
      if (!m.store_topic(name, std::nullopt)) {
        m.host().submit("topic", name, all[name].dump());  // back to what is stored
        m.audit(r, "mgmt:delete-topic", resource, "failed (not stored)");
        return void(m.host().respond_error(ex, 500, "internal", "the change could not be stored"));
      }
      m.audit(r, "mgmt:delete-topic", resource, "ok");
      return void(m.host().respond(ex, 204, ""));
    }
    // PUT
    auto body = parse_body(m.host(), r, ex);
    if (!body) return;
    for (const auto& [key, value] : body->items()) {
      if (key != "patterns")
        return void(m.host().respond_error(ex, 400, "bad_request",
                                           "field '" + key + "': unknown (expected patterns)"));
    }
    if (!body->contains("patterns"))
      return void(m.host().respond_error(ex, 400, "bad_request", "field 'patterns': missing"));
    const bool existed = all.contains(name);
    // A rule binds every publisher on its patterns: a caller may set or
    // replace only rules on topics it may publish to itself (SPEC §6).
    if (!m.host().permit_grant(r, ex, "mgmt:put-topic", resource, rule_scope(*body))) return;
    if (existed && !m.host().permit_grant(r, ex, "mgmt:put-topic", resource, rule_scope(all[name])))
      return;
    const bb_status status = m.host().submit("topic", name, body->dump());
    if (status != BB_OK) {
      const std::string why = m.host().last_error();
      m.audit(r, "mgmt:put-topic", resource, "refused");
      return void(m.host().respond_error(ex, 400, "bad_request", why));
    }
    if (!m.store_topic(name, *body)) {
      // Back to what is stored: the previous rule, or none.
      if (existed) {
        m.host().submit("topic", name, all[name].dump());
      } else {
        m.host().submit("topic", name, "", true);
      }
      m.audit(r, "mgmt:put-topic", resource, "failed (not stored)");
      return void(m.host().respond_error(ex, 500, "internal", "the change could not be stored"));
    }
    m.audit(r, "mgmt:put-topic", resource, existed ? "replaced" : "created");
    m.host().respond(ex, existed ? 200 : 201, json{{"name", name}, {"spec", *body}}.dump());
  }

  static void stats(HttpApiModule& m, const bb_http_request&, bb_http_exchange ex) {
    m.host().respond(ex, 200, m.host().inspect("stats").value_or("{}"));
  }

  static void sessions(HttpApiModule& m, const bb_http_request& r, bb_http_exchange ex) {
    const std::string method(sdk::view(r.method));
    const std::string client_id = name_after(r, "/api/sessions");
    if (client_id.empty()) {
      if (method != "GET")
        return void(m.host().method_not_allowed(
            ex, "GET", method + " needs a client id: /api/sessions/{clientId}"));
      return void(m.host().respond(ex, 200, m.host().inspect("sessions").value_or("[]")));
    }
    if (method != "DELETE")
      return void(m.host().method_not_allowed(
          ex, "DELETE", "only DELETE is allowed on /api/sessions/{clientId}"));
    const std::string resource = "sessions/" + client_id;
    const bb_status status = m.host().session_kick(client_id);
    m.audit(r, "mgmt:kick-session", resource, status == BB_OK ? "ok" : "not found");
    if (status == BB_E_NOT_FOUND)
      return void(m.host().respond_error(ex, 404, "not_found", "no session '" + client_id + "'"));
    if (status != BB_OK) return void(m.host().respond_error(ex, 500, "internal", "kick failed"));
    m.host().respond(ex, 204, "");
  }

  static void openapi(HttpApiModule& m, const bb_http_request&, bb_http_exchange ex) {
    m.host().respond(ex, 200, m.host().inspect("openapi").value_or("{}"));
  }

  bb_status fail(const std::string& why) {
    host().error(why);
    return BB_E_INVALID;
  }

  // --- durable topic rules of the API: <state_path>/topics.json ---

  // Re-applies the rules stored before a restart. One the kernel refuses
  // stops start-up: running without it would widen what clients may send.
  bb_status restore_topics() {
    const auto dir = host().state_path();
    if (!dir) {
      host().info("no state directory: topic rules created through the API live in memory");
      return BB_OK;
    }
    state_file_ = *dir + "/topics.json";
    std::string error;
    const auto text = sdk::read_file(state_file_, error);
    if (!text) return error.empty() ? BB_OK : fail("cannot read the stored topic rules: " + error);
    json doc = sdk::parse_json(*text);
    if (!doc.is_object())
      return fail(state_file_ + ": not a JSON object; move it away to start without it");
    for (const auto& [name, spec] : doc.items()) {
      if (host().submit("topic", name, spec.dump()) != BB_OK)
        return fail(state_file_ + ": stored topic rule '" + name +
                    "' is refused: " + host().last_error());
    }
    stored_topics_ = std::move(doc);
    host().info(std::to_string(stored_topics_.size()) +
                " topic rule(s) created through the API restored");
    return BB_OK;
  }

  // Records `spec` (nullopt: the rule's deletion) in the state file.
  bool store_topic(const std::string& name, const std::optional<json>& spec) {
    std::lock_guard lock(store_mutex_);
    json next = stored_topics_;
    if (spec) {
      next[name] = *spec;
    } else {
      next.erase(name);
    }
    if (!state_file_.empty()) {
      std::string error;
      if (!sdk::write_private_file(state_file_, next.dump(2) + "\n", error)) {
        host().error("storing topic rule '" + name + "' failed: " + error);
        return false;
      }
    }
    stored_topics_ = std::move(next);
    return true;
  }

  std::mutex store_mutex_;
  std::string state_file_;
  json stored_topics_ = json::object();
  std::vector<std::unique_ptr<RouteEntry>> routes_;
};

}  // namespace
}  // namespace backbone::modules::http_api

BACKBONE_MODULE(backbone::modules::http_api::HttpApiModule, "http-api", "1.0.0", BB_KIND_HTTP, 0)
