// SPDX-License-Identifier: GPL-3.0-or-later
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <jwt/jwt.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "module_test_support.hpp"

namespace backbone::modules::jwt {
namespace {

using backbone::testing::AuthResult;
using backbone::testing::FakeHost;
using backbone::testing::Statement;
using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr const char* kSecret = "a-very-long-hmac-secret-for-the-tests-0123456789";

const bb_module_descriptor* descriptor() {
  return test::module_descriptor(BB_TEST_JWT_MODULE);
}

int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- token construction, independent of the module under test --------------

std::string b64url(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

std::string hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md, key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// A hand-made HS token with any header: for the attacks cpp-jwt refuses to mint.
std::string hs_token(const Json& header, const Json& payload, std::string_view key,
                     const EVP_MD* md = EVP_sha256()) {
  std::string input = b64url(header.dump()) + "." + b64url(payload.dump());
  return input + "." + b64url(hmac(md, key, input));
}

// A token minted by cpp-jwt, an independent implementation.
std::string cppjwt_token(const std::string& alg, const std::string& key, const Json& payload) {
  ::jwt::jwt_object obj{::jwt::params::algorithm(alg), ::jwt::params::secret(key)};
  for (const auto& item : payload.items()) obj.add_claim(item.key(), item.value());
  return obj.signature();
}

Json statements_claim() {
  return Json::array({
      {{"effect", "allow"},
       {"actions", {"mqtt:publish", "mqtt:subscribe"}},
       {"resources", {"sensors/+/temp", "alerts/#"}}},
      {{"effect", "disallow"}, {"actions", "mqtt:publish"}, {"resources", "alerts/secret"}},
  });
}

Json claims(Json extra = Json::object()) {
  Json p = {{"sub", "device-17"}, {"statements", statements_claim()}};
  for (const auto& item : extra.items()) p[item.key()] = item.value();
  return p;
}

std::vector<Statement> expected_statements() {
  return {
      {BB_EFFECT_ALLOW, "mqtt:publish", "sensors/+/temp"},
      {BB_EFFECT_ALLOW, "mqtt:publish", "alerts/#"},
      {BB_EFFECT_ALLOW, "mqtt:subscribe", "sensors/+/temp"},
      {BB_EFFECT_ALLOW, "mqtt:subscribe", "alerts/#"},
      {BB_EFFECT_DENY, "mqtt:publish", "alerts/secret"},
  };
}

// ---- keys generated at test time ---------------------------------------------

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<size_t>(len));
  BIO_free(bio);
  return s;
}

struct KeyPair {
  std::string private_pem;
  std::string public_pem;
  std::string public_file;
};

KeyPair make_key_pair(Pkey key, const std::string& file_name) {
  KeyPair kp;
  BIO* priv = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(priv, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  kp.private_pem = bio_text(priv);
  BIO* pub = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(pub, key.get());
  kp.public_pem = bio_text(pub);
  kp.public_file = test::temp_path(file_name);
  std::ofstream(kp.public_file) << kp.public_pem;
  return kp;
}

// Generated on first use (RSA generation is slow; ctest runs every test in a
// process of its own) and removed from disk at exit.
struct KeyFile {
  KeyPair pair;
  ~KeyFile() { std::remove(pair.public_file.c_str()); }
};
const KeyPair& rsa_key() {
  static KeyFile k{make_key_pair(Pkey(EVP_RSA_gen(2048)), "jwt_rsa.pem")};
  return k.pair;
}
const KeyPair& other_rsa_key() {
  static KeyFile k{make_key_pair(Pkey(EVP_RSA_gen(2048)), "jwt_rsa_other.pem")};
  return k.pair;
}
const KeyPair& ec_key() {
  static KeyFile k{make_key_pair(Pkey(EVP_EC_gen("P-256")), "jwt_ec256.pem")};
  return k.pair;
}
const KeyPair& ec384_key() {
  static KeyFile k{make_key_pair(Pkey(EVP_EC_gen("P-384")), "jwt_ec384.pem")};
  return k.pair;
}
const KeyPair& ec521_key() {
  static KeyFile k{make_key_pair(Pkey(EVP_EC_gen("P-521")), "jwt_ec521.pem")};
  return k.pair;
}

class JwtTest : public ::testing::Test {
 protected:
  // Loads the module with `settings` and expects it to register "jwt".
  void load(const Json& settings) {
    host_ = std::make_unique<FakeHost>(settings.dump());
    ASSERT_EQ(host_->load(descriptor()), BB_OK) << host_->log_text();
    ASSERT_TRUE(host_->authenticator("jwt").has_value()) << host_->log_text();
  }
  // Loads the module with `settings` and expects configure to fail with `message`.
  void expect_invalid(const Json& settings, const std::string& message) {
    FakeHost host(settings.dump());
    EXPECT_EQ(host.load(descriptor()), BB_E_INVALID) << settings.dump();
    EXPECT_TRUE(host.logged(message, BB_LOG_ERROR)) << "expected: " << message << "\nlogged:\n"
                                                    << host.log_text();
    EXPECT_TRUE(host.authenticators().empty());
    EXPECT_FALSE(host.leaked(kSecret));
  }

  AuthResult auth(const std::string& token) { return host_->authenticate("jwt", token); }

  void expect_deny(const std::string& token, const std::string& reason) {
    AuthResult r = auth(token);
    EXPECT_EQ(r.status, BB_OK);
    EXPECT_EQ(r.verdict, BB_AUTH_DENY);
    EXPECT_THAT(r.log_reason, HasSubstr(reason));
    EXPECT_THAT(r.statements, IsEmpty());
  }

  void TearDown() override {
    if (host_) {
      EXPECT_THAT(host_->violations(), IsEmpty());
      EXPECT_FALSE(host_->leaked(kSecret));
    }
  }

  std::unique_ptr<FakeHost> host_;
};

// ---- module shape and settings ---------------------------------------------------

TEST_F(JwtTest, DescriptorAndExports) {
  const bb_module_descriptor* d = descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->name, "jwt");
  EXPECT_EQ(d->kinds, static_cast<uint32_t>(BB_KIND_AUTH));
  EXPECT_THAT(test::exported_symbols(BB_TEST_JWT_MODULE), ElementsAre("bb_module_entry"));
}

TEST_F(JwtTest, OffWithoutSecretOrKey) {
  for (const char* settings : {"{}", R"({"secret": ""})", R"({"leeway_s": 5})"}) {
    FakeHost host(settings);
    ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
    EXPECT_TRUE(host.logged("jwt provider off", BB_LOG_INFO)) << host.log_text();
    EXPECT_THAT(host.authenticators(), IsEmpty());
  }
}

TEST_F(JwtTest, RejectsBadSettings) {
  expect_invalid({{"secret", kSecret}, {"secrt", "x"}}, "setting 'secrt': unknown key");
  expect_invalid({{"secret", 42}}, "setting 'secret': expected a string, got number");
  expect_invalid({{"secret", kSecret}, {"leeway_s", "30"}},
                 "setting 'leeway_s': expected an integer from 0 to 86400, got \"30\"");
  expect_invalid({{"secret", kSecret}, {"leeway_s", 1.5}},
                 "setting 'leeway_s': expected an integer from 0 to 86400, got 1.5");
  expect_invalid({{"secret", kSecret}, {"leeway_s", -1}},
                 "setting 'leeway_s': expected an integer from 0 to 86400, got -1");
  expect_invalid({{"secret", kSecret}, {"require_exp", "yes"}},
                 "setting 'require_exp': expected true or false, got string");
  expect_invalid({{"secret", kSecret}, {"algorithms", "HS256"}},
                 "setting 'algorithms': expected an array of strings, got string");
  expect_invalid({{"secret", kSecret}, {"algorithms", Json::array()}},
                 "setting 'algorithms': must not be empty");
  expect_invalid({{"secret", kSecret}, {"algorithms", {"HS256", "none"}}},
                 "setting 'algorithms[1]': expected one of HS256, HS384, HS512, RS256, RS384, "
                 "RS512, ES256, ES384, ES512, got \"none\"");
  expect_invalid({{"secret", kSecret}, {"algorithms", {"PS256"}}}, "setting 'algorithms[0]'");
  expect_invalid({{"secret", kSecret}, {"issuer", 1}},
                 "setting 'issuer': expected a non-empty string, got number");
  expect_invalid({{"secret", kSecret}, {"audience", ""}},
                 "setting 'audience': expected a non-empty string, got string");
  expect_invalid({{"secret", kSecret}, {"algorithms", {"RS256"}}},
                 "setting 'public_key_file': required by the RS*/ES* entries of 'algorithms'");
  expect_invalid({{"public_key_file", rsa_key().public_file}},
                 "setting 'algorithms': HS256 needs 'secret'");
  expect_invalid({{"public_key_file", rsa_key().public_file}, {"algorithms", {"RS256", "HS512"}}},
                 "setting 'algorithms': HS512 needs 'secret'");
  expect_invalid({{"secret", kSecret}, {"public_key_file", rsa_key().public_file}},
                 "setting 'public_key_file': set, but 'algorithms' names no RS*/ES* algorithm");
  expect_invalid({{"secret", kSecret}, {"public_key_file", 7}, {"algorithms", {"RS256"}}},
                 "setting 'public_key_file': expected a non-empty string, got number");
  expect_invalid({{"settings"}}, "settings: expected a JSON object");
}

TEST_F(JwtTest, UnreadableOrWrongKeyFileFailsConfigure) {
  const std::string missing = test::temp_path("jwt_no_such_key.pem");
  expect_invalid(
      {{"public_key_file", missing}, {"algorithms", {"RS256"}}},
      "setting 'public_key_file': cannot read '" + missing + "': No such file or directory");
  const std::string garbage = test::temp_path("jwt_garbage.pem");
  std::ofstream(garbage) << "not a key\n";
  expect_invalid(
      {{"public_key_file", garbage}, {"algorithms", {"RS256"}}},
      "setting 'public_key_file': '" + garbage + "' holds no PEM public key or certificate");
  std::remove(garbage.c_str());
  // A private key is not a public key file.
  const std::string priv = test::temp_path("jwt_private.pem");
  std::ofstream(priv) << rsa_key().private_pem;
  expect_invalid({{"public_key_file", priv}, {"algorithms", {"RS256"}}},
                 "holds no PEM public key or certificate");
  std::remove(priv.c_str());
  // The key must fit every configured RS/ES algorithm.
  expect_invalid(
      {{"public_key_file", ec_key().public_file}, {"algorithms", {"RS256"}}},
      "setting 'algorithms': RS256 needs an RSA key, 'public_key_file' holds a key of type EC");
  expect_invalid({{"public_key_file", ec_key().public_file}, {"algorithms", {"ES384"}}},
                 "setting 'algorithms': ES384 needs an EC P-384 key, 'public_key_file' holds an "
                 "EC P-256 key");
  expect_invalid({{"public_key_file", rsa_key().public_file}, {"algorithms", {"ES256"}}},
                 "ES256 needs an EC P-256 key");
}

// ---- valid tokens --------------------------------------------------------------------

TEST_F(JwtTest, AcceptsHs256Hs384Hs512) {
  load({{"secret", kSecret}, {"algorithms", {"HS256", "HS384", "HS512"}}});
  EXPECT_TRUE(
      host_->logged("jwt provider on (algorithms HS256, HS384, HS512; leeway 30 s)", BB_LOG_INFO))
      << host_->log_text();
  const int64_t exp = now() + 3600;
  for (const char* alg : {"HS256", "HS384", "HS512"}) {
    AuthResult r = auth(cppjwt_token(alg, kSecret, claims({{"exp", exp}})));
    EXPECT_EQ(r.status, BB_OK);
    EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << alg << ": " << r.log_reason;
    EXPECT_EQ(r.principal, "device-17");
    EXPECT_EQ(r.statements, expected_statements());
    EXPECT_EQ(r.expires_at_unix_s, exp);
  }
}

TEST_F(JwtTest, DefaultsToHs256Only) {
  load({{"secret", kSecret}});
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims())).verdict, BB_AUTH_ALLOW);
  expect_deny(cppjwt_token("HS384", kSecret, claims()), "algorithm 'HS384' not allowed");
}

