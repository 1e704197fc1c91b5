// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Blocking HTTP(S) GET with Poco, bounded in time and size. Runs only on the
// oidc module's own worker thread, never on a kernel worker.

#include <cstddef>
#include <string>

namespace backbone::modules::oidc {

struct HttpOptions {
  int timeout_ms = 5000;  // whole request, redirects included
  bool allow_http = false;
  std::string ca_file;  // extra trusted CA certificates (PEM file or directory)
  size_t max_body = 1024 * 1024;
};

// Why `url` may not be fetched (empty when it may): absolute http(s) URL
// with a host; plain http only with allow_http.
std::string check_url(const std::string& url, bool allow_http);

struct HttpResult {
  bool ok = false;
  std::string body;
  std::string error;  // names the URL and what went wrong
};

// GET `url`, following up to 3 redirects (each checked by check_url).
// Succeeds only on status 200. Never throws.
HttpResult http_get(const std::string& url, const HttpOptions& options);

}  // namespace backbone::modules::oidc
