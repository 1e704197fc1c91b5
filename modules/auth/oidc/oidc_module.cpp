// SPDX-License-Identifier: GPL-3.0-or-later
// The `oidc` authenticator: ID/access tokens of an OpenID Connect issuer,
// verified against the issuer's JWKS (found through its discovery document).
// Login: username=oidc, password=<token>. The groups claim maps to roles.
//
// Network I/O happens only on the module's own worker thread: authenticate()
// verifies synchronously when the token's key is cached, and otherwise
// queues the login (BB_PENDING) for the worker, which fetches the JWKS
// (rate-limited) and answers with auth_complete().

#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <backbone/authenticator.hpp>
#include <backbone/json.hpp>
#include <backbone/quotas.hpp>
#include <backbone/sdk.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "common/jose/jwks.hpp"
#include "http_get.hpp"
#include "oidc_settings.hpp"

namespace backbone::modules::oidc {
namespace {

using jose::KeySet;
using jose::parse_header;
using jose::parse_jwks;
using jose::printable;
using jose::Role;
using jose::TokenHeader;
using jose::Verdict;
using jose::verify_token;

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kAuthenticatorName = "oidc";
// After a failed fetch with nothing cached, logins fail fast (UNAVAILABLE)
// for this long instead of each waiting for the IdP again.
constexpr auto kFailureBackoff = std::chrono::seconds(1);
constexpr size_t kMaxQueued = 10000;

int64_t now_unix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The answer to a token whose signature and claims were checked: SPEC §3
// roles; a user in several groups gets the union of their statements and
// the quotas of the highest role.
sdk::AuthReply reply_from(Verdict&& v, const Settings& settings) {
  switch (v.kind) {
    case Verdict::kAllow: {
      const bool admin = v.roles & static_cast<unsigned>(Role::kAdmin);
      const bool writer = v.roles & static_cast<unsigned>(Role::kWriter);
      const bool reader = v.roles & static_cast<unsigned>(Role::kReader);
      sdk::StatementList statements;
      if (admin) statements.allow("*", "**");
      if (writer) statements.allow("mqtt:*", "**");
      if (reader) {
        statements.allow("mqtt:subscribe", "**");
        statements.allow("mqtt:read", "**");
      }
      const std::optional<bb_quotas>& quotas = admin    ? settings.admin_quotas
                                               : writer ? settings.writer_quotas
                                               : reader ? settings.reader_quotas
                                                        : std::nullopt;
      return sdk::AuthReply::allow(std::move(v.principal), std::move(statements),
                                   v.expires_at_unix_s, quotas);
    }
    case Verdict::kForbidden: {
      std::string why = "user '" + v.principal + "': " + v.reason;
      return sdk::AuthReply::forbidden(std::move(v.principal), std::move(why));
    }
    default: {
      sdk::AuthReply r = sdk::AuthReply::deny(std::move(v.reason));
      r.principal = std::move(v.principal);
      return r;
    }
  }
}

// A token waiting for the worker; wiped when dropped.
struct Job {
  bb_auth_ticket ticket = 0;
  std::string token;
  TokenHeader header;

  Job() = default;
  Job(Job&&) = default;
  Job& operator=(Job&&) = default;
  ~Job() { OPENSSL_cleanse(token.data(), token.size()); }
};

class OidcModule final : public sdk::Module, sdk::Authenticator {
 public:
  using Module::Module;
  ~OidcModule() override { shutdown(); }

  bb_status configure(bool reloading) override {
    std::shared_ptr<const Settings> settings;
    if (bb_status s = read_settings(host(), settings); s != BB_OK) return s;
    const bool on = settings != nullptr;
    if (reloading && on != registered_) {
      host().error("switching the oidc provider on or off needs a restart");
      return BB_E_UNSUPPORTED;
    }
    if (!on) {
      host().info("oidc provider off (no discovery_url)");
      return BB_OK;
    }
    const ClaimRules& r = settings->rules;
    auto group = [](const std::string& g) { return g.empty() ? std::string("-") : "'" + g + "'"; };
    const std::string summary =
        "discovery " + settings->discovery_url + "; client_id '" + r.audience + "'; claim '" +
        r.group_field + "': admin " + group(r.admin_group) + ", writer " + group(r.writer_group) +
        ", reader " + group(r.reader_group) + "; leeway " + std::to_string(r.leeway_s) +
        " s; JWKS refetch at most every " + std::to_string(settings->jwks_min_refresh_s) + " s";
    if (r.admin_group.empty() && r.writer_group.empty() && r.reader_group.empty()) {
      host().warn(
          "oidc provider: no admin_group, writer_group or reader_group set: every login will be "
          "refused as not authorized");
    }
    {
      std::lock_guard lock(mutex_);
      if (settings_ && settings_->discovery_url != settings->discovery_url) {
        // Another issuer: nothing cached for the old one applies.
        keys_.reset();
        issuer_.clear();
        jwks_uri_.clear();
        last_fetch_.reset();
        last_failure_.reset();
        last_failed_ = false;
        last_error_.clear();
        ++generation_;  // a fetch still running for the old issuer is discarded
      }
      settings_ = std::move(settings);
    }
    if (reloading) {
      host().info("oidc provider reconfigured (" + summary + ")");
      return BB_OK;
    }
    bb_status s = register_with(host(), kAuthenticatorName);
    if (s != BB_OK) {
      host().error("oidc provider: registering authenticator 'oidc' failed");
      return s;
    }
    registered_ = true;
    host().info("oidc provider on (" + summary + ")");
    return BB_OK;
  }

