// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernel/authz/policy.hpp"
#include "kernel/config/limits.hpp"
#include "kernel/store/store.hpp"

namespace backbone::kernel::config {

// A configuration problem: one line saying what and where.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ModuleEntry {
  std::string name;
  nlohmann::json settings = nlohmann::json::object();
  bool enabled = true;
  std::string where;  // "modules[2]", for messages
};

// The kernel's HTTP(S) listener, shared by the modules that register routes
// (ws, http-api...). Top-level "http" in the config file.
struct HttpSettings {
  bool enabled = true;
  std::string address = "0.0.0.0";
  uint16_t port = 8883;
  bool api_enabled = true;  // routes under /api/
  std::string tls_cert;     // PEM files; both set = https/wss
  std::string tls_key;
  uint32_t max_body_bytes = 1024 * 1024;
  uint32_t max_header_bytes = 16 * 1024;
  uint32_t request_timeout_ms = 15000;  // to receive a request header, again its body
  uint32_t idle_timeout_ms = 60000;     // keep-alive between requests
  uint32_t max_connections = 10000;     // plain HTTP (WebSockets count as MQTT connections)
  // Bytes all connections together may hold for requests whose sender is not
  // authenticated yet (headers awaiting authentication, bodies on routes
  // without authentication); beyond it a request gets 503 and is closed.
  uint64_t max_unauthenticated_bytes = 16 * 1024 * 1024;
};

// Reads "http" settings from `j` over `out`. Throws ConfigError naming
// `source` and the key.
void read_http_settings(const std::string& source, const nlohmann::json& j, HttpSettings& out);

struct Config {
  std::string source = "built-in defaults";
  std::vector<std::string> module_path;
  std::vector<ModuleEntry> modules;
  Limits limits;
  HttpSettings http;
  // Durable state (modules' state_path, the store); empty = everything in memory.
  std::string state_dir;
  store::StoreSettings store;  // used with a state_dir
  std::optional<std::vector<authz::Statement>> anonymous;
  std::map<std::string, nlohmann::json> topics;  // topic rules by name
  std::string log_level = "info";
  std::string log_format = "text";
  uint32_t workers = 0;  // 0 = one per available CPU
};

// Parses a config file (JSON with comments). Throws ConfigError.
Config load_config_file(const std::string& path);
// Parses config text; `source` names it in messages.
Config parse_config(const std::string& text, const std::string& source);
// The built-in default: env, admin, jwt, client, tcp, ws, http-api.
Config default_config();

}  // namespace backbone::kernel::config
