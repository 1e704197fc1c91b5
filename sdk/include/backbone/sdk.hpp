// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Header-only C++17 convenience layer over module_abi.h. It is compiled into
// each module with hidden visibility, so it may change between SDK releases
// while the C ABI stays fixed. First-party modules use it too: no back doors.

#include <backbone/module_abi.h>
#include <backbone/route_actions.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace backbone::sdk {
inline namespace v1 {

inline bb_str str(std::string_view s) noexcept {
  return bb_str{s.data(), s.size()};
}
inline std::string_view view(bb_str s) noexcept {
  return s.ptr == nullptr ? std::string_view{} : std::string_view{s.ptr, s.len};
}
inline std::string_view view(bb_bytes b) noexcept {
  return b.ptr == nullptr ? std::string_view{}
                          : std::string_view{reinterpret_cast<const char*>(b.ptr), b.len};
}
inline bb_bytes bytes(std::string_view s) noexcept {
  return bb_bytes{reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Replaces the file at `path` with `data`, durably and atomically: written
// to a temporary file (mode 0600), fsync'ed, renamed over `path`, and the
// directory fsync'ed. On failure returns false with `error` set and leaves
// the old file as it was.
inline bool write_private_file(const std::string& path, std::string_view data, std::string& error) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    error = tmp + ": " + std::strerror(errno);
    return false;
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = tmp + ": " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    error = tmp + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

// The whole file at `path`; nullopt with `error` empty when it does not
// exist, nullopt with `error` set when it cannot be read.
inline std::optional<std::string> read_file(const std::string& path, std::string& error) {
  error.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = path + ": " + std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// The value of request header `name` (case-insensitive), or empty.
inline std::string_view header(const bb_http_request& r, std::string_view name) noexcept {
  for (size_t i = 0; i < r.header_count; ++i) {
    const std::string_view n = view(r.headers[i].name);
    if (n.size() != name.size()) continue;
    bool same = true;
    for (size_t k = 0; k < n.size() && same; ++k) {
      char a = n[k], b = name[k];
      if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
      if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
      same = a == b;
    }
    if (same) return view(r.headers[i].value);
  }
  return {};
}

// Host: the host API table plus this instance's context. Cheap to copy.
class Host {
 public:
  Host(const bb_host_api* api, bb_host_ctx* ctx) noexcept : api_(api), ctx_(ctx) {}

  const bb_host_api* api() const noexcept { return api_; }
  bb_host_ctx* ctx() const noexcept { return ctx_; }

  void log(int32_t level, std::string_view msg) const noexcept { api_->log(ctx_, level, str(msg)); }
  void info(std::string_view msg) const noexcept { log(BB_LOG_INFO, msg); }
  void warn(std::string_view msg) const noexcept { log(BB_LOG_WARN, msg); }
  void error(std::string_view msg) const noexcept { log(BB_LOG_ERROR, msg); }
  void debug(std::string_view msg) const noexcept { log(BB_LOG_DEBUG, msg); }
  bool log_enabled(int32_t level) const noexcept { return api_->log_enabled(ctx_, level) != 0; }

  // JSON text of the setting at `key` ("" = all settings), or nullopt.
  std::optional<std::string> config(std::string_view key) const {
    bb_str out{};
    if (api_->config_get(ctx_, str(key), &out) != BB_OK) return std::nullopt;
    return std::string(view(out));
  }

  bb_status submit(std::string_view kind, std::string_view name, std::string_view json,
                   bool deleted = false) const noexcept {
    return api_->config_submit(ctx_, str(kind), str(name), str(json), deleted ? 1 : 0);
  }

  bb_status ready() const noexcept { return api_->ready(ctx_); }

  bb_status post(uint32_t delay_ms, bb_task_fn fn, void* arg) const noexcept {
    return api_->post(ctx_, delay_ms, fn, arg);
  }

  // --- ABI 1.1 ---

  // The host implements ABI 1.1 (HTTP routes, inspect, last_error).
  bool has_http() const noexcept { return BB_HAS(api_, bb_host_api, session_kick); }

  // Why this thread's last failed host call failed.
  std::string last_error() const {
    bb_str out{};
    if (!has_http() || api_->last_error(ctx_, &out) != BB_OK) return {};
    return std::string(view(out));
  }

  bb_status route(const bb_http_route& r, void* user) const noexcept {
    return api_->http_route(ctx_, &r, user);
  }

  bb_status respond(bb_http_exchange ex, int32_t status, std::string_view body,
                    std::string_view content_type = "application/json",
                    const std::vector<bb_http_header>& headers = {}) const noexcept {
    bb_http_response r{};
    r.struct_size = sizeof(r);
    r.status = status;
    r.content_type = str(content_type);
    r.headers = headers.data();
    r.header_count = headers.size();
    r.body = bytes(body);
    return api_->http_respond(ctx_, ex, &r);
  }

  // {"error": error, "message": message}, the API's error body.
  bb_status respond_error(bb_http_exchange ex, int32_t status, std::string_view error,
                          std::string_view message,
                          const std::vector<bb_http_header>& headers = {}) const {
    return respond(
        ex, status,
        "{\"error\":" + json_string(error) + ",\"message\":" + json_string(message) + "}",
        "application/json", headers);
  }

  // 405 with the Allow header (RFC 9110 §15.5.6).
  bb_status method_not_allowed(bb_http_exchange ex, std::string_view allow,
                               std::string_view message) const {
    return respond_error(ex, 405, "method_not_allowed", message,
                         {bb_http_header{str("Allow"), str(allow)}});
  }

  bool authorize(bb_http_exchange ex, std::string_view action,
                 std::string_view resource) const noexcept {
    return api_->http_authorize(ctx_, ex, str(action), str(resource)) == 1;
  }

  // ABI 1.3 delegation check: the index of the first allow statement the
  // requester of `ex` may not hand out, or nullopt when it holds them all.
  // Fails closed (index 0) on a host without the check.
  std::optional<size_t> first_ungranted(
      bb_http_exchange ex, const std::vector<bb_statement>& statements) const noexcept {
    if (statements.empty()) return std::nullopt;
    if (!BB_HAS(api_, bb_host_api, http_authorize_grant)) return 0;
    const int64_t i = api_->http_authorize_grant(ctx_, ex, statements.data(), statements.size());
    if (i < 0) return std::nullopt;
    return static_cast<size_t>(i) < statements.size() ? static_cast<size_t>(i) : 0;
  }

  // Delegation for a management request that hands out `statements` (SPEC
  // §6): true when the requester holds every allow statement; otherwise
  // answers 403 naming the first one it does not hold, audits the refusal
  // under `action` on `target`, and returns false.
  bool permit_grant(const bb_http_request& r, bb_http_exchange ex, std::string_view action,
                    std::string_view target, const std::vector<bb_statement>& statements) const {
    const std::optional<size_t> refused = first_ungranted(ex, statements);
    if (!refused) return true;
    const bb_statement& s = statements[*refused];
    audit(r, action, target, "denied (grants more than the caller holds)");
    respond_error(ex, 403, "forbidden",
                  "statement not covered by your own statements: allow " +
                      std::string(view(s.action)) + " on " + std::string(view(s.resource)) +
                      " (a caller may grant only what it holds)");
    return false;
  }

  // The audit line of a management request: who (provider and principal,
  // never a token), what, on which target, with which result.
  void audit(const bb_http_request& r, std::string_view action, std::string_view target,
             std::string_view result) const {
    info(audit_line(view(r.provider), view(r.principal), view(r.peer), action, target, result));
  }

  std::optional<std::string> inspect(std::string_view what, std::string_view arg = {}) const {
    bb_str out{};
    if (!has_http() || api_->inspect(ctx_, str(what), str(arg), &out) != BB_OK) return std::nullopt;
    return std::string(view(out));
  }

  // The module's state directory, or nullopt without one (ABI 1.1).
  std::optional<std::string> state_path() const {
    bb_str out{};
    if (!BB_HAS(api_, bb_host_api, state_path) || api_->state_path(ctx_, &out) != BB_OK)
      return std::nullopt;
    return std::string(view(out));
  }

  // --- authenticators and principals ---

  // Thread: control thread, during configure() only. `a` must outlive the
  // module's stop(); sdk::Authenticator does this for you.
  bb_status register_authenticator(const bb_authenticator& a, void* user) const noexcept {
    return api_->register_authenticator(ctx_, &a, user);
  }
  // Answers a login authenticate() left pending (BB_E_STALE: gone meanwhile).
  bb_status auth_complete(bb_auth_ticket ticket, const bb_auth_result& r) const noexcept {
    return api_->auth_complete(ctx_, ticket, &r);
  }
  // The live sessions of `principal` (logged in through this module's
  // authenticator `provider`) switch to `statements`.
  bb_status update_principal(std::string_view provider, std::string_view principal,
                             const std::vector<bb_statement>& statements) const noexcept {
    return api_->principal_update(ctx_, str(provider), str(principal), statements.data(),
                                  statements.size(), 0);
  }
  // The credentials of `principal` are withdrawn: its live sessions are cut.
  bb_status revoke_principal(std::string_view provider, std::string_view principal) const noexcept {
    return api_->principal_update(ctx_, str(provider), str(principal), nullptr, 0, 1);
  }
  // New quotas for the live sessions of `principal` (null: the broker's
  // defaults). BB_E_UNSUPPORTED on a host before ABI 1.3.
  bb_status update_quotas(std::string_view provider, std::string_view principal,
                          const bb_quotas* quotas) const noexcept {
    if (!BB_HAS(api_, bb_host_api, principal_quotas)) return BB_E_UNSUPPORTED;
    return api_->principal_quotas(ctx_, str(provider), str(principal), quotas);
  }

  // --- transports: connections and fd readiness ---

  bb_status conn_open(const bb_conn_info& info, const bb_conn_ops& ops, void* conn_user,
                      bb_conn_id* out) const noexcept {
    return api_->conn_open(ctx_, &info, &ops, conn_user, out);
  }
  bb_status conn_feed(bb_conn_id c, std::string_view data) const noexcept {
    return api_->conn_feed(ctx_, c, bytes(data));
  }
  bb_status conn_feed(bb_conn_id c, bb_bytes data) const noexcept {
    return api_->conn_feed(ctx_, c, data);
  }
  void conn_backpressure(bb_conn_id c, bool above_high_watermark) const noexcept {
    api_->conn_backpressure(ctx_, c, above_high_watermark ? 1 : 0);
  }
  void conn_closed(bb_conn_id c) const noexcept { api_->conn_closed(ctx_, c); }

  bb_status io_watch(int32_t fd, bb_conn_id affinity, bb_io_fn fn, void* user,
                     bb_io_watch* out) const noexcept {
    return api_->io_watch(ctx_, fd, affinity, fn, user, out);
  }
  bb_status io_want(bb_io_watch w, int32_t interest) const noexcept {
    return api_->io_want(ctx_, w, interest);
  }
  void io_unwatch(bb_io_watch w) const noexcept { api_->io_unwatch(ctx_, w); }

  // --- WebSockets (ABI 1.1) ---

  bb_status ws_send(bb_ws_id ws, const bb_bytes* chunks, size_t count) const noexcept {
    return api_->ws_send(ctx_, ws, chunks, count);
  }
  void ws_pause(bb_ws_id ws, bool paused) const noexcept {
    api_->ws_pause(ctx_, ws, paused ? 1 : 0);
  }
  void ws_close(bb_ws_id ws, uint16_t code) const noexcept { api_->ws_close(ctx_, ws, code); }

  // --- HTTP requesters (ABI 1.1) ---

  // Publishes for the requester of `ex` through the MQTT ingress; `reason`
  // is the MQTT v5 reason code, `reason_string` valid until the next host
  // call on this thread.
  bb_status http_publish(bb_http_exchange ex, const bb_message& m, int32_t& reason,
                         bb_str& reason_string) const noexcept {
    return api_->http_publish(ctx_, ex, &m, &reason, &reason_string);
  }
  bb_status session_kick(std::string_view client_id) const noexcept {
    return api_->session_kick(ctx_, str(client_id));
  }

  // --- clusters (ABI 1.2) ---

  // The host implements ABI 1.2 (message taps, routed publishes, takeovers).
  bool has_cluster() const noexcept { return BB_HAS(api_, bb_host_api, session_takeover); }
  bb_status register_message_tap(const bb_message_tap& tap, void* user) const noexcept {
    return api_->register_message_tap(ctx_, &tap, user);
  }
  bb_status publish_routed(const bb_message& m) const noexcept {
    return api_->publish_routed(ctx_, &m);
  }
  bb_status session_takeover(std::string_view client_id,
                             uint64_t connected_at_unix_ms) const noexcept {
    return api_->session_takeover(ctx_, str(client_id), connected_at_unix_ms);
  }
  // BB_E_UNSUPPORTED on a host before ABI 1.3 (use session_takeover there).
  bb_status session_takeover_as(const bb_session_start& s) const noexcept {
    if (!BB_HAS(api_, bb_host_api, session_takeover_as)) return BB_E_UNSUPPORTED;
    return api_->session_takeover_as(ctx_, &s);
  }
  // The host implements ABI 1.5 (held acknowledgements, durable routed
  // publishes): a cluster module can be at-least-once across brokers.
  bool has_durable_routing() const noexcept {
    return BB_HAS(api_, bb_host_api, publish_routed_durable);
  }
  // BB_E_UNSUPPORTED on a host before ABI 1.5.
  bb_status ack_release(bb_ack_hold hold) const noexcept {
    if (!BB_HAS(api_, bb_host_api, ack_release)) return BB_E_UNSUPPORTED;
    return api_->ack_release(ctx_, hold);
  }
  // BB_E_UNSUPPORTED on a host before ABI 1.5 (then `done` is not called).
  bb_status publish_routed_durable(const bb_message& m, void (*done)(void* user),
                                   void* user) const noexcept {
    if (!BB_HAS(api_, bb_host_api, publish_routed_durable)) return BB_E_UNSUPPORTED;
    return api_->publish_routed_durable(ctx_, &m, done, user);
  }
  // BB_E_UNSUPPORTED on a host before ABI 1.2.
  bb_status metric_set(std::string_view name, std::string_view help, int32_t kind,
                       double value) const noexcept {
    if (!BB_HAS(api_, bb_host_api, metric_set)) return BB_E_UNSUPPORTED;
    return api_->metric_set(ctx_, str(name), str(help), kind, value);
  }

  // A JSON string literal of `s` (quotes included). Invalid UTF-8 passes
  // through byte for byte; callers send text they validated.
  static std::string json_string(std::string_view s) { return json_quote(s); }

 private:
  const bb_host_api* api_;
  bb_host_ctx* ctx_;
};

// Base class of a module instance. Exceptions thrown by the hooks are turned
// into BB_E_INTERNAL with a log line by the trampolines below.
class Module {
 public:
  explicit Module(Host host) noexcept : host_(host) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual bb_status configure(bool /*reloading*/) { return BB_OK; }
  virtual bb_status start() { return BB_OK; }
  virtual void stop() {}

  const Host& host() const noexcept { return host_; }

 private:
  Host host_;
};

// Owns the statements of an auth result until the host has copied them.
class StatementList {
 public:
  void add(int32_t effect, std::string action, std::string resource) {
    strings_.push_back(std::move(action));
    strings_.push_back(std::move(resource));
    effects_.push_back(effect);
  }
  void allow(std::string action, std::string resource) {
    add(BB_EFFECT_ALLOW, std::move(action), std::move(resource));
  }
  // Pointers into strings_ are taken only here, after all adds, so vector
  // growth cannot invalidate them.
  const bb_statement* data() {
    items_.clear();
    for (size_t i = 0; i < effects_.size(); ++i) {
      items_.push_back(
          bb_statement{effects_[i], 0, str(strings_[2 * i]), str(strings_[2 * i + 1])});
    }
    return items_.data();
  }
  size_t size() const noexcept { return effects_.size(); }

 private:
  std::vector<std::string> strings_;
  std::vector<int32_t> effects_;
  std::vector<bb_statement> items_;
};

namespace detail {

template <class M>
struct Trampolines {
  static M* self(bb_module* m) noexcept { return reinterpret_cast<M*>(m); }

  template <class F>
  static bb_status guarded(bb_module* m, F&& f) noexcept {
    try {
      return f();
    } catch (const std::bad_alloc&) {
      return BB_E_NOMEM;
    } catch (const std::exception& e) {
      self(m)->host().error(std::string("unhandled exception: ") + e.what());
      return BB_E_INTERNAL;
    } catch (...) {
      self(m)->host().error("unhandled exception");
      return BB_E_INTERNAL;
    }
  }

  static bb_status configure(bb_module* m, int32_t reloading) noexcept {
    return guarded(m, [&] { return self(m)->configure(reloading != 0); });
  }
  static bb_status start(bb_module* m) noexcept {
    return guarded(m, [&] { return self(m)->start(); });
  }
  static void stop(bb_module* m) noexcept {
    guarded(m, [&] {
      self(m)->stop();
      return BB_OK;
    });
  }
  static void destroy(bb_module* m) noexcept { delete self(m); }

  static constexpr bb_module_ops kOps{
      sizeof(bb_module_ops), 0, &configure, &start, &stop, &destroy};

  static bb_status create(const bb_host_api* api, bb_host_ctx* ctx, const bb_module_ops** ops,
                          bb_module** out) noexcept {
    if (api == nullptr || ops == nullptr || out == nullptr) return BB_E_INVALID;
    try {
      *out = reinterpret_cast<bb_module*>(new M(Host(api, ctx)));
      *ops = &kOps;
      return BB_OK;
    } catch (const std::bad_alloc&) {
      return BB_E_NOMEM;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }
};

}  // namespace detail
}  // namespace v1
}  // namespace backbone::sdk

// Emits the module's descriptor and its one exported symbol.
//   BACKBONE_MODULE(JwtModule, "jwt", "1.0.0", BB_KIND_AUTH, 0)
#define BACKBONE_MODULE(Cls, NAME, VERSION, KINDS, FLAGS)                  \
  extern "C" BB_EXPORT const bb_module_descriptor* bb_module_entry(void) { \
    static const bb_module_descriptor descriptor{                          \
        sizeof(bb_module_descriptor),                                      \
        BB_ABI_MAJOR,                                                      \
        BB_ABI_MINOR,                                                      \
        (KINDS),                                                           \
        (FLAGS),                                                           \
        0,                                                                 \
        (NAME),                                                            \
        (VERSION),                                                         \
        &::backbone::sdk::detail::Trampolines<Cls>::create};               \
    return &descriptor;                                                    \
  }
