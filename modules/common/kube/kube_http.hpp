// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Blocking HTTPS requests to the Kubernetes API server through Poco, for the
// k8s module's own threads only (never a kernel worker). One KubeHttp is
// shared by all of them; every call opens its own connection.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/kube/cluster_config.hpp"

namespace backbone::modules::k8s {

// Interrupts one thread's blocking I/O and sleeps from another thread (the
// module's stop()). One per thread doing requests.
class Cancel {
 public:
  // Thread: any. Wakes sleep_for() and shuts down the socket in flight.
  void cancel();
  bool cancelled() const;
  // Sleeps unless cancelled; false when cancelled (before or during).
  bool sleep_for(std::chrono::milliseconds d);

  // Used by KubeHttp: the socket of the request in flight. attach() is false
  // when already cancelled (the caller then gives up).
  bool attach(int fd);
  void detach();

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool cancelled_ = false;
  int fd_ = -1;
};

struct HttpResponse {
  int status = 0;     // 0: no HTTP response (connection or TLS failure, cancelled)
  std::string body;   // the error body too, for parse_status_body
  std::string error;  // status 0: what went wrong, for the log
};

// A failed response for the log: "HTTP 403 Forbidden: <the Status message>"
// with a hint for 401 and 403, or what went wrong without a response.
std::string describe(const HttpResponse& r);

class KubeHttp {
 public:
  struct Options {
    int connect_timeout_ms = 5000;
    int request_timeout_ms = 10000;
    size_t max_body = 64 * 1024 * 1024;  // a list page
    size_t max_line = 16 * 1024 * 1024;  // one watch event
  };

  // Throws std::runtime_error when the TLS material is unusable (no
  // certificate in a CA bundle, a key that does not match its certificate):
  // a configuration error.
  KubeHttp(ClusterConfig cluster, Options options);
  ~KubeHttp();
  KubeHttp(const KubeHttp&) = delete;
  KubeHttp& operator=(const KubeHttp&) = delete;

  // One request; never throws. `path` includes the query.
  HttpResponse request(std::string_view method, const std::string& path, std::string_view body,
                       std::string_view content_type, Cancel& cancel);

  // A streaming GET (a watch): calls on_line for every line of a 200
  // response until the server ends the stream, on_line returns false, no
  // byte arrives for `idle_timeout`, or cancel. The result carries the status
  // (and for non-200 the body); error is set when the stream broke.
  HttpResponse stream(const std::string& path, std::chrono::seconds idle_timeout, Cancel& cancel,
                      const std::function<bool(std::string& line)>& on_line);

  const ClusterConfig& cluster() const { return cluster_; }

 private:
  struct Tls;
  struct TokenCache;

  std::string bearer();

  ClusterConfig cluster_;
  Options options_;
  std::string host_;
  uint16_t port_ = 0;
  bool https_ = true;
  std::unique_ptr<Tls> tls_;
  std::unique_ptr<TokenCache> token_;
};

}  // namespace backbone::modules::k8s
