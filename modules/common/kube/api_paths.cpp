// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/kube/api_paths.hpp"

namespace backbone::modules::k8s {
namespace {

bool lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

std::string api_root(const ResourceType& type) {
  if (type.group.empty()) return "/api/" + std::string(type.version);
  return "/apis/" + std::string(type.group) + "/" + std::string(type.version);
}

}  // namespace

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

bool valid_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!lower_alnum(s.front()) || !lower_alnum(s.back())) return false;
  for (char c : s) {
    if (!lower_alnum(c) && c != '-') return false;
  }
  return true;
}

bool valid_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) dot = s.size();
    const std::string_view part = s.substr(start, dot - start);
    if (part.empty() || !lower_alnum(part.front()) || !lower_alnum(part.back())) return false;
    for (char c : part) {
      if (!lower_alnum(c) && c != '-') return false;
    }
    start = dot + 1;
  }
  return true;
}

std::string collection_path(const ResourceType& type, std::string_view ns) {
  std::string path = api_root(type);
  if (!ns.empty()) path += "/namespaces/" + percent_encode(ns);
  return path + "/" + std::string(type.plural);
}

std::string object_path(const ResourceType& type, std::string_view ns, std::string_view name,
                        std::string_view subresource) {
  std::string path = collection_path(type, ns) + "/" + percent_encode(name);
  if (!subresource.empty()) path += "/" + std::string(subresource);
  return path;
}

std::string list_query(int limit, std::string_view continue_token) {
  std::string q = "?limit=" + std::to_string(limit);
  if (!continue_token.empty()) q += "&continue=" + percent_encode(continue_token);
  return q;
}

std::string watch_query(std::string_view resource_version, int timeout_s) {
  std::string q = "?watch=1&allowWatchBookmarks=true";
  if (!resource_version.empty()) q += "&resourceVersion=" + percent_encode(resource_version);
  return q + "&timeoutSeconds=" + std::to_string(timeout_s);
}

}  // namespace backbone::modules::k8s
