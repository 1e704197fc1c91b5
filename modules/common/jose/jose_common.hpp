// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Pieces of JWS/JWT handling (RFC 7515, 7518, 7519) that every token
// authenticator needs the same way.

#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace backbone::modules::jose {

// Bounds on untrusted tokens, checked before any decoding.
inline constexpr size_t kMaxTokenSize = 64 * 1024;
inline constexpr size_t kMaxHeaderSize = 4096;  // the base64url header

// Dates beyond this are clamped: far enough for any real token, and safe to
// add a leeway to without overflow.
inline constexpr int64_t kMaxDate = int64_t{1} << 62;

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// Attacker-controlled text made safe for one log line.
std::string printable(std::string_view s, size_t max = 40);

// base64url without padding; nullopt for anything else, including non-zero
// leftover bits (so every byte string has exactly one encoding).
std::optional<std::string> base64url_decode(std::string_view in);

// NumericDate (RFC 7519 §2): seconds, possibly fractional; nullopt if not a
// finite number.
std::optional<int64_t> numeric_date(const nlohmann::json& v);

// Verifies `sig` over `data` with `key` and digest `md`; `pss` selects
// RSA-PSS padding with a salt as long as the hash (RFC 7518 §3.5).
bool digest_verify(EVP_PKEY* key, const EVP_MD* md, bool pss, std::string_view data,
                   const unsigned char* sig, size_t sig_len);

// A JWS ECDSA signature: fixed-size r || s of `component_size` bytes each
// (RFC 7518 §3.4), which OpenSSL verifies as DER.
bool ecdsa_verify(EVP_PKEY* key, const EVP_MD* md, size_t component_size, std::string_view data,
                  std::string_view signature);

}  // namespace backbone::modules::jose