TEST_F(JwtTest, PrincipalDefaultsToJwtAndExpiryToNever) {
  load({{"secret", kSecret}});
  AuthResult r = auth(hs_token({{"alg", "HS256"}}, {{"statements", statements_claim()}}, kSecret));
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << r.log_reason;
  EXPECT_EQ(r.principal, "jwt");
  EXPECT_EQ(r.expires_at_unix_s, 0);
}

TEST_F(JwtTest, AcceptsRs256WithGeneratedKey) {
  load({{"public_key_file", rsa_key().public_file}, {"algorithms", {"RS256", "RS384", "RS512"}}});
  for (const char* alg : {"RS256", "RS384", "RS512"}) {
    AuthResult r = auth(cppjwt_token(alg, rsa_key().private_pem, claims()));
    EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << alg << ": " << r.log_reason;
    EXPECT_EQ(r.statements, expected_statements());
  }
  expect_deny(cppjwt_token("RS256", other_rsa_key().private_pem, claims()), "bad signature");
}

TEST_F(JwtTest, AcceptsEs256WithGeneratedKey) {
  load({{"public_key_file", ec_key().public_file}, {"algorithms", {"ES256"}}});
  std::string token = cppjwt_token("ES256", ec_key().private_pem, claims());
  AuthResult r = auth(token);
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << r.log_reason;
  EXPECT_EQ(r.principal, "device-17");
  EXPECT_EQ(r.statements, expected_statements());
  // Flip one bit of s: the raw r||s signature no longer verifies.
  std::string tampered = token;
  char& last = tampered[tampered.size() - 2];
  last = last == 'A' ? 'B' : 'A';
  expect_deny(tampered, "bad signature");
  // A DER signature is not a JWS ECDSA signature.
  expect_deny(token.substr(0, token.rfind('.') + 1) + b64url(std::string(72, '\x30')),
              "bad signature");
}

