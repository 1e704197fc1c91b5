// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/jose/jwks.hpp"

#include <backbone/json.hpp>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <set>

namespace backbone::modules::jose {

namespace {

using Json = nlohmann::json;

constexpr size_t kMaxKeys = 100;
constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 16384;

const Algorithm kAlgorithms[] = {
    {"RS256", KeyType::kRsa, false, &EVP_sha256, "", 0},
    {"RS384", KeyType::kRsa, false, &EVP_sha384, "", 0},
    {"RS512", KeyType::kRsa, false, &EVP_sha512, "", 0},
    {"PS256", KeyType::kRsa, true, &EVP_sha256, "", 0},
    {"PS384", KeyType::kRsa, true, &EVP_sha384, "", 0},
    {"PS512", KeyType::kRsa, true, &EVP_sha512, "", 0},
    {"ES256", KeyType::kEc, false, &EVP_sha256, "P-256", 32},
    {"ES384", KeyType::kEc, false, &EVP_sha384, "P-384", 48},
    {"ES512", KeyType::kEc, false, &EVP_sha512, "P-521", 66},
};

struct Curve {
  std::string_view jwk_name;
  const char* openssl_name;
  size_t size;
};
const Curve kCurves[] = {
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
};

struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
};
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* b) const noexcept { OSSL_PARAM_BLD_free(b); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
struct BnDeleter {
  void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnDeleter>;

// A public key from OSSL_PARAMs built by `fill`; nullptr on failure.
template <class F>
Pkey key_from_params(const char* type, F&& fill) {
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (!bld || !fill(bld.get())) return nullptr;
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  return Pkey(raw);
}

// A base64url member of a JWK, decoded.
std::optional<std::string> b64_member(const Json& jwk, const char* name, std::string& error) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    error = std::string("member '") + name + "' missing or not a string";
    return std::nullopt;
  }
  auto out = base64url_decode(it->get_ref<const std::string&>());
  if (!out || out->empty()) {
    error = std::string("member '") + name + "' is not base64url";
    return std::nullopt;
  }
  return out;
}

Pkey rsa_key(const Json& jwk, std::string& error) {
  auto n = b64_member(jwk, "n", error);
  if (!n) return nullptr;
  auto e = b64_member(jwk, "e", error);
  if (!e) return nullptr;
  if (e->size() > 8) {
    error = "member 'e' is too large";
    return nullptr;
  }
  Bn bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()), static_cast<int>(n->size()),
                    nullptr));
  Bn bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()), static_cast<int>(e->size()),
                    nullptr));
  if (!bn_n || !bn_e) {
    error = "out of memory";
    return nullptr;
  }
  const int bits = BN_num_bits(bn_n.get());
  if (bits < kMinRsaBits || bits > kMaxRsaBits) {
    error = "RSA modulus of " + std::to_string(bits) +
            " bits (accepted: " + std::to_string(kMinRsaBits) + " to " +
            std::to_string(kMaxRsaBits) + ")";
    return nullptr;
  }
  if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get())) {
    error = "member 'e' is not a valid RSA public exponent";
    return nullptr;
  }
  Pkey key = key_from_params("RSA", [&](OSSL_PARAM_BLD* b) {
    return OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn_n.get()) == 1 &&
           OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, bn_e.get()) == 1;
  });
  if (!key) error = "OpenSSL refused the RSA key";
  return key;
}

Pkey ec_key(const Json& jwk, std::string& crv_out, std::string& error) {
  auto crv = jwk.find("crv");
  if (crv == jwk.end() || !crv->is_string()) {
    error = "member 'crv' missing or not a string";
    return nullptr;
  }
  const Curve* curve = nullptr;
  for (const auto& c : kCurves) {
    if (c.jwk_name == crv->get_ref<const std::string&>()) curve = &c;
  }
  if (curve == nullptr) {
    error = "unsupported curve '" + printable(crv->get_ref<const std::string&>()) + "'";
    return nullptr;
  }
  auto x = b64_member(jwk, "x", error);
  if (!x) return nullptr;
  auto y = b64_member(jwk, "y", error);
  if (!y) return nullptr;
  // RFC 7518 §6.2.1.2: the coordinates are full-length octet strings.
  if (x->size() != curve->size || y->size() != curve->size) {
    error = "members 'x'/'y' are not " + std::to_string(curve->size) + " bytes long";
    return nullptr;
  }
  std::string point = "\x04" + *x + *y;  // SEC1 uncompressed
  Pkey key = key_from_params("EC", [&](OSSL_PARAM_BLD* b) {
    return OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, curve->openssl_name, 0) ==
               1 &&
           OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                            point.size()) == 1;
  });
  if (key) {
    // The point must lie on the curve (invalid-curve attacks).
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) key.reset();
    ERR_clear_error();
  }
  if (!key) {
    error = "OpenSSL refused the EC point";
    return nullptr;
  }
  crv_out = curve->jwk_name;
  return key;
}

