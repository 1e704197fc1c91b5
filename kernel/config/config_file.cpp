// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/config/config_file.hpp"

#include "kernel/rules/topic_rules.hpp"

#include <backbone/json.hpp>
#include <backbone/quotas.hpp>
#include <backbone/settings.hpp>
#include <backbone/statements.hpp>

#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

namespace backbone::kernel::config {
namespace {

using nlohmann::json;

// Every count and size in the file is a whole number that fits its field.
template <class T>
void get_uint(sdk::Settings& s, std::string_view key, T& out) {
  s.get_int(key, out, T{0}, std::numeric_limits<T>::max());
}

// The SDK's statement and quota parsers report "<path>: <what>", the path
// starting at the `where` they were given. None of their whats holds ": ", so
// the last one ends the path, which fail() then names under `s`'s own path.
void fail_parsed(sdk::Settings& s, const std::string& error) {
  const size_t colon = error.rfind(": ");
  s.fail(error.substr(0, colon), colon == std::string::npos ? "invalid" : error.substr(colon + 2));
}

void read_limits(sdk::Settings& s, Limits& l) {
  s.known({"max_packet_size",
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
  get_uint(s, "max_packet_size", l.max_packet_size);
  get_uint(s, "max_packet_size_before_auth", l.max_packet_size_before_auth);
  get_uint(s, "max_connections", l.max_connections);
  get_uint(s, "max_inflight", l.max_inflight);
  get_uint(s, "receive_maximum", l.receive_maximum);
  get_uint(s, "max_queued_messages", l.max_queued_messages);
  get_uint(s, "max_queued_bytes", l.max_queued_bytes);
  get_uint(s, "max_topic_length", l.max_topic_length);
  get_uint(s, "max_topic_levels", l.max_topic_levels);
  get_uint(s, "max_subscriptions_per_session", l.max_subscriptions_per_session);
  get_uint(s, "max_keep_alive", l.max_keep_alive);
  get_uint(s, "connect_timeout_ms", l.connect_timeout_ms);
  get_uint(s, "auth_timeout_ms", l.auth_timeout_ms);
  get_uint(s, "slow_consumer_timeout_ms", l.slow_consumer_timeout_ms);
  get_uint(s, "max_session_expiry_s", l.max_session_expiry_s);
  get_uint(s, "topic_alias_maximum", l.topic_alias_maximum);
  get_uint(s, "sys_interval_s", l.sys_interval_s);
  get_uint(s, "shutdown_grace_ms", l.shutdown_grace_ms);
  get_uint(s, "max_retained_messages", l.max_retained_messages);
  get_uint(s, "max_retained_bytes", l.max_retained_bytes);
  get_uint(s, "max_offline_sessions", l.max_offline_sessions);
  get_uint(s, "login_failures_before_backoff", l.login_failures_before_backoff);
  get_uint(s, "login_backoff_max_ms", l.login_backoff_max_ms);
  if (const json* principal = s.find("principal")) {
    bb_quotas q{};
    std::string error;
    if (sdk::parse_quotas(*principal, "principal", q, error)) {
      l.principal = quota::Quotas::resolve(&q, {});
    } else {
      fail_parsed(s, error);
    }
  }
  s.get_bool("disconnect_on_denied_publish", l.disconnect_on_denied_publish);
  if (l.max_packet_size < 64) s.fail("max_packet_size", "must be at least 64");
  if (l.max_packet_size_before_auth < 64)
    s.fail("max_packet_size_before_auth", "must be at least 64");
  if (l.max_inflight == 0) s.fail("max_inflight", "must be at least 1");
  if (l.receive_maximum == 0) s.fail("receive_maximum", "must be at least 1");
  if (l.max_queued_messages == 0) s.fail("max_queued_messages", "must be at least 1");
}

void read_http(sdk::Settings& s, HttpSettings& h) {
  s.known({"enabled", "address", "port", "api_enabled", "tls_cert", "tls_key", "max_body_bytes",
           "max_header_bytes", "request_timeout_ms", "idle_timeout_ms", "max_connections",
           "max_unauthenticated_bytes"});
  s.get_bool("enabled", h.enabled);
  s.get_bool("api_enabled", h.api_enabled);
  // Empty strings stay allowed: an empty TLS pair means plain HTTP.
  s.get_string("address", h.address, /*allow_empty=*/true);
  s.get_string("tls_cert", h.tls_cert, /*allow_empty=*/true);
  s.get_string("tls_key", h.tls_key, /*allow_empty=*/true);
  get_uint(s, "port", h.port);
  get_uint(s, "max_body_bytes", h.max_body_bytes);
  get_uint(s, "max_header_bytes", h.max_header_bytes);
  get_uint(s, "request_timeout_ms", h.request_timeout_ms);
  get_uint(s, "idle_timeout_ms", h.idle_timeout_ms);
  get_uint(s, "max_connections", h.max_connections);
  get_uint(s, "max_unauthenticated_bytes", h.max_unauthenticated_bytes);
  if (h.tls_cert.empty() != h.tls_key.empty()) {
    const bool no_cert = h.tls_cert.empty();
    s.fail(no_cert ? "tls_cert" : "tls_key", std::string("required with ") +
                                                 (no_cert ? "tls_key" : "tls_cert") +
                                                 " (set both or neither)");
  }
  if (h.max_header_bytes < 1024) s.fail("max_header_bytes", "must be at least 1024");
  // Room for one request header and the bytes read ahead with it.
  if (h.max_unauthenticated_bytes < uint64_t{h.max_header_bytes} + 64 * 1024)
    s.fail("max_unauthenticated_bytes", "must be at least max_header_bytes + 65536");
}

void read_store(sdk::Settings& s, store::StoreSettings& out) {
  s.known({"enabled", "durability", "flush_interval_ms"});
  s.get_bool("enabled", out.enabled);
  std::string durability;
  if (s.get_string("durability", durability, /*allow_empty=*/true) && s.has("durability")) {
    if (durability == "sync") {
      out.durability = store::Durability::kSync;
    } else if (durability == "periodic") {
      out.durability = store::Durability::kPeriodic;
    } else {
      s.fail("durability", "expected \"sync\" or \"periodic\"");
    }
  }
  s.get_int("flush_interval_ms", out.flush_interval_ms, uint32_t{1}, uint32_t{60000});
}

void read_anonymous(sdk::Settings& s, std::optional<std::vector<authz::Statement>>& out) {
  s.known({"statements"});
  s.require("statements", "an array of statements");
  const json* value = s.find("statements");
  if (!value) return;
  std::vector<sdk::StatementGroup> groups;
  std::string error;
  if (!sdk::parse_statement_groups(*value, "statements", groups, error)) {
    fail_parsed(s, error);
    return;
  }
  std::vector<authz::Statement> statements;
  for (sdk::StatementGroup& g : groups) {
    statements.push_back(authz::Statement{g.effect == BB_EFFECT_ALLOW, std::move(g.actions),
                                          std::move(g.resources)});
  }
  std::string compile_error;
  if (!authz::Policy::compile(statements, &compile_error)) {
    s.fail("statements", compile_error);
    return;
  }
  out = std::move(statements);
}

void read_modules(sdk::Settings& s, std::vector<ModuleEntry>& out) {
  const json* modules = s.find("modules");
  if (!modules) return;
  if (!modules->is_array()) {
    s.fail("modules", std::string("expected an array, got ") + modules->type_name());
    return;
  }
  for (size_t i = 0; i < modules->size() && s.ok(); ++i) {
    const json& m = (*modules)[i];
    const std::string where = "modules[" + std::to_string(i) + "]";
    ModuleEntry entry;
    entry.where = where;
    if (m.is_string()) {
      entry.name = m.get<std::string>();
    } else {
      sdk::Settings ms(m, where);
      ms.known({"name", "settings", "enabled"});
      ms.require("name", "the module's name");
      // An empty name is refused below with the other invalid names.
      ms.get_string("name", entry.name, /*allow_empty=*/true);
      ms.object("settings");  // checks the type; the module reads the keys
      if (const json* settings = ms.find("settings")) entry.settings = *settings;
      ms.get_bool("enabled", entry.enabled);
      if (!s.merge(ms)) return;
    }
    if (entry.name.empty() || entry.name.find('/') != std::string::npos)
      s.fail(where + ".name", "invalid module name '" + sdk::printable_key(entry.name) + "'");
    for (const auto& other : out) {
      if (other.name == entry.name)
        s.fail(where, "module '" + sdk::printable_key(entry.name) + "' is listed twice");
    }
    out.push_back(std::move(entry));
  }
}

}  // namespace

void read_http_settings(const std::string& source, const json& j, HttpSettings& h) {
  sdk::Settings s(j, "http");
  read_http(s, h);
  if (!s.ok()) throw ConfigError(source + ": " + s.error());
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
  // The first error sticks and later reads do nothing, so one check at the
  // end reports the first problem in the order read here.
  sdk::Settings s(root);
  s.known({"$schema", "module_path", "workers", "log", "limits", "http", "state_dir", "store",
           "anonymous", "topics", "modules"});
  if (const json* mp = s.find("module_path")) {
    if (mp->is_string()) {
      cfg.module_path.push_back(mp->get<std::string>());
    } else if (mp->is_array()) {
      s.get_strings("module_path", cfg.module_path);
    } else {
      s.fail("module_path",
             std::string("expected a string or an array of strings, got ") + mp->type_name());
    }
  }
  get_uint(s, "workers", cfg.workers);
  sdk::Settings log = s.object("log");
  log.known({"level", "format"});
  log.get_string("level", cfg.log_level, /*allow_empty=*/true);
  log.get_string("format", cfg.log_format, /*allow_empty=*/true);
  s.merge(log);
  sdk::Settings limits = s.object("limits");
  read_limits(limits, cfg.limits);
  s.merge(limits);
  sdk::Settings http = s.object("http");
  read_http(http, cfg.http);
  s.merge(http);
  if (s.get_string("state_dir", cfg.state_dir, /*allow_empty=*/true) && s.has("state_dir") &&
      (cfg.state_dir.empty() || cfg.state_dir.front() != '/'))
    s.fail("state_dir", "expected an absolute directory path");
  if (s.has("store")) {
    sdk::Settings st = s.object("store");
    read_store(st, cfg.store);
    s.merge(st);
  }
  if (s.has("anonymous")) {
    sdk::Settings anon = s.object("anonymous");
    read_anonymous(anon, cfg.anonymous);
    s.merge(anon);
  }
  sdk::Settings topics = s.object("topics");
  if (const json* t = s.find("topics")) {
    for (const auto& [name, spec] : t->items()) {
      std::string why;
      if (!rules::RuleSet::validate_spec(spec, &why)) {
        topics.fail(sdk::printable_key(name), why);
        break;
      }
      cfg.topics[name] = spec;
    }
  }
  s.merge(topics);
  read_modules(s, cfg.modules);
  if (!s.ok()) throw ConfigError(source + ": " + s.error());
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
