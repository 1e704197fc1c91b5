// SPDX-License-Identifier: GPL-3.0-or-later
#include "oidc_settings.hpp"

#include <openssl/crypto.h>
#include <backbone/json.hpp>
#include <backbone/quotas.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

namespace backbone::modules::oidc {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxSeconds = 24 * 3600;
constexpr int64_t kMinTimeoutMs = 100;
constexpr int64_t kMaxTimeoutMs = 120000;

bool type_error(const sdk::Host& host, const std::string& key, const char* expected,
                const Json& v) {
  host.error("setting '" + key + "': expected " + expected + ", got " + v.type_name());
  return false;
}

}  // namespace

bb_status read_settings(const sdk::Host& host, std::shared_ptr<const Settings>& out) {
  std::optional<std::string> text = host.config("");
  Json doc = text ? sdk::parse_json(*text, nullptr, true) : Json::object();
  if (text) OPENSSL_cleanse(text->data(), text->size());
  if (doc.is_null()) doc = Json::object();
  if (doc.is_discarded() || !doc.is_object()) {
    host.error("settings: expected a JSON object");
    return BB_E_INVALID;
  }
  auto s = std::make_shared<Settings>();
  s->rules.group_field = "groups";
  bool ok = true;
  auto integer = [&](const std::string& key, const Json& v, int64_t lo, int64_t hi, int64_t& dst) {
    if (!v.is_number_integer()) return type_error(host, key, "integer", v);
    const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(hi);
    const int64_t n = too_big ? hi + 1 : v.get<int64_t>();
    if (n < lo || n > hi) {
      host.error("setting '" + key + "': expected an integer from " + std::to_string(lo) + " to " +
                 std::to_string(hi) + ", got " + v.dump());
      return false;
    }
    dst = n;
    return true;
  };
  for (auto& item : doc.items()) {
    if (!ok) break;
    const std::string& key = item.key();
    Json& v = item.value();
    if (v.is_null()) continue;  // same as absent
    if (key == "client_secret") {
      // Not needed to verify tokens; validated, wiped, never logged.
      if (!v.is_string()) {
        ok = type_error(host, key, "string", v);
      } else {
        OPENSSL_cleanse(v.get_ref<std::string&>().data(), v.get_ref<std::string&>().size());
      }
    } else if (key == "enabled" || key == "allow_http") {
      if (!v.is_boolean()) {
        ok = type_error(host, key, "boolean", v);
      } else if (key == "allow_http") {
        s->http.allow_http = v.get<bool>();
      }
    } else if (key == "discovery_url" || key == "client_id" || key == "group_field" ||
               key == "admin_group" || key == "writer_group" || key == "reader_group" ||
               key == "ca_file") {
      if (!v.is_string()) {
        ok = type_error(host, key, "string", v);
        continue;
      }
      std::string value = v.get<std::string>();
      if (key == "discovery_url") s->discovery_url = value;
      if (key == "client_id") s->rules.audience = value;
      if (key == "group_field") s->rules.group_field = value;
      if (key == "admin_group") s->rules.admin_group = value;
      if (key == "writer_group") s->rules.writer_group = value;
      if (key == "reader_group") s->rules.reader_group = value;
      if (key == "ca_file") s->http.ca_file = value;
    } else if (key == "role_quotas") {
      if (!v.is_object()) {
        ok = type_error(host, key, "object", v);
        continue;
      }
      for (const auto& [role, quotas] : v.items()) {
        std::optional<bb_quotas>* slot = role == "admin"    ? &s->admin_quotas
                                         : role == "writer" ? &s->writer_quotas
                                         : role == "reader" ? &s->reader_quotas
                                                            : nullptr;
        bb_quotas q{};
        std::string error;
        if (!slot) {
          host.error("setting 'role_quotas." + role + "': unknown role (admin, writer, reader)");
          ok = false;
        } else if (!sdk::parse_quotas(quotas, "setting 'role_quotas." + role + "'", q, error)) {
          host.error(error);
          ok = false;
        } else {
          *slot = q;
        }
      }
    } else if (key == "leeway_s") {
      ok = integer(key, v, 0, kMaxSeconds, s->rules.leeway_s);
    } else if (key == "jwks_min_refresh_s") {
      ok = integer(key, v, 0, kMaxSeconds, s->jwks_min_refresh_s);
    } else if (key == "http_timeout_ms") {
      int64_t ms = 0;
      ok = integer(key, v, kMinTimeoutMs, kMaxTimeoutMs, ms);
      s->http.timeout_ms = static_cast<int>(ms);
    } else {
      host.error("setting '" + key +
                 "': unknown key (known: enabled, discovery_url, client_id, client_secret, "
                 "group_field, admin_group, writer_group, reader_group, role_quotas, leeway_s, "
                 "jwks_min_refresh_s, http_timeout_ms, allow_http, ca_file)");
      ok = false;
    }
  }
  if (!ok) return BB_E_INVALID;
  if (s->discovery_url.empty()) return BB_OK;  // off

  if (std::string why = check_url(s->discovery_url, s->http.allow_http); !why.empty()) {
    host.error("setting 'discovery_url': " + why);
    return BB_E_INVALID;
  }
  if (s->rules.audience.empty()) {
    host.error("setting 'client_id': required with 'discovery_url' (the expected audience)");
    return BB_E_INVALID;
  }
  if (s->rules.group_field.empty()) {
    host.error("setting 'group_field': must not be empty");
    return BB_E_INVALID;
  }
  if (!s->http.ca_file.empty() && !std::ifstream(s->http.ca_file)) {
    host.error("setting 'ca_file': cannot read '" + s->http.ca_file + "'");
    return BB_E_INVALID;
  }
  out = std::move(s);
  return BB_OK;
}

}  // namespace backbone::modules::oidc
