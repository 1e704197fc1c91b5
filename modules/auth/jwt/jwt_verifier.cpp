// SPDX-License-Identifier: GPL-3.0-or-later
#include "jwt_verifier.hpp"

#include "common/jose/jose_common.hpp"

#include <backbone/json.hpp>
#include <backbone/quotas.hpp>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

namespace backbone::modules::jwt {

using jose::base64url_decode;
using jose::kMaxDate;
using jose::kMaxHeaderSize;
using jose::kMaxTokenSize;
using jose::numeric_date;
using jose::printable;

namespace {

using Json = nlohmann::json;

const Algorithm kAlgorithms[] = {
    {"HS256", Family::kHmac, &EVP_sha256, "", 0},
    {"HS384", Family::kHmac, &EVP_sha384, "", 0},
    {"HS512", Family::kHmac, &EVP_sha512, "", 0},
    {"RS256", Family::kRsa, &EVP_sha256, "", 0},
    {"RS384", Family::kRsa, &EVP_sha384, "", 0},
    {"RS512", Family::kRsa, &EVP_sha512, "", 0},
    {"ES256", Family::kEcdsa, &EVP_sha256, "prime256v1", 32},
    {"ES384", Family::kEcdsa, &EVP_sha384, "secp384r1", 48},
    {"ES512", Family::kEcdsa, &EVP_sha512, "secp521r1", 66},
};

std::string curve_label(std::string_view curve) {
  if (curve == "prime256v1") return "P-256";
  if (curve == "secp384r1") return "P-384";
  if (curve == "secp521r1") return "P-521";
  return std::string(curve);
}

struct BioDeleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};

}  // namespace

const Algorithm* find_algorithm(std::string_view name) noexcept {
  for (const auto& a : kAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

Pkey load_public_key(const std::string& path, std::string& error) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read '" + path + "': " + (errno != 0 ? std::strerror(errno) : "open failed");
    return nullptr;
  }
  std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    error = "cannot read '" + path + "'";
    return nullptr;
  }
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    error = "out of memory reading '" + path + "'";
    return nullptr;
  }
  Pkey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    std::unique_ptr<BIO, BioDeleter> again(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    std::unique_ptr<X509, X509Deleter> cert(
        again ? PEM_read_bio_X509(again.get(), nullptr, nullptr, nullptr) : nullptr);
    if (cert) key.reset(X509_get_pubkey(cert.get()));
  }
  ERR_clear_error();
  if (!key) {
    error = "'" + path + "' holds no PEM public key or certificate";
    return nullptr;
  }
  return key;
}

std::string key_mismatch(const Algorithm& alg, EVP_PKEY* key) {
  if (alg.family == Family::kHmac) return {};
  if (key == nullptr) return std::string(alg.name) + " needs 'public_key_file'";
  const char* type = EVP_PKEY_get0_type_name(key);
  std::string held =
      std::string("'public_key_file' holds a key of type ") + (type ? type : "unknown");
  if (alg.family == Family::kRsa) {
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
      return std::string(alg.name) + " needs an RSA key, " + held;
    }
    if (EVP_PKEY_get_bits(key) < 2048) {
      return std::string(alg.name) + " needs an RSA key of at least 2048 bits, " +
             "'public_key_file' holds one of " + std::to_string(EVP_PKEY_get_bits(key));
    }
    return {};
  }
  std::string want = std::string(alg.name) + " needs an EC " + curve_label(alg.curve) + " key, ";
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return want + held;
  std::array<char, 64> group{};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &len) != 1 ||
      std::string_view(group.data(), len) != alg.curve) {
    ERR_clear_error();
    return want + "'public_key_file' holds an EC " +
           curve_label(std::string_view(group.data(), len)) + " key";
  }
  return {};
}

Verifier::~Verifier() {
  OPENSSL_cleanse(config_.secret.data(), config_.secret.size());
}

bool Verifier::verify_signature(const Algorithm& alg, std::string_view signing_input,
                                const std::string& signature) const {
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  switch (alg.family) {
    case Family::kHmac: {
      if (config_.secret.empty()) return false;
      std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
      unsigned int mac_len = 0;
      if (HMAC(alg.digest(), config_.secret.data(), static_cast<int>(config_.secret.size()),
               reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(),
               mac.data(), &mac_len) == nullptr) {
        ERR_clear_error();
        return false;
      }
      return signature.size() == mac_len && CRYPTO_memcmp(sig, mac.data(), mac_len) == 0;
    }
    case Family::kRsa: {
      EVP_PKEY* key = config_.public_key.get();
      if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) return false;
      if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(key))) return false;
      return jose::digest_verify(key, alg.digest(), false, signing_input, sig, signature.size());
    }
    case Family::kEcdsa: {
      EVP_PKEY* key = config_.public_key.get();
      if (key == nullptr || !key_mismatch(alg, key).empty()) return false;
      return jose::ecdsa_verify(key, alg.digest(), alg.ec_component_size, signing_input, signature);
    }
  }
  return false;
}

