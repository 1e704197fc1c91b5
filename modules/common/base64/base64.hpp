// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Base64 (RFC 4648) for the modules: the standard alphabet with padding
// (Kubernetes Secret `data`, kubeconfig `*-data`, HTTP API payloads) and the
// URL-safe one without padding (generated tokens).

#include <optional>
#include <string>
#include <string_view>

namespace backbone::modules {

std::string base64_encode(std::string_view bytes);
// The URL-safe alphabet without padding (RFC 4648 §5): tokens travel as
// MQTT passwords, shell arguments and URLs without quoting.
std::string base64url_encode(std::string_view bytes);
// Standard alphabet; padding optional, ASCII whitespace (line breaks) skipped.
// nullopt for any other character or a truncated final group.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace backbone::modules
