// SPDX-License-Identifier: GPL-3.0-or-later
#include "jwt_mint.hpp"

#include <jwt/jwt.hpp>

namespace backbone::modules::jwt {

std::string mint_hmac(std::string_view alg, const std::string& secret, const nlohmann::json& claims,
                      std::string& error) {
  try {
    ::jwt::jwt_object token{::jwt::params::algorithm(::jwt::string_view(alg.data(), alg.size())),
                            ::jwt::params::secret(secret)};
    for (const auto& [name, value] : claims.items()) token.add_claim(name, value);
    std::error_code ec;
    std::string text = token.signature(ec);
    if (ec) {
      error = ec.message();
      return {};
    }
    return text;
  } catch (const std::exception& e) {
    error = e.what();
    return {};
  }
}

}  // namespace backbone::modules::jwt
