// SPDX-License-Identifier: GPL-3.0-or-later
#include "client_entry.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <backbone/quotas.hpp>
#include <backbone/sdk.hpp>

#include <unordered_map>

#include "common/base64/base64.hpp"

namespace backbone::modules::client {

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

bool parse_settings(const json& settings, ClientTable& table, std::string& error) {
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
        if (!parse_statements(value, where + ".statements", entry.statements, error)) return false;
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

}  // namespace backbone::modules::client
