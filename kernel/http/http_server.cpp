// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/http_server.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <future>
#include <vector>

#include "kernel/broker/broker.hpp"
#include "kernel/http/listener.hpp"
#include "kernel/http/openapi.hpp"
#include "kernel/http/request_login.hpp"
#include "kernel/http/response.hpp"
#include "kernel/http/server_context.hpp"
#include "kernel/http/websocket.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::http {

namespace {

std::string text(bb_str s) {
  return s.ptr ? std::string(s.ptr, s.len) : std::string();
}

}  // namespace

struct HttpServer::Impl {
  Impl(const config::HttpSettings& settings, broker::Broker& broker, net::WorkerPool& w)
      : ctx(settings, broker, w.size()), workers(w), listener(ctx, w) {}

  ServerContext ctx;
  net::WorkerPool& workers;
  Listener listener;
};

HttpServer::HttpServer(broker::Broker& broker, net::WorkerPool& workers)
    : impl_(std::make_unique<Impl>(settings_, broker, workers)) {}

HttpServer::~HttpServer() = default;

bb_status HttpServer::add_route(const std::string& module, const bb_http_route& r, void* user,
                                std::string* error) {
  const std::string path = text(r.path);
  if (!settings_.enabled) {
    *error = "HTTP is off (http.enabled=false)";
    return BB_E_UNSUPPORTED;
  }
  if (!settings_.api_enabled && (path == "/api" || path.rfind("/api/", 0) == 0)) {
    *error = "the REST API is off (http.api_enabled=false)";
    return BB_E_UNSUPPORTED;
  }
  const bb_status status = impl_->ctx.routes.add(module, r, user, error);
  if (status != BB_OK) return status;
  if (armed_ && !listening_) {
    try {
      listen();
    } catch (const std::exception& e) {
      *error = e.what();
      impl_->ctx.routes.remove_newest();
      return BB_E_INVALID;
    }
  }
  return BB_OK;
}

void HttpServer::start() {
  armed_ = true;
  if (!impl_->ctx.routes.empty()) listen();
}

void HttpServer::listen() {
  if (!settings_.enabled || listening_) return;
  bound_port_ = impl_->listener.open();
  listening_ = true;
  spdlog::info("http: listening on {}:{} ({})", settings_.address, bound_port_,
               impl_->listener.tls() ? "https" : "http");
}

void HttpServer::stop() {
  if (impl_->ctx.stopping.exchange(true) || !listening_) return;
  std::vector<std::future<void>> done;
  done.push_back(impl_->listener.close());
  for (uint32_t w = 0; w < impl_->workers.size(); ++w) {
    auto closed = std::make_shared<std::promise<void>>();
    done.push_back(closed->get_future());
    impl_->workers.at(w).post([this, w, closed] {
      impl_->ctx.websockets.close_all(w, kWsCloseGoingAway);
      closed->set_value();
    });
  }
  for (auto& f : done) f.wait_for(std::chrono::seconds(2));
}

bb_status HttpServer::respond(bb_http_exchange ex, const bb_http_response& r) {
  auto exchange = impl_->ctx.exchanges.find(ex);
  if (!exchange) return BB_E_STALE;
  impl_->ctx.exchanges.end(ex);
  auto data = std::make_shared<Response>();
  data->status = r.status >= 100 && r.status <= 599 ? static_cast<unsigned>(r.status) : 500;
  data->content_type = text(r.content_type);
  for (size_t i = 0; r.headers && i < r.header_count; ++i) {
    std::string name = text(r.headers[i].name);
    std::string value = text(r.headers[i].value);
    // No header injection through a module's values.
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos)
      continue;
    data->headers.emplace_back(std::move(name), std::move(value));
  }
  if (r.body.ptr) data->body.assign(reinterpret_cast<const char*>(r.body.ptr), r.body.len);
  exchange->worker->post([exchange, data] {
    if (auto conn = exchange->conn.lock()) conn->on_response(exchange->id, data);
  });
  return BB_OK;
}

std::shared_ptr<const authz::Policy> HttpServer::policy_of(bb_http_exchange ex) {
  auto exchange = impl_->ctx.exchanges.find(ex);
  return exchange ? exchange->policy : nullptr;
}

quota::PrincipalPtr HttpServer::principal_of(bb_http_exchange ex) {
  auto exchange = impl_->ctx.exchanges.find(ex);
  return exchange ? exchange->usage : nullptr;
}

int32_t HttpServer::authorize(bb_http_exchange ex, std::string_view action,
                              std::string_view resource) {
  auto policy = policy_of(ex);
  if (!policy) return 0;
  return allows(impl_->ctx.broker, *policy, action, resource) ? 1 : 0;
}

bb_status HttpServer::ws_send(bb_ws_id ws, const bb_bytes* chunks, size_t count) {
  WebSocket* w = impl_->ctx.websockets.find(ws);
  if (!w) return BB_E_STALE;
  w->send(chunks, count);
  return BB_OK;
}

void HttpServer::ws_pause(bb_ws_id ws, bool paused) {
  if (WebSocket* w = impl_->ctx.websockets.find(ws)) w->pause(paused);
}

void HttpServer::ws_close(bb_ws_id ws, uint16_t code) {
  if (WebSocket* w = impl_->ctx.websockets.find(ws)) w->close(code);
}

nlohmann::json HttpServer::openapi() const {
  return openapi_document(impl_->ctx.routes);
}

}  // namespace backbone::kernel::http