bool verify_signature(const Algorithm& alg, EVP_PKEY* key, std::string_view signing_input,
                      const std::string& signature) {
  if (alg.type == KeyType::kRsa) {
    if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(key))) return false;
    return digest_verify(key, alg.digest(), alg.pss, signing_input,
                         reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size());
  }
  return ecdsa_verify(key, alg.digest(), alg.ec_component_size, signing_input, signature);
}

// Can `jwk` verify a token signed with `alg`?
bool fits(const Jwk& jwk, const Algorithm& alg) {
  if (jwk.type != alg.type) return false;
  if (alg.type == KeyType::kEc && jwk.crv != alg.curve) return false;
  return jwk.alg.empty() || jwk.alg == alg.name;
}

// The claim at `field`: a top-level member of that exact name, else a dotted
// path through nested objects ("realm_access.roles").
const Json* find_claim(const Json& payload, const std::string& field) {
  if (auto it = payload.find(field); it != payload.end()) return &*it;
  const Json* at = &payload;
  size_t start = 0;
  while (start <= field.size()) {
    const size_t dot = std::min(field.find('.', start), field.size());
    if (!at->is_object()) return nullptr;
    auto it = at->find(field.substr(start, dot - start));
    if (it == at->end()) return nullptr;
    at = &*it;
    start = dot + 1;
  }
  return at;
}

}  // namespace

