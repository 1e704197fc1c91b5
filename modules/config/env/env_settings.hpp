// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The environment variables of SPEC §3, turned into per-module settings.
// Pure: the environment is read through a lookup function, so tests need
// not touch the process environment.

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::env {

// Returns the value of the variable `name`, or nullopt when it is not set.
using Lookup = std::function<std::optional<std::string>(const std::string& name)>;

struct EnvSettings {
  // {"<module>": {<settings to merge>}, ...}; only set variables contribute.
  nlohmann::json settings = nlohmann::json::object();
  // Names of the variables that contributed (never their values).
  std::vector<std::string> applied;
  // One precise line per invalid variable; non-empty means "refuse to start".
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

// Reads every variable of SPEC §3, each name prefixed with `prefix`. A
// variable set to the empty string counts as unset.
EnvSettings settings_from_environment(const Lookup& lookup, std::string_view prefix = "");

}  // namespace backbone::modules::env
