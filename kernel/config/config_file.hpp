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

struct Config {
  std::string source = "built-in defaults";
  std::vector<std::string> module_path;
  std::vector<ModuleEntry> modules;
  Limits limits;
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
// The built-in default: tcp, env, admin, jwt.
Config default_config();

}  // namespace backbone::kernel::config
