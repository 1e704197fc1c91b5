// SPDX-License-Identifier: GPL-3.0-or-later
// sdk::Settings: a strict reader of one JSON object of settings (a module's
// config_get() document, or an object inside it). Every key must be known,
// every value of its type, and every error is one line in one format naming
// the key's path: "setting 'tls.cert_file': expected a non-empty string, got
// number". Needs nlohmann/json like json.hpp.
//
//   sdk::Settings s(doc);
//   s.known({"file", "name"});
//   s.get_string("file", file);
//   s.require("file", "path of the token file");
//   if (!s.ok()) { host().error(s.error()); return BB_E_INVALID; }
//
// The first error sticks: later calls do nothing and return false, so a
// reader can call them in a row and check once.
#pragma once

#include <backbone/json.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace backbone::sdk {
inline namespace v1 {

class Settings {
 public:
  // `object` must outlive this reader. `path` is where it sits, empty for a
  // module's top-level settings; keys are named "path.key".
  explicit Settings(const nlohmann::json& object, std::string path = {})
      : object_(object), path_(std::move(path)) {
    if (object_.is_discarded()) {
      fail_at("settings", "expected a JSON object (not valid JSON)");
    } else if (!object_.is_object()) {
      fail_at(path_.empty() ? std::string("settings") : "setting '" + path_ + "'",
              std::string(path_.empty() ? "expected a JSON object" : "expected an object") +
                  ", got " + object_.type_name());
    }
  }

  bool ok() const noexcept { return error_.empty(); }
  const std::string& error() const noexcept { return error_; }

  // The path of `key` as errors name it.
  std::string path(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // Fails on the first key not in `keys`; the error lists the known ones.
  bool known(std::initializer_list<std::string_view> keys) {
    if (!ok()) return false;
    for (const auto& item : object_.items()) {
      bool found = false;
      for (std::string_view k : keys) found = found || k == item.key();
      if (found) continue;
      std::string list;
      for (std::string_view k : keys) list += (list.empty() ? "" : ", ") + std::string(k);
      return fail(printable_key(item.key()),
                  list.empty() ? "unknown key" : "unknown key (known: " + list + ")");
    }
    return true;
  }

  bool has(std::string_view key) const { return ok() && object_.contains(key); }

  // The value of `key`, or nullptr when absent (or after an error).
  const nlohmann::json* find(std::string_view key) const {
    if (!ok()) return nullptr;
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  // Fails when `key` is absent; `what` says what it holds, for the error.
  bool require(std::string_view key, std::string_view what = {}) {
    if (!ok()) return false;
    if (object_.contains(key)) return true;
    return fail(key, what.empty() ? "required" : "required (" + std::string(what) + ")");
  }

  // Each getter leaves `out` as it is when `key` is absent and returns true;
  // a value of another type (or out of range) fails.

  bool get_string(std::string_view key, std::string& out, bool allow_empty = false) {
    const nlohmann::json* v = find(key);
    if (!v) return ok();
    if (!v->is_string() || (!allow_empty && v->get_ref<const std::string&>().empty()))
      return expected(key, allow_empty ? "a string" : "a non-empty string", *v);
    out = v->get<std::string>();
    return true;
  }

  bool get_bool(std::string_view key, bool& out) {
    const nlohmann::json* v = find(key);
    if (!v) return ok();
    if (!v->is_boolean()) return expected(key, "true or false", *v);
    out = v->get<bool>();
    return true;
  }

  // A whole number from `min` to `max`.
  template <class Int>
  bool get_int(std::string_view key, Int& out, Int min, Int max) {
    const nlohmann::json* v = find(key);
    if (!v) return ok();
    bool in_range = false;
    if (v->is_number_unsigned()) {
      const uint64_t n = v->get<uint64_t>();
      in_range = less_equal(min, n) && less_equal(n, max);
    } else if (v->is_number_integer()) {
      const int64_t n = v->get<int64_t>();
      in_range = less_equal(min, n) && less_equal(n, max);
    }
    if (!in_range) {
      return fail(key, "expected an integer from " + std::to_string(min) + " to " +
                           std::to_string(max) + ", got " + v->dump());
    }
    out = v->get<Int>();
    return true;
  }

  // An array of non-empty strings (empty array allowed unless `non_empty`).
  bool get_strings(std::string_view key, std::vector<std::string>& out, bool non_empty = false) {
    const nlohmann::json* v = find(key);
    if (!v) return ok();
    if (!v->is_array()) return expected(key, "an array of strings", *v);
    if (non_empty && v->empty()) return fail(key, "must not be empty");
    std::vector<std::string> list;
    for (size_t i = 0; i < v->size(); ++i) {
      const nlohmann::json& s = (*v)[i];
      if (!s.is_string() || s.get_ref<const std::string&>().empty())
        return expected(std::string(key) + "[" + std::to_string(i) + "]", "a non-empty string", s);
      list.push_back(s.get<std::string>());
    }
    out = std::move(list);
    return true;
  }

  // The object under `key`, read with the same rules; an absent key reads as
  // an empty object. A wrong type fails here, and the child refuses to read.
  Settings object(std::string_view key) {
    const nlohmann::json* v = find(key);
    if (v && !v->is_object()) expected(key, "an object", *v);
    Settings child(v && ok() ? *v : empty_object(), path(key));
    if (!ok()) child.error_ = error_;
    return child;
  }

  // Records an error found by the caller's own checks of `key`.
  bool fail(std::string_view key, std::string_view what) {
    return fail_at("setting '" + path(key) + "'", what);
  }

  // Takes the first error of a child reader (from object()) into this one.
  bool merge(const Settings& child) {
    if (ok() && !child.ok()) error_ = child.error_;
    return ok();
  }

 private:
  // a <= b for integers of any signedness (std::cmp_less_equal is C++20; the
  // SDK's headers stay C++17).
  template <class A, class B>
  static constexpr bool less_equal(A a, B b) {
    if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) {
      return a <= b;
    } else if constexpr (std::is_signed_v<A>) {
      return a < 0 || static_cast<std::make_unsigned_t<A>>(a) <= b;
    } else {
      return b >= 0 && a <= static_cast<std::make_unsigned_t<B>>(b);
    }
  }

  static const nlohmann::json& empty_object() {
    static const nlohmann::json empty = nlohmann::json::object();
    return empty;
  }

  bool expected(std::string_view key, std::string_view what, const nlohmann::json& got) {
    return fail(key, "expected " + std::string(what) + ", got " + got.type_name());
  }

  bool fail_at(const std::string& where, std::string_view what) {
    if (ok()) error_ = where + ": " + std::string(what);
    return false;
  }

  const nlohmann::json& object_;
  std::string path_;
  std::string error_;
};

}  // namespace v1
}  // namespace backbone::sdk