TEST_F(JwtTest, AcceptsEs384AndEs512) {
  load({{"public_key_file", ec384_key().public_file}, {"algorithms", {"ES384"}}});
  AuthResult r = auth(cppjwt_token("ES384", ec384_key().private_pem, claims()));
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << r.log_reason;
  load({{"public_key_file", ec521_key().public_file}, {"algorithms", {"ES512"}}});
  r = auth(cppjwt_token("ES512", ec521_key().private_pem, claims()));
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << r.log_reason;
}

// ---- failure modes --------------------------------------------------------------------

TEST_F(JwtTest, BadSignature) {
  load({{"secret", kSecret}});
  std::string token = cppjwt_token("HS256", kSecret, claims());
  // Swap the payload for one granting more; keep header and signature.
  const size_t dot1 = token.find('.');
  const size_t dot2 = token.rfind('.');
  Json more = claims();
  more["statements"] = Json::array({{{"effect", "allow"}, {"actions", "*"}, {"resources", "**"}}});
  expect_deny(token.substr(0, dot1 + 1) + b64url(more.dump()) + token.substr(dot2),
              "bad signature");
  expect_deny(token.substr(0, dot2 + 1), "bad signature");  // no signature
  expect_deny(token.substr(0, dot2 + 1) + b64url("short"), "bad signature");
}

