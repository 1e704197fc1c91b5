// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/route_table.hpp"

#include <spdlog/spdlog.h>
#include <backbone/json.hpp>

#include <cctype>
#include <mutex>

namespace backbone::kernel::http {

namespace {

std::string text(bb_str s) {
  return s.ptr ? std::string(s.ptr, s.len) : std::string();
}

// The non-empty items of a comma-separated list, without surrounding blanks.
std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(start, end - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

bool Route::allows_method(std::string_view method) const {
  for (const auto& m : methods) {
    if (m == method) return true;
  }
  return false;
}

std::string Route::choose_subprotocol(std::string_view offered) const {
  for (const auto& o : split_list(offered)) {
    for (const auto& s : subprotocols) {
      if (iequals(o, s)) return s;
    }
  }
  return {};
}

bb_status RouteTable::add(const std::string& module, const bb_http_route& r, void* user,
                          std::string* error) {
  const std::string path = text(r.path);
  if (path.empty() || path.front() != '/' || (path.size() > 1 && path.back() == '/')) {
    *error = "invalid route path '" + path + "'";
    return BB_E_INVALID;
  }
  auto route = std::make_unique<Route>();
  route->module = module;
  route->path = path;
  route->prefix = (r.flags & BB_HTTP_PREFIX) != 0;
  route->auth = (r.flags & BB_HTTP_AUTH) != 0;
  route->websocket = (r.flags & BB_HTTP_WEBSOCKET) != 0;
  route->methods = route->websocket ? std::vector<std::string>{"GET"} : split_list(text(r.methods));
  route->summary = text(r.summary);
  route->table = &r;
  route->user = user;
  if (route->websocket) {
    route->subprotocols = split_list(text(r.subprotocols));
    route->max_message_size = r.max_message_size;
    if (!r.ws_open || !r.ws_data || !r.ws_backpressure || !r.ws_closed ||
        route->subprotocols.empty()) {
      *error = "WebSocket route '" + path + "' needs ws_* callbacks and subprotocols";
      return BB_E_INVALID;
    }
  } else if (!r.handle || route->methods.empty()) {
    *error = "route '" + path + "' needs a handler and methods";
    return BB_E_INVALID;
  }
  auto actions = sdk::parse_route_actions(r, error);
  if (!actions) return BB_E_INVALID;
  route->actions = std::move(*actions);
  if (r.openapi.len > 0) {
    route->openapi = sdk::parse_json(text(r.openapi));
    if (!route->openapi.is_object()) {
      *error = "route '" + path + "': openapi is not a JSON object";
      return BB_E_INVALID;
    }
  }
  std::unique_lock lock(mutex_);
  for (const auto& other : routes_) {
    if (other->path != path) continue;
    for (const auto& m : route->methods) {
      if (other->allows_method(m)) {
        *error = m + " " + path + " is already served by module '" + other->module + "'";
        return BB_E_INVALID;
      }
    }
  }
  spdlog::info("[{}] serving {}{} {}", module, path, route->prefix ? "/*" : "",
               route->websocket ? "(WebSocket)" : text(r.methods));
  routes_.push_back(std::move(route));
  return BB_OK;
}

void RouteTable::remove_newest() {
  std::unique_lock lock(mutex_);
  if (!routes_.empty()) routes_.pop_back();
}

bool RouteTable::empty() const {
  std::shared_lock lock(mutex_);
  return routes_.empty();
}

RouteMatch RouteTable::find(std::string_view path, std::string_view method) const {
  std::shared_lock lock(mutex_);
  RouteMatch found;
  size_t best_len = 0;
  for (const auto& r : routes_) {
    const bool match = path == r->path ||
                       (r->prefix && path.size() > r->path.size() &&
                        path.substr(0, r->path.size()) == r->path && path[r->path.size()] == '/');
    if (!match || r->path.size() < best_len) continue;
    if (r->path.size() > best_len) {
      best_len = r->path.size();
      found.allow.clear();
      found.route = nullptr;
    }
    found.path_known = true;
    for (const auto& m : r->methods) found.allow += (found.allow.empty() ? "" : ", ") + m;
    if (r->allows_method(method)) found.route = r.get();
  }
  return found;
}

void RouteTable::for_each(const std::function<void(const Route&)>& visit) const {
  std::shared_lock lock(mutex_);
  for (const auto& r : routes_) visit(*r);
}

}  // namespace backbone::kernel::http
