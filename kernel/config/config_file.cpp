// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/config/config_file.hpp"

#include "kernel/rules/topic_rules.hpp"

#include <backbone/json.hpp>
#include <backbone/quotas.hpp>
#include <backbone/statements.hpp>

#include <fstream>
#include <limits>
#include <sstream>

namespace backbone::kernel::config {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& where,
                       const std::string& what) {
  throw ConfigError(source + ": " + where + ": " + what);
}

const char* type_name(const json& j) {
  return j.type_name();
}

template <class T>
void read_uint(const std::string& source, const json& obj, const std::string& where,
               const char* key, T& out) {
  if (!obj.contains(key)) return;
  const json& v = obj.at(key);
  if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<T>::max())
    fail(source, where.empty() ? std::string(key) : where + "." + key,
         std::string("expected an unsigned integer up to ") +
             std::to_string(std::numeric_limits<T>::max()) + ", got " + v.dump());
  out = v.get<T>();
}

void check_keys(const std::string& source, const json& obj, const std::string& where,
                std::initializer_list<const char*> allowed) {
  if (!obj.is_object())
    fail(source, where, std::string("expected an object, got ") + type_name(obj));
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (const char* a : allowed) known |= key == a;
    if (!known) fail(source, where, "unknown key '" + key + "'");
  }
}

void read_limits(const std::string& source, const json& j, Limits& l) {
  check_keys(source, j, "limits",
             {"max_packet_size",
              "max_packet_size_before_auth",
              "max_connections",
              "max_inflight",
              "receive_maximum",
              "max_queued_messages",
              "max_queued_bytes",
              "max_topic_length",
              "max_topic_levels",
              "max_subscriptions_per_session",
              "max_keep_alive",
              "connect_timeout_ms",
              "auth_timeout_ms",
              "slow_consumer_timeout_ms",
              "max_session_expiry_s",
              "topic_alias_maximum",
              "sys_interval_s",
              "shutdown_grace_ms",
              "disconnect_on_denied_publish",
              "max_retained_messages",
              "max_retained_bytes",
              "max_offline_sessions",
              "login_failures_before_backoff",
              "login_backoff_max_ms",
              "principal"});
  const std::string w = "limits";
  read_uint(source, j, w, "max_packet_size", l.max_packet_size);
  read_uint(source, j, w, "max_packet_size_before_auth", l.max_packet_size_before_auth);
  read_uint(source, j, w, "max_connections", l.max_connections);
  read_uint(source, j, w, "max_inflight", l.max_inflight);
  read_uint(source, j, w, "receive_maximum", l.receive_maximum);
  read_uint(source, j, w, "max_queued_messages", l.max_queued_messages);
  read_uint(source, j, w, "max_queued_bytes", l.max_queued_bytes);
  read_uint(source, j, w, "max_topic_length", l.max_topic_length);
  read_uint(source, j, w, "max_topic_levels", l.max_topic_levels);
  read_uint(source, j, w, "max_subscriptions_per_session", l.max_subscriptions_per_session);
  read_uint(source, j, w, "max_keep_alive", l.max_keep_alive);
  read_uint(source, j, w, "connect_timeout_ms", l.connect_timeout_ms);
  read_uint(source, j, w, "auth_timeout_ms", l.auth_timeout_ms);
  read_uint(source, j, w, "slow_consumer_timeout_ms", l.slow_consumer_timeout_ms);
  read_uint(source, j, w, "max_session_expiry_s", l.max_session_expiry_s);
  read_uint(source, j, w, "topic_alias_maximum", l.topic_alias_maximum);
  read_uint(source, j, w, "sys_interval_s", l.sys_interval_s);
  read_uint(source, j, w, "shutdown_grace_ms", l.shutdown_grace_ms);
  read_uint(source, j, w, "max_retained_messages", l.max_retained_messages);
  read_uint(source, j, w, "max_retained_bytes", l.max_retained_bytes);
  read_uint(source, j, w, "max_offline_sessions", l.max_offline_sessions);
  read_uint(source, j, w, "login_failures_before_backoff", l.login_failures_before_backoff);
  read_uint(source, j, w, "login_backoff_max_ms", l.login_backoff_max_ms);
  if (j.contains("principal")) {
    bb_quotas q{};
    std::string error;
    if (!sdk::parse_quotas(j["principal"], "limits.principal", q, error))
      throw ConfigError(source + ": " + error);
    l.principal = quota::Quotas::resolve(&q, {});
  }
  if (j.contains("disconnect_on_denied_publish")) {
    if (!j["disconnect_on_denied_publish"].is_boolean())
      fail(source, "limits.disconnect_on_denied_publish", "expected true or false");
    l.disconnect_on_denied_publish = j["disconnect_on_denied_publish"].get<bool>();
  }
  if (l.max_packet_size < 64) fail(source, "limits.max_packet_size", "must be at least 64");
  if (l.max_packet_size_before_auth < 64)
    fail(source, "limits.max_packet_size_before_auth", "must be at least 64");
  if (l.max_inflight == 0) fail(source, "limits.max_inflight", "must be at least 1");
  if (l.receive_maximum == 0) fail(source, "limits.receive_maximum", "must be at least 1");
  if (l.max_queued_messages == 0) fail(source, "limits.max_queued_messages", "must be at least 1");
}

}  // namespace