TEST_F(JwtTest, WrongSecret) {
  load({{"secret", kSecret}});
  expect_deny(cppjwt_token("HS256", "another-secret-of-sufficient-length-000", claims()),
              "bad signature");
}

TEST_F(JwtTest, AlgNoneIsAlwaysRefused) {
  load({{"secret", kSecret}, {"algorithms", {"HS256", "HS384", "HS512"}}});
  for (const char* none : {"none", "None", "NONE", "nOnE"}) {
    Json header = {{"alg", none}, {"typ", "JWT"}};
    std::string token = b64url(header.dump()) + "." + b64url(claims().dump()) + ".";
    expect_deny(token, "algorithm 'none' refused");
    // With a signature that would be valid for HS256, still refused.
    expect_deny(hs_token(header, claims(), kSecret), "algorithm 'none' refused");
  }
}

TEST_F(JwtTest, AlgNotConfiguredIsRefused) {
  load({{"secret", kSecret}, {"algorithms", {"HS256"}}});
  expect_deny(cppjwt_token("HS512", kSecret, claims()), "algorithm 'HS512' not allowed");
  expect_deny(hs_token({{"alg", "PS256"}}, claims(), kSecret), "algorithm 'PS256' not allowed");
  expect_deny(hs_token({{"alg", "hs256"}}, claims(), kSecret), "algorithm 'hs256' not allowed");
  expect_deny(hs_token({{"alg", "HS256\n2000-01-01 forged log line"}}, claims(), kSecret),
              "algorithm 'HS256?2000-01-01 forged log line' not allowed");
}