Verdict Verifier::verify(std::string_view token, int64_t now) const {
  Verdict v;
  auto fail = [&v](std::string reason) {
    v.ok = false;
    v.reason = std::move(reason);
    v.statements.clear();
    return std::move(v);
  };

  if (token.empty()) return fail("malformed token: empty");
  if (token.size() > kMaxTokenSize) return fail("malformed token: longer than 64 KiB");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail("malformed token: expected header.payload.signature");
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view signature_b64 = token.substr(dot2 + 1);

  // The header is read before the signature is checked: treat it as hostile.
  if (header_b64.size() > kMaxHeaderSize) return fail("malformed token: header too long");
  std::optional<std::string> header_text = base64url_decode(header_b64);
  if (!header_text) return fail("malformed token: header is not base64url");
  Json header = sdk::parse_json(*header_text);
  if (header.is_discarded() || !header.is_object()) {
    return fail("malformed token: header is not a JSON object");
  }
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) {
    return fail("malformed token: header 'alg' missing or not a string");
  }
  const std::string& alg_name = alg_it->get_ref<const std::string&>();
  std::string lowered;
  for (char c : alg_name) lowered += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lowered == "none") return fail("algorithm 'none' refused");
  const Algorithm* alg = find_algorithm(alg_name);
  bool configured = false;
  for (const Algorithm* a : config_.algorithms) configured = configured || a == alg;
  if (alg == nullptr || !configured) {
    return fail("algorithm '" + printable(alg_name) + "' not allowed");
  }
  // The key comes from the configuration, never from the token: an HS*
  // token is checked only against the secret and RS*/ES* only against the
  // public key, so a public key can never be used as an HMAC secret.
  const bool key_ok =
      alg->family == Family::kHmac
          ? !config_.secret.empty()
          : config_.public_key && key_mismatch(*alg, config_.public_key.get()).empty();
  if (!key_ok) return fail("algorithm '" + printable(alg_name) + "' not allowed (no matching key)");
  if (header.contains("crit")) return fail("malformed token: header 'crit' is not supported");

  std::optional<std::string> signature = base64url_decode(signature_b64);
  if (!signature) return fail("malformed token: signature is not base64url");
  if (!verify_signature(*alg, token.substr(0, dot2), *signature)) return fail("bad signature");

  std::optional<std::string> payload_text = base64url_decode(payload_b64);
  if (!payload_text) return fail("malformed token: payload is not base64url");
  Json payload = sdk::parse_json(*payload_text);
  if (payload.is_discarded() || !payload.is_object()) {
    return fail("malformed token: payload is not a JSON object");
  }

  const int64_t leeway = config_.leeway_s;
  if (auto it = payload.find("exp"); it != payload.end()) {
    std::optional<int64_t> exp = numeric_date(*it);
    if (!exp) return fail("malformed token: claim 'exp' is not a number");
    if (now >= *exp + leeway) {
      return fail("token expired (exp " + std::to_string(*exp) + ", now " + std::to_string(now) +
                  ", leeway " + std::to_string(leeway) + " s)");
    }
    v.expires_at_unix_s = *exp;
  } else if (config_.require_exp) {
    return fail("claim 'exp' missing (required by configuration)");
  }
  if (auto it = payload.find("nbf"); it != payload.end()) {
    std::optional<int64_t> nbf = numeric_date(*it);
    if (!nbf) return fail("malformed token: claim 'nbf' is not a number");
    if (now + leeway < *nbf) {
      return fail("token not yet valid (nbf " + std::to_string(*nbf) + ", now " +
                  std::to_string(now) + ", leeway " + std::to_string(leeway) + " s)");
    }
  }
  if (config_.issuer) {
    auto it = payload.find("iss");
    if (it == payload.end() || !it->is_string() || *it != *config_.issuer) {
      return fail("claim 'iss' does not match the configured issuer");
    }
  }
  if (config_.audience) {
    auto it = payload.find("aud");
    bool match = false;
    if (it != payload.end() && it->is_string()) {
      match = *it == *config_.audience;
    } else if (it != payload.end() && it->is_array()) {
      for (const auto& a : *it) match = match || (a.is_string() && a == *config_.audience);
    }
    if (!match) return fail("claim 'aud' does not match the configured audience");
  }
  v.principal = "jwt";
  if (auto it = payload.find("sub"); it != payload.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return fail("malformed token: claim 'sub' is not a non-empty string");
    }
    v.principal = it->get<std::string>();
  }
  auto st = payload.find("statements");
  if (st == payload.end()) return fail("bad statements: claim 'statements' missing");
  std::string error;
  if (!sdk::parse_statements(*st, "statements", v.statements, error))
    return fail("bad statements: " + error);
  if (auto q = payload.find("quotas"); q != payload.end()) {
    bb_quotas quotas{};
    if (!sdk::parse_quotas(*q, "claim 'quotas'", quotas, error))
      return fail("bad quotas: " + error);
    v.quotas = quotas;
  }
  v.ok = true;
  return v;
}

}  // namespace backbone::modules::jwt