  // Starts the worker and fetches discovery + JWKS on it; ready() follows
  // once that fetch succeeded or failed (a failure is retried on demand).
  bb_status start() override {
    if (!registered_) return BB_OK;
    {
      std::lock_guard lock(mutex_);
      stopping_ = false;
      initial_fetch_ = true;
    }
    worker_ = std::thread([this] { run(); });
    return BB_PENDING;
  }

  void stop() override { shutdown(); }

 private:
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    std::lock_guard lock(mutex_);
    queue_.clear();  // the host calls back no more after stop
  }

  // --- key cache ---

  // Under mutex_: may the JWKS be fetched now?
  bool refresh_allowed(Clock::time_point now) const {
    if (fetching_) return false;
    if (!keys_) return !last_failure_ || now - *last_failure_ >= kFailureBackoff;
    return !last_fetch_ ||
           now - *last_fetch_ >= std::chrono::seconds(settings_->jwks_min_refresh_s);
  }

  // Fetches the discovery document (when not known or after a failure) and
  // the JWKS. Worker thread only; never holds mutex_ during I/O.
  void refresh(const char* why) {
    std::shared_ptr<const Settings> settings;
    std::string issuer;
    std::string jwks_uri;
    bool rediscover;
    uint64_t generation;
    {
      std::lock_guard lock(mutex_);
      fetching_ = true;
      settings = settings_;
      issuer = issuer_;
      jwks_uri = jwks_uri_;
      rediscover = jwks_uri_.empty() || last_failed_;
      generation = generation_;
    }
    std::string error;
    auto keys = std::make_shared<KeySet>();
    std::vector<std::string> skipped;
    if (rediscover) {
      HttpResult r = http_get(settings->discovery_url, settings->http);
      if (!r.ok) {
        error = "discovery: " + r.error;
      } else {
        Json doc = sdk::parse_json(r.body);
        auto iss = doc.is_object() ? doc.find("issuer") : doc.end();
        auto uri = doc.is_object() ? doc.find("jwks_uri") : doc.end();
        if (!doc.is_object()) {
          error = "discovery: " + settings->discovery_url + " is not a JSON object";
        } else if (iss == doc.end() || !iss->is_string() || iss->get<std::string>().empty()) {
          error = "discovery: member 'issuer' missing or not a non-empty string";
        } else if (uri == doc.end() || !uri->is_string()) {
          error = "discovery: member 'jwks_uri' missing or not a string";
        } else if (std::string bad = check_url(uri->get<std::string>(), settings->http.allow_http);
                   !bad.empty()) {
          error = "discovery: jwks_uri " + bad;
        } else {
          issuer = iss->get<std::string>();
          jwks_uri = uri->get<std::string>();
        }
      }
    }
    if (error.empty()) {
      HttpResult r = http_get(jwks_uri, settings->http);
      if (!r.ok) {
        error = "JWKS: " + r.error;
      } else {
        sdk::JsonError json_error;
        Json doc = sdk::parse_json(r.body, &json_error);
        if (doc.is_discarded()) {
          error = "JWKS: " + jwks_uri + " is " + json_error.message;
        } else if (!parse_jwks(doc, keys->keys, skipped, error)) {
          error = jwks_uri + ": " + error;
        } else if (keys->keys.empty()) {
          error = "JWKS: " + jwks_uri + " holds no usable signature key";
        }
      }
    }
    const auto now = Clock::now();
    {
      std::lock_guard lock(mutex_);
      fetching_ = false;
      if (generation != generation_) return;  // reconfigured meanwhile
      last_fetch_ = now;
      if (error.empty()) {
        keys->issuer = issuer;
        keys_ = keys;
        issuer_ = issuer;
        jwks_uri_ = jwks_uri;
        last_failed_ = false;
        last_failure_.reset();
      } else {
        last_failed_ = true;
        last_failure_ = now;
        last_error_ = error;
      }
    }
    for (const auto& s : skipped) host().warn("oidc provider: JWKS key skipped: " + s);
    if (error.empty()) {
      std::string kids;
      for (const auto& k : keys->keys)
        kids += (kids.empty() ? "'" : ", '") + printable(k.kid) + "'";
      host().info("oidc provider: issuer '" + issuer + "', " + std::to_string(keys->keys.size()) +
                  " key(s) from " + jwks_uri + " [" + kids + "] (" + why + ")");
    } else {
      host().warn("oidc provider: fetching keys failed (" + std::string(why) + "): " + error);
    }
  }