void read_http_settings(const std::string& source, const json& j, HttpSettings& h) {
  check_keys(source, j, "http",
             {"enabled", "address", "port", "api_enabled", "tls_cert", "tls_key", "max_body_bytes",
              "max_header_bytes", "request_timeout_ms", "idle_timeout_ms", "max_connections",
              "max_unauthenticated_bytes"});
  auto read_bool = [&](const char* key, bool& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_boolean()) fail(source, std::string("http.") + key, "expected true or false");
    out = j[key].get<bool>();
  };
  auto read_string = [&](const char* key, std::string& out) {
    if (!j.contains(key)) return;
    if (!j[key].is_string()) fail(source, std::string("http.") + key, "expected a string");
    out = j[key].get<std::string>();
  };
  read_bool("enabled", h.enabled);
  read_bool("api_enabled", h.api_enabled);
  read_string("address", h.address);
  read_string("tls_cert", h.tls_cert);
  read_string("tls_key", h.tls_key);
  read_uint(source, j, "http", "port", h.port);
  read_uint(source, j, "http", "max_body_bytes", h.max_body_bytes);
  read_uint(source, j, "http", "max_header_bytes", h.max_header_bytes);
  read_uint(source, j, "http", "request_timeout_ms", h.request_timeout_ms);
  read_uint(source, j, "http", "idle_timeout_ms", h.idle_timeout_ms);
  read_uint(source, j, "http", "max_connections", h.max_connections);
  read_uint(source, j, "http", "max_unauthenticated_bytes", h.max_unauthenticated_bytes);
  if (h.tls_cert.empty() != h.tls_key.empty())
    fail(source, "http", "tls_cert and tls_key must be set together");
  if (h.max_header_bytes < 1024) fail(source, "http.max_header_bytes", "must be at least 1024");
  // Room for one request header and the bytes read ahead with it.
  if (h.max_unauthenticated_bytes < uint64_t{h.max_header_bytes} + 64 * 1024)
    fail(source, "http.max_unauthenticated_bytes", "must be at least max_header_bytes + 65536");
}

