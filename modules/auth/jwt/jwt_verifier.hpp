// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// JWS compact-serialization verification with a pinned algorithm set, done
// directly with OpenSSL so that no token header can choose the key type.

#include <backbone/module_abi.h>
#include <openssl/evp.h>
#include <backbone/statements.hpp>
#include <nlohmann/json.hpp>

#include "common/jose/jose_common.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::jwt {

enum class Family { kHmac, kRsa, kEcdsa };

struct Algorithm {
  std::string_view name;  // "HS256"
  Family family;
  const EVP_MD* (*digest)();  // EVP_sha256 ...
  std::string_view curve;     // OpenSSL group name for ES*, empty otherwise
  size_t ec_component_size;   // bytes of r and of s for ES*, 0 otherwise
};

// The algorithm named `name`, or nullptr when Backbone does not support it.
const Algorithm* find_algorithm(std::string_view name) noexcept;

using jose::Pkey;

// Reads a PEM public key (SubjectPublicKeyInfo) or X.509 certificate.
// On failure returns nullptr and sets `error`.
Pkey load_public_key(const std::string& path, std::string& error);

// Why `key` cannot verify `alg` (empty when it can).
std::string key_mismatch(const Algorithm& alg, EVP_PKEY* key);

struct VerifierConfig {
  std::string secret;  // HMAC key; empty = no HS* algorithm
  Pkey public_key;     // RSA or EC key; null = no RS*/ES* algorithm
  std::vector<const Algorithm*> algorithms;
  int64_t leeway_s = 30;
  bool require_exp = false;
  std::optional<std::string> issuer;
  std::optional<std::string> audience;
};

struct Verdict {
  bool ok = false;
  std::string reason;  // why not: for the log only, never contains the token
  std::string principal;
  std::vector<sdk::Statement> statements;  // claim "statements", flattened
  int64_t expires_at_unix_s = 0;
  std::optional<bb_quotas> quotas;  // claim "quotas" (SPEC §6)
};

// Immutable after construction; verify() may run on many threads at once.
class Verifier {
 public:
  explicit Verifier(VerifierConfig config) noexcept : config_(std::move(config)) {}
  ~Verifier();
  Verifier(const Verifier&) = delete;
  Verifier& operator=(const Verifier&) = delete;

  Verdict verify(std::string_view token, int64_t now_unix_s) const;

  const VerifierConfig& config() const noexcept { return config_; }

 private:
  bool verify_signature(const Algorithm& alg, std::string_view signing_input,
                        const std::string& signature) const;

  VerifierConfig config_;
};

}  // namespace backbone::modules::jwt