  // --- authentication ---

  // Tries to decide with what is cached. nullopt: the worker must fetch.
  std::optional<sdk::AuthReply> decide_cached(std::string_view token, const TokenHeader& header,
                                              bool worker_after_refresh) {
    std::shared_ptr<const Settings> settings;
    std::shared_ptr<const KeySet> keys;
    bool may_refresh;
    bool failed;
    std::string last_error;
    {
      std::lock_guard lock(mutex_);
      settings = settings_;
      keys = keys_;
      may_refresh = !worker_after_refresh && (fetching_ || refresh_allowed(Clock::now()));
      failed = last_failed_;
      last_error = last_error_;
    }
    if (!settings) return sdk::AuthReply::unavailable("provider not configured");
    if (keys) {
      Verdict v = verify_token(token, header, *keys, settings->rules, now_unix());
      if (v.kind != Verdict::kNoKey) return reply_from(std::move(v), *settings);
      if (may_refresh) return std::nullopt;
      if (failed) {
        return sdk::AuthReply::unavailable(
            v.reason + " and the identity provider is unreachable (" + last_error + ")");
      }
      return sdk::AuthReply::deny(
          v.reason + (worker_after_refresh ? " (JWKS refetched)" : " (JWKS refetch rate-limited)"));
    }
    if (may_refresh) return std::nullopt;
    return sdk::AuthReply::unavailable(
        "identity provider unavailable, no keys cached (" +
        (last_error.empty() ? std::string("not fetched yet") : last_error) + ")");
  }

  // Worker thread.
  void run() {
    for (;;) {
      Job job;
      bool initial = false;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || initial_fetch_ || !queue_.empty(); });
        if (stopping_) return;
        if (initial_fetch_) {
          initial = true;
          initial_fetch_ = false;
        } else {
          job = std::move(queue_.front());
          queue_.pop_front();
        }
      }
      try {
        if (initial) {
          refresh("start");
          host().ready();
          continue;
        }
        process(job);
      } catch (const std::exception& e) {
        host().error(std::string("oidc provider: worker error: ") + e.what());
        if (initial) host().ready();
        if (job.ticket != 0) complete(job.ticket, sdk::AuthReply::unavailable("internal error"));
      }
    }
  }

  void process(Job& job) {
    std::optional<sdk::AuthReply> reply = decide_cached(job.token, job.header, false);
    if (!reply) {
      bool fetch;
      {
        std::lock_guard lock(mutex_);
        fetch = refresh_allowed(Clock::now());
      }
      if (fetch) {
        refresh(job.header.kid.empty() ? "token needs keys" : "unknown key id");
      }
      reply = decide_cached(job.token, job.header, true);
    }
    complete(job.ticket, std::move(*reply));  // BB_E_STALE: gone meanwhile
  }

  // Thread: any kernel worker, concurrently.
  std::optional<sdk::AuthReply> authenticate(const sdk::LoginRequest& request) override {
    std::string error;
    std::optional<TokenHeader> header = parse_header(request.password, error);
    if (!header) return sdk::AuthReply::deny(std::move(error));
    // Fast path: the key is cached (or no fetch may happen now).
    if (std::optional<sdk::AuthReply> r = decide_cached(request.password, *header, false)) return r;
    {
      std::lock_guard lock(mutex_);
      if (queue_.size() >= kMaxQueued)
        return sdk::AuthReply::unavailable("too many logins waiting for the identity provider");
      Job job;
      job.ticket = request.ticket;
      job.token = std::string(request.password);
      job.header = *header;
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return std::nullopt;  // the worker answers
  }

  // The host no longer wants the answer: drop the queued login, if any.
  void cancel(bb_auth_ticket ticket) noexcept override {
    std::lock_guard lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->ticket == ticket) {
        queue_.erase(it);
        return;
      }
    }
  }

  bool registered_ = false;  // control thread only

  std::mutex mutex_;
  std::condition_variable cv_;
  std::shared_ptr<const Settings> settings_;
  uint64_t generation_ = 0;  // bumped when discovery_url changes
  std::shared_ptr<const KeySet> keys_;
  std::string issuer_;
  std::string jwks_uri_;
  std::optional<Clock::time_point> last_fetch_;    // last JWKS fetch attempt (end)
  std::optional<Clock::time_point> last_failure_;  // last failed attempt
  bool last_failed_ = false;
  std::string last_error_;
  bool fetching_ = false;
  bool initial_fetch_ = false;
  bool stopping_ = false;
  std::deque<Job> queue_;
  std::thread worker_;
};

}  // namespace
}  // namespace backbone::modules::oidc

BACKBONE_MODULE(backbone::modules::oidc::OidcModule, "oidc", "1.0.0", BB_KIND_AUTH, 0)
