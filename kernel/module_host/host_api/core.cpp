// SPDX-License-Identifier: GPL-3.0-or-later
// Core host functions: logging, settings, publishing, tasks, readiness,
// broker state and the module's state directory.
#include <spdlog/spdlog.h>
#include <backbone/json.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <memory>

#include "kernel/broker/broker.hpp"
#include "kernel/http/http_server.hpp"
#include "kernel/module_host/host_api/host_api.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/protocol/reason_code.hpp"
#include "kernel/state/state_dir.hpp"

namespace backbone::kernel::module_host::host_api {

using nlohmann::json;

void log(bb_host_ctx* h, int32_t level, bb_str msg) noexcept {
  try {
    const std::string name = instance_of(h) ? instance_of(h)->name() : "?";
    const auto lvl = level <= BB_LOG_TRACE   ? spdlog::level::trace
                     : level == BB_LOG_DEBUG ? spdlog::level::debug
                     : level == BB_LOG_INFO  ? spdlog::level::info
                     : level == BB_LOG_WARN  ? spdlog::level::warn
                                             : spdlog::level::err;
    spdlog::log(lvl, "[{}] {}", name, std::string_view(msg.ptr ? msg.ptr : "", msg.len));
  } catch (...) {
  }
}

int32_t log_enabled(bb_host_ctx*, int32_t level) noexcept {
  return spdlog::should_log(static_cast<spdlog::level::level_enum>(std::clamp(level, 0, 4))) ? 1
                                                                                             : 0;
}

bb_status config_get(bb_host_ctx* h, bb_str key, bb_str* out) noexcept {
  try {
    auto* i = instance_of(h);
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

bb_status config_submit(bb_host_ctx* h, bb_str kind, bb_str name, bb_str json_text,
                        int32_t deleted) noexcept {
  try {
    auto* i = instance_of(h);
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
      if (!h->host->broker().set_topic_rules(n, deleted ? nullptr : &body, &error)) {
        spdlog::error("[{}] topic rule '{}' refused, previous rules stay: {}", i->name(), n, error);
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

bb_status publish(bb_host_ctx* h, const bb_message* m) noexcept {
  try {
    if (!instance_of(h)) return BB_E_INVALID;
    auto msg = message_of(*h->host, m);
    if (!msg) return BB_E_INVALID;
    auto result = h->host->broker().ingress(broker::Origin{}, std::move(msg), 0);
    return result.reason >= 0x80 ? failed(BB_E_INVALID, result.reason_string) : BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status post(bb_host_ctx* h, uint32_t delay_ms, bb_task_fn fn, void* arg) noexcept {
  try {
    if (!instance_of(h) || !fn) return BB_E_INVALID;
    net::Worker& worker = h->host->workers().next();
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

bb_status ready(bb_host_ctx* h) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i) return BB_E_INVALID;
    h->host->set_ready(*i);
    spdlog::info("[{}] ready", i->name());
    return BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status last_error(bb_host_ctx*, bb_str* out) noexcept {
  if (!out) return BB_E_INVALID;
  const std::string& why = thread_last_error();
  *out = bb_str{why.c_str(), why.size()};
  return BB_OK;
}

bb_status inspect(bb_host_ctx* h, bb_str what, bb_str, bb_str* out) noexcept {
  try {
    if (!instance_of(h) || !out) return BB_E_INVALID;
    ModuleHost& host = *h->host;
    const std::string w = text(what);
    std::string value;
    if (w == "ready") {
      value = host.readiness().dump();
    } else if (w == "stats") {
      value = host.broker().stats_json().dump();
    } else if (w == "sessions") {
      value = host.broker().sessions_json().dump();
    } else if (w == "topics") {
      value = host.broker().topic_rules_json().dump();
    } else if (w == "openapi") {
      value = host.http().openapi().dump();
    } else if (w == "metrics") {
      value = host.broker().prometheus();
    } else {
      return failed(BB_E_NOT_FOUND, "nothing to inspect named '" + w + "'");
    }
    *out = thread_result(std::move(value));
    return BB_OK;
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

bb_status session_kick(bb_host_ctx* h, bb_str client_id) noexcept {
  try {
    if (!instance_of(h)) return BB_E_INVALID;
    return h->host->broker().kick(text(client_id), protocol::reason::kAdministrativeAction)
               ? BB_OK
               : BB_E_NOT_FOUND;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status state_path(bb_host_ctx* h, bb_str* out) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i || !out) return BB_E_INVALID;
    const std::string& dir = h->host->state_dir();
    if (dir.empty()) return failed(BB_E_NOT_FOUND, "the broker runs without a state_dir");
    std::call_once(i->state_once,
                   [&] { i->state_path = state::ensure_subdirectory(dir, i->name()); });
    *out = bb_str{i->state_path.c_str(), i->state_path.size()};
    return BB_OK;
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

bb_status metric_set(bb_host_ctx* h, bb_str name, bb_str help, int32_t kind,
                     double value) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i) return BB_E_INVALID;
    if (kind != BB_METRIC_COUNTER && kind != BB_METRIC_GAUGE)
      return failed(BB_E_INVALID, "metric kind must be BB_METRIC_COUNTER or BB_METRIC_GAUGE");
    std::string why = h->host->broker().metrics().set_module_metric(
        i->name(), text(name), text(help), kind == BB_METRIC_COUNTER, value);
    return why.empty() ? BB_OK : failed(BB_E_INVALID, std::move(why));
  } catch (const std::exception& e) {
    return failed(BB_E_INTERNAL, e.what());
  }
}

}  // namespace backbone::kernel::module_host::host_api
