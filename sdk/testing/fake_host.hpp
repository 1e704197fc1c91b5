// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// FakeHost: an in-memory implementation of bb_host_api for module unit tests.
//
// It plays the kernel's part for one module instance: it serves the settings
// JSON through config_get, records log lines, config_submit calls, registered
// authenticators, auth_complete calls, published messages and posted tasks,
// and drives the lifecycle (create, configure, start, stop, destroy) through
// the module's own descriptor. Tests load the BUILT module with ModuleLibrary
// (dlopen + bb_module_entry), so the artifact that ships is the one tested.
//
// On a route that declares its actions (bb_http_route.actions, ABI 1.4)
// http() first checks the action, as the kernel does: a refusal is a 403 and
// an audit line, and handle() is not called. Routes are refused for a bad
// declaration as the kernel refuses them (sdk/route_actions.hpp).
//
// It also checks the module's side of the contract and records every breach
// in violations(): host calls in the wrong lifecycle phase, a ticket completed
// twice, a struct without its struct_size. A well-behaved module leaves
// violations() empty.
//
// Header-only, C++17, no dependency beyond the C++ library and libdl.
// Threads: every host function may be called from any thread (auth_complete
// typically is); the lifecycle helpers are meant for the test's thread.

#include <backbone/module_abi.h>
#include <dlfcn.h>
#include <backbone/route_actions.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if __has_include(<nlohmann/json.hpp>)
#include <backbone/json.hpp>
#define BACKBONE_FAKE_HOST_HAS_JSON 1
#endif

namespace backbone::testing {

struct LogLine {
  int32_t level;
  std::string message;
};

struct Submission {
  std::string kind;
  std::string name;
  std::string json;
  bool deleted;
};

struct Statement {
  int32_t effect;
  std::string action;
  std::string resource;
  bool operator==(const Statement& o) const {
    return effect == o.effect && action == o.action && resource == o.resource;
  }
};

// A principal_update() call of the module.
struct PrincipalUpdate {
  std::string provider;
  std::string principal;
  std::vector<Statement> statements;
  bool revoked;
};

// An HTTP response a module gave through http_respond().
struct HttpResponse {
  int32_t status = 0;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The peer address of every FakeHost::http() request.
inline constexpr std::string_view kRequestPeer = "127.0.0.1:50001";

// A request for FakeHost::http(): what the kernel hands a route handler.
struct HttpRequest {
  std::string method = "GET";
  std::string path;
  std::string query;  // without '?'
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string provider = "admin";
  std::string principal = "tester";
};

// A copy of a bb_auth_result, plus the status authenticate() returned.
struct AuthResult {
  bb_status status = BB_E_INTERNAL;
  int32_t verdict = 0;
  std::string principal;
  std::string log_reason;
  std::vector<Statement> statements;
  int64_t expires_at_unix_s = 0;
};

struct Registration {
  const bb_authenticator* table;
  void* user;
  std::string name;
};

struct PublishedMessage {
  std::string topic;
  std::string payload;
  std::string content_type;
  uint8_t qos;
  bool retain;
  uint32_t expiry_s;
  std::string properties;  // ABI 1.2
  bool routed = false;     // through publish_routed
  bool durable = false;    // ABI 1.5: through publish_routed_durable (also routed)
};

// A module shared object opened the way the kernel opens it (RTLD_NOW |
// RTLD_LOCAL). It is never closed: like the kernel, tests do not unload
// modules (thread_local destructors and unique symbols pin them anyway).
class ModuleLibrary {
 public:
  explicit ModuleLibrary(const std::string& path) {
    handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* e = ::dlerror();
      error_ = e != nullptr ? e : "dlopen failed";
      return;
    }
    void* sym = ::dlsym(handle_, "bb_module_entry");
    if (sym == nullptr) {
      error_ = "no bb_module_entry in " + path;
      return;
    }
    using EntryFn = const bb_module_descriptor* (*)();
    descriptor_ = reinterpret_cast<EntryFn>(sym)();
    if (descriptor_ == nullptr) error_ = "bb_module_entry returned null";
  }

  bool loaded() const noexcept { return descriptor_ != nullptr; }
  const std::string& error() const noexcept { return error_; }
  const bb_module_descriptor* descriptor() const noexcept { return descriptor_; }
  // dlsym on the module, to prove it exports nothing but bb_module_entry.
  void* symbol(const char* name) const noexcept {
    return handle_ == nullptr ? nullptr : ::dlsym(handle_, name);
  }

