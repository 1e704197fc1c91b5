// SPDX-License-Identifier: GPL-3.0-or-later
#include "settings.hpp"

#include <backbone/sdk.hpp>

#include <optional>

namespace backbone::modules::redis {

bool parse_settings(const nlohmann::json& doc, Settings& out, std::string& error) {
  if (doc.is_null()) return true;
  if (doc.is_discarded() || !doc.is_object()) {
    error = "settings: expected a JSON object";
    return false;
  }
  auto bad = [&error](const std::string& key, const std::string& why) {
    error = "setting '" + key + "': " + why;
    return false;
  };
  for (const auto& [key, value] : doc.items()) {
    if (key == "address") {
      if (!value.is_string()) return bad(key, "expected \"host:port\"");
      const std::string a = value.get<std::string>();
      const size_t colon = a.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == a.size())
        return bad(key, "expected \"host:port\", got \"" + a + "\"");
      const std::string port = a.substr(colon + 1);
      if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
          std::stoi(port) < 1 || std::stoi(port) > 65535)
        return bad(key, "port must be 1-65535, got \"" + port + "\"");
      out.host = a.substr(0, colon);
      out.port = std::stoi(port);
    } else if (key == "prefix" || key == "username") {
      if (!value.is_string()) return bad(key, "expected a string");
      std::string s = value.get<std::string>();
      if (key == "prefix" && (s.empty() || s.size() > 128))
        return bad(key, "expected 1-128 characters");
      (key == "prefix" ? out.prefix : out.username) = std::move(s);
    } else if (key == "password_file") {
      if (!value.is_string()) return bad(key, "expected a file path");
      std::string read_error;
      std::optional<std::string> pw = sdk::read_file(value.get<std::string>(), read_error);
      if (!pw)
        return bad(key,
                   read_error.empty() ? value.get<std::string>() + ": no such file" : read_error);
      while (!pw->empty() && (pw->back() == '\n' || pw->back() == '\r')) pw->pop_back();
      out.password = std::move(*pw);
    } else if (key == "timeout_ms" || key == "max_pending_bytes") {
      const bool timeout = key == "timeout_ms";
      if (!value.is_number_unsigned() || value.get<uint64_t>() == 0 ||
          (timeout && value.get<uint64_t>() > 60000))
        return bad(key, timeout ? "expected 1-60000" : "expected a positive integer");
      if (timeout)
        out.timeout_ms = value.get<uint32_t>();
      else
        out.max_pending_bytes = value.get<uint64_t>();
    } else {
      return bad(key,
                 "unknown key (known: address, prefix, username, password_file, timeout_ms, "
                 "max_pending_bytes)");
    }
  }
  return true;
}

}  // namespace backbone::modules::redis
