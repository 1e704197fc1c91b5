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

#include "http_get.hpp"
#include "jose.hpp"
#include "oidc_settings.hpp"

namespace backbone::modules::oidc {
namespace {

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

// The result of one login, kept alive until the host has copied it.
struct Reply {
  std::string principal;
  std::string reason;
  sdk::StatementList statements;
  int32_t verdict = BB_AUTH_DENY;
  int64_t expires_at_unix_s = 0;
  std::optional<bb_quotas> quotas;

  static Reply deny(std::string why) {
    Reply r;
    r.reason = std::move(why);
    return r;
  }
  static Reply unavailable(std::string why) {
    Reply r;
    r.verdict = BB_AUTH_UNAVAILABLE;
    r.reason = std::move(why);
    return r;
  }

  static Reply from(Verdict&& v, const Settings& settings) {
    Reply r;
    r.principal = std::move(v.principal);
    r.expires_at_unix_s = v.expires_at_unix_s;
    switch (v.kind) {
      case Verdict::kAllow: {
        r.verdict = BB_AUTH_ALLOW;
        // SPEC §3 roles; a user in several groups gets the union.
        const bool admin = v.roles & static_cast<unsigned>(Role::kAdmin);
        const bool writer = v.roles & static_cast<unsigned>(Role::kWriter);
        const bool reader = v.roles & static_cast<unsigned>(Role::kReader);
        if (admin) r.statements.allow("*", "**");
        if (writer) r.statements.allow("mqtt:*", "**");
        if (reader) {
          r.statements.allow("mqtt:subscribe", "**");
          r.statements.allow("mqtt:read", "**");
        }
        r.quotas = admin    ? settings.admin_quotas
                   : writer ? settings.writer_quotas
                   : reader ? settings.reader_quotas
                            : std::nullopt;
        break;
      }
      case Verdict::kForbidden:
        r.verdict = BB_AUTH_FORBIDDEN;
        r.reason = "user '" + r.principal + "': " + v.reason;
        break;
      default:
        r.verdict = BB_AUTH_DENY;
        r.reason = std::move(v.reason);
        break;
    }
    return r;
  }

  // Points `out` into this reply.
  void fill(bb_auth_result* out) {
    out->verdict = verdict;
    out->principal = sdk::str(principal);
    out->log_reason = sdk::str(reason);
    out->statements = nullptr;
    out->statement_count = 0;
    out->expires_at_unix_s = 0;
    if (verdict == BB_AUTH_ALLOW) {
      out->statements = statements.data();
      out->statement_count = statements.size();
      out->expires_at_unix_s = expires_at_unix_s;
      if (quotas && BB_HAS(out, bb_auth_result, quotas)) out->quotas = &*quotas;
    }
  }
};

// Synchronous results: the host copies them as soon as authenticate()
// returns, before it can call this module again on the same thread.
thread_local Reply t_reply;

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

class OidcModule final : public sdk::Module {
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
    bb_status s = host().api()->register_authenticator(host().ctx(), &kAuthenticator, this);
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
  std::optional<Reply> decide_cached(std::string_view token, const TokenHeader& header,
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
    if (!settings) return Reply::unavailable("provider not configured");
    if (keys) {
      Verdict v = verify_token(token, header, *keys, settings->rules, now_unix());
      if (v.kind != Verdict::kNoKey) return Reply::from(std::move(v), *settings);
      if (may_refresh) return std::nullopt;
      if (failed) {
        return Reply::unavailable(v.reason + " and the identity provider is unreachable (" +
                                  last_error + ")");
      }
      return Reply::deny(
          v.reason + (worker_after_refresh ? " (JWKS refetched)" : " (JWKS refetch rate-limited)"));
    }
    if (may_refresh) return std::nullopt;
    return Reply::unavailable("identity provider unavailable, no keys cached (" +
                              (last_error.empty() ? std::string("not fetched yet") : last_error) +
                              ")");
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
        if (job.ticket != 0) complete(job.ticket, Reply::unavailable("internal error"));
      }
    }
  }

  void process(Job& job) {
    std::optional<Reply> reply = decide_cached(job.token, job.header, false);
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
    complete(job.ticket, std::move(*reply));
  }

  void complete(bb_auth_ticket ticket, Reply reply) {
    bb_auth_result result{};
    result.struct_size = sizeof(result);
    reply.fill(&result);
    host().api()->auth_complete(host().ctx(), ticket, &result);  // BB_E_STALE: gone meanwhile
  }

  // Thread: any kernel worker, concurrently.
  static bb_status authenticate(void* user, const bb_auth_request* req, bb_auth_ticket ticket,
                                bb_auth_result* out) noexcept {
    if (user == nullptr || req == nullptr || out == nullptr) return BB_E_INVALID;
    auto* self = static_cast<OidcModule*>(user);
    try {
      std::string_view token;
      if (BB_HAS(req, bb_auth_request, password)) token = sdk::view(req->password);
      Reply& reply = t_reply;
      std::string error;
      std::optional<TokenHeader> header = parse_header(token, error);
      if (!header) {
        reply = Reply::deny(std::move(error));
        reply.fill(out);
        return BB_OK;
      }
      // Fast path: the key is cached (or no fetch may happen now).
      if (std::optional<Reply> r = self->decide_cached(token, *header, false)) {
        reply = std::move(*r);
        reply.fill(out);
        return BB_OK;
      }
      {
        std::lock_guard lock(self->mutex_);
        if (self->queue_.size() >= kMaxQueued) {
          reply = Reply::unavailable("too many logins waiting for the identity provider");
          reply.fill(out);
          return BB_OK;
        }
        Job job;
        job.ticket = ticket;
        job.token = std::string(token);
        job.header = *header;
        self->queue_.push_back(std::move(job));
      }
      self->cv_.notify_one();
      return BB_PENDING;
    } catch (const std::bad_alloc&) {
      return BB_E_NOMEM;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  // The host no longer wants the answer: drop the queued login, if any.
  static void cancel(void* user, bb_auth_ticket ticket) noexcept {
    if (user == nullptr) return;
    auto* self = static_cast<OidcModule*>(user);
    std::lock_guard lock(self->mutex_);
    for (auto it = self->queue_.begin(); it != self->queue_.end(); ++it) {
      if (it->ticket == ticket) {
        self->queue_.erase(it);
        return;
      }
    }
  }

  static const bb_authenticator kAuthenticator;

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

const bb_authenticator OidcModule::kAuthenticator{
    sizeof(bb_authenticator),
    0,
    {kAuthenticatorName.data(), kAuthenticatorName.size()},
    &OidcModule::authenticate,
    &OidcModule::cancel};

}  // namespace
}  // namespace backbone::modules::oidc

BACKBONE_MODULE(backbone::modules::oidc::OidcModule, "oidc", "1.0.0", BB_KIND_AUTH, 0)