TEST_F(JwtTest, HsTokenSignedWithPublicKeyIsRefused) {
  // Key confusion: the attacker knows the public key and uses its PEM text
  // as an HMAC secret.
  load({{"public_key_file", rsa_key().public_file}, {"algorithms", {"RS256"}}});
  expect_deny(hs_token({{"alg", "HS256"}}, claims(), rsa_key().public_pem),
              "algorithm 'HS256' not allowed");
  // Also when HS is configured, with its own secret, next to RS.
  load({{"secret", kSecret},
        {"public_key_file", rsa_key().public_file},
        {"algorithms", {"HS256", "RS256"}}});
  expect_deny(hs_token({{"alg", "HS256"}}, claims(), rsa_key().public_pem), "bad signature");
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims())).verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(auth(cppjwt_token("RS256", rsa_key().private_pem, claims())).verdict, BB_AUTH_ALLOW);
  // And an RS token is never checked against the secret.
  expect_deny(hs_token({{"alg", "RS256"}}, claims(), kSecret), "bad signature");
}

TEST_F(JwtTest, EsTokenOnRsaKeyIsRefused) {
  load({{"public_key_file", rsa_key().public_file}, {"algorithms", {"RS256"}}});
  expect_deny(cppjwt_token("ES256", ec_key().private_pem, claims()),
              "algorithm 'ES256' not allowed");
}

TEST_F(JwtTest, ExpiredToken) {
  load({{"secret", kSecret}});
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"exp", now() - 3600}})), "token expired");
}

TEST_F(JwtTest, NotYetValidToken) {
  load({{"secret", kSecret}});
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"nbf", now() + 3600}})),
              "token not yet valid");
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims({{"nbf", now() - 5}}))).verdict,
            BB_AUTH_ALLOW);
}

TEST_F(JwtTest, LeewayIsHonoured) {
  load({{"secret", kSecret}});  // default leeway 30 s
  const int64_t t = now();
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims({{"exp", t - 10}}))).verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims({{"nbf", t + 10}}))).verdict, BB_AUTH_ALLOW);
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"exp", t - 60}})), "token expired");
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"nbf", t + 60}})), "token not yet valid");

  load({{"secret", kSecret}, {"leeway_s", 0}});
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"exp", t - 10}})), "leeway 0 s");
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"nbf", t + 10}})), "token not yet valid");

  load({{"secret", kSecret}, {"leeway_s", 120}});
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims({{"exp", t - 60}}))).verdict, BB_AUTH_ALLOW);
}

