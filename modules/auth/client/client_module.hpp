// SPDX-License-Identifier: GPL-3.0-or-later
// The `client` module: named clients from the config file and from the HTTP
// API, one authenticator over both. client_module.cpp holds the
// configuration, the authenticator and the stored API clients;
// client_api.cpp serves /api/clients.
#pragma once

#include <backbone/authenticator.hpp>
#include <backbone/sdk.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "client_entry.hpp"

namespace backbone::modules::client {

// The provider name: the CONNECT user name of these clients.
inline constexpr std::string_view kProvider = "client";

class ClientModule : public sdk::Module, sdk::Authenticator {
 public:
  using sdk::Module::Module;

  bb_status configure(bool reloading) override;

 private:
  // Created through the API, by name; stored in <state_path>/clients.json.
  using ApiClients = std::map<std::string, ClientEntry>;

  void reauthorize_restored_sessions();
  void push_changes(const ClientTable& before, const ClientTable& after);
  void push_quotas(const std::string& name, const ClientEntry& e);
  std::optional<sdk::AuthReply> authenticate(const sdk::LoginRequest& request) override;
  void rebuild_index_locked();

  // --- /api/clients (client_api.cpp) ---
  bb_status register_routes();
  static void handle(void* user, const bb_http_request* r, bb_http_exchange ex) noexcept;
  // The client as GET /api/clients shows it; under mutex_.
  json describe_locked(const ClientEntry& e, const char* source) const;
  void serve(const bb_http_request& r, bb_http_exchange ex);

  // --- durable API clients ---

  // Applies `change` to a copy of the API clients, stores the copy when the
  // broker has a state directory, and only then makes it current: a change
  // that cannot be stored changes nothing.
  bool commit_api_clients(const std::function<void(ApiClients&)>& change, std::string& error);
  // Reads the clients created through the API before a restart. A file that
  // cannot be read or parsed stops start-up: silently dropping it would lose
  // clients.
  bb_status load_api_clients(const ClientTable& file_clients);

  std::shared_mutex mutex_;
  std::mutex save_mutex_;  // one stored change at a time, in order
  std::string state_file_;
  std::shared_ptr<const ClientTable> table_;  // the config file's; swapped whole on reload
  ApiClients api_;                            // created through the API
  std::unordered_map<std::string, const ClientEntry*> by_hash_;
  std::string openapi_;
  bb_http_route route_{};
};

}  // namespace backbone::modules::client
