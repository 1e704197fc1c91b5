// SPDX-License-Identifier: GPL-3.0-or-later
// The `jwt` authenticator: JWS tokens signed with the configured HMAC secret
// (TOKEN_SECRET) or verified with a configured RSA/EC public key. Login:
// username=jwt, password=<token>. The token's `statements` claim holds the
// client's statements.

#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <backbone/authenticator.hpp>
#include <backbone/json.hpp>
#include <backbone/quotas.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>
#include <backbone/statements.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "jwt_mint.hpp"
#include "jwt_verifier.hpp"

namespace backbone::modules::jwt {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kAuthenticatorName = "jwt";
constexpr int64_t kMaxLeeway = 24 * 3600;
constexpr size_t kShortSecret = 32;

class JwtModule final : public sdk::Module, sdk::Authenticator {
 public:
  using Module::Module;

  bb_status configure(bool reloading) override {
    std::shared_ptr<const Verifier> verifier;
    if (bb_status s = build_verifier(verifier); s != BB_OK) return s;
    const bool on = verifier != nullptr;
    if (reloading && on != registered_) {
      host().error("switching the jwt provider on or off needs a restart");
      return BB_E_UNSUPPORTED;
    }
    if (!on) {
      host().info("jwt provider off (no secret and no public key)");
      return BB_OK;
    }
    std::string algs;
    for (const Algorithm* a : verifier->config().algorithms) {
      algs += (algs.empty() ? "" : ", ") + std::string(a->name);
    }
    const std::string summary = "algorithms " + algs + "; leeway " +
                                std::to_string(verifier->config().leeway_s) + " s" +
                                (verifier->config().require_exp ? "; exp required" : "");
    {
      std::lock_guard lock(mutex_);
      verifier_ = std::move(verifier);
    }
    if (reloading) {
      host().info("jwt provider reconfigured (" + summary + ")");
      return BB_OK;
    }
    bb_status s = register_with(host(), kAuthenticatorName);
    if (s != BB_OK) {
      host().error("jwt provider: registering authenticator 'jwt' failed");
      return s;
    }
    registered_ = true;
    host().info("jwt provider on (" + summary + ")");
    return register_mint_route();
  }

 private:
  // Validates the settings; leaves `out` null when the provider is off.
  bb_status build_verifier(std::shared_ptr<const Verifier>& out) const {
    std::optional<std::string> text = host().config("");
    Json doc = text ? sdk::parse_json(*text, nullptr, true) : Json::object();
    if (text) OPENSSL_cleanse(text->data(), text->size());
    if (doc.is_null()) doc = Json::object();
    sdk::Settings settings(doc);
    VerifierConfig config;
    std::vector<std::string> algorithms;
    std::string key_file;
    settings.known({"secret", "algorithms", "public_key_file", "leeway_s", "require_exp", "issuer",
                    "audience"});
    settings.get_string("secret", config.secret, /*allow_empty=*/true);
    if (auto it = doc.find("secret"); it != doc.end() && it->is_string())
      OPENSSL_cleanse(it->get_ref<std::string&>().data(), it->get_ref<std::string&>().size());
    settings.get_strings("algorithms", algorithms, /*non_empty=*/true);
    settings.get_string("public_key_file", key_file);
    settings.get_int("leeway_s", config.leeway_s, int64_t{0}, kMaxLeeway);
    settings.get_bool("require_exp", config.require_exp);
    std::string issuer, audience;  // non-empty when given
    settings.get_string("issuer", issuer);
    settings.get_string("audience", audience);
    if (!issuer.empty()) config.issuer = issuer;
    if (!audience.empty()) config.audience = audience;
    if (!settings.ok()) {
      host().error(settings.error());
      return BB_E_INVALID;
    }

    if (config.secret.empty() && key_file.empty()) return BB_OK;  // off

    for (const std::string& name : algorithms) {
      const Algorithm* alg = find_algorithm(name);
      if (alg == nullptr) {
        host().error("setting 'algorithms[" + std::to_string(config.algorithms.size()) +
                     "]': expected one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, " +
                     "ES384, ES512, got " + Json(name).dump());
        return BB_E_INVALID;
      }
      config.algorithms.push_back(alg);
    }
    if (algorithms.empty()) config.algorithms.push_back(find_algorithm("HS256"));

    bool wants_key = false;
    for (const Algorithm* a : config.algorithms) {
      if (a->family == Family::kHmac && config.secret.empty()) {
        host().error("setting 'algorithms': " + std::string(a->name) + " needs 'secret'");
        return BB_E_INVALID;
      }
      wants_key = wants_key || a->family != Family::kHmac;
    }
    if (wants_key && key_file.empty()) {
      host().error("setting 'public_key_file': required by the RS*/ES* entries of 'algorithms'");
      return BB_E_INVALID;
    }
    if (!key_file.empty() && !wants_key) {
      host().error(
          "setting 'public_key_file': set, but 'algorithms' names no RS*/ES* algorithm to use it");
      return BB_E_INVALID;
    }
    if (!key_file.empty()) {
      std::string error;
      config.public_key = load_public_key(key_file, error);
      if (!config.public_key) {
        host().error("setting 'public_key_file': " + error);
        return BB_E_INVALID;
      }
      for (const Algorithm* a : config.algorithms) {
        if (std::string why = key_mismatch(*a, config.public_key.get()); !why.empty()) {
          host().error("setting 'algorithms': " + why + " ('" + key_file + "')");
          return BB_E_INVALID;
        }
      }
    }
    if (!config.secret.empty() && config.secret.size() < kShortSecret) {
      host().warn("setting 'secret': shorter than " + std::to_string(kShortSecret) +
                  " bytes; HMAC tokens are only as strong as the secret");
    }
    out = std::make_shared<const Verifier>(std::move(config));
    return BB_OK;
  }

