// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: tokens and key sets as the jwt and oidc authenticators
// read them. Input: a JOSE header, NUL, the claims. They are signed here
// (HS256) so that the jwt verifier gets past the signature to the claims and
// their statements; the input is also tried as a token as it is, and as a
// JWKS document.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <backbone/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwt/jwt_verifier.hpp"
#include "common/base64/base64.hpp"
#include "common/jose/jwks.hpp"

namespace jwt = backbone::modules::jwt;
namespace jose = backbone::modules::jose;
using backbone::modules::base64url_encode;

namespace {

constexpr std::string_view kSecret = "fuzz-secret-fuzz-secret-fuzz-secret";
constexpr int64_t kNow = 1700000000;

jwt::VerifierConfig config() {
  jwt::VerifierConfig c;
  c.secret = kSecret;
  c.algorithms = {jwt::find_algorithm("HS256")};
  return c;
}

std::string signed_token(std::string_view header, std::string_view claims) {
  std::string input = base64url_encode(header) + "." + base64url_encode(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_size = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &mac_size);
  return input + "." +
         base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), mac_size));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const jwt::Verifier verifier(config());
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  if (nul != std::string_view::npos) {
    verifier.verify(signed_token(in.substr(0, nul), in.substr(nul + 1)), kNow);
  }
  verifier.verify(in, kNow);
  std::string error;
  jose::parse_header(in, error);
  const nlohmann::json jwks = backbone::sdk::parse_json(in);
  if (!jwks.is_discarded()) {
    std::vector<jose::Jwk> keys;
    std::vector<std::string> skipped;
    jose::parse_jwks(jwks, keys, skipped, error);
  }
  return 0;
}
