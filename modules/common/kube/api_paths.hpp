// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// REST paths and query strings of the Kubernetes API for the resources the
// k8s module lists, watches and writes.

#include <cstdint>
#include <string>
#include <string_view>

namespace backbone::modules::k8s {

struct ResourceType {
  std::string_view group;  // "" for the core API
  std::string_view version;
  std::string_view plural;
  std::string_view kind;

  std::string api_version() const {
    return group.empty() ? std::string(version) : std::string(group) + "/" + std::string(version);
  }
};

inline constexpr std::string_view kGroup = "backbone.mortenolsen.pro";
inline constexpr ResourceType kClients{kGroup, "v1", "clients", "Client"};
inline constexpr ResourceType kTopics{kGroup, "v1", "topics", "Topic"};
inline constexpr ResourceType kSecrets{"", "v1", "secrets", "Secret"};

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string percent_encode(std::string_view s);

// A DNS-1123 label (namespaces): 1-63 of [a-z0-9-], alphanumeric at both ends.
bool valid_label(std::string_view s);
// A DNS-1123 subdomain (object names): 1-253 of [a-z0-9.-], each dot-separated
// part alphanumeric at both ends.
bool valid_subdomain(std::string_view s);

// "/apis/G/V[/namespaces/NS]/PLURAL" ("/api/v1/..." for the core group); an
// empty namespace means all namespaces.
std::string collection_path(const ResourceType& type, std::string_view ns);
// ".../namespaces/NS/PLURAL/NAME[/SUBRESOURCE]"
std::string object_path(const ResourceType& type, std::string_view ns, std::string_view name,
                        std::string_view subresource = {});

// "?limit=N[&continue=TOKEN]"
std::string list_query(int limit, std::string_view continue_token);
// "?watch=1&allowWatchBookmarks=true&resourceVersion=RV&timeoutSeconds=T"
std::string watch_query(std::string_view resource_version, int timeout_s);

}  // namespace backbone::modules::k8s
