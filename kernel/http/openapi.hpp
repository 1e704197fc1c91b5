// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <nlohmann/json.hpp>

namespace backbone::kernel::http {

class RouteTable;

// The OpenAPI 3 document of every route in `routes`: each route's methods
// with its summary, security, 401/403 answers and declared management actions
// on BB_HTTP_AUTH routes (also on paths a module describes itself), and
// what the module adds in its route's openapi object (path items of its own
// when the object's keys are paths).
nlohmann::json openapi_document(const RouteTable& routes);

}  // namespace backbone::kernel::http
