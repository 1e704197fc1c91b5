// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/module_host/module_host.hpp"

#include <spdlog/spdlog.h>
#include <backbone/json.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <unordered_map>

#include "kernel/broker/broker.hpp"
#include "kernel/connection/connection_table.hpp"
#include "kernel/http/http_server.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/protocol/codec.hpp"
#include "kernel/protocol/reason_code.hpp"
#include "kernel/state/state_dir.hpp"

// The per-instance context handed to a module: opaque to it.
struct bb_host_ctx {
  backbone::kernel::module_host::ModuleHost* host = nullptr;
  backbone::kernel::module_host::ModuleHost::Instance* instance = nullptr;
};

namespace backbone::kernel::module_host {

using nlohmann::json;

struct ModuleHost::Instance {
  bb_host_ctx ctx;
  config::ModuleEntry entry;
  const bb_module_descriptor* descriptor = nullptr;
  const bb_module_ops* ops = nullptr;
  bb_module* module = nullptr;
  std::string config_scratch;  // backs bb_str results of config_get
  std::once_flag state_once;
  std::string state_path;  // "<state_dir>/<name>" once created
  bool configured = false;
  bool started = false;
  bool ready = false;
  std::atomic<bool> stopped{false};
  std::string name() const { return entry.name; }
};

namespace {

std::string text(bb_str s) {
  return s.ptr ? std::string(s.ptr, s.len) : std::string();
}

int lowest_kind(uint32_t kinds) {
  for (int bit = 0; bit < 32; ++bit) {
    if (kinds & (1u << bit)) return bit;
  }
  return 32;
}

// Level-like readiness notifications for a module's fd on one worker.
class IoWatch : public std::enable_shared_from_this<IoWatch> {
 public:
  IoWatch(net::Worker& worker, int fd, bb_io_fn fn, void* user)
      : worker_(worker), descriptor_(worker.io(), fd), fn_(fn), user_(user) {}

  net::Worker& worker() { return worker_; }

  void want(int32_t interest) {
    interest_ = interest;
    arm();
  }

  void unwatch() {
    active_ = false;
    boost::system::error_code ec;
    descriptor_.cancel(ec);
    descriptor_.release();  // the module owns and closes the fd
  }

 private:
  void arm() {
    if (!active_) return;
    if ((interest_ & BB_IO_READ) && !reading_) {
      reading_ = true;
      descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                             [self = shared_from_this()](boost::system::error_code ec) {
                               self->reading_ = false;
                               self->fire(ec, BB_IO_READ);
                             });
    }
    if ((interest_ & BB_IO_WRITE) && !writing_) {
      writing_ = true;
      descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                             [self = shared_from_this()](boost::system::error_code ec) {
                               self->writing_ = false;
                               self->fire(ec, BB_IO_WRITE);
                             });
    }
  }

  void fire(boost::system::error_code ec, int32_t event) {
    if (!active_ || ec == boost::asio::error::operation_aborted) return;
    if (!(interest_ & event)) return;
    fn_(user_, ec ? BB_IO_ERROR : event);
    if (active_) arm();
  }

  net::Worker& worker_;
  boost::asio::posix::stream_descriptor descriptor_;
  bb_io_fn fn_;
  void* user_;
  int32_t interest_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool active_ = true;
};

// Watches per worker; each map is touched only by its worker.
struct WatchRegistry {
  std::vector<std::unordered_map<bb_io_watch, std::shared_ptr<IoWatch>>> by_worker;
  std::atomic<uint64_t> next{1};
};

broker::Broker* g_broker = nullptr;
connection::ConnectionTable* g_connections = nullptr;
net::WorkerPool* g_workers = nullptr;
http::HttpServer* g_http = nullptr;
ModuleHost* g_host = nullptr;

// Why the calling thread's last failed host call failed (last_error), and
// the text behind bb_str results valid until the thread's next host call.
thread_local std::string t_last_error;
thread_local std::string t_result;

bb_status failed(bb_status status, std::string why) {
  t_last_error = std::move(why);
  return status;
}
WatchRegistry* g_watches = nullptr;

IoWatch* find_watch(bb_io_watch w) {
  const uint32_t worker = static_cast<uint32_t>(w & 0xFF);
  if (!g_watches || worker >= g_watches->by_worker.size()) return nullptr;
  auto& map = g_watches->by_worker[worker];
  auto it = map.find(w);
  return it == map.end() ? nullptr : it->second.get();
}

}  // namespace