TEST_F(JwtTest, FractionalDatesAreNumericDates) {
  load({{"secret", kSecret}, {"leeway_s", 0}});
  const double t = static_cast<double>(now());
  AuthResult r = auth(hs_token({{"alg", "HS256"}}, claims({{"exp", t + 100.75}}), kSecret));
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << r.log_reason;
  EXPECT_EQ(r.expires_at_unix_s, static_cast<int64_t>(t) + 100);
  expect_deny(hs_token({{"alg", "HS256"}}, claims({{"exp", "tomorrow"}}), kSecret),
              "malformed token: claim 'exp' is not a number");
  expect_deny(hs_token({{"alg", "HS256"}}, claims({{"nbf", true}}), kSecret),
              "malformed token: claim 'nbf' is not a number");
}

TEST_F(JwtTest, RequireExp) {
  load({{"secret", kSecret}, {"require_exp", true}});
  EXPECT_TRUE(host_->logged("exp required")) << host_->log_text();
  expect_deny(cppjwt_token("HS256", kSecret, claims()), "claim 'exp' missing");
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims({{"exp", now() + 60}}))).verdict,
            BB_AUTH_ALLOW);
  load({{"secret", kSecret}, {"require_exp", false}});
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims())).verdict, BB_AUTH_ALLOW);
}

TEST_F(JwtTest, IssuerAndAudienceEnforcedWhenSet) {
  load({{"secret", kSecret}, {"issuer", "https://issuer.example"}, {"audience", "backbone"}});
  const Json good = {{"iss", "https://issuer.example"}, {"aud", "backbone"}};
  EXPECT_EQ(auth(cppjwt_token("HS256", kSecret, claims(good))).verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(
      auth(hs_token({{"alg", "HS256"}},
                    claims({{"iss", "https://issuer.example"}, {"aud", {"other", "backbone"}}}),
                    kSecret))
          .verdict,
      BB_AUTH_ALLOW);
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"aud", "backbone"}})),
              "claim 'iss' does not match the configured issuer");
  expect_deny(cppjwt_token("HS256", kSecret,
                           claims({{"iss", "https://evil.example"}, {"aud", "backbone"}})),
              "claim 'iss' does not match");
  expect_deny(cppjwt_token("HS256", kSecret, claims({{"iss", "https://issuer.example"}})),
              "claim 'aud' does not match the configured audience");
  expect_deny(hs_token({{"alg", "HS256"}},
                       claims({{"iss", "https://issuer.example"}, {"aud", {"other"}}}), kSecret),
              "claim 'aud' does not match");
}

