// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include <backbone/module_abi.h>
#include <backbone/route_actions.hpp>
#include <nlohmann/json.hpp>

namespace backbone::kernel::http {

// A route registered by a module, with its strings copied.
struct Route {
  std::string module;
  std::string path;
  std::vector<std::string> methods;
  std::vector<std::string> subprotocols;
  std::string summary;
  nlohmann::json openapi;  // object of extra path-item fields, or null
  bool prefix = false;     // BB_HTTP_PREFIX
  bool auth = false;       // BB_HTTP_AUTH: the requester is authenticated first
  bool websocket = false;  // BB_HTTP_WEBSOCKET
  uint32_t max_message_size = 0;
  sdk::RouteActions actions;  // ABI 1.4: the management actions the kernel checks
  const bb_http_route* table = nullptr;
  void* user = nullptr;

  bool allows_method(std::string_view method) const;
  // The first subprotocol of the client's Sec-WebSocket-Protocol list
  // (`offered`, comma separated) that the route serves, spelled as the route
  // spells it; empty when none.
  std::string choose_subprotocol(std::string_view offered) const;
};

// What a request's path and method find among the routes.
struct RouteMatch {
  const Route* route = nullptr;  // the longest matching path that allows the method
  bool path_known = false;       // some route serves the path, with any method
  std::string allow;             // the methods of the longest matching path, for Allow

  // No route for the method, but one for the path: 405 rather than 404.
  bool method_not_allowed() const { return !route && path_known; }
};

// The routes of every module. Added on the control thread, looked up by the
// workers; a route lives as long as the table.
class RouteTable {
 public:
  // Checks and copies `r` (which must outlive the table: its callbacks are
  // called through it). Refuses an invalid path, missing callbacks or
  // methods, a malformed openapi object or actions declaration, and a method
  // another route already serves on the same path: returns the status and
  // sets `error`.
  bb_status add(const std::string& module, const bb_http_route& r, void* user, std::string* error);
  // Takes back the route added last (its listener could not open).
  void remove_newest();
  bool empty() const;

  // A matching route is one whose path equals `path`, or a prefix route whose
  // path is followed by '/' in `path`; the longest match wins.
  RouteMatch find(std::string_view path, std::string_view method) const;

  // Calls `visit` for every route in the order added, holding the table's
  // read lock.
  void for_each(const std::function<void(const Route&)>& visit) const;

 private:
  mutable std::shared_mutex mutex_;
  std::vector<std::unique_ptr<Route>> routes_;
};

}  // namespace backbone::kernel::http