 private:
  void* handle_ = nullptr;
  const bb_module_descriptor* descriptor_ = nullptr;
  std::string error_;
};

class FakeHost {
 public:
  enum class Phase { kNone, kCreated, kConfiguring, kConfigured, kStarting, kStarted, kStopped };

  explicit FakeHost(std::string settings_json = "{}") : settings_(std::move(settings_json)) {}
  ~FakeHost() { destroy(); }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  // ---- what the module sees -------------------------------------------------
  const bb_host_api* api() const noexcept { return &kApi; }
  bb_host_ctx* ctx() noexcept { return reinterpret_cast<bb_host_ctx*>(this); }

  // The whole settings object the module reads with config_get(""); set to an
  // empty optional to make config_get return BB_E_NOT_FOUND.
  void set_settings(std::optional<std::string> json) {
    std::lock_guard lock(mutex_);
    settings_ = std::move(json);
  }

  // ---- lifecycle ------------------------------------------------------------
  bb_status create(const bb_module_descriptor* d) {
    if (d == nullptr || d->create == nullptr) return BB_E_INVALID;
    if (d->abi_major != BB_ABI_MAJOR || d->abi_min_minor > BB_ABI_MINOR) return BB_E_UNSUPPORTED;
    descriptor_ = d;
    const bb_module_ops* ops = nullptr;
    bb_module* m = nullptr;
    set_phase(Phase::kCreated);
    set_in_create(true);
    bb_status s = d->create(api(), ctx(), &ops, &m);
    set_in_create(false);
    if (s != BB_OK) {
      set_phase(Phase::kNone);
      return s;
    }
    if (ops == nullptr || m == nullptr || ops->struct_size < sizeof(bb_module_ops)) {
      violation("create returned BB_OK without a complete ops table and instance");
      return BB_E_INTERNAL;
    }
    ops_ = ops;
    module_ = m;
    return BB_OK;
  }

  bb_status configure(bool reloading = false) {
    if (module_ == nullptr) return BB_E_STATE;
    set_phase(Phase::kConfiguring);
    bb_status s = ops_->configure(module_, reloading ? 1 : 0);
    set_phase(Phase::kConfigured);
    return s;
  }

  bb_status start() {
    if (module_ == nullptr) return BB_E_STATE;
    set_phase(Phase::kStarting);
    bb_status s = ops_->start(module_);
    set_phase(Phase::kStarted);
    started_ = true;
    return s;
  }

  void stop() {
    if (module_ == nullptr) return;
    ops_->stop(module_);
    started_ = false;
    set_phase(Phase::kStopped);
  }

  // Stops first when the module was started and not stopped yet.
  void destroy() {
    if (module_ == nullptr) return;
    if (started_) stop();
    ops_->destroy(module_);
    module_ = nullptr;
    ops_ = nullptr;
    set_phase(Phase::kNone);
  }

  // create + configure in one step, as most tests need.
  bb_status load(const bb_module_descriptor* d) {
    bb_status s = create(d);
    return s != BB_OK ? s : configure();
  }

  Phase phase() const {
    std::lock_guard lock(mutex_);
    return phase_;
  }

  // ---- authentication --------------------------------------------------------
  std::vector<Registration> authenticators() const {
    std::lock_guard lock(mutex_);
    return authenticators_;
  }

  std::optional<Registration> authenticator(std::string_view name) const {
    std::lock_guard lock(mutex_);
    for (const auto& r : authenticators_) {
      if (r.name == name) return r;
    }
    return std::nullopt;
  }

  // Runs the registered authenticator `name` the way the kernel does for a
  // CONNECT with username=name. A BB_PENDING answer is awaited (auth_complete
  // from any thread) for up to `timeout`. The result's status is the status
  // authenticate() returned; BB_E_NOT_FOUND when nothing is registered.
  AuthResult authenticate(std::string_view name, std::string_view password,
                          std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    AuthResult result;
    auto reg = authenticator(name);
    if (!reg) {
      result.status = BB_E_NOT_FOUND;
      return result;
    }
    bb_auth_ticket ticket;
    {
      std::lock_guard lock(mutex_);
      ticket = next_ticket_++;
      pending_.emplace(ticket, std::nullopt);
    }
    bb_auth_request req{};
    req.struct_size = sizeof(bb_auth_request);
    req.conn = 1;
    req.client_id = make_str(client_id_);
    req.username = make_str(name);
    req.transport = make_str("tcp");
    req.peer_address = make_str("127.0.0.1:50000");
    req.password = bb_bytes{reinterpret_cast<const uint8_t*>(password.data()), password.size()};
    bb_auth_result out{};
    out.struct_size = sizeof(bb_auth_result);
    bb_status s = reg->table->authenticate(reg->user, &req, ticket, &out);
    if (s == BB_OK) {
      result = copy_result(&out);
      std::lock_guard lock(mutex_);
      pending_.erase(ticket);
    } else if (s == BB_PENDING) {
      std::unique_lock lock(mutex_);
      bool done = cv_.wait_for(lock, timeout, [&] { return pending_.at(ticket).has_value(); });
      if (done) {
        result = *pending_.at(ticket);
      } else {
        result.verdict = 0;
        result.log_reason = "timeout";
        violation_locked("BB_PENDING without auth_complete within the timeout");
      }
      pending_.erase(ticket);
    } else {
      std::lock_guard lock(mutex_);
      pending_.erase(ticket);
    }
    result.status = s;
    return result;
  }

