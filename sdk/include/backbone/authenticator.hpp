// SPDX-License-Identifier: GPL-3.0-or-later
// sdk::Authenticator: the C side of a bb_authenticator written once. A module
// derives from it (beside sdk::Module), answers logins with C++ values
// (sdk::AuthReply) and registers it in configure(); the trampolines, the
// bb_auth_result the host reads, its storage until the host has copied it,
// and auth_complete for logins answered later are done here.
#pragma once

#include <backbone/module_abi.h>
#include <backbone/sdk.hpp>

#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace backbone::sdk {
inline namespace v1 {

// One login as the host asked for it. The views are valid during
// Authenticator::authenticate() only: copy what a pending login needs.
struct LoginRequest {
  bb_auth_ticket ticket = 0;
  bb_conn_id conn = 0;  // 0 for HTTP API requests
  std::string_view client_id;
  std::string_view username;  // the provider name by Backbone's convention
  std::string_view transport;
  std::string_view peer_address;
  std::string_view password;  // a secret: never log it
};

// The answer to one login, as C++ values.
struct AuthReply {
  int32_t verdict = BB_AUTH_DENY;  // BB_AUTH_*
  std::string principal;           // who logged in; never a secret
  std::string log_reason;          // why a login failed, for the log; never a secret
  // Sent with BB_AUTH_ALLOW only, like the expiry and the quotas.
  StatementList statements;
  int64_t expires_at_unix_s = 0;    // 0 = the credentials do not expire
  std::optional<bb_quotas> quotas;  // nullopt = the broker's defaults

  static AuthReply allow(std::string principal, StatementList statements,
                         int64_t expires_at_unix_s = 0,
                         std::optional<bb_quotas> quotas = std::nullopt) {
    AuthReply r;
    r.verdict = BB_AUTH_ALLOW;
    r.principal = std::move(principal);
    r.statements = std::move(statements);
    r.expires_at_unix_s = expires_at_unix_s;
    r.quotas = quotas;
    return r;
  }
  // Bad credentials.
  static AuthReply deny(std::string why) { return refuse(BB_AUTH_DENY, std::move(why)); }
  // Valid credentials of `principal`, who may not log in.
  static AuthReply forbidden(std::string principal, std::string why) {
    AuthReply r = refuse(BB_AUTH_FORBIDDEN, std::move(why));
    r.principal = std::move(principal);
    return r;
  }
  // The provider could not decide (network, timeout).
  static AuthReply unavailable(std::string why) {
    return refuse(BB_AUTH_UNAVAILABLE, std::move(why));
  }

  // Points `out` into this reply: what it points to lives as long as this
  // reply, unchanged.
  void fill(bb_auth_result* out) {
    out->verdict = verdict;
    out->principal = str(principal);
    out->log_reason = str(log_reason);
    out->statements = nullptr;
    out->statement_count = 0;
    out->expires_at_unix_s = 0;
    if (verdict != BB_AUTH_ALLOW) return;
    out->statements = statements.data();
    out->statement_count = statements.size();
    out->expires_at_unix_s = expires_at_unix_s;
    if (quotas && BB_HAS(out, bb_auth_result, quotas)) out->quotas = &*quotas;
  }

 private:
  static AuthReply refuse(int32_t verdict, std::string why) {
    AuthReply r;
    r.verdict = verdict;
    r.log_reason = std::move(why);
    return r;
  }
};

class Authenticator {
 public:
  Authenticator() = default;
  virtual ~Authenticator() = default;
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  const std::string& authenticator_name() const noexcept { return name_; }

  // Registers this authenticator with the host under `name`, the CONNECT
  // user name that selects it ("jwt"). Thread: control thread, during
  // configure() only. This object must outlive the module's stop(): the host
  // calls it until then.
  bb_status register_with(const Host& host, std::string_view name) {
    name_ = name;
    host_.emplace(host);
    table_ = bb_authenticator{sizeof(bb_authenticator), 0, str(name_), &authenticate_trampoline,
                              &cancel_trampoline};
    return host.register_authenticator(table_, this);
  }

 protected:
  // Thread: any kernel worker, concurrently unless the module declares
  // BB_MODULE_SERIALIZE. Returns the answer, or nullopt to answer later:
  // then complete(request.ticket, ...) follows exactly once, from any
  // thread. An exception answers BB_E_NOMEM (std::bad_alloc) or
  // BB_E_INTERNAL (logged).
  virtual std::optional<AuthReply> authenticate(const LoginRequest& request) = 0;

  // The host no longer wants the answer to a pending login (client gone,
  // timeout, shutdown); complete() for it may still be called and returns
  // BB_E_STALE. Thread: any. Must not throw.
  virtual void cancel(bb_auth_ticket /*ticket*/) noexcept {}

  // Answers a login authenticate() left pending. Thread: any. BB_E_STALE
  // when the login is gone meanwhile; BB_E_STATE before register_with().
  bb_status complete(bb_auth_ticket ticket, AuthReply reply) const noexcept {
    if (!host_) return BB_E_STATE;
    bb_auth_result result{};
    result.struct_size = sizeof(result);
    reply.fill(&result);
    return host_->auth_complete(ticket, result);
  }

 private:
  static bb_status authenticate_trampoline(void* user, const bb_auth_request* req,
                                           bb_auth_ticket ticket, bb_auth_result* out) noexcept {
    if (user == nullptr || req == nullptr || out == nullptr) return BB_E_INVALID;
    auto* self = static_cast<Authenticator*>(user);
    try {
      LoginRequest request;
      request.ticket = ticket;
      request.conn = req->conn;
      request.client_id = view(req->client_id);
      request.username = view(req->username);
      request.transport = view(req->transport);
      request.peer_address = view(req->peer_address);
      if (BB_HAS(req, bb_auth_request, password)) request.password = view(req->password);
      std::optional<AuthReply> reply = self->authenticate(request);
      if (!reply) return BB_PENDING;
      // The host copies a synchronous result as soon as this returns, before
      // it can call this module again on the same thread: the storage only
      // has to survive until then.
      thread_local AuthReply last_reply;
      last_reply = std::move(*reply);
      last_reply.fill(out);
      return BB_OK;
    } catch (const std::bad_alloc&) {
      return BB_E_NOMEM;
    } catch (const std::exception& e) {
      self->log_exception(e.what());
      return BB_E_INTERNAL;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  void log_exception(const char* what) const noexcept {
    if (!host_) return;
    try {
      host_->error("authenticate: unhandled exception: " + std::string(what));
    } catch (...) {  // out of memory: the status says enough
    }
  }

  static void cancel_trampoline(void* user, bb_auth_ticket ticket) noexcept {
    if (user != nullptr) static_cast<Authenticator*>(user)->cancel(ticket);
  }

  std::string name_;
  bb_authenticator table_{};
  std::optional<Host> host_;
};

}  // namespace v1
}  // namespace backbone::sdk