TEST_F(JwtTest, MalformedTokens) {
  load({{"secret", kSecret}});
  const std::string good = cppjwt_token("HS256", kSecret, claims());
  const std::string payload = b64url(claims().dump());
  expect_deny("", "malformed token: empty");
  expect_deny("not-a-token", "malformed token: expected header.payload.signature");
  expect_deny("a.b", "malformed token: expected header.payload.signature");
  expect_deny(good + ".extra", "malformed token: expected header.payload.signature");
  expect_deny("a.b.c.d.e", "malformed token: expected header.payload.signature");
  expect_deny("!!!." + payload + ".", "malformed token: header is not base64url");
  expect_deny(b64url("{\"alg\":\"HS256\"}") + "=." + payload + ".",
              "malformed token: header is not base64url");
  expect_deny(b64url("not json") + "." + payload + ".",
              "malformed token: header is not a JSON object");
  expect_deny(b64url("[\"HS256\"]") + "." + payload + ".",
              "malformed token: header is not a JSON object");
  expect_deny(b64url("{\"typ\":\"JWT\"}") + "." + payload + ".",
              "malformed token: header 'alg' missing or not a string");
  expect_deny(b64url("{\"alg\":256}") + "." + payload + ".", "header 'alg' missing");
  expect_deny(std::string(100000, 'a') + ".b.c", "malformed token: longer than 64 KiB");
  expect_deny(hs_token({{"alg", "HS256"}, {"crit", {"exp"}}}, claims(), kSecret),
              "malformed token: header 'crit' is not supported");
  // Signed, but the payload is no JSON object.
  std::string input = b64url("{\"alg\":\"HS256\"}") + "." + b64url("[1,2]");
  expect_deny(input + "." + b64url(hmac(EVP_sha256(), kSecret, input)),
              "malformed token: payload is not a JSON object");
  input = b64url("{\"alg\":\"HS256\"}") + ".%%%";
  expect_deny(input + "." + b64url(hmac(EVP_sha256(), kSecret, input)),
              "malformed token: payload is not base64url");
  expect_deny(good.substr(0, good.rfind('.') + 1) + "***", "signature is not base64url");
  expect_deny(hs_token({{"alg", "HS256"}}, claims({{"sub", 17}}), kSecret),
              "malformed token: claim 'sub' is not a non-empty string");
}

TEST_F(JwtTest, MalformedStatements) {
  load({{"secret", kSecret}});
  struct Case {
    Json statements;
    const char* reason;
  };
  const Json ok_actions = {"mqtt:publish"};
  const Json ok_resources = {"a/b"};
  const std::vector<Case> cases = {
      {"allow everything", "bad statements: statements: expected an array, got string"},
      {{{{"effect", "allow"}, {"actions", ok_actions}, {"resources", ok_resources}}, 5},
       "statements[1]: expected an object, got number"},
      {{{{"actions", ok_actions}, {"resources", ok_resources}}}, "statements[0].effect: missing"},
      {{{{"effect", "allow"}, {"resources", ok_resources}}}, "statements[0].actions: missing"},
      {{{{"effect", "allow"}, {"actions", ok_actions}}}, "statements[0].resources: missing"},
      {{{{"effect", "permit"}, {"actions", ok_actions}, {"resources", ok_resources}}},
       "statements[0].effect: expected allow, deny or disallow"},
      {{{{"effect", "Allow"}, {"actions", ok_actions}, {"resources", ok_resources}}},
       "statements[0].effect: expected allow, deny or disallow"},
      {{{{"effect", true}, {"actions", ok_actions}, {"resources", ok_resources}}},
       "statements[0].effect: expected allow, deny or disallow"},
      {{{{"effect", "allow"}, {"actions", Json::array()}, {"resources", ok_resources}}},
       "statements[0].actions: must not be empty"},
      {{{{"effect", "allow"}, {"actions", 3}, {"resources", ok_resources}}},
       "statements[0].actions: expected a string or an array of strings, got number"},
      {{{{"effect", "allow"}, {"actions", {"mqtt:publish", 3}}, {"resources", ok_resources}}},
       "statements[0].actions[1]: expected a non-empty string"},
      {{{{"effect", "allow"}, {"actions", ok_actions}, {"resources", {""}}}},
       "statements[0].resources[0]: expected a non-empty string"},
      {{{{"effect", "allow"}, {"actions", ok_actions}, {"resources", ""}}},
       "statements[0].resources: expected a non-empty string"},
      {{{{"effect", "allow"}, {"actions", ok_actions}, {"resources", ok_resources}, {"sid", 1}}},
       "statements[0].sid: unknown field"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.statements.dump());
    expect_deny(hs_token({{"alg", "HS256"}}, {{"statements", c.statements}}, kSecret), c.reason);
  }
  expect_deny(hs_token({{"alg", "HS256"}}, {{"sub", "x"}}, kSecret),
              "bad statements: claim 'statements' missing");
  // Too many action/resource pairs.
  Json many = Json::array();
  for (int i = 0; i < 100; ++i) many.push_back("r/" + std::to_string(i));
  Json big = Json::array();
  for (int i = 0; i < 41; ++i) {
    big.push_back({{"effect", "allow"}, {"actions", {"a"}}, {"resources", many}});
  }
  expect_deny(hs_token({{"alg", "HS256"}}, {{"statements", big}}, kSecret),
              "statements: more than 4096 action/resource pairs");
  // Valid edge cases: empty statements, string actions and resources, deny.
  AuthResult r = auth(hs_token({{"alg", "HS256"}}, {{"statements", Json::array()}}, kSecret));
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW) << r.log_reason;
  EXPECT_THAT(r.statements, IsEmpty());
  r = auth(
      hs_token({{"alg", "HS256"}},
               {{"statements", {{{"effect", "deny"}, {"actions", "mqtt:*"}, {"resources", "#"}}}}},
               kSecret));
  EXPECT_THAT(r.statements, ElementsAre(Statement{BB_EFFECT_DENY, "mqtt:*", "#"}));
}

