// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/kube/cluster_config.hpp"

#include "common/base64/base64.hpp"
#include "common/kube/yaml_json.hpp"

#include <Poco/Exception.h>
#include <Poco/URI.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxFileSize = 4 * 1024 * 1024;

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return base_dir + "/" + path;
}

// A named entry of `clusters`, `users` or `contexts`, with the directory of
// the file that defined it (for relative paths).
struct Named {
  Json body;
  std::string file;
};

// Reads a string field; false (with `error`) when present but not a string.
bool get_string(const Json& obj, const char* key, std::string& out, const std::string& where,
                std::string& error) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return true;
  if (!it->is_string()) {
    error = where + "." + key + ": expected a string, got " + it->type_name();
    return false;
  }
  out = it->get<std::string>();
  return true;
}

// A PEM held either inline (`<key>-data`, base64) or in a file (`<key>`).
bool get_pem(const Json& obj, const std::string& key, const Named& entry, const FileReader& read,
             std::string& out, const std::string& where, std::string& error) {
  std::string data;
  std::string path;
  if (!get_string(obj, (key + "-data").c_str(), data, where, error) ||
      !get_string(obj, key.c_str(), path, where, error)) {
    return false;
  }
  if (!data.empty()) {
    std::optional<std::string> pem = base64_decode(data);
    if (!pem || pem->empty()) {
      error = where + "." + key + "-data: not valid base64";
      return false;
    }
    out = std::move(*pem);
    return true;
  }
  if (!path.empty()) {
    std::string read_error;
    std::optional<std::string> pem = read(resolve(dir_of(entry.file), path), read_error);
    if (!pem) {
      error = where + "." + key + ": " + read_error;
      return false;
    }
    out = std::move(*pem);
  }
  return true;
}

}  // namespace

std::optional<std::string> read_file(const std::string& path, std::string& error) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read '" + path + "': " + (errno != 0 ? std::strerror(errno) : "open failed");
    return std::nullopt;
  }
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxFileSize) {
      error = "'" + path + "' is larger than " + std::to_string(kMaxFileSize) + " bytes";
      return std::nullopt;
    }
  }
  if (in.bad()) {
    error = "cannot read '" + path + "'";
    return std::nullopt;
  }
  return text;
}

std::vector<std::string> split_kubeconfig_list(std::string_view value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t colon = value.find(':', start);
    if (colon == std::string_view::npos) colon = value.size();
    if (colon > start) out.emplace_back(value.substr(start, colon - start));
    start = colon + 1;
  }
  return out;
}

std::string check_server_url(const std::string& url, bool allow_http) {
  try {
    Poco::URI uri(url);
    const std::string& scheme = uri.getScheme();
    if (scheme != "https" && scheme != "http") return "'" + url + "' is not an http(s) URL";
    if (uri.getHost().empty()) return "'" + url + "' has no host";
    if (scheme == "http" && !allow_http) {
      return "'" + url + "' uses plain http (refused unless 'allow_insecure' is true)";
    }
    if (!uri.getUserInfo().empty()) return "'" + url + "' must not carry user info";
    if (!uri.getRawQuery().empty() || !uri.getFragment().empty()) {
      return "'" + url + "' must not have a query or fragment";
    }
    return {};
  } catch (const Poco::Exception& e) {
    return "'" + url + "' is not a valid URL: " + e.displayText();
  }
}

