// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/jose/jose_common.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <cmath>
#include <memory>

namespace backbone::modules::jose {
namespace {

struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* s) const noexcept { ECDSA_SIG_free(s); }
};

}  // namespace

std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

std::optional<std::string> base64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '-') {
      v = 62;
    } else if (c == '_') {
      v = 63;
    } else {
      return std::nullopt;
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xffu));
    }
  }
  if ((acc & ((1u << bits) - 1u)) != 0) return std::nullopt;
  return out;
}

std::optional<int64_t> numeric_date(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return u > static_cast<uint64_t>(kMaxDate) ? kMaxDate : static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    return i < -kMaxDate ? -kMaxDate : (i > kMaxDate ? kMaxDate : i);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return std::nullopt;
    if (d >= static_cast<double>(kMaxDate)) return kMaxDate;
    if (d <= -static_cast<double>(kMaxDate)) return -kMaxDate;
    return static_cast<int64_t>(std::floor(d));
  }
  return std::nullopt;
}

bool digest_verify(EVP_PKEY* key, const EVP_MD* md, bool pss, std::string_view data,
                   const unsigned char* sig, size_t sig_len) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key) == 1;
  if (ok && pss) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
  }
  ok =
      ok && EVP_DigestVerify(ctx.get(), sig, sig_len,
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  ERR_clear_error();
  return ok;
}

bool ecdsa_verify(EVP_PKEY* key, const EVP_MD* md, size_t component_size, std::string_view data,
                  std::string_view signature) {
  const size_t n = component_size;
  if (signature.size() != 2 * n) return false;
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> ec(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(sig, static_cast<int>(n), nullptr);
  BIGNUM* s = BN_bin2bn(sig + n, static_cast<int>(n), nullptr);
  if (!ec || r == nullptr || s == nullptr || ECDSA_SIG_set0(ec.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(ec.get(), &der);
  if (der_len <= 0) return false;
  const bool ok = digest_verify(key, md, false, data, der, static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return ok;
}

}  // namespace backbone::modules::jose