TEST_F(JwtTest, ConcurrentAuthentications) {
  load({{"secret", kSecret}, {"algorithms", {"HS256", "HS512"}}});
  const std::string good = cppjwt_token("HS256", kSecret, claims());
  const std::string bad = cppjwt_token("HS512", "wrong-secret-wrong-secret-wrong-secret", claims());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const bool want_ok = (i + t) % 2 == 0;
        AuthResult r = host_->authenticate("jwt", want_ok ? good : bad);
        const bool ok = want_ok ? (r.verdict == BB_AUTH_ALLOW && r.statements.size() == 5 &&
                                   r.principal == "device-17")
                                : (r.verdict == BB_AUTH_DENY && r.log_reason == "bad signature");
        if (!ok) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST_F(JwtTest, ReloadSwapsTheVerifier) {
  load({{"secret", kSecret}});
  const std::string old_token = cppjwt_token("HS256", kSecret, claims());
  const std::string new_secret = "the-new-secret-after-reload-0123456789";
  host_->set_settings(Json{{"secret", new_secret}}.dump());
  ASSERT_EQ(host_->configure(/*reloading=*/true), BB_OK) << host_->log_text();
  expect_deny(old_token, "bad signature");
  EXPECT_EQ(auth(cppjwt_token("HS256", new_secret, claims())).verdict, BB_AUTH_ALLOW);
  // A bad reload keeps the last good verifier.
  host_->set_settings(R"({"secret": 1})");
  EXPECT_EQ(host_->configure(/*reloading=*/true), BB_E_INVALID);
  EXPECT_EQ(auth(cppjwt_token("HS256", new_secret, claims())).verdict, BB_AUTH_ALLOW);
  host_->set_settings("{}");
  EXPECT_EQ(host_->configure(/*reloading=*/true), BB_E_UNSUPPORTED);
  EXPECT_FALSE(host_->leaked(new_secret));
}

TEST_F(JwtTest, ShortSecretWarnsWithoutLeaking) {
  load({{"secret", "short"}});
  EXPECT_TRUE(host_->logged("setting 'secret': shorter than 32 bytes", BB_LOG_WARN));
  EXPECT_FALSE(host_->leaked("short\""));
  EXPECT_FALSE(host_->logged("'short'"));
}

TEST_F(JwtTest, NeverLogsTokens) {
  load({{"secret", kSecret}});
  const std::string token = cppjwt_token("HS256", kSecret, claims({{"exp", now() - 3600}}));
  auth(token);
  auth(token + "x");
  EXPECT_FALSE(host_->leaked(token.substr(token.rfind('.') + 1)));
  EXPECT_FALSE(host_->leaked(token.substr(0, token.find('.'))));
}

}  // namespace
}  // namespace backbone::modules::jwt
