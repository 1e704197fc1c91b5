// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Where the Kubernetes API server is and how to authenticate to it: from a
// kubeconfig file (or a KUBECONFIG list of files) or from the pod's service
// account (in-cluster). Pure parsing: files and environment variables are
// read through the functions passed in, so tests need neither.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::k8s {

struct ClusterConfig {
  std::string server;  // "https://host:port", no trailing slash
  std::string ca_pem;  // trusted CA certificates; empty = the system's default CAs
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;            // a static bearer token
  std::string token_file;       // a bearer token re-read whenever the file changes (rotation)
  std::string tls_server_name;  // name checked against the server certificate instead of the host
  bool insecure_skip_tls_verify = false;
  std::string default_namespace;  // of the context / the pod; informational
  std::string source;             // "in-cluster", "kubeconfig /path (context 'x')" for logs
};

// Reads a whole file; on failure returns nullopt and sets `error` naming the path.
using FileReader =
    std::function<std::optional<std::string>(const std::string& path, std::string& error)>;
// The value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// Reads a file from disk (FileReader for production use).
std::optional<std::string> read_file(const std::string& path, std::string& error);

// A kubeconfig file: its path (relative file references resolve against its
// directory) and its text.
struct KubeconfigFile {
  std::string path;
  std::string text;
};

// Resolves a kubeconfig the way kubectl merges a KUBECONFIG list: the first
// file that sets current-context wins, and so does the first definition of
// each named cluster, user and context. `context` overrides current-context.
// Refused: exec plugins, auth providers, basic auth, proxies. On failure
// returns nullopt and sets `error` (one line naming file, entry and field).
std::optional<ClusterConfig> parse_kubeconfig(const std::vector<KubeconfigFile>& files,
                                              std::string_view context, const FileReader& read,
                                              std::string& error);

inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

// The pod's service account: KUBERNETES_SERVICE_HOST/PORT, `dir`/token (kept
// as token_file, re-read on rotation), `dir`/ca.crt and `dir`/namespace.
std::optional<ClusterConfig> in_cluster_config(const EnvLookup& env, const std::string& dir,
                                               const FileReader& read, std::string& error);

// Splits a KUBECONFIG value on ':' and drops empty entries.
std::vector<std::string> split_kubeconfig_list(std::string_view value);

// Why `url` cannot be an API server URL (empty when it can): http(s) with a
// host, no user info, no query. Plain http only with `allow_http`.
std::string check_server_url(const std::string& url, bool allow_http);

}  // namespace backbone::modules::k8s
