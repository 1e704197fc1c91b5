// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace backbone::modules::jwt {

// A compact JWS over `claims` signed with HMAC algorithm `alg` ("HS256"...)
// and `secret` (cpp-jwt). Empty with `error` set on failure.
std::string mint_hmac(std::string_view alg, const std::string& secret, const nlohmann::json& claims,
                      std::string& error);

}  // namespace backbone::modules::jwt
