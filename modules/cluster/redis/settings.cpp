// SPDX-License-Identifier: GPL-3.0-or-later
#include "settings.hpp"

#include <backbone/sdk.hpp>
#include <backbone/json.hpp>
#include <backbone/settings.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>

namespace backbone::modules::redis {

bool parse_settings(const nlohmann::json& doc, Settings& out, std::string& error) {
  if (doc.is_null()) return true;
  sdk::Settings s(doc);
  std::string address, password_file;
  s.known({"address", "prefix", "username", "password_file", "timeout_ms", "max_pending_bytes",
           "node", "stream_max_entries", "shared_strategy"});
  s.get_string("address", address);
  s.get_string("prefix", out.prefix, /*allow_empty=*/true);
  s.get_string("username", out.username, /*allow_empty=*/true);
  s.get_string("password_file", password_file);
  s.get_int<uint32_t>("timeout_ms", out.timeout_ms, 1, 60000);
  s.get_int<uint64_t>("max_pending_bytes", out.max_pending_bytes, 1, UINT64_MAX);
  s.get_string("node", out.node);
  s.get_int<uint64_t>("stream_max_entries", out.stream_max_entries, 100, 1000000000);
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
  if (s.has("address")) {
    const size_t colon = address.rfind(':');
    const std::string port = colon == std::string::npos ? "" : address.substr(colon + 1);
    if (colon == std::string::npos || colon == 0 || port.empty()) {
      s.fail("address", "expected \"host:port\", got \"" + address + "\"");
    } else if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
               std::stoi(port) < 1 || std::stoi(port) > 65535) {
      s.fail("address", "port must be 1-65535, got \"" + port + "\"");
    } else {
      out.host = address.substr(0, colon);
      out.port = std::stoi(port);
    }
  }
  if (s.has("prefix") && (out.prefix.empty() || out.prefix.size() > 128))
    s.fail("prefix", "expected 1-128 characters");
  if (s.has("node") && (out.node.size() > 128 ||
                        std::any_of(out.node.begin(), out.node.end(),
                                    [](unsigned char c) { return c <= ' ' || c >= 0x7f; })))
    s.fail("node", "expected 1-128 printable characters without spaces");
  if (s.has("password_file")) {
    std::string read_error;
    std::optional<std::string> pw = sdk::read_file(password_file, read_error);
    if (!pw) {
      s.fail("password_file", read_error.empty() ? password_file + ": no such file" : read_error);
    } else {
      while (!pw->empty() && (pw->back() == '\n' || pw->back() == '\r')) pw->pop_back();
      out.password = std::move(*pw);
    }
  }
  error = s.error();
  return s.ok();
}

}  // namespace backbone::modules::redis
