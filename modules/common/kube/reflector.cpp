// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/kube/reflector.hpp"

#include <backbone/module_abi.h>

namespace backbone::modules::k8s {
namespace {

using Clock = std::chrono::steady_clock;

// A watch that ends sooner than this without any event counts as a failure
// (backoff), so a server that accepts and hangs up at once is not hammered.
constexpr auto kHealthyWatch = std::chrono::seconds(5);

}  // namespace

Reflector::Reflector(KubeHttp& http, const ResourceType& type, std::string scope,
                     ReflectorHandler& handler, LogFn log, ReflectorOptions options)
    : http_(http),
      type_(type),
      scope_(std::move(scope)),
      handler_(handler),
      log_(std::move(log)),
      options_(options),
      backoff_(options.backoff_initial, options.backoff_max) {}

std::string Reflector::label() const {
  return std::string(type_.plural) +
         (scope_.empty() ? " in all namespaces" : " in namespace '" + scope_ + "'");
}

Reflector::Outcome Reflector::list(Cancel& cancel, std::string& error) {
  std::vector<nlohmann::json> items;
  std::string continue_token;
  std::string version;
  for (int restarts = 0;;) {
    std::string path =
        collection_path(type_, scope_) + list_query(options_.page_limit, continue_token);
    if (!options_.selector.empty()) path += "&" + options_.selector;
    HttpResponse r = http_.request("GET", path, {}, {}, cancel);
    if (r.status == 410 && !continue_token.empty() && restarts++ < 3) {
      // The continue token expired between pages: start over.
      items.clear();
      continue_token.clear();
      continue;
    }
    if (r.status != 200) {
      error = "listing " + label() + " failed: " + describe(r);
      return Outcome::kFailed;
    }
    std::string parse_error;
    std::optional<ListPage> page = parse_list(r.body, parse_error);
    if (!page) {
      error = "listing " + label() + " failed: " + parse_error;
      return Outcome::kFailed;
    }
    for (auto& item : page->items) items.push_back(std::move(item));
    version = page->resource_version;
    if (page->continue_token.empty()) break;
    continue_token = page->continue_token;
  }
  const size_t count = items.size();
  handler_.replace(type_, scope_, std::move(items));
  resource_version_ = version;
  log_(BB_LOG_DEBUG, "listed " + std::to_string(count) + " " + label() + " at resourceVersion " +
                         resource_version_);
  return Outcome::kOk;
}

Reflector::Outcome Reflector::watch(Cancel& cancel, std::string& error, size_t& events) {
  std::string path =
      collection_path(type_, scope_) + watch_query(resource_version_, options_.watch_timeout_s);
  if (!options_.selector.empty()) path += "&" + options_.selector;
  Outcome outcome = Outcome::kOk;
  auto on_line = [&](std::string& line) {
    std::string parse_error;
    std::optional<WatchEvent> event = parse_watch_event(line, parse_error);
    if (!event) {
      error = "watch of " + label() + ": " + parse_error;
      outcome = Outcome::kFailed;
      return false;
    }
    ++events;
    if (event->type == EventType::kError) {
      const ApiStatus s = parse_status(event->object);
      if (s.code == 410) {
        outcome = Outcome::kGone;
        return false;
      }
      error = "watch of " + label() + ": ERROR event " + std::to_string(s.code) + " " + s.reason +
              (s.message.empty() ? "" : ": " + s.message);
      outcome = Outcome::kFailed;
      return false;
    }
    const std::string version = meta_of(event->object).resource_version;
    if (event->type != EventType::kBookmark) handler_.apply(type_, event->type, event->object);
    resource_version_ = version;
    return true;
  };
  // A silent stream is declared dead well after the server should have
  // ended it (timeoutSeconds) or sent a bookmark.
  const auto idle = std::chrono::seconds(options_.watch_timeout_s + 30);
  HttpResponse r = http_.stream(path, idle, cancel, on_line);
  if (outcome != Outcome::kOk) return outcome;
  if (r.status == 410) return Outcome::kGone;
  if (r.status != 200 || !r.error.empty()) {
    error = "watch of " + label() + " failed: " + describe(r);
    if (r.status == 200) error = "watch of " + label() + " broke: " + r.error;
    return Outcome::kFailed;
  }
  return Outcome::kOk;  // the server ended the watch (timeoutSeconds): watch again
}

void Reflector::run(Cancel& cancel) {
  bool failing = false;
  auto fail = [&](const std::string& error) {
    const auto delay = backoff_.next();
    log_(BB_LOG_WARN, error + "; retrying in " + std::to_string(delay.count()) + " ms");
    failing = true;
    cancel.sleep_for(delay);
  };
  while (!cancel.cancelled()) {
    try {
      std::string error;
      if (resource_version_.empty()) {
        if (list(cancel, error) != Outcome::kOk) {
          if (!cancel.cancelled()) fail(error);
          continue;
        }
        if (failing) log_(BB_LOG_INFO, "listing " + label() + " works again");
        failing = false;
        backoff_.reset();
        if (!synced_) {
          synced_ = true;
          handler_.synced(type_, scope_);
        }
      }
      size_t events = 0;
      const auto started = Clock::now();
      const Outcome outcome = watch(cancel, error, events);
      if (cancel.cancelled()) break;
      const bool healthy = events > 0 || Clock::now() - started >= kHealthyWatch;
      switch (outcome) {
        case Outcome::kGone:
          log_(BB_LOG_INFO, "watch of " + label() + ": resourceVersion " + resource_version_ +
                                " expired (410 Gone), listing again");
          resource_version_.clear();
          break;
        case Outcome::kFailed:
          if (healthy) backoff_.reset();
          fail(error);
          break;
        case Outcome::kOk:
          if (healthy) {
            if (failing) log_(BB_LOG_INFO, "watch of " + label() + " works again");
            failing = false;
            backoff_.reset();
          } else {
            cancel.sleep_for(backoff_.next());
          }
          break;
      }
    } catch (const std::exception& e) {
      // A bug or exhaustion (input is validated, it does not throw): start
      // over from a list rather than end the thread.
      resource_version_.clear();
      fail("listing or watching " + label() + ": internal error: " + e.what());
    }
  }
}

}  // namespace backbone::modules::k8s