const Algorithm* find_algorithm(std::string_view name) noexcept {
  for (const auto& a : kAlgorithms) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

const Jwk* KeySet::find(std::string_view kid) const noexcept {
  for (const auto& k : keys) {
    if (k.kid == kid) return &k;
  }
  return nullptr;
}

bool parse_jwks(const Json& doc, std::vector<Jwk>& out, std::vector<std::string>& skipped,
                std::string& error) {
  if (!doc.is_object()) {
    error = std::string("JWKS: expected a JSON object, got ") + doc.type_name();
    return false;
  }
  auto keys = doc.find("keys");
  if (keys == doc.end() || !keys->is_array()) {
    error = "JWKS: member 'keys' missing or not an array";
    return false;
  }
  std::set<std::string> kids;
  for (size_t i = 0; i < keys->size(); ++i) {
    const Json& k = (*keys)[i];
    const std::string at = "key " + std::to_string(i);
    if (out.size() >= kMaxKeys) {
      skipped.push_back(at + " and later: more than " + std::to_string(kMaxKeys) + " keys");
      break;
    }
    if (!k.is_object()) {
      skipped.push_back(at + ": not an object");
      continue;
    }
    Jwk jwk;
    if (auto it = k.find("kid"); it != k.end()) {
      if (!it->is_string()) {
        skipped.push_back(at + ": member 'kid' is not a string");
        continue;
      }
      jwk.kid = it->get<std::string>();
    }
    const std::string label = jwk.kid.empty() ? at : at + " (kid '" + printable(jwk.kid) + "')";
    if (auto it = k.find("use"); it != k.end() && (!it->is_string() || *it != "sig")) {
      skipped.push_back(label + ": not a signature key ('use')");
      continue;
    }
    if (auto it = k.find("alg"); it != k.end()) {
      if (!it->is_string() || find_algorithm(it->get_ref<const std::string&>()) == nullptr) {
        skipped.push_back(label + ": algorithm " + it->dump() + " not supported");
        continue;
      }
      jwk.alg = it->get<std::string>();
    }
    auto kty = k.find("kty");
    if (kty == k.end() || !kty->is_string()) {
      skipped.push_back(label + ": member 'kty' missing or not a string");
      continue;
    }
    std::string why;
    if (*kty == "RSA") {
      jwk.type = KeyType::kRsa;
      jwk.key = rsa_key(k, why);
    } else if (*kty == "EC") {
      jwk.type = KeyType::kEc;
      jwk.key = ec_key(k, jwk.crv, why);
    } else {
      why = "key type '" + printable(kty->get_ref<const std::string&>()) + "' not supported";
    }
    if (!jwk.key) {
      skipped.push_back(label + ": " + why);
      continue;
    }
    if (!jwk.alg.empty()) {
      const Algorithm* a = find_algorithm(jwk.alg);
      if (a->type != jwk.type || (a->type == KeyType::kEc && a->curve != jwk.crv)) {
        skipped.push_back(label + ": algorithm '" + jwk.alg + "' does not fit the key");
        continue;
      }
    }
    if (!jwk.kid.empty() && !kids.insert(jwk.kid).second) {
      skipped.push_back(label + ": duplicate kid");
      continue;
    }
    out.push_back(std::move(jwk));
  }
  return true;
}

std::optional<TokenHeader> parse_header(std::string_view token, std::string& error) {
  if (token.empty()) {
    error = "malformed token: empty password";
    return std::nullopt;
  }
  if (token.size() > kMaxTokenSize) {
    error = "malformed token: longer than " + std::to_string(kMaxTokenSize) + " bytes";
    return std::nullopt;
  }
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    error = "malformed token: not a JWS in compact serialization (3 parts)";
    return std::nullopt;
  }
  if (dot1 > kMaxHeaderSize) {
    error = "malformed token: header too large";
    return std::nullopt;
  }
  auto text = base64url_decode(token.substr(0, dot1));
  if (!text) {
    error = "malformed token: header is not base64url";
    return std::nullopt;
  }
  Json header = sdk::parse_json(*text);
  if (header.is_discarded() || !header.is_object()) {
    error = "malformed token: header is not a JSON object";
    return std::nullopt;
  }
  auto alg = header.find("alg");
  if (alg == header.end() || !alg->is_string()) {
    error = "malformed token: header 'alg' missing or not a string";
    return std::nullopt;
  }
  TokenHeader out;
  out.alg = find_algorithm(alg->get_ref<const std::string&>());
  if (out.alg == nullptr) {
    error = "algorithm '" + printable(alg->get_ref<const std::string&>()) +
            "' refused (accepted: RS256/384/512, PS256/384/512, ES256/384/512)";
    return std::nullopt;
  }
  if (header.contains("crit")) {
    error = "malformed token: header 'crit' is not supported";
    return std::nullopt;
  }
  if (auto kid = header.find("kid"); kid != header.end()) {
    if (!kid->is_string()) {
      error = "malformed token: header 'kid' is not a string";
      return std::nullopt;
    }
    out.kid = kid->get<std::string>();
  }
  return out;
}

