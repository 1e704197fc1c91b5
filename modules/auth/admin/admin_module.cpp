// SPDX-License-Identifier: GPL-3.0-or-later
// The `admin` authenticator: one static token (ADMIN_TOKEN) that grants every
// action on every resource. Login: username=admin, password=<token>.

#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <backbone/authenticator.hpp>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace backbone::modules::admin {
namespace {

using Digest = std::array<unsigned char, 32>;

constexpr std::string_view kAuthenticatorName = "admin";
constexpr std::string_view kPrincipal = "admin";
constexpr std::string_view kDenyReason = "invalid admin token";

bool sha256(std::string_view data, Digest& out) noexcept {
  unsigned int len = 0;
  return EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) == 1 &&
         len == out.size();
}

class AdminModule final : public sdk::Module, sdk::Authenticator {
 public:
  using Module::Module;
  ~AdminModule() override { OPENSSL_cleanse(token_digest_.data(), token_digest_.size()); }

  bb_status configure(bool reloading) override {
    std::optional<std::string> token;
    if (bb_status s = read_settings(token); s != BB_OK) return s;
    const bool on = token.has_value() && !token->empty();
    if (reloading && on != registered_) {
      host().error("switching the admin provider on or off needs a restart");
      return BB_E_UNSUPPORTED;
    }
    if (!on) {
      if (token.has_value()) OPENSSL_cleanse(token->data(), token->size());
      host().info("admin provider off (no token)");
      return BB_OK;
    }
    Digest digest{};
    const bool hashed = sha256(*token, digest);
    OPENSSL_cleanse(token->data(), token->size());
    if (!hashed) {
      host().error("admin provider: SHA-256 unavailable");
      return BB_E_INTERNAL;
    }
    {
      std::lock_guard lock(mutex_);
      token_digest_ = digest;
    }
    OPENSSL_cleanse(digest.data(), digest.size());
    if (reloading) return BB_OK;
    bb_status s = register_with(host(), kAuthenticatorName);
    if (s != BB_OK) {
      host().error("admin provider: registering authenticator 'admin' failed");
      return s;
    }
    registered_ = true;
    host().info("admin provider on");
    return BB_OK;
  }

 private:
  // Accepts exactly {"token": string}; anything else is a precise error.
  bb_status read_settings(std::optional<std::string>& token) const {
    std::optional<std::string> text = host().config("");
    if (!text) return BB_OK;
    nlohmann::json doc = sdk::parse_json(*text, nullptr, true);
    OPENSSL_cleanse(text->data(), text->size());
    if (doc.is_null()) return BB_OK;
    // A null token reads as absent.
    if (doc.is_object() && doc.contains("token") && doc["token"].is_null()) doc.erase("token");
    sdk::Settings settings(doc);
    std::string value;
    settings.known({"token"});
    settings.get_string("token", value, /*allow_empty=*/true);
    if (settings.has("token")) token = value;
    OPENSSL_cleanse(value.data(), value.size());
    if (auto it = doc.find("token"); it != doc.end() && it->is_string())
      OPENSSL_cleanse(it->get_ref<std::string&>().data(), it->get_ref<std::string&>().size());
    if (!settings.ok()) {
      host().error(settings.error());
      return BB_E_INVALID;
    }
    return BB_OK;
  }

  // Thread: any kernel worker, concurrently. Synchronous.
  std::optional<sdk::AuthReply> authenticate(const sdk::LoginRequest& request) override {
    Digest presented{};
    Digest expected{};
    {
      std::lock_guard lock(mutex_);
      expected = token_digest_;
    }
    // Hashing first makes the comparison independent of the token's length.
    const bool ok = !request.password.empty() && sha256(request.password, presented) &&
                    CRYPTO_memcmp(presented.data(), expected.data(), expected.size()) == 0;
    OPENSSL_cleanse(expected.data(), expected.size());
    if (!ok) return sdk::AuthReply::deny(std::string(kDenyReason));
    sdk::StatementList all;
    all.allow("*", "**");  // every action on every resource
    return sdk::AuthReply::allow(std::string(kPrincipal), std::move(all));
  }

  std::mutex mutex_;
  Digest token_digest_{};
  bool registered_ = false;
};

}  // namespace
}  // namespace backbone::modules::admin

BACKBONE_MODULE(backbone::modules::admin::AdminModule, "admin", "1.0.0", BB_KIND_AUTH, 0)
