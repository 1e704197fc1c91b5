// SPDX-License-Identifier: GPL-3.0-or-later
// Named clients defined in the config file: token hashes and statements.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <backbone/sdk.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
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
};

// name -> entry; immutable once built, swapped whole on reload.
using ClientTable = std::map<std::string, ClientEntry>;

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), len);
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
    const json settings = text ? json::parse(*text, nullptr, false) : json::object();
    auto table = std::make_shared<ClientTable>();
    std::string error;
    if (!parse(settings, *table, error)) {
      host().error(error + (reloading ? "; keeping the previous clients" : ""));
      return BB_E_INVALID;
    }
    std::shared_ptr<const ClientTable> previous;
    {
      std::unique_lock lock(mutex_);
      previous = table_;
      table_ = table;
      by_hash_.clear();
      for (const auto& [name, entry] : *table) by_hash_[entry.token_sha256] = &entry;
    }
    if (!reloading) {
      static const bb_authenticator kAuth{
          sizeof(bb_authenticator), 0, {"client", 6}, &ClientModule::authenticate, nullptr};
      if (host().api()->register_authenticator(host().ctx(), &kAuth, this) != BB_OK)
        return BB_E_INVALID;
      host().info(std::to_string(table->size()) + " client(s) configured");
      return BB_OK;
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
      for (const auto& [key, value] : spec.items()) {
        if (key == "token_sha256") {
          if (!value.is_string() || !from_hex(value.get<std::string>(), entry.token_sha256)) {
            error = where + ".token_sha256: expected 64 hex digits (sha256 of the token)";
            return false;
          }
        } else if (key == "statements") {
          if (!parse_statements(value, where + ".statements", entry.statements, error))
            return false;
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
      } else if (it->second.statements != old.statements) {
        std::vector<bb_statement> list;
        for (const auto& t : it->second.statements)
          list.push_back(bb_statement{t.effect, 0, sdk::str(t.action), sdk::str(t.resource)});
        api->principal_update(host().ctx(), provider, principal, list.data(), list.size(), 0);
        host().info("client '" + name + "': statements updated");
      }
    }
  }

  static bb_status authenticate(void* user, const bb_auth_request* req, bb_auth_ticket,
                                bb_auth_result* out) noexcept {
    auto* self = static_cast<ClientModule*>(user);
    // Per-thread storage: the host copies the result before this thread
    // calls the module again.
    thread_local std::vector<bb_statement> statements;
    thread_local std::string principal;
    thread_local std::shared_ptr<const ClientTable> pinned;
    statements.clear();
    const std::string digest = sha256(sdk::view(req->password));
    const ClientEntry* found = nullptr;
    {
      std::shared_lock lock(self->mutex_);
      pinned = self->table_;
      auto it = self->by_hash_.find(digest);
      if (it != self->by_hash_.end() &&
          CRYPTO_memcmp(it->second->token_sha256.data(), digest.data(), digest.size()) == 0)
        found = it->second;
    }
    if (!found) {
      out->verdict = BB_AUTH_DENY;
      out->log_reason = sdk::str("unknown client token");
      return BB_OK;
    }
    principal = found->name;
    for (const auto& t : found->statements)
      statements.push_back(bb_statement{t.effect, 0, sdk::str(t.action), sdk::str(t.resource)});
    out->verdict = BB_AUTH_ALLOW;
    out->principal = sdk::str(principal);
    out->statements = statements.data();
    out->statement_count = statements.size();
    return BB_OK;
  }

  std::shared_mutex mutex_;
  std::shared_ptr<const ClientTable> table_;
  std::unordered_map<std::string, const ClientEntry*> by_hash_;
};

}  // namespace
}  // namespace backbone::modules::client

BACKBONE_MODULE(backbone::modules::client::ClientModule, "client", "1.0.0", BB_KIND_AUTH, 0)
