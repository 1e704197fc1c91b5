// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// YAML → JSON for kubeconfig files (JSON is YAML too), through libyaml.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace backbone::modules::k8s {

// The first document of `text` as JSON. Mappings become objects (keys are
// strings), sequences arrays. Plain scalars `true`/`false` become booleans,
// `null`, `~` and empty plain scalars null; every other scalar, quoted or not,
// stays a string (kubeconfig has no numeric fields). Anchors are refused.
// On failure returns nullopt and sets `error` (with the line number).
std::optional<nlohmann::json> yaml_to_json(std::string_view text, std::string& error);

}  // namespace backbone::modules::k8s