  void set_client_id(std::string id) { client_id_ = std::move(id); }

  // ---- HTTP (ABI 1.1) -----------------------------------------------------------
  std::vector<std::string> routes() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& r : routes_) out.push_back(to_string(r.first->path));
    return out;
  }
  // Which management actions the requester may do: (action, resource) ->
  // allowed. Unlisted pairs follow `default_allow`.
  void set_authorization(std::map<std::pair<std::string, std::string>, bool> rules,
                         bool default_allow) {
    std::lock_guard lock(mutex_);
    authz_rules_ = std::move(rules);
    authz_default_ = default_allow;
  }
  // principal_quotas calls, in order.
  struct QuotaUpdate {
    std::string provider;
    std::string principal;
    std::optional<bb_quotas> quotas;
  };
  std::vector<QuotaUpdate> quota_updates() const {
    std::lock_guard lock(mutex_);
    return quota_updates_;
  }

  std::vector<std::pair<std::string, std::string>> authorize_calls() const {
    std::lock_guard lock(mutex_);
    return authorize_calls_;
  }
  // What inspect(what) answers; unset names answer BB_E_NOT_FOUND.
  void set_inspect(std::string what, std::string text) {
    std::lock_guard lock(mutex_);
    inspect_[std::move(what)] = std::move(text);
  }
  // The reason http_publish answers with (0 = accepted).
  void set_publish_reason(int32_t reason, std::string reason_string = {}) {
    std::lock_guard lock(mutex_);
    publish_reason_ = reason;
    publish_reason_string_ = std::move(reason_string);
  }
  // The directory state_path() answers (an existing directory the test
  // made); empty = BB_E_NOT_FOUND, as without a state directory.
  void set_state_path(std::string dir) {
    std::lock_guard lock(mutex_);
    state_path_ = std::move(dir);
  }
  // What last_error() answers (e.g. after set_submit_status(BB_E_INVALID)).
  void set_last_error(std::string text) {
    std::lock_guard lock(mutex_);
    last_error_ = std::move(text);
  }
  std::vector<std::string> kicked() const {
    std::lock_guard lock(mutex_);
    return kicked_;
  }
  // The last value of each metric the module set.
  std::map<std::string, double> metrics() const {
    std::lock_guard lock(mutex_);
    return metrics_;
  }
  std::vector<std::string> taken_over() const {
    std::lock_guard lock(mutex_);
    return taken_over_;
  }
  // Plays the broker accepting a message or starting a client's session:
  // every registered bb_message_tap hears of it, on the calling thread.
  // A tap with message_held (ABI 1.5) hears of it there with hold 0.
  void tap_message(const bb_message& m) { tap_message_held(m, 0); }
  // The same with a hold (a client's QoS 1/2 message): every tap with
  // message_held is given `hold` and must ack_release it (released_holds()).
  void tap_message_held(const bb_message& m, bb_ack_hold hold) {
    for (const auto& [tap, user] : taps()) {
      if (BB_HAS(tap, bb_message_tap, message_held) && tap->message_held)
        tap->message_held(user, &m, hold);
      else if (tap->message)
        tap->message(user, &m);
    }
  }
  // The holds the module released through ack_release, in order.
  std::vector<bb_ack_hold> released_holds() const {
    std::lock_guard lock(mutex_);
    return released_holds_;
  }
  void tap_session_started(std::string_view client_id, uint64_t connected_at_unix_ms) {
    for (const auto& [tap, user] : taps()) {
      if (BB_HAS(tap, bb_message_tap, session_started) && tap->session_started)
        tap->session_started(user, bb_str{client_id.data(), client_id.size()},
                             connected_at_unix_ms);
    }
  }
  // Sends `req` to the registered route that serves its path (longest
  // match, like the kernel) and waits up to `timeout` for the response.
  // Status 0 when no route serves the path or nobody answered.
  HttpResponse http(const HttpRequest& req,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const bb_http_route* route = nullptr;
    void* user = nullptr;
    bb_http_exchange ex;
    {
      std::lock_guard lock(mutex_);
      size_t best = 0;
      for (const auto& [r, u] : routes_) {
        const std::string path = to_string(r->path);
        const bool match =
            req.path == path || ((r->flags & BB_HTTP_PREFIX) && req.path.rfind(path + "/", 0) == 0);
        if (match && path.size() >= best) {
          best = path.size();
          route = r;
          user = u;
        }
      }
      if (!route || !route->handle) return {};
      // What the kernel checks before handle() on a route declaring actions.
      if (route->flags & BB_HTTP_AUTH) {
        const auto need =
            route_actions_[route].required(to_string(route->path), req.method, req.path);
        if (need && !authorize_locked(need->action, need->resource)) {
          logs_.push_back(
              LogLine{BB_LOG_INFO, sdk::audit_line(req.provider, req.principal, kRequestPeer,
                                                   need->action, need->resource, "denied")});
          return HttpResponse{
              403, "application/json", {}, sdk::forbidden_body(need->action, need->resource)};
        }
      }
      ex = next_exchange_++;
      responses_.emplace(ex, std::nullopt);
    }
    std::vector<bb_http_header> headers;
    for (const auto& [n, v] : req.headers) headers.push_back({make_str(n), make_str(v)});
    bb_http_request r{};
    r.struct_size = sizeof(r);
    r.method = make_str(req.method);
    r.path = make_str(req.path);
    r.query = make_str(req.query);
    r.headers = headers.data();
    r.header_count = headers.size();
    r.body = bb_bytes{reinterpret_cast<const uint8_t*>(req.body.data()), req.body.size()};
    r.peer = make_str(kRequestPeer);
    r.provider = make_str(req.provider);
    r.principal = make_str(req.principal);
    route->handle(user, &r, ex);
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [&] { return responses_.at(ex).has_value(); });
    HttpResponse out = responses_.at(ex).value_or(HttpResponse{});
    responses_.erase(ex);
    return out;
  }

  std::vector<std::pair<bb_auth_ticket, AuthResult>> completions() const {
    std::lock_guard lock(mutex_);
    return completions_;
  }

  // ---- records -----------------------------------------------------------------
  std::vector<LogLine> logs() const {
    std::lock_guard lock(mutex_);
    return logs_;
  }
  // Every log line, one per line, prefixed with its level: for failure output.
  std::string log_text() const {
    std::lock_guard lock(mutex_);
    std::string text;
    for (const auto& l : logs_) {
      text += std::to_string(l.level) + ": " + l.message + "\n";
    }
    return text;
  }
  // Was a line containing `needle` logged at `level` (any level if < 0)?
  bool logged(std::string_view needle, int32_t level = -1) const {
    std::lock_guard lock(mutex_);
    for (const auto& l : logs_) {
      if ((level < 0 || l.level == level) && l.message.find(needle) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  // Does any log line contain `secret`? (Modules must never log one.)
  bool leaked(std::string_view secret) const { return !secret.empty() && logged(secret); }

  std::vector<PrincipalUpdate> principal_updates() const {
    std::lock_guard lock(mutex_);
    return principal_updates_;
  }
  std::vector<Submission> submissions() const {
    std::lock_guard lock(mutex_);
    return submissions_;
  }
  std::vector<PublishedMessage> published() const {
    std::lock_guard lock(mutex_);
    return published_;
  }
  std::vector<std::string> violations() const {
    std::lock_guard lock(mutex_);
    return violations_;
  }
  int ready_calls() const {
    std::lock_guard lock(mutex_);
    return ready_calls_;
  }
  // The status config_submit answers with (the kernel answers BB_E_INVALID
  // for a resource it refuses).
  void set_submit_status(bb_status s) {
    std::lock_guard lock(mutex_);
    submit_status_ = s;
  }

  // Runs the tasks posted so far (in order, ignoring their delay); returns
  // how many ran.
  size_t run_posted() {
    std::deque<std::pair<bb_task_fn, void*>> tasks;
    {
      std::lock_guard lock(mutex_);
      tasks.swap(posted_);
    }
    for (auto& [fn, arg] : tasks) fn(arg);
    return tasks.size();
  }

 private:
  static FakeHost* self(bb_host_ctx* h) noexcept { return reinterpret_cast<FakeHost*>(h); }
  static bb_str make_str(std::string_view s) noexcept { return bb_str{s.data(), s.size()}; }
  static std::string to_string(bb_str s) {
    return s.ptr == nullptr ? std::string() : std::string(s.ptr, s.len);
  }

  void set_phase(Phase p) {
    std::lock_guard lock(mutex_);
    phase_ = p;
  }
  void set_in_create(bool v) {
    std::lock_guard lock(mutex_);
    in_create_ = v;
  }
  void violation(std::string what) {
    std::lock_guard lock(mutex_);
    violation_locked(std::move(what));
  }
  void violation_locked(std::string what) { violations_.push_back(std::move(what)); }

  // Records a violation when a host function other than log is called while
  // the module must not call the host (create, after stop). Caller holds mutex_.
  bool callable_locked(const char* fn) {
    if (in_create_) {
      violation_locked(std::string(fn) + " called during create");
      return false;
    }
    if (phase_ == Phase::kStopped || phase_ == Phase::kNone) {
      violation_locked(std::string(fn) + " called after stop");
      return false;
    }
    return true;
  }

  static AuthResult copy_result(const bb_auth_result* r) {
    AuthResult out;
    if (r == nullptr) return out;
    out.verdict = r->verdict;
    if (BB_HAS(r, bb_auth_result, principal)) out.principal = to_string(r->principal);
    if (BB_HAS(r, bb_auth_result, log_reason)) out.log_reason = to_string(r->log_reason);
    if (BB_HAS(r, bb_auth_result, statement_count) && r->statements != nullptr) {
      for (size_t i = 0; i < r->statement_count; ++i) {
        const bb_statement& s = r->statements[i];
        out.statements.push_back(Statement{s.effect, to_string(s.action), to_string(s.resource)});
      }
    }
    if (BB_HAS(r, bb_auth_result, expires_at_unix_s)) out.expires_at_unix_s = r->expires_at_unix_s;
    return out;
  }

  // ---- the host API table ------------------------------------------------------
  static void api_log(bb_host_ctx* h, int32_t level, bb_str msg) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (f->in_create_) f->violation_locked("log called during create");
    f->logs_.push_back(LogLine{level, to_string(msg)});
  }
  static int32_t api_log_enabled(bb_host_ctx*, int32_t) { return 1; }

  static bb_status api_config_get(bb_host_ctx* h, bb_str key, bb_str* out) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("config_get")) return BB_E_STATE;
    if (f->phase_ != Phase::kConfiguring && f->phase_ != Phase::kStarting) {
      f->violation_locked("config_get outside configure/start");
      return BB_E_STATE;
    }
    if (out == nullptr) return BB_E_INVALID;
    if (!f->settings_) return BB_E_NOT_FOUND;
    if (key.len == 0) {
      f->config_out_ = *f->settings_;
    } else {
#ifdef BACKBONE_FAKE_HOST_HAS_JSON
      auto doc = sdk::parse_json(*f->settings_, nullptr, true);
      std::string k = to_string(key);
      if (doc.is_discarded() || !doc.is_object() || !doc.contains(k)) return BB_E_NOT_FOUND;
      f->config_out_ = doc[k].dump();
#else
      return BB_E_UNSUPPORTED;
#endif
    }
    *out = make_str(f->config_out_);
    return BB_OK;
  }

  static bb_status api_config_submit(bb_host_ctx* h, bb_str kind, bb_str name, bb_str json,
                                     int32_t deleted) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("config_submit")) return BB_E_STATE;
    f->submissions_.push_back(
        Submission{to_string(kind), to_string(name), to_string(json), deleted != 0});
    return f->submit_status_;
  }

  static bb_status api_publish(bb_host_ctx* h, const bb_message* m) {
    return record_publish(h, m, false);
  }

  static bb_status api_publish_routed(bb_host_ctx* h, const bb_message* m) {
    return record_publish(h, m, true);
  }

  // Recorded like publish_routed; `done` is called at once (nothing waits
  // for a store here), after the lock is let go.
  static bb_status api_publish_routed_durable(bb_host_ctx* h, const bb_message* m,
                                              void (*done)(void* user), void* user) {
    if (done == nullptr) {
      FakeHost* f = self(h);
      std::lock_guard lock(f->mutex_);
      f->violation_locked("publish_routed_durable without done");
      return BB_E_INVALID;
    }
    const bb_status st = record_publish(h, m, true, true);
    if (st == BB_OK) done(user);
    return st;
  }

  static bb_status api_ack_release(bb_host_ctx* h, bb_ack_hold hold) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (hold == 0) {
      f->violation_locked("ack_release of hold 0");
      return BB_E_INVALID;
    }
    f->released_holds_.push_back(hold);
    return BB_OK;
  }

  static bb_status record_publish(bb_host_ctx* h, const bb_message* m, bool routed,
                                  bool durable = false) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked(durable  ? "publish_routed_durable"
                            : routed ? "publish_routed"
                                     : "publish"))
      return BB_E_STATE;
    if (m == nullptr || !BB_HAS(m, bb_message, content_type)) {
      f->violation_locked("publish with a short bb_message");
      return BB_E_INVALID;
    }
    auto bytes = [](bb_bytes b) {
      return b.ptr == nullptr ? std::string()
                              : std::string(reinterpret_cast<const char*>(b.ptr), b.len);
    };
    f->published_.push_back(PublishedMessage{
        to_string(m->topic), bytes(m->payload), to_string(m->content_type), m->qos, m->retain != 0,
        m->expiry_s, BB_HAS(m, bb_message, properties) ? bytes(m->properties) : std::string(),
        routed, durable});
    return BB_OK;
  }

  static bb_status api_register_message_tap(bb_host_ctx* h, const bb_message_tap* tap, void* user) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("register_message_tap")) return BB_E_STATE;
    if (f->phase_ != Phase::kConfiguring) {
      f->violation_locked("register_message_tap outside configure");
      return BB_E_STATE;
    }
    if (tap == nullptr || !BB_HAS(tap, bb_message_tap, message) ||
        (tap->message == nullptr &&
         !(BB_HAS(tap, bb_message_tap, message_held) && tap->message_held))) {
      f->violation_locked("register_message_tap with an incomplete table");
      return BB_E_INVALID;
    }
    f->taps_.emplace_back(tap, user);
    return BB_OK;
  }

  static bb_status api_metric_set(bb_host_ctx* h, bb_str name, bb_str, int32_t kind, double value) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("metric_set")) return BB_E_STATE;
    if (kind != BB_METRIC_COUNTER && kind != BB_METRIC_GAUGE) {
      f->violation_locked("metric_set with an unknown kind");
      return BB_E_INVALID;
    }
    f->metrics_[to_string(name)] = value;
    return BB_OK;
  }

  static bb_status api_session_takeover(bb_host_ctx* h, bb_str client_id, uint64_t) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("session_takeover")) return BB_E_STATE;
    f->taken_over_.push_back(to_string(client_id));
    return BB_OK;
  }

  std::vector<std::pair<const bb_message_tap*, void*>> taps() const {
    std::lock_guard lock(mutex_);
    return taps_;
  }

  static bb_status api_register_authenticator(bb_host_ctx* h, const bb_authenticator* a,
                                              void* user) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("register_authenticator")) return BB_E_STATE;
    if (f->phase_ != Phase::kConfiguring) {
      f->violation_locked("register_authenticator outside configure");
      return BB_E_STATE;
    }
    if (a == nullptr || a->struct_size < sizeof(bb_authenticator) || a->authenticate == nullptr ||
        a->name.len == 0) {
      f->violation_locked("register_authenticator with an incomplete table");
      return BB_E_INVALID;
    }
    std::string name = to_string(a->name);
    for (const auto& r : f->authenticators_) {
      if (r.name == name) return BB_E_INVALID;
    }
    f->authenticators_.push_back(Registration{a, user, std::move(name)});
    return BB_OK;
  }

  static bb_status api_auth_complete(bb_host_ctx* h, bb_auth_ticket t, const bb_auth_result* r) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    AuthResult copy = copy_result(r);
    f->completions_.emplace_back(t, copy);
    auto it = f->pending_.find(t);
    if (it == f->pending_.end() || it->second.has_value()) {
      f->violation_locked("auth_complete for an unknown or completed ticket");
      return BB_E_STALE;
    }
    it->second = std::move(copy);
    f->cv_.notify_all();
    return BB_OK;
  }

  static bb_status api_conn_open(bb_host_ctx*, const bb_conn_info*, const bb_conn_ops*, void*,
                                 bb_conn_id*) {
    return BB_E_UNSUPPORTED;
  }
  static bb_status api_conn_feed(bb_host_ctx*, bb_conn_id, bb_bytes) {
    return BB_E_STALE;
  }
  static void api_conn_backpressure(bb_host_ctx*, bb_conn_id, int32_t) {}
  static void api_conn_closed(bb_host_ctx*, bb_conn_id) {}
  static bb_status api_io_watch(bb_host_ctx*, int32_t, bb_conn_id, bb_io_fn, void*, bb_io_watch*) {
    return BB_E_UNSUPPORTED;
  }
  static bb_status api_io_want(bb_host_ctx*, bb_io_watch, int32_t) {
    return BB_E_STALE;
  }
  static void api_io_unwatch(bb_host_ctx*, bb_io_watch) {}

  static bb_status api_post(bb_host_ctx* h, uint32_t, bb_task_fn fn, void* arg) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("post")) return BB_E_STATE;
    if (fn == nullptr) return BB_E_INVALID;
    f->posted_.emplace_back(fn, arg);
    return BB_OK;
  }

  static bb_status api_ready(bb_host_ctx* h) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("ready")) return BB_E_STATE;
    ++f->ready_calls_;
    return BB_OK;
  }

  static bb_status api_principal_update(bb_host_ctx* h, bb_str provider, bb_str principal,
                                        const bb_statement* statements, size_t count,
                                        int32_t revoked) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    PrincipalUpdate u{to_string(provider), to_string(principal), {}, revoked != 0};
    for (size_t i = 0; i < count; ++i)
      u.statements.push_back(Statement{statements[i].effect, to_string(statements[i].action),
                                       to_string(statements[i].resource)});
    f->principal_updates_.push_back(std::move(u));
    return BB_OK;
  }

  static bb_status api_last_error(bb_host_ctx* h, bb_str* out) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    *out = make_str(f->last_error_);
    return BB_OK;
  }

  static bb_status api_http_route(bb_host_ctx* h, const bb_http_route* r, void* user) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (!f->callable_locked("http_route")) return BB_E_STATE;
    if (r == nullptr || !BB_HAS(r, bb_http_route, ws_closed)) {
      f->violation_locked("http_route without a complete bb_http_route");
      return BB_E_INVALID;
    }
    // The kernel's reading of the ABI 1.4 declaration, refusals included.
    auto actions = sdk::parse_route_actions(*r, &f->last_error_);
    if (!actions) return BB_E_INVALID;
    f->route_actions_[r] = std::move(*actions);
    f->routes_.emplace_back(r, user);
    return BB_OK;
  }

  static bb_status api_http_respond(bb_host_ctx* h, bb_http_exchange ex,
                                    const bb_http_response* r) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    auto it = f->responses_.find(ex);
    if (it == f->responses_.end()) return BB_E_STALE;
    if (it->second) {
      f->violation_locked("an exchange answered twice");
      return BB_E_STALE;
    }
    HttpResponse out;
    out.status = r->status;
    out.content_type = to_string(r->content_type);
    for (size_t i = 0; i < r->header_count; ++i)
      out.headers.emplace_back(to_string(r->headers[i].name), to_string(r->headers[i].value));
    if (r->body.ptr) out.body.assign(reinterpret_cast<const char*>(r->body.ptr), r->body.len);
    it->second = std::move(out);
    f->cv_.notify_all();
    return BB_OK;
  }

  static int32_t api_http_authorize(bb_host_ctx* h, bb_http_exchange, bb_str action,
                                    bb_str resource) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    return f->authorize_locked(to_string(action), to_string(resource)) ? 1 : 0;
  }

  bool authorize_locked(std::string action, std::string resource) {
    std::pair<std::string, std::string> key{std::move(action), std::move(resource)};
    authorize_calls_.push_back(key);
    auto it = authz_rules_.find(key);
    return it == authz_rules_.end() ? authz_default_ : it->second;
  }

  // Grants are judged like authorize calls: each allow triple by its exact
  // (action, resource) rule, or the default.
  static int64_t api_http_authorize_grant(bb_host_ctx* h, bb_http_exchange,
                                          const bb_statement* statements, size_t count) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    for (size_t i = 0; i < count; ++i) {
      if (statements[i].effect != BB_EFFECT_ALLOW) continue;
      std::pair<std::string, std::string> key{to_string(statements[i].action),
                                              to_string(statements[i].resource)};
      auto it = f->authz_rules_.find(key);
      if (!(it == f->authz_rules_.end() ? f->authz_default_ : it->second))
        return static_cast<int64_t>(i);
    }
    return -1;
  }

  static bb_status api_principal_quotas(bb_host_ctx* h, bb_str provider, bb_str principal,
                                        const bb_quotas* quotas) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    f->quota_updates_.push_back({to_string(provider), to_string(principal),
                                 quotas ? std::optional<bb_quotas>(*quotas) : std::nullopt});
    return BB_OK;
  }

  static bb_status api_session_takeover_as(bb_host_ctx* h, const bb_session_start* s) {
    return api_session_takeover(h, s->client_id, s->connected_at_unix_ms);
  }

  static bb_status api_http_publish(bb_host_ctx* h, bb_http_exchange, const bb_message* m,
                                    int32_t* reason, bb_str* reason_string) {
    FakeHost* f = self(h);
    api_publish(h, m);
    std::lock_guard lock(f->mutex_);
    *reason = f->publish_reason_;
    *reason_string = make_str(f->publish_reason_string_);
    return BB_OK;
  }

  static bb_status api_ws_send(bb_host_ctx*, bb_ws_id, const bb_bytes*, size_t) {
    return BB_E_STALE;
  }
  static void api_ws_pause(bb_host_ctx*, bb_ws_id, int32_t) {}
  static void api_ws_close(bb_host_ctx*, bb_ws_id, uint16_t) {}

  static bb_status api_inspect(bb_host_ctx* h, bb_str what, bb_str, bb_str* out) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    auto it = f->inspect_.find(to_string(what));
    if (it == f->inspect_.end()) return BB_E_NOT_FOUND;
    *out = make_str(it->second);
    return BB_OK;
  }

  static bb_status api_session_kick(bb_host_ctx* h, bb_str client_id) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    f->kicked_.push_back(to_string(client_id));
    return BB_OK;
  }

  static bb_status api_state_path(bb_host_ctx* h, bb_str* out) {
    FakeHost* f = self(h);
    std::lock_guard lock(f->mutex_);
    if (f->state_path_.empty()) return BB_E_NOT_FOUND;
    *out = make_str(f->state_path_);
    return BB_OK;
  }

  static constexpr bb_host_api kApi{sizeof(bb_host_api),
                                    BB_ABI_MAJOR,
                                    BB_ABI_MINOR,
                                    0,
                                    &api_log,
                                    &api_log_enabled,
                                    &api_config_get,
                                    &api_config_submit,
                                    &api_publish,
                                    &api_register_authenticator,
                                    &api_auth_complete,
                                    &api_conn_open,
                                    &api_conn_feed,
                                    &api_conn_backpressure,
                                    &api_conn_closed,
                                    &api_io_watch,
                                    &api_io_want,
                                    &api_io_unwatch,
                                    &api_post,
                                    &api_ready,
                                    &api_principal_update,
                                    &api_last_error,
                                    &api_http_route,
                                    &api_http_respond,
                                    &api_http_authorize,
                                    &api_http_publish,
                                    &api_ws_send,
                                    &api_ws_pause,
                                    &api_ws_close,
                                    &api_inspect,
                                    &api_session_kick,
                                    &api_state_path,
                                    &api_register_message_tap,
                                    &api_publish_routed,
                                    &api_session_takeover,
                                    &api_metric_set,
                                    &api_http_authorize_grant,
                                    &api_principal_quotas,
                                    &api_session_takeover_as,
                                    &api_ack_release,
                                    &api_publish_routed_durable};

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<std::string> settings_;
  std::string config_out_;
  const bb_module_descriptor* descriptor_ = nullptr;
  const bb_module_ops* ops_ = nullptr;
  bb_module* module_ = nullptr;
  Phase phase_ = Phase::kNone;
  bool in_create_ = false;
  bool started_ = false;  // touched by the lifecycle helpers only (test thread)
  std::string client_id_ = "test-client";
  bb_status submit_status_ = BB_OK;
  bb_auth_ticket next_ticket_ = 0x0001000000000001ull;
  std::map<bb_auth_ticket, std::optional<AuthResult>> pending_;
  std::vector<std::pair<bb_auth_ticket, AuthResult>> completions_;
  std::vector<LogLine> logs_;
  std::vector<Submission> submissions_;
  std::vector<PrincipalUpdate> principal_updates_;
  std::vector<PublishedMessage> published_;
  std::vector<Registration> authenticators_;
  std::string last_error_;
  std::vector<std::pair<const bb_http_route*, void*>> routes_;
  std::map<const bb_http_route*, sdk::RouteActions> route_actions_;
  std::map<bb_http_exchange, std::optional<HttpResponse>> responses_;
  bb_http_exchange next_exchange_ = 1;
  std::map<std::pair<std::string, std::string>, bool> authz_rules_;
  bool authz_default_ = true;
  std::vector<std::pair<std::string, std::string>> authorize_calls_;
  std::vector<QuotaUpdate> quota_updates_;
  std::map<std::string, std::string> inspect_;
  int32_t publish_reason_ = 0;
  std::string publish_reason_string_;
  std::vector<std::string> kicked_;
  std::vector<std::string> taken_over_;
  std::map<std::string, double> metrics_;
  std::vector<std::pair<const bb_message_tap*, void*>> taps_;
  std::vector<bb_ack_hold> released_holds_;
  std::string state_path_;
  std::vector<std::string> violations_;
  std::deque<std::pair<bb_task_fn, void*>> posted_;
  int ready_calls_ = 0;
};

}  // namespace backbone::testing
