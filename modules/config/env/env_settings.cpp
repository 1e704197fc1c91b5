// SPDX-License-Identifier: GPL-3.0-or-later
#include "env_settings.hpp"

#include <cstdint>

namespace backbone::modules::env {
namespace {

// A value quoted in a log line: printable ASCII only, bounded length.
std::string printable(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out;
  for (char c : s.substr(0, kMax)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > kMax) out += "...";
  return out;
}

std::optional<bool> parse_bool(std::string_view v) {
  std::string lower;
  for (char c : v) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return std::nullopt;
}

std::optional<int> parse_port(std::string_view v) {
  if (v.empty() || v.size() > 5) return std::nullopt;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n < 1 || n > 65535) return std::nullopt;
  return n;
}

class Reader {
 public:
  Reader(const Lookup& lookup, std::string_view prefix, EnvSettings& out)
      : lookup_(lookup), prefix_(prefix), out_(out) {}

  std::string full(std::string_view name) const { return prefix_ + std::string(name); }

  // The value of a set, non-empty variable.
  std::optional<std::string> get(std::string_view name) const {
    std::optional<std::string> v = lookup_(full(name));
    if (!v || v->empty()) return std::nullopt;
    return v;
  }

  // A variable with an alias: both set and different is an error.
  std::optional<std::string> get_aliased(std::string_view name, std::string_view alias) {
    std::optional<std::string> a = get(name);
    std::optional<std::string> b = get(alias);
    if (a && b && *a != *b) {
      out_.errors.push_back("environment variables " + full(name) + " and " + full(alias) +
                            " are both set and differ; set only one");
      return std::nullopt;
    }
    if (a) {
      out_.applied.push_back(full(name));
      if (b) out_.applied.push_back(full(alias));
      return a;
    }
    if (b) out_.applied.push_back(full(alias));
    return b;
  }

  std::optional<std::string> string(std::string_view name) {
    std::optional<std::string> v = get(name);
    if (v) out_.applied.push_back(full(name));
    return v;
  }

  std::optional<bool> boolean(std::string_view name) {
    std::optional<std::string> v = get(name);
    if (!v) return std::nullopt;
    std::optional<bool> b = parse_bool(*v);
    if (!b) {
      out_.errors.push_back("environment variable " + full(name) + "='" + printable(*v) +
                            "': expected a boolean (true/false/1/0/yes/no)");
      return std::nullopt;
    }
    out_.applied.push_back(full(name));
    return b;
  }

  std::optional<int> port(std::string_view name) {
    std::optional<std::string> v = get(name);
    if (!v) return std::nullopt;
    std::optional<int> p = parse_port(*v);
    if (!p) {
      out_.errors.push_back("environment variable " + full(name) + "='" + printable(*v) +
                            "': expected a port number 1-65535");
      return std::nullopt;
    }
    out_.applied.push_back(full(name));
    return p;
  }

 private:
  const Lookup& lookup_;
  std::string prefix_;
  EnvSettings& out_;
};

}  // namespace

EnvSettings settings_from_environment(const Lookup& lookup, std::string_view prefix) {
  EnvSettings out;
  Reader env(lookup, prefix, out);
  nlohmann::json& s = out.settings;

  if (auto v = env.string("ADMIN_TOKEN")) s["admin"]["token"] = *v;
  if (auto v = env.get_aliased("TOKEN_SECRET", "JWT_SECRET")) s["jwt"]["secret"] = *v;
  if (auto v = env.boolean("K8S_ENABLED")) s["k8s"]["enabled"] = *v;

  // The HTTP listener is the kernel's ("http" settings); WebSocket MQTT and
  // the REST API are modules serving routes on it.
  std::optional<bool> http = env.boolean("HTTP_ENABLED");
  std::optional<bool> ws = env.boolean("WS_ENABLED");
  std::optional<bool> api = env.boolean("API_ENABLED");
  if (http) s["http"]["enabled"] = *http;
  if (http || ws) s["ws"]["enabled"] = http.value_or(true) && ws.value_or(true);
  if (http && !*http) s["http-api"]["enabled"] = false;
  if (http && !*http && ws && *ws) {
    out.warnings.push_back(env.full("WS_ENABLED") + "=true has no effect while " +
                           env.full("HTTP_ENABLED") + " is false");
  }
  if (auto v = env.port("HTTP_PORT")) s["http"]["port"] = *v;
  if (api) s["http"]["api_enabled"] = *api;

  if (auto v = env.boolean("TCP_ENABLED")) s["tcp"]["enabled"] = *v;
  if (auto v = env.port("TCP_PORT")) s["tcp"]["port"] = *v;

  if (auto v = env.boolean("OIDC_ENABLED")) s["oidc"]["enabled"] = *v;
  if (auto v = env.get_aliased("OIDC_DISCOVERY", "OIDC_DISCOVERY_URL")) {
    s["oidc"]["discovery_url"] = *v;
  }
  if (auto v = env.string("OIDC_CLIENT_ID")) s["oidc"]["client_id"] = *v;
  if (auto v = env.string("OIDC_CLIENT_SECRET")) s["oidc"]["client_secret"] = *v;
  if (auto v = env.string("OIDC_GROUP_FIELD")) s["oidc"]["group_field"] = *v;
  if (auto v = env.string("OIDC_ADMIN_GROUP")) s["oidc"]["admin_group"] = *v;
  if (auto v = env.string("OIDC_WRITER_GROUP")) s["oidc"]["writer_group"] = *v;
  if (auto v = env.string("OIDC_READER_GROUP")) s["oidc"]["reader_group"] = *v;

  if (!out.errors.empty()) {
    out.settings = nlohmann::json::object();
    out.applied.clear();
  }
  return out;
}

}  // namespace backbone::modules::env