std::optional<ClusterConfig> parse_kubeconfig(const std::vector<KubeconfigFile>& files,
                                              std::string_view context_override,
                                              const FileReader& read, std::string& error) {
  std::string current_context;
  std::map<std::string, Named> clusters, users, contexts;

  for (const auto& file : files) {
    std::string yaml_error;
    std::optional<Json> doc = yaml_to_json(file.text, yaml_error);
    if (!doc) {
      error = "kubeconfig " + file.path + ": " + yaml_error;
      return std::nullopt;
    }
    if (doc->is_null()) continue;  // an empty file contributes nothing
    if (!doc->is_object()) {
      error = "kubeconfig " + file.path + ": expected a mapping at the top level";
      return std::nullopt;
    }
    if (current_context.empty() &&
        !get_string(*doc, "current-context", current_context, "kubeconfig " + file.path, error)) {
      return std::nullopt;
    }
    for (auto [list_key, inner_key, target] :
         {std::tuple{"clusters", "cluster", &clusters}, std::tuple{"users", "user", &users},
          std::tuple{"contexts", "context", &contexts}}) {
      auto it = doc->find(list_key);
      if (it == doc->end() || it->is_null()) continue;
      const std::string where = "kubeconfig " + file.path + ": " + list_key;
      if (!it->is_array()) {
        error = where + ": expected a list";
        return std::nullopt;
      }
      for (size_t i = 0; i < it->size(); ++i) {
        const Json& item = (*it)[i];
        const std::string at = where + "[" + std::to_string(i) + "]";
        std::string name;
        if (!item.is_object()) {
          error = at + ": expected a mapping";
          return std::nullopt;
        }
        if (!get_string(item, "name", name, at, error)) return std::nullopt;
        if (name.empty()) {
          error = at + ".name: missing";
          return std::nullopt;
        }
        auto body = item.find(inner_key);
        if (body == item.end() || !body->is_object()) {
          error = at + "." + inner_key + ": expected a mapping";
          return std::nullopt;
        }
        target->emplace(name, Named{*body, file.path});  // the first definition wins
      }
    }
  }

  const std::string context_name =
      context_override.empty() ? current_context : std::string(context_override);
  std::string file_list;
  for (const auto& f : files) file_list += (file_list.empty() ? "" : ":") + f.path;
  const std::string kc = "kubeconfig " + file_list;
  if (context_name.empty()) {
    error = kc + ": no current-context (set one, or the setting 'context')";
    return std::nullopt;
  }
  auto ctx_it = contexts.find(context_name);
  if (ctx_it == contexts.end()) {
    error = kc + ": context '" + context_name + "' not found";
    return std::nullopt;
  }
  const Named& ctx = ctx_it->second;
  const std::string ctx_where = "kubeconfig " + ctx.file + ": context '" + context_name + "'";
  std::string cluster_name, user_name;
  ClusterConfig out;
  if (!get_string(ctx.body, "cluster", cluster_name, ctx_where, error) ||
      !get_string(ctx.body, "user", user_name, ctx_where, error) ||
      !get_string(ctx.body, "namespace", out.default_namespace, ctx_where, error)) {
    return std::nullopt;
  }
  auto cl_it = clusters.find(cluster_name);
  if (cl_it == clusters.end()) {
    error = ctx_where + ": cluster '" + cluster_name + "' not found";
    return std::nullopt;
  }

  // The cluster.
  const Named& cluster = cl_it->second;
  const std::string cl_where = "kubeconfig " + cluster.file + ": cluster '" + cluster_name + "'";
  if (!get_string(cluster.body, "server", out.server, cl_where, error) ||
      !get_string(cluster.body, "tls-server-name", out.tls_server_name, cl_where, error) ||
      !get_pem(cluster.body, "certificate-authority", cluster, read, out.ca_pem, cl_where, error)) {
    return std::nullopt;
  }
  if (out.server.empty()) {
    error = cl_where + ".server: missing";
    return std::nullopt;
  }
  while (out.server.size() > 1 && out.server.back() == '/') out.server.pop_back();
  if (auto it = cluster.body.find("insecure-skip-tls-verify");
      it != cluster.body.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      error = cl_where + ".insecure-skip-tls-verify: expected true or false";
      return std::nullopt;
    }
    out.insecure_skip_tls_verify = it->get<bool>();
  }
  if (cluster.body.contains("proxy-url")) {
    error = cl_where + ".proxy-url: proxies are not supported";
    return std::nullopt;
  }

  // The user (a context without one talks to the server anonymously).
  if (!user_name.empty()) {
    auto us_it = users.find(user_name);
    if (us_it == users.end()) {
      error = ctx_where + ": user '" + user_name + "' not found";
      return std::nullopt;
    }
    const Named& user = us_it->second;
    const std::string us_where = "kubeconfig " + user.file + ": user '" + user_name + "'";
    for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
      if (user.body.contains(unsupported) && !user.body[unsupported].is_null()) {
        error = us_where + "." + unsupported +
                ": not supported (use a token, tokenFile or a client certificate)";
        return std::nullopt;
      }
    }
    std::string token_file;
    if (!get_string(user.body, "token", out.token, us_where, error) ||
        !get_string(user.body, "tokenFile", token_file, us_where, error) ||
        !get_pem(user.body, "client-certificate", user, read, out.client_cert_pem, us_where,
                 error) ||
        !get_pem(user.body, "client-key", user, read, out.client_key_pem, us_where, error)) {
      return std::nullopt;
    }
    if (out.token.empty() && !token_file.empty()) {
      out.token_file = resolve(dir_of(user.file), token_file);
      std::string read_error;
      if (!read(out.token_file, read_error)) {
        error = us_where + ".tokenFile: " + read_error;
        return std::nullopt;
      }
    }
    if (out.client_cert_pem.empty() != out.client_key_pem.empty()) {
      error = us_where + ": client-certificate and client-key must be given together";
      return std::nullopt;
    }
  }
  out.source = "kubeconfig " + ctx.file + " (context '" + context_name + "')";
  return out;
}

std::optional<ClusterConfig> in_cluster_config(const EnvLookup& env, const std::string& dir,
                                               const FileReader& read, std::string& error) {
  std::optional<std::string> host = env("KUBERNETES_SERVICE_HOST");
  std::optional<std::string> port = env("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty()) {
    error =
        "no Kubernetes connection: KUBERNETES_SERVICE_HOST is not set (not running in a pod); "
        "set the setting 'kubeconfig' or the environment variable KUBECONFIG";
    return std::nullopt;
  }
  std::string p = port && !port->empty() ? *port : "443";
  for (char c : p) {
    if (c < '0' || c > '9' || p.size() > 5) {
      error = "KUBERNETES_SERVICE_PORT='" + p.substr(0, 16) + "': expected a port number";
      return std::nullopt;
    }
  }
  ClusterConfig out;
  const bool ipv6 = host->find(':') != std::string::npos;
  out.server = "https://" + (ipv6 ? "[" + *host + "]" : *host) + ":" + p;
  out.token_file = dir + "/token";
  std::string read_error;
  std::optional<std::string> token = read(out.token_file, read_error);
  if (!token) {
    error = "in-cluster service account: " + read_error;
    return std::nullopt;
  }
  std::optional<std::string> ca = read(dir + "/ca.crt", read_error);
  if (!ca) {
    error = "in-cluster service account: " + read_error;
    return std::nullopt;
  }
  out.ca_pem = std::move(*ca);
  if (std::optional<std::string> ns = read(dir + "/namespace", read_error)) {
    out.default_namespace = *ns;
    while (!out.default_namespace.empty() &&
           (out.default_namespace.back() == '\n' || out.default_namespace.back() == ' ')) {
      out.default_namespace.pop_back();
    }
  }
  out.source = "in-cluster (" + out.server + ", service account " + dir + ")";
  return out;
}

}  // namespace backbone::modules::k8s
