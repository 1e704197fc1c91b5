// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Tokens verified against a JWKS (an OpenID Connect issuer's keys): JWKS
// parsing into OpenSSL keys, JWS (compact serialization) signature checks
// with the asymmetric algorithms, and the claim checks of an OpenID Connect
// token. CPU-only and free of I/O, so it may run on kernel workers.

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include "common/jose/jose_common.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::jose {

enum class KeyType { kRsa, kEc };

struct Algorithm {
  std::string_view name;  // "RS256"
  KeyType type;
  bool pss;                   // RSASSA-PSS (PS*) instead of PKCS#1 v1.5
  const EVP_MD* (*digest)();  // EVP_sha256 ...
  std::string_view curve;     // JWK "crv" for ES*, empty otherwise
  size_t ec_component_size;   // bytes of r and of s for ES*, 0 otherwise
};

// The asymmetric algorithm named `name`, or nullptr ("none", HS*, unknown).
const Algorithm* find_algorithm(std::string_view name) noexcept;

struct Jwk {
  std::string kid;  // may be empty
  KeyType type = KeyType::kRsa;
  std::string crv;  // "P-256" ... for EC keys
  std::string alg;  // the JWK's own "alg" when present: the token's must equal it
  Pkey key;
};

// The verification material of one issuer, immutable once built: shared by
// every thread that verifies a token.
struct KeySet {
  std::string issuer;
  std::vector<Jwk> keys;
  const Jwk* find(std::string_view kid) const noexcept;
};

// Parses a JWKS document. Keys that cannot be used for signature
// verification (kty "oct", use "enc", unknown curves, RSA < 2048 bits,
// malformed members) are skipped and described in `skipped`. Returns false
// with `error` when the document itself is malformed.
bool parse_jwks(const nlohmann::json& doc, std::vector<Jwk>& out, std::vector<std::string>& skipped,
                std::string& error);

// The parts of a token that key selection needs, parsed without trusting it.
struct TokenHeader {
  const Algorithm* alg = nullptr;
  std::string kid;  // empty when absent
};

// Splits and checks the header. On failure returns nullopt and sets `error`
// (a log reason: never contains the token).
std::optional<TokenHeader> parse_header(std::string_view token, std::string& error);

struct ClaimRules {
  std::string audience;     // client_id
  std::string group_field;  // "groups"; a dotted path into nested objects also works
  std::string admin_group;  // empty = no such role
  std::string writer_group;
  std::string reader_group;
  int64_t leeway_s = 30;
};

enum class Role : unsigned { kNone = 0, kReader = 1, kWriter = 2, kAdmin = 4 };

struct Verdict {
  enum Kind {
    kAllow,      // signature and claims good, at least one role
    kForbidden,  // signature and claims good, no role
    kDeny,       // bad token
    kNoKey,      // no key of `keys` fits the token: refetching the JWKS may help
  } kind = kDeny;
  std::string reason;  // for the log only; never contains the token
  std::string principal;
  unsigned roles = 0;  // Role bits
  int64_t expires_at_unix_s = 0;
};

// Verifies `token` against `keys` and `rules` at time `now`.
Verdict verify_token(std::string_view token, const TokenHeader& header, const KeySet& keys,
                     const ClaimRules& rules, int64_t now);

}  // namespace backbone::modules::jose
