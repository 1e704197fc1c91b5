// SPDX-License-Identifier: GPL-3.0-or-later
#include "client_entry.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <backbone/quotas.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>

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

bool parse_settings(const json& settings, ClientTable& table, std::string& error) {
  sdk::Settings s(settings);
  s.known({"clients", "enabled"});
  s.object("clients");  // its keys are the clients' names
  const json* clients = s.find("clients");
  if (!s.ok() || !clients) {
    error = s.error();
    return s.ok();
  }
  std::unordered_map<std::string, std::string> seen;
  for (const auto& [name, spec] : clients->items()) {
    sdk::Settings c(spec, "clients." + name);
    ClientEntry entry;
    entry.name = name;
    std::string hex;
    c.known({"token_sha256", "statements", "quotas"});
    c.require("token_sha256", "sha256 of the token, 64 hex digits");
    c.get_string("token_sha256", hex);
    if (c.ok() && !from_hex(hex, entry.token_sha256))
      c.fail("token_sha256", "expected 64 hex digits (sha256 of the token)");
    if (!c.ok()) {
      error = c.error();
      return false;
    }
    if (const json* statements = c.find("statements")) {
      entry.statements_json = *statements;
      if (!sdk::parse_statements(*statements, c.path("statements"), entry.statements, error))
        return false;
    }
    if (!read_quotas(spec, "clients." + name, entry, error)) return false;
    if (auto [it, fresh] = seen.emplace(entry.token_sha256, name); !fresh) {
      error = "setting 'clients." + name + "': same token as client '" + it->second + "'";
      return false;
    }
    table.emplace(name, std::move(entry));
  }
  return true;
}

}  // namespace backbone::modules::client