Verdict verify_token(std::string_view token, const TokenHeader& header, const KeySet& keys,
                     const ClaimRules& rules, int64_t now) {
  Verdict v;
  auto fail = [&v](Verdict::Kind kind, std::string reason) {
    v.kind = kind;
    v.reason = std::move(reason);
    return v;
  };
  const Algorithm& alg = *header.alg;
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.find('.', dot1 + 1);
  const std::string_view signing_input = token.substr(0, dot2);
  std::optional<std::string> signature = base64url_decode(token.substr(dot2 + 1));
  if (!signature) return fail(Verdict::kDeny, "malformed token: signature is not base64url");

  // The key comes from the JWKS, chosen by kid, and must fit the algorithm;
  // the header can never turn a public key into an HMAC secret.
  bool verified = false;
  if (!header.kid.empty()) {
    const Jwk* jwk = keys.find(header.kid);
    if (jwk == nullptr) {
      return fail(Verdict::kNoKey, "unknown key id '" + printable(header.kid) + "'");
    }
    if (!fits(*jwk, alg)) {
      return fail(Verdict::kDeny, "algorithm '" + std::string(alg.name) + "' does not fit key '" +
                                      printable(header.kid) + "'");
    }
    verified = verify_signature(alg, jwk->key.get(), signing_input, *signature);
    if (!verified) return fail(Verdict::kDeny, "bad signature");
  } else {
    bool any = false;
    for (const auto& jwk : keys.keys) {
      if (!fits(jwk, alg)) continue;
      any = true;
      if (verify_signature(alg, jwk.key.get(), signing_input, *signature)) {
        verified = true;
        break;
      }
    }
    if (!verified) {
      return fail(Verdict::kNoKey, any ? "bad signature (token without kid; no key verifies it)"
                                       : "no " + std::string(alg.name) + " key in the JWKS");
    }
  }

  std::optional<std::string> payload_text =
      base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload_text) return fail(Verdict::kDeny, "malformed token: payload is not base64url");
  Json payload = sdk::parse_json(*payload_text);
  if (payload.is_discarded() || !payload.is_object()) {
    return fail(Verdict::kDeny, "malformed token: payload is not a JSON object");
  }

  const int64_t leeway = rules.leeway_s;
  auto exp_it = payload.find("exp");
  if (exp_it == payload.end()) return fail(Verdict::kDeny, "claim 'exp' missing");
  std::optional<int64_t> exp = numeric_date(*exp_it);
  if (!exp) return fail(Verdict::kDeny, "malformed token: claim 'exp' is not a number");
  if (now >= *exp + leeway) {
    return fail(Verdict::kDeny, "token expired (exp " + std::to_string(*exp) + ", now " +
                                    std::to_string(now) + ", leeway " + std::to_string(leeway) +
                                    " s)");
  }
  if (auto it = payload.find("nbf"); it != payload.end()) {
    std::optional<int64_t> nbf = numeric_date(*it);
    if (!nbf) return fail(Verdict::kDeny, "malformed token: claim 'nbf' is not a number");
    if (now + leeway < *nbf) {
      return fail(Verdict::kDeny, "token not yet valid (nbf " + std::to_string(*nbf) + ", now " +
                                      std::to_string(now) + ", leeway " + std::to_string(leeway) +
                                      " s)");
    }
  }
  auto iss = payload.find("iss");
  if (iss == payload.end() || !iss->is_string()) {
    return fail(Verdict::kDeny, "claim 'iss' missing or not a string");
  }
  if (*iss != keys.issuer) {
    return fail(Verdict::kDeny, "claim 'iss' ('" + printable(iss->get_ref<const std::string&>()) +
                                    "') is not the issuer '" + printable(keys.issuer, 200) + "'");
  }
  auto aud = payload.find("aud");
  bool aud_ok = false;
  if (aud != payload.end() && aud->is_string()) {
    aud_ok = *aud == rules.audience;
  } else if (aud != payload.end() && aud->is_array()) {
    for (const auto& a : *aud) aud_ok = aud_ok || (a.is_string() && a == rules.audience);
  }
  if (!aud_ok) return fail(Verdict::kDeny, "claim 'aud' does not contain the client_id");

  for (const char* name : {"preferred_username", "sub"}) {
    auto it = payload.find(name);
    if (it != payload.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
      v.principal = printable(it->get_ref<const std::string&>(), 200);
      break;
    }
  }
  if (v.principal.empty()) v.principal = "oidc";
  v.expires_at_unix_s = *exp;

  std::vector<std::string> groups;
  const Json* claim = find_claim(payload, rules.group_field);
  if (claim != nullptr && claim->is_string()) {
    groups.push_back(claim->get<std::string>());
  } else if (claim != nullptr && claim->is_array()) {
    for (const auto& g : *claim) {
      if (g.is_string()) groups.push_back(g.get<std::string>());
    }
  }
  for (const auto& g : groups) {
    if (!rules.admin_group.empty() && g == rules.admin_group) {
      v.roles |= static_cast<unsigned>(Role::kAdmin);
    }
    if (!rules.writer_group.empty() && g == rules.writer_group) {
      v.roles |= static_cast<unsigned>(Role::kWriter);
    }
    if (!rules.reader_group.empty() && g == rules.reader_group) {
      v.roles |= static_cast<unsigned>(Role::kReader);
    }
  }
  if (v.roles == 0) {
    v.kind = Verdict::kForbidden;
    v.reason = claim == nullptr
                   ? "claim '" + printable(rules.group_field, 100) + "' missing: no role"
                   : "none of the groups in claim '" + printable(rules.group_field, 100) +
                         "' maps to a role";
    return v;
  }
  v.kind = Verdict::kAllow;
  return v;
}

}  // namespace backbone::modules::jose