  // Thread: any kernel worker, concurrently. Synchronous.
  std::optional<sdk::AuthReply> authenticate(const sdk::LoginRequest& request) override {
    std::shared_ptr<const Verifier> verifier;
    {
      std::lock_guard lock(mutex_);
      verifier = verifier_;
    }
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    Verdict verdict;
    if (verifier) {
      verdict = verifier->verify(request.password, now);
    } else {
      verdict.reason = "provider off";
    }
    if (!verdict.ok) return sdk::AuthReply::deny(std::move(verdict.reason));
    return sdk::AuthReply::allow(std::move(verdict.principal),
                                 sdk::statement_list(std::move(verdict.statements)),
                                 verdict.expires_at_unix_s, verdict.quotas);
  }

  // --- POST /api/manage/jwt: tokens for this provider (mgmt:generate-jwt) ---

  bb_status register_mint_route() {
    if (!host().has_http()) return BB_OK;
    Json op = {
        {"summary", "Mint a token of the jwt provider carrying the given statements"},
        // The kernel puts the action of the declaration below in front.
        {"description", "Whoever may do this can mint any statements: grant it like admin rights."},
        {"requestBody",
         {{"required", true},
          {"content",
           {{"application/json",
             {{"schema",
               {{"type", "object"},
                {"required", {"statements"}},
                {"properties",
                 {{"statements", {{"type", "array"}}},
                  {"quotas", {{"type", "object"}, {"description", "SPEC §6 quotas"}}},
                  {"exp", {{"type", "integer"}, {"description", "expiry, Unix seconds"}}},
                  {"sub", {{"type", "string"}}}}}}}}}}}}},
        {"responses",
         {{"200", {{"description", "{\"jwt\": \"...\"}"}}},
          {"400", {{"$ref", "#/components/responses/BadRequest"}}}}}};
    mint_openapi_ = Json{{"/api/manage/jwt", {{"post", op}}}}.dump();
    mint_route_ = bb_http_route{};
    mint_route_.struct_size = sizeof(mint_route_);
    mint_route_.flags = BB_HTTP_AUTH;
    mint_route_.path = sdk::str("/api/manage/jwt");
    mint_route_.methods = sdk::str("POST");
    mint_route_.summary = sdk::str("Mint a jwt token");
    mint_route_.openapi = sdk::str(mint_openapi_);
    mint_route_.resource = sdk::str("jwt");
    mint_route_.actions = sdk::str("POST=mgmt:generate-jwt");
    mint_route_.handle = &JwtModule::mint;
    const bb_status status = host().route(mint_route_, this);
    if (status == BB_E_UNSUPPORTED) {
      host().info("not serving /api/manage/jwt: " + host().last_error());
      return BB_OK;
    }
    if (status != BB_OK) host().error("cannot serve /api/manage/jwt: " + host().last_error());
    return status;
  }

