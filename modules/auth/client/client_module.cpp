// SPDX-License-Identifier: GPL-3.0-or-later
// Named clients: defined in the config file (token hashes and statements) or
// created at run time through the HTTP API (/api/clients; the broker makes
// the token, shows it once and keeps its hash). Login: username=client,
// password=<token>.
#include "client_module.hpp"

#include <openssl/crypto.h>
#include <backbone/authenticator.hpp>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace backbone::modules::client {

bb_status ClientModule::configure(bool reloading) {
  const auto text = host().config("");
  const json settings = text ? sdk::parse_json(*text) : json::object();
  auto table = std::make_shared<ClientTable>();
  std::string error;
  if (!parse_settings(settings, *table, error)) {
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
    host().revoke_principal(kProvider, name);
  }
  if (!reloading) {
    if (const bb_status s = load_api_clients(*table); s != BB_OK) return s;
    reauthorize_restored_sessions();
    if (register_with(host(), kProvider) != BB_OK) return BB_E_INVALID;
    host().info(std::to_string(table->size()) + " client(s) configured");
    return register_routes();
  }
  push_changes(previous ? *previous : ClientTable{}, *table);
  return BB_OK;
}

// Sessions the broker restored from its store keep their principal (SPEC
// §6). This module is the source of its clients' statements, so before any
// transport starts it puts each restored session of a client under that
// client's statements, and ends those of clients that no longer exist.
void ClientModule::reauthorize_restored_sessions() {
  const json sessions = json::parse(host().inspect("sessions").value_or("[]"), nullptr, false);
  if (!sessions.is_array()) return;
  std::set<std::string> principals;
  for (const json& s : sessions) {
    if (s.is_object() && s.value("provider", "") == kProvider)
      principals.insert(s.value("principal", ""));
  }
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
      host().revoke_principal(kProvider, name);
      continue;
    }
    host().update_principal(kProvider, name, sdk::abi_statements(entry->statements));
  }
}

// Tells the kernel which live sessions must change (SPEC §6).
void ClientModule::push_changes(const ClientTable& before, const ClientTable& after) {
  for (const auto& [name, old] : before) {
    auto it = after.find(name);
    if (it == after.end() || it->second.token_sha256 != old.token_sha256) {
      host().revoke_principal(kProvider, name);
      host().info("client '" + name + "' removed or its token changed: sessions cut");
    } else if (!it->second.same_grants(old)) {
      host().update_principal(kProvider, name, sdk::abi_statements(it->second.statements));
      push_quotas(name, it->second);
      host().info("client '" + name + "': statements updated");
    }
  }
}

// The client's quotas to its live sessions (ABI 1.3).
void ClientModule::push_quotas(const std::string& name, const ClientEntry& e) {
  host().update_quotas(kProvider, name, e.quotas ? &*e.quotas : nullptr);
}

std::optional<sdk::AuthReply> ClientModule::authenticate(const sdk::LoginRequest& request) {
  const std::string digest = sha256(request.password);
  std::shared_lock lock(mutex_);
  auto it = by_hash_.find(digest);
  if (it == by_hash_.end() ||
      CRYPTO_memcmp(it->second->token_sha256.data(), digest.data(), digest.size()) != 0)
    return sdk::AuthReply::deny("unknown client token");
  // Copied under the lock: API clients change under it.
  const ClientEntry& entry = *it->second;
  return sdk::AuthReply::allow(entry.name, sdk::statement_list(entry.statements), 0, entry.quotas);
}

void ClientModule::rebuild_index_locked() {
  by_hash_.clear();
  if (table_)
    for (const auto& [name, entry] : *table_) by_hash_[entry.token_sha256] = &entry;
  for (const auto& [name, entry] : api_) by_hash_[entry.token_sha256] = &entry;
}

bool ClientModule::commit_api_clients(const std::function<void(ApiClients&)>& change,
                                      std::string& error) {
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
      doc[name] = {{"token_sha256", to_hex(e.token_sha256)},
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
bb_status ClientModule::load_api_clients(const ClientTable& file_clients) {
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
        !sdk::parse_statements(spec["statements"], "statements", entry.statements, error) ||
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

}  // namespace backbone::modules::client

BACKBONE_MODULE(backbone::modules::client::ClientModule, "client", "1.0.0", BB_KIND_AUTH, 0)
