// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Base64 as Kubernetes uses it: standard alphabet with padding in Secret
// `data` and kubeconfig `*-data` fields.

#include <optional>
#include <string>
#include <string_view>

namespace backbone::modules::k8s {

std::string base64_encode(std::string_view bytes);
// The URL-safe alphabet without padding (RFC 4648 §5): tokens travel as
// MQTT passwords, shell arguments and URLs without quoting.
std::string base64url_encode(std::string_view bytes);
// Standard alphabet; padding optional, ASCII whitespace (line breaks) skipped.
// nullopt for any other character or a truncated final group.
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace backbone::modules::k8s
