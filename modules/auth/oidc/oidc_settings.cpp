// SPDX-License-Identifier: GPL-3.0-or-later
#include "oidc_settings.hpp"

#include <openssl/crypto.h>
#include <backbone/json.hpp>
#include <backbone/quotas.hpp>
#include <backbone/settings.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

namespace backbone::modules::oidc {
namespace {

using Json = nlohmann::json;

constexpr int64_t kMaxSeconds = 24 * 3600;
constexpr int64_t kMinTimeoutMs = 100;
constexpr int64_t kMaxTimeoutMs = 120000;

}  // namespace

bb_status read_settings(const sdk::Host& host, std::shared_ptr<const Settings>& out) {
  std::optional<std::string> text = host.config("");
  Json doc = text ? sdk::parse_json(*text, nullptr, true) : Json::object();
  if (text) OPENSSL_cleanse(text->data(), text->size());
  if (doc.is_null()) doc = Json::object();
  // A null value reads as absent.
  if (doc.is_object()) {
    for (auto it = doc.begin(); it != doc.end();) it = it->is_null() ? doc.erase(it) : ++it;
  }
  auto s = std::make_shared<Settings>();
  s->rules.group_field = "groups";
  sdk::Settings settings(doc);
  settings.known({"enabled", "discovery_url", "client_id", "client_secret", "group_field",
                  "admin_group", "writer_group", "reader_group", "role_quotas", "leeway_s",
                  "jwks_min_refresh_s", "http_timeout_ms", "allow_http", "ca_file"});
  bool enabled = true;        // the host's switch: only its type is checked here
  std::string client_secret;  // not needed to verify tokens: validated, wiped, never logged
  settings.get_bool("enabled", enabled);
  settings.get_bool("allow_http", s->http.allow_http);
  settings.get_string("client_secret", client_secret, true);
  OPENSSL_cleanse(client_secret.data(), client_secret.size());
  if (auto it = doc.find("client_secret"); it != doc.end() && it->is_string())
    OPENSSL_cleanse(it->get_ref<std::string&>().data(), it->get_ref<std::string&>().size());
  settings.get_string("discovery_url", s->discovery_url, true);
  settings.get_string("client_id", s->rules.audience, true);
  settings.get_string("group_field", s->rules.group_field, true);
  settings.get_string("admin_group", s->rules.admin_group, true);
  settings.get_string("writer_group", s->rules.writer_group, true);
  settings.get_string("reader_group", s->rules.reader_group, true);
  settings.get_string("ca_file", s->http.ca_file, true);
  settings.get_int("leeway_s", s->rules.leeway_s, int64_t{0}, kMaxSeconds);
  settings.get_int("jwks_min_refresh_s", s->jwks_min_refresh_s, int64_t{0}, kMaxSeconds);
  settings.get_int("http_timeout_ms", s->http.timeout_ms, static_cast<int>(kMinTimeoutMs),
                   static_cast<int>(kMaxTimeoutMs));
  sdk::Settings roles = settings.object("role_quotas");
  roles.known({"admin", "writer", "reader"});
  if (!settings.merge(roles)) {
    host.error(settings.error());
    return BB_E_INVALID;
  }
  for (auto [role, slot] : {std::pair{"admin", &s->admin_quotas},
                            {"writer", &s->writer_quotas},
                            {"reader", &s->reader_quotas}}) {
    const Json* quotas = roles.find(role);
    if (!quotas) continue;
    bb_quotas q{};
    std::string error;
    if (!sdk::parse_quotas(*quotas, "setting 'role_quotas." + std::string(role) + "'", q, error)) {
      host.error(error);
      return BB_E_INVALID;
    }
    *slot = q;
  }
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
