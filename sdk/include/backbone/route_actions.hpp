// SPDX-License-Identifier: GPL-3.0-or-later
// The management actions a BB_HTTP_AUTH route declares (bb_http_route
// `resource` and `actions`, ABI 1.4): their grammar, the action and resource
// a request needs, and the audit line and 403 body of a refusal. One reading
// shared by the kernel, which enforces the declaration, and the FakeHost,
// which plays the kernel in module tests, so the two cannot drift apart.
// Header-only, C++17, no dependency beyond the C++ library.
#pragma once

#include <backbone/module_abi.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backbone::sdk {
inline namespace v1 {

// A JSON string literal of `s` (quotes included). Invalid UTF-8 passes
// through byte for byte: a path a client sent must not make the answer fail.
inline std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The audit line of a management request: who (provider and principal,
// never a token), what, on which target, with which result.
inline std::string audit_line(std::string_view provider, std::string_view principal,
                              std::string_view peer, std::string_view action,
                              std::string_view target, std::string_view result) {
  return "audit: provider=" + std::string(provider) + " principal=" + json_quote(principal) +
         " peer=" + std::string(peer) + " action=" + std::string(action) +
         " target=" + json_quote(target) + " result=" + std::string(result);
}

// The body of the 403 a request without the route's action gets.
inline std::string forbidden_body(std::string_view action, std::string_view resource) {
  return "{\"error\":\"forbidden\",\"message\":" +
         json_quote("not allowed: " + std::string(action) + " on " + std::string(resource)) + "}";
}

// One entry of a declaration: "GET=mgmt:list-topics" or "GET/*=mgmt:get-topic".
struct RouteAction {
  std::string method;
  bool item = false;  // "path/NAME" rather than the path itself
  std::string action;
};

// What a request needs: `action` on `resource`.
struct RequiredAction {
  std::string action;
  std::string resource;
};

// A route's checked declaration; empty for a route that declares none.
struct RouteActions {
  std::string resource;
  std::vector<RouteAction> entries;

  bool empty() const { return entries.empty(); }

  // The action of `method` on the collection or on an item; empty if none.
  std::string_view action_of(std::string_view method, bool item) const {
    for (const auto& e : entries) {
      if (e.method == method && e.item == item) return e.action;
    }
    return {};
  }

  // What a `method` request to `path`, which matched the route at
  // `route_path`, needs; nullopt when the declaration leaves it to the
  // module. "route_path" and "route_path/" are the collection; anything
  // longer is the item named by the rest, taken verbatim as the module
  // takes it, so both judge the same name.
  std::optional<RequiredAction> required(std::string_view route_path, std::string_view method,
                                         std::string_view path) const {
    if (entries.empty() || path.substr(0, route_path.size()) != route_path) return std::nullopt;
    std::string_view rest = path.substr(route_path.size());
    if (!rest.empty() && rest.front() != '/') return std::nullopt;
    const bool item = rest.size() > 1;
    const std::string_view action = action_of(method, item);
    if (action.empty()) return std::nullopt;
    RequiredAction out{std::string(action), resource};
    if (item) {
      out.resource += '/';
      out.resource.append(rest.substr(1));
    }
    return out;
  }
};

namespace route_actions_detail {

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline std::vector<std::string_view> split(std::string_view list) {
  std::vector<std::string_view> out;
  while (true) {
    const size_t comma = list.find(',');
    out.push_back(trim(list.substr(0, comma)));
    if (comma == std::string_view::npos) return out;
    list.remove_prefix(comma + 1);
  }
}

inline bool action_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
         c == '.' || c == '_' || c == '-';
}

inline std::string_view view(bb_str s) {
  return s.ptr ? std::string_view(s.ptr, s.len) : std::string_view();
}

}  // namespace route_actions_detail

constexpr size_t kMaxRouteActionLength = 128;

// Reads and checks the declaration of `r` (empty for a route from a module
// built before ABI 1.4, or one that declares none). nullopt, with `error`
// saying why, for a declaration bb_http_route's contract refuses.
inline std::optional<RouteActions> parse_route_actions(const bb_http_route& r, std::string* error) {
  namespace d = route_actions_detail;
  RouteActions out;
  if (!BB_HAS(&r, bb_http_route, actions)) return out;
  const std::string_view resource = d::view(r.resource);
  const std::string_view actions = d::trim(d::view(r.actions));
  const auto fail = [&](const std::string& why) -> std::optional<RouteActions> {
    *error = "route '" + std::string(d::view(r.path)) + "': " + why;
    return std::nullopt;
  };
  if (actions.empty()) {
    if (!resource.empty()) return fail("a resource without actions");
    return out;
  }
  if (!(r.flags & BB_HTTP_AUTH)) return fail("actions need BB_HTTP_AUTH");
  if (r.flags & BB_HTTP_WEBSOCKET) return fail("actions on a WebSocket route");
  if (resource.empty()) return fail("actions without a resource");
  if (resource.find_first_of("+#*") != std::string_view::npos || resource.front() == '/' ||
      resource.back() == '/')
    return fail("invalid resource '" + std::string(resource) +
                "' (no '+', '#' or '*', no '/' at either end)");
  out.resource = std::string(resource);
  const std::vector<std::string_view> methods = d::split(d::view(r.methods));
  for (const std::string_view entry : d::split(actions)) {
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos)
      return fail("actions: '" + std::string(entry) + "' is not METHOD=action or METHOD/*=action");
    RouteAction a;
    std::string_view method = d::trim(entry.substr(0, eq));
    if (method.size() >= 2 && method.substr(method.size() - 2) == "/*") {
      a.item = true;
      method.remove_suffix(2);
    }
    const std::string_view action = d::trim(entry.substr(eq + 1));
    bool known = false;
    for (const std::string_view m : methods) known = known || (!m.empty() && m == method);
    if (!known)
      return fail("actions: unknown method '" + std::string(method) + "' (the route serves " +
                  std::string(d::view(r.methods)) + ")");
    if (a.item && !(r.flags & BB_HTTP_PREFIX))
      return fail("actions: '" + std::string(entry) + "' names items, which need BB_HTTP_PREFIX");
    bool valid = !action.empty() && action.size() <= kMaxRouteActionLength;
    for (char c : action) valid = valid && d::action_char(c);
    if (!valid)
      return fail("actions: invalid action '" + std::string(action) +
                  "' (1-128 of A-Z a-z 0-9 : . _ -)");
    a.method = std::string(method);
    a.action = std::string(action);
    if (!out.action_of(a.method, a.item).empty())
      return fail("actions: " + a.method + (a.item ? "/*" : "") + " is given twice");
    out.entries.push_back(std::move(a));
  }
  return out;
}

}  // namespace v1
}  // namespace backbone::sdk
