// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// List + watch of one resource type in one scope (a namespace, or all), the
// client-go "reflector": list (paginated) → hand over the full set → watch
// from the list's resourceVersion with bookmarks → on a normal end watch
// again from the last version seen, on 410 Gone list again, on errors wait
// (jittered exponential backoff) and retry. Runs on a thread of its own until
// cancelled.

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "common/kube/api_paths.hpp"
#include "common/kube/backoff.hpp"
#include "common/kube/kube_http.hpp"
#include "common/kube/watch_event.hpp"

namespace backbone::modules::k8s {

// Receives what a reflector learns. Called on the reflector's thread; the
// handlers of several reflectors run concurrently.
class ReflectorHandler {
 public:
  virtual ~ReflectorHandler() = default;
  // After a (re)list: every object of `type` in `scope` ("" = all namespaces).
  // Objects known before but missing here were deleted meanwhile.
  virtual void replace(const ResourceType& type, const std::string& scope,
                       std::vector<nlohmann::json> items) = 0;
  // ADDED, MODIFIED or DELETED.
  virtual void apply(const ResourceType& type, EventType event, const nlohmann::json& object) = 0;
  // Once, after the first replace().
  virtual void synced(const ResourceType& type, const std::string& scope) = 0;
};

// level: BB_LOG_* values.
using LogFn = std::function<void(int level, const std::string& message)>;

struct ReflectorOptions {
  int watch_timeout_s = 300;  // server-side timeoutSeconds of each watch
  int page_limit = 500;
  // Extra query parameters of lists and watches, already encoded
  // ("fieldSelector=type%3DOpaque"); empty for none.
  std::string selector;
  Backoff::Ms backoff_initial{500};
  Backoff::Ms backoff_max{30000};
};

class Reflector {
 public:
  Reflector(KubeHttp& http, const ResourceType& type, std::string scope, ReflectorHandler& handler,
            LogFn log, ReflectorOptions options);

  // Loops until `cancel` is cancelled.
  void run(Cancel& cancel);

  // "clients in namespace 'x'" / "secrets in all namespaces", for logs.
  std::string label() const;

 private:
  enum class Outcome { kOk, kGone, kFailed };

  Outcome list(Cancel& cancel, std::string& error);
  // `events`: how many events (bookmarks included) arrived.
  Outcome watch(Cancel& cancel, std::string& error, size_t& events);

  KubeHttp& http_;
  ResourceType type_;
  std::string scope_;
  ReflectorHandler& handler_;
  LogFn log_;
  ReflectorOptions options_;
  Backoff backoff_;
  std::string resource_version_;  // empty: list first
  bool synced_ = false;
};

}  // namespace backbone::modules::k8s