Config parse_config(const std::string& text, const std::string& source) {
  sdk::JsonError error;
  const json root = sdk::parse_json(text, &error, /*comments=*/true);
  if (root.is_discarded()) {
    if (error.byte == 0) throw ConfigError(source + ": " + error.message);
    // error.byte locates a syntax error; turn it into line:column for humans.
    size_t line = 1, col = 1;
    for (size_t i = 0; i + 1 < error.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw ConfigError(source + ":" + std::to_string(line) + ":" + std::to_string(col) +
                      ": invalid JSON");
  }
  Config cfg;
  cfg.source = source;
  check_keys(source, root, "top level",
             {"$schema", "module_path", "workers", "log", "limits", "http", "state_dir", "store",
              "anonymous", "topics", "modules"});
  if (root.contains("module_path")) {
    const json& mp = root["module_path"];
    if (mp.is_string()) {
      cfg.module_path.push_back(mp.get<std::string>());
    } else if (mp.is_array()) {
      for (const auto& p : mp) {
        if (!p.is_string()) fail(source, "module_path", "expected strings");
        cfg.module_path.push_back(p.get<std::string>());
      }
    } else {
      fail(source, "module_path", "expected a string or an array of strings");
    }
  }
  read_uint(source, root, "", "workers", cfg.workers);
  if (root.contains("log")) {
    const json& log = root["log"];
    check_keys(source, log, "log", {"level", "format"});
    if (log.contains("level")) {
      if (!log["level"].is_string()) fail(source, "log.level", "expected a string");
      cfg.log_level = log["level"].get<std::string>();
    }
    if (log.contains("format")) {
      if (!log["format"].is_string()) fail(source, "log.format", "expected a string");
      cfg.log_format = log["format"].get<std::string>();
    }
  }
  if (root.contains("limits")) read_limits(source, root["limits"], cfg.limits);
  if (root.contains("http")) read_http_settings(source, root["http"], cfg.http);
  if (root.contains("state_dir")) {
    if (!root["state_dir"].is_string() || root["state_dir"].get<std::string>().empty() ||
        root["state_dir"].get<std::string>().front() != '/')
      fail(source, "state_dir", "expected an absolute directory path");
    cfg.state_dir = root["state_dir"].get<std::string>();
  }
  if (root.contains("store")) {
    const json& st = root["store"];
    check_keys(source, st, "store", {"enabled", "durability", "flush_interval_ms"});
    if (st.contains("enabled")) {
      if (!st["enabled"].is_boolean()) fail(source, "store.enabled", "expected true or false");
      cfg.store.enabled = st["enabled"].get<bool>();
    }
    if (st.contains("durability")) {
      const json& d = st["durability"];
      if (d == "sync") {
        cfg.store.durability = store::Durability::kSync;
      } else if (d == "periodic") {
        cfg.store.durability = store::Durability::kPeriodic;
      } else {
        fail(source, "store.durability", "expected \"sync\" or \"periodic\"");
      }
    }
    read_uint(source, st, "store", "flush_interval_ms", cfg.store.flush_interval_ms);
    if (cfg.store.flush_interval_ms == 0 || cfg.store.flush_interval_ms > 60000)
      fail(source, "store.flush_interval_ms", "expected 1..60000");
  }
  if (root.contains("anonymous")) {
    const json& anon = root["anonymous"];
    check_keys(source, anon, "anonymous", {"statements"});
    std::vector<sdk::StatementGroup> groups;
    std::string error;
    if (!anon.contains("statements") ||
        !sdk::parse_statement_groups(anon["statements"], "statements", groups, error))
      fail(source, "anonymous", error.empty() ? "missing 'statements'" : error);
    std::vector<authz::Statement> statements;
    for (sdk::StatementGroup& g : groups) {
      statements.push_back(authz::Statement{g.effect == BB_EFFECT_ALLOW, std::move(g.actions),
                                            std::move(g.resources)});
    }
    std::string compile_error;
    if (!authz::Policy::compile(statements, &compile_error))
      fail(source, "anonymous.statements", compile_error);
    cfg.anonymous = std::move(statements);
  }
  if (root.contains("topics")) {
    const json& topics = root["topics"];
    if (!topics.is_object()) fail(source, "topics", "expected an object of named topic rules");
    for (const auto& [name, spec] : topics.items()) {
      std::string error;
      if (!rules::RuleSet::validate_spec(spec, &error)) fail(source, "topics." + name, error);
      cfg.topics[name] = spec;
    }
  }
  if (root.contains("modules")) {
    const json& modules = root["modules"];
    if (!modules.is_array()) fail(source, "modules", "expected an array");
    for (size_t i = 0; i < modules.size(); ++i) {
      const json& m = modules[i];
      const std::string where = "modules[" + std::to_string(i) + "]";
      ModuleEntry entry;
      entry.where = where;
      if (m.is_string()) {
        entry.name = m.get<std::string>();
      } else {
        check_keys(source, m, where, {"name", "settings", "enabled"});
        if (!m.contains("name") || !m["name"].is_string())
          fail(source, where + ".name", "expected the module name as a string");
        entry.name = m["name"].get<std::string>();
        if (m.contains("settings")) {
          if (!m["settings"].is_object()) fail(source, where + ".settings", "expected an object");
          entry.settings = m["settings"];
        }
        if (m.contains("enabled")) {
          if (!m["enabled"].is_boolean())
            fail(source, where + ".enabled", "expected true or false");
          entry.enabled = m["enabled"].get<bool>();
        }
      }
      if (entry.name.empty() || entry.name.find('/') != std::string::npos)
        fail(source, where + ".name", "invalid module name '" + entry.name + "'");
      for (const auto& other : cfg.modules) {
        if (other.name == entry.name)
          fail(source, where, "module '" + entry.name + "' is listed twice");
      }
      cfg.modules.push_back(std::move(entry));
    }
  }
  return cfg;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError(path + ": cannot read the config file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_config(buffer.str(), path);
}

Config default_config() {
  Config cfg;
  for (const char* name : {"env", "admin", "jwt", "client", "tcp", "ws", "http-api"}) {
    ModuleEntry entry;
    entry.name = name;
    entry.where = std::string("built-in default module '") + name + "'";
    cfg.modules.push_back(std::move(entry));
  }
  return cfg;
}

}  // namespace backbone::kernel::config
