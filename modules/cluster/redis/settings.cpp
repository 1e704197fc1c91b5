// SPDX-License-Identifier: GPL-3.0-or-later
#include "settings.hpp"

#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>

namespace backbone::modules::redis {
namespace {

// "host:port" into `out`; false with `why` set.
bool parse_endpoint(const std::string& text, Endpoint& out, std::string& why) {
  const size_t colon = text.rfind(':');
  const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (colon == std::string::npos || colon == 0 || port.empty()) {
    why = "expected \"host:port\", got \"" + text + "\"";
    return false;
  }
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) < 1 || std::stoi(port) > 65535) {
    why = "port must be 1-65535, got \"" + port + "\"";
    return false;
  }
  out.host = text.substr(0, colon);
  out.port = std::stoi(port);
  return true;
}

// A password file's first line; false with `why` set.
bool read_password(const std::string& path, std::string& out, std::string& why) {
  std::string read_error;
  std::optional<std::string> pw = sdk::read_file(path, read_error);
  if (!pw) {
    why = read_error.empty() ? path + ": no such file" : read_error;
    return false;
  }
  while (!pw->empty() && (pw->back() == '\n' || pw->back() == '\r')) pw->pop_back();
  out = std::move(*pw);
  return true;
}

}  // namespace

bool parse_settings(const nlohmann::json& doc, Settings& out, std::string& error) {
  if (doc.is_null()) return true;
  sdk::Settings s(doc);
  std::string address, password_file, sentinel_password_file;
  std::vector<std::string> sentinels;
  s.known({"address", "sentinels", "master_name", "sentinel_password_file", "prefix", "username",
           "password_file", "timeout_ms", "max_pending_bytes", "node", "stream_max_entries",
           "shared_strategy", "forget_after_s", "wait_replicas"});
  s.get_string("address", address);
  s.get_strings("sentinels", sentinels, /*non_empty=*/true);
  s.get_string("master_name", out.master_name);
  s.get_string("sentinel_password_file", sentinel_password_file);
  s.get_string("prefix", out.prefix, /*allow_empty=*/true);
  s.get_string("username", out.username, /*allow_empty=*/true);
  s.get_string("password_file", password_file);
  s.get_int<uint32_t>("timeout_ms", out.timeout_ms, 1, 60000);
  s.get_int<uint64_t>("max_pending_bytes", out.max_pending_bytes, 1, UINT64_MAX);
  s.get_string("node", out.node);
  s.get_int<uint64_t>("stream_max_entries", out.stream_max_entries, 100, 1000000000);
  s.get_int<uint32_t>("forget_after_s", out.forget_after_s, 60, 30 * 86400);
  s.get_int<uint32_t>("wait_replicas", out.wait_replicas, 0, 16);
  std::string strategy;
  if (s.get_string("shared_strategy", strategy) && s.has("shared_strategy")) {
    if (strategy == "local") {
      out.shared_strategy = Strategy::kLocal;
    } else if (strategy == "round_robin") {
      out.shared_strategy = Strategy::kRoundRobin;
    } else if (strategy == "random") {
      out.shared_strategy = Strategy::kRandom;
    } else {
      s.fail("shared_strategy", "expected \"local\", \"round_robin\" or \"random\", got \"" +
                                    sdk::printable_key(strategy) + "\"");
    }
  }
  std::string why;
  if (s.has("address")) {
    Endpoint e;
    if (s.has("sentinels")) {
      s.fail("address", "not with 'sentinels' (the sentinels name the master)");
    } else if (!parse_endpoint(address, e, why)) {
      s.fail("address", why);
    } else {
      out.host = e.host;
      out.port = e.port;
    }
  }
  if (s.has("sentinels")) {
    if (sentinels.size() > 16) s.fail("sentinels", "expected 1-16 entries");
    for (size_t i = 0; i < sentinels.size() && s.ok(); ++i) {
      Endpoint e;
      if (parse_endpoint(sentinels[i], e, why))
        out.sentinels.push_back(std::move(e));
      else
        s.fail("sentinels[" + std::to_string(i) + "]", why);
    }
  } else {
    for (const char* key : {"master_name", "sentinel_password_file"})
      if (s.has(key)) s.fail(key, "needs 'sentinels'");
  }
  if (s.has("master_name") && out.master_name.size() > 256)
    s.fail("master_name", "expected 1-256 characters");
  if (s.has("sentinel_password_file") &&
      !read_password(sentinel_password_file, out.sentinel_password, why))
    s.fail("sentinel_password_file", why);
  if (s.has("prefix") && (out.prefix.empty() || out.prefix.size() > 128))
    s.fail("prefix", "expected 1-128 characters");
  if (s.has("node") &&
      (out.node.size() > 128 || std::any_of(out.node.begin(), out.node.end(),
                                            [](unsigned char c) { return c <= ' ' || c >= 0x7f; })))
    s.fail("node", "expected 1-128 printable characters without spaces");
  if (s.has("password_file") && !read_password(password_file, out.password, why))
    s.fail("password_file", why);
  error = s.error();
  return s.ok();
}

}  // namespace backbone::modules::redis
