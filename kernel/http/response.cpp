// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/response.hpp"

#include <nlohmann/json.hpp>

namespace backbone::kernel::http {

std::string error_body(std::string_view error, std::string_view message) {
  return nlohmann::json{{"error", error}, {"message", message}}.dump();
}

Response error_response(unsigned status, std::string_view error, std::string_view message) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = error_body(error, message);
  return r;
}

}  // namespace backbone::kernel::http