  static void mint(void* user, const bb_http_request* r, bb_http_exchange ex) noexcept {
    auto* self = static_cast<JwtModule*>(user);
    const sdk::Host& host = self->host();
    try {
      const auto text = sdk::view(r->body);
      sdk::JsonError json_error;
      const Json body = sdk::parse_json(text, &json_error);
      if (body.is_discarded()) {
        host.respond_error(ex, 400, "bad_request", "the body is " + json_error.message);
        return;
      }
      if (!body.is_object()) {
        host.respond_error(ex, 400, "bad_request", "the body must be a JSON object");
        return;
      }
      Json claims = Json::object();
      for (const auto& [key, value] : body.items()) {
        if (key == "statements") {
          std::vector<sdk::Statement> statements;
          std::string error;
          if (!sdk::parse_statements(value, "statements", statements, error)) {
            host.respond_error(ex, 400, "bad_request", error);
            return;
          }
          const std::vector<bb_statement> grants = sdk::abi_statements(statements);
          if (!host.permit_grant(*r, ex, "mgmt:generate-jwt", "jwt", grants)) return;
          claims["statements"] = value;
        } else if (key == "exp") {
          if (!value.is_number_unsigned()) {
            host.respond_error(ex, 400, "bad_request",
                               "field 'exp': expected a Unix time in seconds");
            return;
          }
          claims["exp"] = value;
        } else if (key == "quotas") {
          bb_quotas quotas{};
          std::string error;
          if (!sdk::parse_quotas(value, "field 'quotas'", quotas, error)) {
            host.respond_error(ex, 400, "bad_request", error);
            return;
          }
          claims["quotas"] = value;
        } else if (key == "sub") {
          if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
            host.respond_error(ex, 400, "bad_request", "field 'sub': expected a non-empty string");
            return;
          }
          claims["sub"] = value;
        } else {
          host.respond_error(
              ex, 400, "bad_request",
              "field '" + key + "': unknown (expected statements, quotas, exp, sub)");
          return;
        }
      }
      if (!claims.contains("statements")) {
        host.respond_error(ex, 400, "bad_request", "field 'statements': missing");
        return;
      }
      std::shared_ptr<const Verifier> verifier;
      {
        std::lock_guard lock(self->mutex_);
        verifier = self->verifier_;
      }
      const Algorithm* hmac = nullptr;
      for (const Algorithm* a : verifier->config().algorithms) {
        if (!hmac && a->family == Family::kHmac) hmac = a;
      }
      if (!hmac) {
        host.respond_error(ex, 409, "conflict",
                           "the jwt provider verifies with a public key only and cannot sign");
        return;
      }
      const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      if (verifier->config().require_exp && !claims.contains("exp")) {
        host.respond_error(ex, 400, "bad_request", "field 'exp': required by this provider");
        return;
      }
      if (claims.contains("exp") && claims["exp"].get<int64_t>() <= now) {
        host.respond_error(ex, 400, "bad_request", "field 'exp': already in the past");
        return;
      }
      claims["iat"] = now;
      if (verifier->config().issuer) claims["iss"] = *verifier->config().issuer;
      if (verifier->config().audience) claims["aud"] = *verifier->config().audience;
      std::string error;
      std::string token = mint_hmac(hmac->name, verifier->config().secret, claims, error);
      if (token.empty()) {
        host.error("minting a token failed: " + error);
        host.respond_error(ex, 500, "internal", "the token could not be signed");
        return;
      }
      host.audit(*r, "mgmt:generate-jwt", claims.value("sub", "jwt"), "ok");
      host.respond(ex, 200, Json{{"jwt", token}}.dump());
      OPENSSL_cleanse(token.data(), token.size());
    } catch (const std::exception& e) {
      host.error(std::string("/api/manage/jwt failed: ") + e.what());
      host.respond_error(ex, 500, "internal", "internal error");
    }
  }

  std::string mint_openapi_;
  bb_http_route mint_route_{};

  std::mutex mutex_;
  std::shared_ptr<const Verifier> verifier_;
  bool registered_ = false;
};

}  // namespace
}  // namespace backbone::modules::jwt

BACKBONE_MODULE(backbone::modules::jwt::JwtModule, "jwt", "1.0.0", BB_KIND_AUTH, 0)
