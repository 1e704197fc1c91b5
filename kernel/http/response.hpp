// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backbone::kernel::http {

// A response as the kernel writes it: a module's answer (copied from
// bb_http_response) or one of the kernel's own errors.
struct Response {
  unsigned status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close = false;  // end the connection after it
};

// The JSON body of every error the kernel answers itself:
// {"error": <error>, "message": <message>}.
std::string error_body(std::string_view error, std::string_view message);

Response error_response(unsigned status, std::string_view error, std::string_view message);

}  // namespace backbone::kernel::http