// The bb_host_api functions. Every one is noexcept: nothing may unwind into
// a module.
struct HostApiImpl {
  static ModuleHost::Instance* inst(bb_host_ctx* h) { return h ? h->instance : nullptr; }

  static void log(bb_host_ctx* h, int32_t level, bb_str msg) noexcept {
    try {
      const std::string name = inst(h) ? inst(h)->name() : "?";
      const auto lvl = level <= BB_LOG_TRACE   ? spdlog::level::trace
                       : level == BB_LOG_DEBUG ? spdlog::level::debug
                       : level == BB_LOG_INFO  ? spdlog::level::info
                       : level == BB_LOG_WARN  ? spdlog::level::warn
                                               : spdlog::level::err;
      spdlog::log(lvl, "[{}] {}", name, std::string_view(msg.ptr ? msg.ptr : "", msg.len));
    } catch (...) {
    }
  }

  static int32_t log_enabled(bb_host_ctx*, int32_t level) noexcept {
    return spdlog::should_log(static_cast<spdlog::level::level_enum>(std::clamp(level, 0, 4))) ? 1
                                                                                               : 0;
  }

  static bb_status config_get(bb_host_ctx* h, bb_str key, bb_str* out) noexcept {
    try {
      auto* i = inst(h);
      if (!i || !out) return BB_E_INVALID;
      const std::string k = text(key);
      const json* value = &i->entry.settings;
      if (!k.empty()) {
        if (!i->entry.settings.contains(k)) return BB_E_NOT_FOUND;
        value = &i->entry.settings[k];
      }
      i->config_scratch = value->dump();
      *out = bb_str{i->config_scratch.c_str(), i->config_scratch.size()};
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status config_submit(bb_host_ctx* h, bb_str kind, bb_str name, bb_str json_text,
                                 int32_t deleted) noexcept {
    try {
      auto* i = inst(h);
      if (!i) return BB_E_INVALID;
      const std::string k = text(kind), n = text(name);
      json body;
      if (!deleted) {
        sdk::JsonError error;
        body = sdk::parse_json(text(json_text), &error);
        if (body.is_discarded()) {
          spdlog::error("[{}] submitted {} '{}' is {}", i->name(), k, n, error.message);
          return failed(BB_E_INVALID, error.message);
        }
      }
      if (k == "settings") {
        if (!body.is_object()) return failed(BB_E_INVALID, "settings must be a JSON object");
        h->host->apply_settings(body, i->name());
        return BB_OK;
      }
      if (k == "topic") {
        std::string error;
        if (!g_broker->set_topic_rules(n, deleted ? nullptr : &body, &error)) {
          spdlog::error("[{}] topic rule '{}' refused, previous rules stay: {}", i->name(), n,
                        error);
          return failed(BB_E_INVALID, error);
        }
        spdlog::info("[{}] topic rule '{}' {}", i->name(), n, deleted ? "removed" : "applied");
        return BB_OK;
      }
      spdlog::error("[{}] config_submit: unsupported kind '{}'", i->name(), k);
      return failed(BB_E_UNSUPPORTED, "unsupported kind '" + k + "'");
    } catch (const std::exception& e) {
      spdlog::error("config_submit failed: {}", e.what());
      return BB_E_INTERNAL;
    }
  }

  // The kernel's message for a module's; nullptr (and last_error says why)
  // when it is not one a client could publish.
  static message::MessagePtr message_of(const bb_message* m) {
    auto refuse = [](std::string why) -> message::MessagePtr {
      failed(BB_E_INVALID, std::move(why));
      return nullptr;
    };
    if (!m || m->qos > 2) return refuse("invalid message");
    auto msg = std::make_shared<message::Message>();
    msg->topic = text(m->topic);
    if (!protocol::valid_topic_name(msg->topic) || !protocol::valid_utf8(msg->topic))
      return refuse("invalid topic name");
    if (!g_broker->topic_within_limits(msg->topic))
      return refuse("topic exceeds the length or level limits");
    if (m->payload.ptr)
      msg->payload.assign(reinterpret_cast<const char*>(m->payload.ptr), m->payload.len);
    msg->qos = m->qos;
    msg->retain = m->retain != 0;
    if (m->expiry_s) msg->expires_at = message::Clock::now() + std::chrono::seconds(m->expiry_s);
    // The content type field and the property block become the properties a
    // subscriber receives, checked as a PUBLISH's would be.
    std::string props;
    if (m->content_type.len) {
      if (m->content_type.len > 0xFFFF || !protocol::valid_utf8(text(m->content_type)))
        return refuse("invalid content type");
      props.push_back(static_cast<char>(protocol::property::kContentType));
      props.push_back(static_cast<char>(m->content_type.len >> 8));
      props.push_back(static_cast<char>(m->content_type.len & 0xFF));
      props.append(m->content_type.ptr, m->content_type.len);
    }
    if (BB_HAS(m, bb_message, properties) && m->properties.len) {
      if (!m->properties.ptr) return refuse("invalid properties");
      props.append(reinterpret_cast<const char*>(m->properties.ptr), m->properties.len);
    }
    if (!props.empty()) {
      protocol::DecodeError err;
      if (!protocol::forwardable_properties(props, msg->forward_props, err))
        return refuse(std::string("invalid properties: ") + err.message);
    }
    return msg;
  }

  static bb_status publish(bb_host_ctx* h, const bb_message* m) noexcept {
    try {
      if (!inst(h)) return BB_E_INVALID;
      auto msg = message_of(m);
      if (!msg) return BB_E_INVALID;
      auto result = g_broker->ingress(broker::Origin{}, std::move(msg), 0);
      return result.reason >= 0x80 ? failed(BB_E_INVALID, result.reason_string) : BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status publish_routed(bb_host_ctx* h, const bb_message* m) noexcept {
    try {
      if (!inst(h)) return BB_E_INVALID;
      auto msg = message_of(m);
      if (!msg) return BB_E_INVALID;
      broker::Origin origin;
      origin.routed = true;
      g_broker->ingress(origin, std::move(msg), 0);
      return BB_OK;
    } catch (const std::exception& e) {
      return failed(BB_E_INTERNAL, e.what());
    }
  }

  static bb_status register_message_tap(bb_host_ctx* h, const bb_message_tap* tap,
                                        void* user) noexcept {
    try {
      auto* i = inst(h);
      if (!i || !tap || !BB_HAS(tap, bb_message_tap, message)) return BB_E_INVALID;
      if (i->configured) return BB_E_STATE;
      g_broker->add_tap(broker::Tap{tap, user});
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status session_takeover_as(bb_host_ctx* h, const bb_session_start* s) noexcept {
    try {
      if (!inst(h) || !s || !BB_HAS(s, bb_session_start, principal) || s->connected_at_unix_ms == 0)
        return failed(BB_E_INVALID, "bad bb_session_start");
      const std::string provider = text(s->provider), principal = text(s->principal);
      broker::Broker::Login by{provider, principal, nullptr, s->may_take_over != 0};
      return g_broker->kick(text(s->client_id), protocol::reason::kSessionTakenOver,
                            s->connected_at_unix_ms, &by)
                 ? BB_OK
                 : failed(BB_E_NOT_FOUND,
                          "no such session, it connected here later, or it belongs to another "
                          "principal");
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status metric_set(bb_host_ctx* h, bb_str name, bb_str help, int32_t kind,
                              double value) noexcept {
    try {
      auto* i = inst(h);
      if (!i) return BB_E_INVALID;
      if (kind != BB_METRIC_COUNTER && kind != BB_METRIC_GAUGE)
        return failed(BB_E_INVALID, "metric kind must be BB_METRIC_COUNTER or BB_METRIC_GAUGE");
      std::string why = g_broker->metrics().set_module_metric(i->name(), text(name), text(help),
                                                              kind == BB_METRIC_COUNTER, value);
      return why.empty() ? BB_OK : failed(BB_E_INVALID, std::move(why));
    } catch (const std::exception& e) {
      return failed(BB_E_INTERNAL, e.what());
    }
  }

  static bb_status session_takeover(bb_host_ctx* h, bb_str client_id,
                                    uint64_t connected_at_unix_ms) noexcept {
    try {
      if (!inst(h) || connected_at_unix_ms == 0) return BB_E_INVALID;
      return g_broker->kick(text(client_id), protocol::reason::kSessionTakenOver,
                            connected_at_unix_ms)
                 ? BB_OK
                 : BB_E_NOT_FOUND;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status register_authenticator(bb_host_ctx* h, const bb_authenticator* a,
                                          void* user) noexcept {
    try {
      auto* i = inst(h);
      if (!i || !a || !a->authenticate || a->name.len == 0) return BB_E_INVALID;
      if (i->configured) return BB_E_STATE;
      const std::string name = text(a->name);
      auth::Authenticator entry;
      entry.table = a;
      entry.user = user;
      entry.serialize = (i->descriptor->flags & BB_MODULE_SERIALIZE) != 0;
      if (!g_broker->logins().add(name, entry)) {
        spdlog::error("[{}] authenticator '{}' is already registered", i->name(), name);
        return BB_E_INVALID;
      }
      spdlog::info("[{}] authentication provider '{}' registered", i->name(), name);
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status auth_complete(bb_host_ctx*, bb_auth_ticket t, const bb_auth_result* r) noexcept {
    try {
      if (!r) return BB_E_INVALID;
      return g_broker->logins().complete(t, *r);
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status conn_open(bb_host_ctx* h, const bb_conn_info* info, const bb_conn_ops* ops,
                             void* conn_user, bb_conn_id* out) noexcept {
    try {
      if (!inst(h) || !info || !ops || !ops->write || !ops->close || !out) return BB_E_INVALID;
      if (inst(h)->stopped) return BB_E_STATE;
      const bool here =
          BB_HAS(info, bb_conn_info, flags) && (info->flags & BB_CONN_ON_CALLING_WORKER);
      if (here && !net::WorkerPool::current()) return BB_E_STATE;
      const bb_conn_id id = g_connections->open(*info, ops, conn_user, here);
      if (id == 0) return BB_E_NOMEM;  // connection limit reached
      *out = id;
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status conn_feed(bb_host_ctx*, bb_conn_id c, bb_bytes data) noexcept {
    try {
      if (!g_connections->find(c)) return BB_E_STALE;
      g_connections->feed(c, std::string_view(reinterpret_cast<const char*>(data.ptr), data.len));
      return BB_OK;
    } catch (const std::exception& e) {
      spdlog::error("connection {}: internal error: {}", c, e.what());
      return BB_E_INTERNAL;
    }
  }

  static void conn_backpressure(bb_host_ctx*, bb_conn_id c, int32_t above) noexcept {
    try {
      g_connections->backpressure(c, above != 0);
    } catch (...) {
    }
  }

  static void conn_closed(bb_host_ctx*, bb_conn_id c) noexcept {
    try {
      g_connections->closed(c);
    } catch (const std::exception& e) {
      spdlog::error("connection {}: error while closing: {}", c, e.what());
    }
  }

  static bb_status io_watch(bb_host_ctx* h, int32_t fd, bb_conn_id affinity, bb_io_fn fn,
                            void* user, bb_io_watch* out) noexcept {
    try {
      if (!inst(h) || fd < 0 || !fn || !out) return BB_E_INVALID;
      net::Worker& worker =
          affinity != 0
              ? g_workers->at(connection::ConnectionTable::worker_of(affinity) % g_workers->size())
              : g_workers->next();
      const bb_io_watch id = (g_watches->next.fetch_add(1) << 8) | worker.index();
      auto watch = std::make_shared<IoWatch>(worker, fd, fn, user);
      auto* map = &g_watches->by_worker[worker.index()];
      if (net::WorkerPool::current() == &worker) {
        map->emplace(id, std::move(watch));
      } else {
        worker.post([map, id, watch] { map->emplace(id, watch); });
      }
      *out = id;
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status io_want(bb_host_ctx*, bb_io_watch w, int32_t interest) noexcept {
    try {
      const uint32_t owner = static_cast<uint32_t>(w & 0xFF);
      if (owner >= g_workers->size()) return BB_E_STALE;
      net::Worker& worker = g_workers->at(owner);
      if (net::WorkerPool::current() != &worker) {
        // Forwarded: queued behind the watch's creation on its worker.
        worker.post([w, interest] {
          if (IoWatch* watch = find_watch(w)) watch->want(interest);
        });
        return BB_OK;
      }
      IoWatch* watch = find_watch(w);
      if (!watch) return BB_E_STALE;
      watch->want(interest);
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static void io_unwatch(bb_host_ctx*, bb_io_watch w) noexcept {
    try {
      const uint32_t owner = static_cast<uint32_t>(w & 0xFF);
      if (owner >= g_watches->by_worker.size()) return;
      auto remove = [w, owner] {
        auto& map = g_watches->by_worker[owner];
        auto it = map.find(w);
        if (it == map.end()) return;
        it->second->unwatch();
        map.erase(it);
      };
      net::Worker& worker = g_workers->at(owner);
      if (net::WorkerPool::current() == &worker || worker.io().stopped()) {
        remove();
        return;
      }
      // From another thread (a module's stop()): run it on the owner and
      // wait, so the module may close the fd once this returns.
      auto done = std::make_shared<std::promise<void>>();
      auto finished = done->get_future();
      worker.post([remove, done] {
        remove();
        done->set_value();
      });
      finished.wait_for(std::chrono::seconds(2));
    } catch (...) {
    }
  }

  static bb_status post(bb_host_ctx* h, uint32_t delay_ms, bb_task_fn fn, void* arg) noexcept {
    try {
      if (!inst(h) || !fn) return BB_E_INVALID;
      net::Worker& worker = g_workers->next();
      if (delay_ms == 0) {
        worker.post([fn, arg] { fn(arg); });
        return BB_OK;
      }
      auto timer = std::make_shared<boost::asio::steady_timer>(worker.io(),
                                                               std::chrono::milliseconds(delay_ms));
      timer->async_wait([timer, fn, arg](boost::system::error_code ec) {
        if (!ec) fn(arg);
      });
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status ready(bb_host_ctx* h) noexcept {
    try {
      auto* i = inst(h);
      if (!i) return BB_E_INVALID;
      {
        std::lock_guard lock(h->host->ready_mutex_);
        i->ready = true;
      }
      h->host->ready_cv_.notify_all();
      spdlog::info("[{}] ready", i->name());
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status principal_update(bb_host_ctx* h, bb_str provider, bb_str principal,
                                    const bb_statement* statements, size_t count,
                                    int32_t revoked) noexcept {
    try {
      if (!inst(h) || (count > 0 && !statements)) return BB_E_INVALID;
      std::shared_ptr<const authz::Policy> policy;
      if (!revoked) {
        std::string error;
        policy = authz::Policy::compile(auth::statements_from_abi(statements, count), &error);
        if (!policy) {
          spdlog::error("[{}] statements for '{}' refused, previous ones stay: {}", inst(h)->name(),
                        text(principal), error);
          return failed(BB_E_INVALID, error);
        }
      }
      g_broker->update_principal(text(provider), text(principal), std::move(policy));
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status principal_quotas(bb_host_ctx* h, bb_str provider, bb_str principal,
                                    const bb_quotas* quotas) noexcept {
    try {
      if (!inst(h) || (quotas && quotas->struct_size < sizeof(uint32_t) * 2))
        return failed(BB_E_INVALID, "bad bb_quotas");
      g_broker->update_quotas(text(provider), text(principal), quotas);
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  // --- ABI 1.1 ---

  static bb_status last_error(bb_host_ctx*, bb_str* out) noexcept {
    if (!out) return BB_E_INVALID;
    *out = bb_str{t_last_error.c_str(), t_last_error.size()};
    return BB_OK;
  }

  static bb_status http_route(bb_host_ctx* h, const bb_http_route* r, void* user) noexcept {
    try {
      auto* i = inst(h);
      if (!i || !r || !BB_HAS(r, bb_http_route, ws_closed)) return BB_E_INVALID;
      std::string error;
      const bb_status status = g_http->add_route(i->name(), *r, user, &error);
      if (status != BB_OK) return failed(status, error);
      return BB_OK;
    } catch (const std::exception& e) {
      return failed(BB_E_INTERNAL, e.what());
    }
  }

  static bb_status http_respond(bb_host_ctx*, bb_http_exchange ex,
                                const bb_http_response* r) noexcept {
    try {
      if (!r) return BB_E_INVALID;
      return g_http->respond(ex, *r);
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static int32_t http_authorize(bb_host_ctx*, bb_http_exchange ex, bb_str action,
                                bb_str resource) noexcept {
    try {
      return g_http->authorize(ex, std::string_view(action.ptr ? action.ptr : "", action.len),
                               std::string_view(resource.ptr ? resource.ptr : "", resource.len));
    } catch (...) {
      return 0;
    }
  }

  static int64_t http_authorize_grant(bb_host_ctx*, bb_http_exchange ex,
                                      const bb_statement* statements, size_t count) noexcept {
    try {
      if (count == 0) return -1;
      if (!statements) return 0;
      auto policy = g_http->policy_of(ex);
      if (!policy) return 0;
      for (size_t i = 0; i < count; ++i) {
        const bb_statement& s = statements[i];
        if (s.effect != BB_EFFECT_ALLOW) continue;
        if (!policy->covers_grant(text(s.action), text(s.resource))) return static_cast<int64_t>(i);
      }
      return -1;
    } catch (...) {
      return 0;
    }
  }

  static bb_status http_publish(bb_host_ctx*, bb_http_exchange ex, const bb_message* m,
                                int32_t* reason_code, bb_str* reason_string) noexcept {
    try {
      if (!reason_code || !reason_string) return BB_E_INVALID;
      auto policy = g_http->policy_of(ex);
      if (!policy) return BB_E_STALE;
      auto msg = message_of(m);
      if (!msg) return BB_E_INVALID;
      authz::DecisionCache cache(std::move(policy), 1);
      // The requester's publish rates: an HTTP request over them is refused
      // (0x97) rather than paused, and spends nothing.
      const quota::PrincipalPtr usage = g_http->principal_of(ex);
      if (usage) {
        const quota::Quotas q = usage->quotas();
        const auto now = quota::RateLimiter::Clock::now();
        const bool messages_over =
            usage->messages.try_spend(1, q.publish_rate, q.publish_burst, now).count() > 0;
        if (messages_over || usage->bytes
                                     .try_spend(msg->payload.size(), q.publish_bytes_rate,
                                                q.publish_bytes_burst, now)
                                     .count() > 0) {
          const std::string_view which =
              messages_over ? quota::kPublishRate : quota::kPublishBytesRate;
          g_broker->metrics().count_quota(which);
          *reason_code = protocol::reason::kQuotaExceeded;
          t_result = "quota exceeded: " + std::string(which);
          *reason_string = bb_str{t_result.c_str(), t_result.size()};
          return BB_OK;
        }
      }
      broker::Origin origin{nullptr, &cache};
      origin.usage = usage.get();
      auto result = g_broker->ingress(origin, std::move(msg), 0);
      *reason_code = result.reason == 0x10 ? 0 : result.reason;  // no subscribers is success
      t_result = std::move(result.reason_string);
      *reason_string = bb_str{t_result.c_str(), t_result.size()};
      return BB_OK;
    } catch (const std::exception& e) {
      return failed(BB_E_INTERNAL, e.what());
    }
  }

  static bb_status ws_send(bb_host_ctx*, bb_ws_id ws, const bb_bytes* chunks,
                           size_t count) noexcept {
    try {
      if (count > 0 && !chunks) return BB_E_INVALID;
      return g_http->ws_send(ws, chunks, count);
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static void ws_pause(bb_host_ctx*, bb_ws_id ws, int32_t paused) noexcept {
    try {
      g_http->ws_pause(ws, paused != 0);
    } catch (...) {
    }
  }

  static void ws_close(bb_host_ctx*, bb_ws_id ws, uint16_t code) noexcept {
    try {
      g_http->ws_close(ws, code);
    } catch (...) {
    }
  }

  static bb_status inspect(bb_host_ctx* h, bb_str what, bb_str, bb_str* out) noexcept {
    try {
      if (!inst(h) || !out) return BB_E_INVALID;
      const std::string w = text(what);
      if (w == "ready") {
        t_result = g_host->readiness().dump();
      } else if (w == "stats") {
        t_result = g_broker->stats_json().dump();
      } else if (w == "sessions") {
        t_result = g_broker->sessions_json().dump();
      } else if (w == "topics") {
        t_result = g_broker->topic_rules_json().dump();
      } else if (w == "openapi") {
        t_result = g_http->openapi().dump();
      } else if (w == "metrics") {
        t_result = g_broker->prometheus();
      } else {
        return failed(BB_E_NOT_FOUND, "nothing to inspect named '" + w + "'");
      }
      *out = bb_str{t_result.c_str(), t_result.size()};
      return BB_OK;
    } catch (const std::exception& e) {
      return failed(BB_E_INTERNAL, e.what());
    }
  }

  static bb_status session_kick(bb_host_ctx* h, bb_str client_id) noexcept {
    try {
      if (!inst(h)) return BB_E_INVALID;
      return g_broker->kick(text(client_id), protocol::reason::kAdministrativeAction)
                 ? BB_OK
                 : BB_E_NOT_FOUND;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  static bb_status state_path(bb_host_ctx* h, bb_str* out) noexcept {
    try {
      auto* i = inst(h);
      if (!i || !out) return BB_E_INVALID;
      const std::string& dir = h->host->state_dir_;
      if (dir.empty()) return failed(BB_E_NOT_FOUND, "the broker runs without a state_dir");
      std::call_once(i->state_once,
                     [&] { i->state_path = state::ensure_subdirectory(dir, i->name()); });
      *out = bb_str{i->state_path.c_str(), i->state_path.size()};
      return BB_OK;
    } catch (const std::exception& e) {
      return failed(BB_E_INTERNAL, e.what());
    }
  }

  static constexpr bb_host_api kApi{sizeof(bb_host_api),
                                    BB_ABI_MAJOR,
                                    BB_ABI_MINOR,
                                    0,
                                    &log,
                                    &log_enabled,
                                    &config_get,
                                    &config_submit,
                                    &publish,
                                    &register_authenticator,
                                    &auth_complete,
                                    &conn_open,
                                    &conn_feed,
                                    &conn_backpressure,
                                    &conn_closed,
                                    &io_watch,
                                    &io_want,
                                    &io_unwatch,
                                    &post,
                                    &ready,
                                    &principal_update,
                                    &last_error,
                                    &http_route,
                                    &http_respond,
                                    &http_authorize,
                                    &http_publish,
                                    &ws_send,
                                    &ws_pause,
                                    &ws_close,
                                    &inspect,
                                    &session_kick,
                                    &state_path,
                                    &register_message_tap,
                                    &publish_routed,
                                    &session_takeover,
                                    &metric_set,
                                    &http_authorize_grant,
                                    &principal_quotas,
                                    &session_takeover_as};
};

const bb_host_api* ModuleHost::api() {
  return &HostApiImpl::kApi;
}

ModuleHost::ModuleHost(broker::Broker& broker, connection::ConnectionTable& connections,
                       net::WorkerPool& workers, http::HttpServer& http)
    : http_(http) {
  g_broker = &broker;
  g_connections = &connections;
  g_workers = &workers;
  g_http = &http;
  g_host = this;
  static WatchRegistry registry;
  registry.by_worker.resize(workers.size());
  g_watches = &registry;
}

ModuleHost::~ModuleHost() {
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    if ((*it)->module) (*it)->ops->destroy((*it)->module);
    (*it)->module = nullptr;
  }
}

ModuleHost::Instance& ModuleHost::create_instance(const config::ModuleEntry& entry) {
  const std::string file = find_module_file(entry.name, search_path_);
  if (file.empty()) {
    std::string dirs;
    for (const auto& d : search_path_) dirs += (dirs.empty() ? "" : ", ") + d;
    throw config::ConfigError(entry.where + ": module '" + entry.name + "' not found (looked for " +
                              entry.name + ".so in " + dirs + ")");
  }
  LoadedModule loaded = load_module(file);
  auto inst = std::make_unique<Instance>();
  inst->entry = entry;
  inst->descriptor = loaded.descriptor;
  inst->ctx.host = this;
  inst->ctx.instance = inst.get();
  if (std::string(loaded.descriptor->name) != entry.name) {
    spdlog::debug("module file {} declares name '{}'", file, loaded.descriptor->name);
  }
  const bb_status status = loaded.descriptor->create(api(), &inst->ctx, &inst->ops, &inst->module);
  if (status != BB_OK || !inst->ops || !inst->module)
    throw LoadError(file + ": module '" + entry.name + "' failed to create an instance (status " +
                    std::to_string(status) + ")");
  spdlog::info("loaded module '{}' {} (ABI {}.{}) from {}", entry.name, loaded.descriptor->version,
               loaded.descriptor->abi_major, loaded.descriptor->abi_min_minor, file);
  libraries_.push_back(std::move(loaded));
  instances_.push_back(std::move(inst));
  return *instances_.back();
}

void ModuleHost::apply_settings(const json& settings, const std::string& from) {
  for (const auto& [name, values] : settings.items()) {
    if (!values.is_object()) continue;
    if (name == "http") {  // the kernel's listener, not a module
      config::read_http_settings(from, values, http_settings_);
      http_.configure(http_settings_);
      continue;
    }
    Instance* target = nullptr;
    for (auto& i : instances_) {
      if (i->entry.name == name) target = i.get();
    }
    if (!target) {
      // A module switched on by a config source (e.g. K8S_ENABLED=true).
      if (values.contains("enabled") && values["enabled"] == true) {
        config::ModuleEntry entry;
        entry.name = name;
        entry.where = "module '" + name + "' enabled by " + from;
        json rest = values;
        rest.erase("enabled");
        entry.settings = rest;
        create_instance(entry);
      }
      continue;
    }
    for (const auto& [key, value] : values.items()) {
      if (key == "enabled") {
        target->entry.enabled = value == true;
      } else {
        target->entry.settings[key] = value;  // environment overrides the file
      }
    }
  }
}

void ModuleHost::load_and_configure(const config::Config& cfg) {
  search_path_ = module_search_path(cfg.module_path);
  http_settings_ = cfg.http;
  http_.configure(http_settings_);
  state_dir_ = cfg.state_dir;
  for (const auto& entry : cfg.modules) {
    if (entry.enabled) create_instance(entry);
  }
  auto configure = [&](Instance& i) {
    if (i.configured || !i.entry.enabled) return;
    const bb_status status = i.ops->configure(i.module, 0);
    i.configured = true;
    if (status != BB_OK)
      throw config::ConfigError(i.entry.where + ": module '" + i.entry.name +
                                "' refused its settings (see the error above)");
  };
  // Config sources first: what they submit shapes the others' settings.
  for (size_t k = 0; k < instances_.size(); ++k) {
    if (instances_[k]->descriptor->kinds & BB_KIND_CONFIG) configure(*instances_[k]);
  }
  for (size_t k = 0; k < instances_.size(); ++k) configure(*instances_[k]);
}

void ModuleHost::reload(const config::Config& cfg) {
  for (auto& i : instances_) {
    for (const auto& entry : cfg.modules) {
      if (entry.name == i->entry.name) i->entry.settings = entry.settings;
    }
  }
  auto reconfigure = [](Instance& i) {
    if (!i.entry.enabled || !i.started) return;
    const bb_status status = i.ops->configure(i.module, 1);
    if (status == BB_E_UNSUPPORTED) {
      spdlog::info("SIGHUP: module '{}' applies setting changes only on restart", i.entry.name);
    } else if (status != BB_OK) {
      spdlog::error("SIGHUP: module '{}' refused its new settings and keeps the old ones",
                    i.entry.name);
    }
  };
  for (auto& i : instances_) {
    if (i->descriptor->kinds & BB_KIND_CONFIG) reconfigure(*i);
  }
  for (auto& i : instances_) {
    if (!(i->descriptor->kinds & BB_KIND_CONFIG)) reconfigure(*i);
  }
}

void ModuleHost::start(int ready_timeout_ms) {
  std::vector<Instance*> order;
  for (auto& i : instances_) {
    if (i->entry.enabled) order.push_back(i.get());
  }
  // Transports last, whatever else they are: every other module must be
  // ready before the first client can connect.
  auto rank = [](const Instance* i) {
    const uint32_t kinds = i->descriptor->kinds;
    return (kinds & BB_KIND_TRANSPORT) ? 64 : lowest_kind(kinds);
  };
  std::stable_sort(order.begin(), order.end(),
                   [&rank](Instance* a, Instance* b) { return rank(a) < rank(b); });
  for (Instance* i : order) {
    if (i->descriptor->kinds & BB_KIND_TRANSPORT) {
      // No client may slip in before the policies of config sources and
      // authenticators are in force.
      std::unique_lock lock(ready_mutex_);
      const bool ok = ready_cv_.wait_for(lock, std::chrono::milliseconds(ready_timeout_ms), [&] {
        for (Instance* other : order) {
          if (!(other->descriptor->kinds & BB_KIND_TRANSPORT) && !other->ready) return false;
        }
        return true;
      });
      if (!ok) {
        std::string waiting;
        for (Instance* other : order) {
          if (!(other->descriptor->kinds & BB_KIND_TRANSPORT) && !other->ready)
            waiting += (waiting.empty() ? "" : ", ") + other->entry.name;
        }
        throw config::ConfigError("modules not ready after " + std::to_string(ready_timeout_ms) +
                                  " ms: " + waiting);
      }
    }
    const bb_status status = i->ops->start(i->module);
    i->started = true;
    if (status == BB_OK) {
      std::lock_guard lock(ready_mutex_);
      i->ready = true;
    } else if (status != BB_PENDING) {
      throw config::ConfigError(i->entry.where + ": module '" + i->entry.name +
                                "' failed to start (see the error above)");
    }
  }
}

void ModuleHost::mark_started() {
  std::lock_guard lock(ready_mutex_);
  started_ = true;
}

void ModuleHost::stop() {
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    Instance& i = **it;
    if (i.started && !i.stopped) {
      i.ops->stop(i.module);
      i.stopped = true;
    }
  }
}

json ModuleHost::readiness() const {
  std::lock_guard lock(ready_mutex_);
  json waiting = json::array();
  for (const auto& i : instances_) {
    if (i->entry.enabled && !i->ready) waiting.push_back(i->entry.name);
  }
  const bool ready = started_ && waiting.empty();
  json out = {{"ready", ready}, {"waiting", waiting}};
  if (!started_)
    out["reason"] = "starting";
  else if (!ready)
    out["reason"] = "waiting for modules";
  return out;
}

std::vector<std::string> ModuleHost::module_names() const {
  std::vector<std::string> names;
  for (const auto& i : instances_) {
    if (i->entry.enabled) names.push_back(i->entry.name);
  }
  return names;
}

}  // namespace backbone::kernel::module_host
