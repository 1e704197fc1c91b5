// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/http_connection.hpp"
#include "kernel/http/beast.hpp"  // before any other Beast header

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

#include "kernel/broker/broker.hpp"
#include "kernel/http/exchange_table.hpp"
#include "kernel/http/plain_websocket.hpp"
#include "kernel/http/request_login.hpp"
#include "kernel/http/response.hpp"
#include "kernel/http/route_table.hpp"
#include "kernel/http/server_context.hpp"
#include "kernel/http/tls_websocket.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

constexpr auto kHandlerTimeout = std::chrono::seconds(30);
// After a response that leaves a request body unread, what the client still
// sends is read and discarded (bounded by http.max_body_bytes and this time)
// before closing: closing with unread bytes makes the kernel send a reset,
// which can destroy the response before the client reads it.
constexpr auto kDrainTimeout = std::chrono::seconds(2);
constexpr size_t kDrainChunk = 4 * 1024;
// An idle keep-alive connection keeps at most this much read buffer.
constexpr size_t kIdleReadBuffer = 16 * 1024;

template <class Stream>
constexpr bool kIsTls = !std::is_same_v<Stream, beast::tcp_stream>;

template <class Stream>
beast::tcp_stream& lowest(Stream& s) {
  return beast::get_lowest_layer(s);
}

std::optional<std::string> percent_decode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1])) ||
        !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
      return std::nullopt;
    const char hex[3] = {in[i + 1], in[i + 2], 0};
    const char c = static_cast<char>(std::strtol(hex, nullptr, 16));
    if (c == 0) return std::nullopt;
    out += c;
    i += 2;
  }
  return out;
}

template <class Stream>
class HttpConnection : public Responder,
                       public std::enable_shared_from_this<HttpConnection<Stream>> {
 public:
  HttpConnection(ServerContext& ctx, net::Worker& worker, Stream&& stream, std::string peer,
                 std::string local)
      : ctx_(ctx),
        worker_(worker),
        stream_(std::move(stream)),
        peer_(std::move(peer)),
        local_(std::move(local)),
        timer_(worker.io()),
        counters_(ctx.counters) {}

  ~HttpConnection() override {
    // A login still pending is abandoned: its authenticator is told (ABI).
    if (login_ticket_ != 0) ctx_.broker.logins().cancel(login_ticket_);
    uncharge();
    counters_->released.fetch_add(buffer_.capacity() +
                                  (parser_ ? parser_->get().body().capacity() : 0));
    counters_->connections.fetch_sub(1);
  }

  void run() {
    if constexpr (kIsTls<Stream>) {
      lowest(stream_).expires_after(std::chrono::milliseconds(ctx_.settings.request_timeout_ms));
      stream_.async_handshake(
          asio::ssl::stream_base::server, [self = this->shared_from_this()](beast::error_code ec) {
            if (ec) {
              spdlog::debug("http {}: TLS handshake failed: {}", self->peer_, ec.message());
              return;
            }
            self->read();
          });
    } else {
      read();
    }
  }

  void on_response(uint64_t ex, std::shared_ptr<Response> r) override {
    if (ex != current_ || !waiting_) return;
    waiting_ = false;
    timer_.cancel();
    write(std::move(*r));
  }

 private:
  bhttp::request<bhttp::string_body>& request() { return parser_->get(); }

  void read() {
    if (parser_) counters_->released.fetch_add(request().body().capacity());
    parser_.emplace();
    parser_->body_limit(ctx_.settings.max_body_bytes);
    parser_->header_limit(ctx_.settings.max_header_bytes);
    lowest(stream_).expires_after(std::chrono::milliseconds(
        first_ ? ctx_.settings.request_timeout_ms : ctx_.settings.idle_timeout_ms));
    // The header alone first: a request is routed, and on BB_HTTP_AUTH routes
    // authenticated, before its body is read.
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // Ends the connection or answers with an error when a read failed.
  bool read_failed(beast::error_code ec) {
    if (!ec) return false;
    if (current_) ctx_.exchanges.end(current_);
    current_ = 0;
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      shutdown();
    } else if (ec == bhttp::error::body_limit) {
      fail(413, "payload_too_large",
           "the request body exceeds " + std::to_string(ctx_.settings.max_body_bytes) + " bytes",
           true);
    } else if (ec == bhttp::error::header_limit) {
      fail(431, "headers_too_large", "the request headers are too large", true);
    } else {
      fail(400, "bad_request", "malformed HTTP request: " + ec.message(), true);
    }
    return true;
  }

  void on_header(beast::error_code ec) {
    first_ = false;
    if (read_failed(ec)) return;
    lowest(stream_).expires_never();
    if (ctx_.stopping) return fail(503, "unavailable", "the server is shutting down", true);
    const std::string_view target = request().target();
    const size_t q = target.find('?');
    auto path = percent_decode(target.substr(0, q));
    if (!path || path->empty() || path->front() != '/')
      return fail(400, "bad_request", "invalid request target", false);
    path_ = std::move(*path);
    query_ = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
    const std::string method(request().method_string());
    const RouteMatch found = ctx_.routes.find(path_, method);
    const Route* route = found.route;
    if (!route) {
      if (!found.method_not_allowed())
        return fail(404, "not_found", "no such resource: " + path_, false);
      Response r = error_response(
          405, "method_not_allowed",
          method + " is not allowed on " + path_ + " (allowed: " + found.allow + ")");
      r.headers.emplace_back("Allow", found.allow);
      return write(std::move(r));
    }
    if (route->websocket) {
      if (!parser_->is_done())
        return fail(400, "bad_request", "a WebSocket upgrade carries no body", true);
      return upgrade(*route);
    }
    if (websocket::is_upgrade(request()))
      return fail(400, "bad_request", path_ + " is not a WebSocket endpoint", false);
    route_ = route;
    auto ex = ctx_.exchanges.open(this->weak_from_this(), worker_);
    current_ = ex->id;
    // Until its sender is authenticated (on routes without authentication:
    // until answered), what a request holds counts against one budget shared
    // by all connections, so unauthenticated clients cannot exhaust memory.
    uint64_t held = buffer_.capacity();
    if (!route->auth && !parser_->is_done())
      held += parser_->content_length().value_or(ctx_.settings.max_body_bytes);
    if (!charge(held)) {
      spdlog::info("http {}: {} {} refused: http.max_unauthenticated_bytes ({}) in use", peer_,
                   method, path_, ctx_.settings.max_unauthenticated_bytes);
      return fail_exchange(503, "unavailable",
                           "too many unauthenticated requests in progress; retry later", true);
    }
    if (route->auth) return authenticate(*ex);
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return on_body({});
    lowest(stream_).expires_after(std::chrono::milliseconds(ctx_.settings.request_timeout_ms));
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (read_failed(ec)) return;
    lowest(stream_).expires_never();
    auto ex = ctx_.exchanges.find(current_);
    if (!ex) return shutdown();
    if (route_->auth) {
      const std::string method(request().method_string());
      if (auto refusal = permit(ctx_.broker, *ex, *route_, method, path_, peer_)) {
        ctx_.exchanges.end(current_);
        return write(std::move(*refusal));
      }
    }
    dispatch(*ex);
  }

  // Counts `bytes` against http.max_unauthenticated_bytes; false, counting
  // nothing, when that would exceed it.
  bool charge(uint64_t bytes) {
    auto& total = counters_->unauthenticated;
    const uint64_t limit = ctx_.settings.max_unauthenticated_bytes;
    uint64_t now = total.load();
    do {
      if (now + bytes > limit) return false;
    } while (!total.compare_exchange_weak(now, now + bytes));
    charged_ += bytes;
    return true;
  }

  void uncharge() {
    counters_->unauthenticated.fetch_sub(charged_);
    charged_ = 0;
  }

  void upgrade(const Route& route) {
    if (!websocket::is_upgrade(request())) {
      Response r =
          error_response(426, "upgrade_required", path_ + " serves WebSocket connections only");
      r.headers.emplace_back("Upgrade", "websocket");
      return write(std::move(r));
    }
    const std::string chosen =
        route.choose_subprotocol(request()[bhttp::field::sec_websocket_protocol]);
    if (chosen.empty()) {
      std::string list;
      for (const auto& s : route.subprotocols) list += (list.empty() ? "" : ", ") + s;
      return fail(400, "bad_request", "WebSocket subprotocol required: one of " + list, true);
    }
    if constexpr (kIsTls<Stream>) {
      start_tls_websocket(ctx_, worker_, std::move(stream_), route, peer_, local_,
                          parser_->release(), chosen);
    } else {
      const auto key = request()[bhttp::field::sec_websocket_key];
      if (request()[bhttp::field::sec_websocket_version] != "13" || key.empty() ||
          request().method() != bhttp::verb::get) {
        Response r = error_response(400, "bad_request",
                                    "a WebSocket upgrade needs GET, Sec-WebSocket-Key and "
                                    "Sec-WebSocket-Version: 13");
        r.headers.emplace_back("Sec-WebSocket-Version", "13");
        r.close = true;
        return write(std::move(r));
      }
      const std::string method(request().method_string());
      lowest(stream_).expires_never();
      if (!start_plain_websocket(ctx_, worker_, stream_.release_socket(), route, peer_, local_,
                                 method, path_, key, chosen)) {
        spdlog::info("http {}: WebSocket on {} refused by module '{}'", peer_, route.path,
                     route.module);
        // The socket is gone; the client sees the connection close.
      }
    }
  }

  void authenticate(Exchange& ex) {
    const std::string_view token = bearer_token(request()[bhttp::field::authorization]);
    const auto provider = request()["X-Auth-Provider"];
    if (token.empty() || provider.empty()) {
      return fail_exchange(401, "unauthorized",
                           "send 'Authorization: Bearer <token>' and 'X-Auth-Provider: "
                           "<provider>'");
    }
    provider_.assign(provider.data(), provider.size());
    const auth::Authenticator* auth = ctx_.broker.logins().find(provider_);
    if (!auth) {
      spdlog::info("http {}: {} {}: no authentication provider '{}'", peer_,
                   std::string(request().method_string()), path_, provider_);
      return fail_exchange(401, "unauthorized", "invalid credentials");
    }
    authenticating_ = true;
    auth_started_ = std::chrono::steady_clock::now();
    auto started =
        start_login(ctx_.broker.logins(), *auth, provider_, peer_, token, worker_,
                    [weak = this->weak_from_this(), id = ex.id](auth::Outcome&& outcome) {
                      if (auto self = weak.lock()) self->on_login(id, std::move(outcome));
                    });
    if (started.status == BB_PENDING) {
      login_ticket_ = started.ticket;  // on_login() follows
      return;
    }
    authenticating_ = false;
    if (started.status != BB_OK) {
      spdlog::warn("http {}: provider '{}' failed with status {}", peer_, provider_,
                   started.status);
      return fail_exchange(503, "unavailable", "the authentication provider failed");
    }
    authenticated(std::move(started.outcome));
  }

  // The answer to a pending login, on this connection's worker.
  void on_login(uint64_t ex, auth::Outcome&& outcome) {
    if (ex != current_ || !authenticating_) return;
    authenticating_ = false;
    login_ticket_ = 0;
    if (outcome.timed_out) {
      spdlog::warn("http {}: provider '{}' did not answer in time", peer_, provider_);
      return fail_exchange(503, "unavailable", "the authentication provider did not answer");
    }
    authenticated(std::move(outcome));
  }

  void authenticated(auth::Outcome&& outcome) {
    ctx_.broker.metrics().observe_login(provider_, outcome.verdict,
                                        std::chrono::steady_clock::now() - auth_started_);
    auto ex = ctx_.exchanges.find(current_);
    if (!ex) return;
    const std::string what = std::string(request().method_string()) + " " + path_;
    if (auto refusal = admit(ctx_.broker, *ex, std::move(outcome), provider_, peer_, what)) {
      ctx_.exchanges.end(current_);
      return write(std::move(*refusal));
    }
    // Authenticated: its body no longer counts as unauthenticated memory.
    uncharge();
    read_body();
  }

  void dispatch(Exchange& ex) {
    std::vector<bb_http_header> headers;
    headers.reserve(16);
    for (const auto& f : request()) {
      const auto name = f.name_string();
      const auto value = f.value();
      headers.push_back(
          bb_http_header{bb_str{name.data(), name.size()}, bb_str{value.data(), value.size()}});
    }
    const std::string method(request().method_string());
    const std::string& body = request().body();
    bb_http_request r{};
    r.struct_size = sizeof(r);
    r.method = bb_str{method.data(), method.size()};
    r.path = bb_str{path_.data(), path_.size()};
    r.query = bb_str{query_.data(), query_.size()};
    r.headers = headers.data();
    r.header_count = headers.size();
    r.body = bb_bytes{reinterpret_cast<const uint8_t*>(body.data()), body.size()};
    r.peer = bb_str{peer_.data(), peer_.size()};
    r.provider = bb_str{ex.provider.data(), ex.provider.size()};
    r.principal = bb_str{ex.principal.data(), ex.principal.size()};
    waiting_ = true;
    timer_.expires_after(kHandlerTimeout);
    timer_.async_wait([self = this->shared_from_this(), id = ex.id](beast::error_code ec) {
      if (ec || id != self->current_ || !self->waiting_) return;
      self->waiting_ = false;
      spdlog::error("http {}: module '{}' did not answer {} in time", self->peer_,
                    self->route_->module, self->path_);
      self->ctx_.exchanges.end(id);
      self->write(error_response(504, "timeout", "the request was not answered in time"));
    });
    route_->table->handle(route_->user, &r, ex.id);
  }

  void fail(unsigned status, std::string_view error, std::string_view message, bool close) {
    Response r = error_response(status, error, message);
    r.close = close;
    write(std::move(r));
  }

  void fail_exchange(unsigned status, std::string_view error, std::string_view message,
                     bool close = false) {
    ctx_.exchanges.end(current_);
    fail(status, error, message, close);
  }

  void write(Response r) {
    uncharge();
    // With its body unread the request's end is unknown: no keep-alive.
    const bool unread = !parser_->is_done();
    const unsigned version = request().version() ? request().version() : 11;
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
        static_cast<bhttp::status>(r.status), version);
    res->set(bhttp::field::server, "backbone");
    if (!r.content_type.empty()) res->set(bhttp::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) res->set(name, value);
    res->body() = std::move(r.body);
    res->keep_alive(!r.close && !unread && request().keep_alive() && !ctx_.stopping);
    res->prepare_payload();
    lowest(stream_).expires_after(std::chrono::milliseconds(ctx_.settings.request_timeout_ms));
    bhttp::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res, unread](beast::error_code ec, size_t) {
          if (ec) return self->shutdown();
          if (!res->keep_alive()) return unread ? self->drain() : self->shutdown();
          if (self->buffer_.size() == 0 && self->buffer_.capacity() > kIdleReadBuffer) {
            self->counters_->released.fetch_add(self->buffer_.capacity());
            self->buffer_.shrink_to_fit();
          }
          self->read();
        });
  }

  // After the last response, reads and discards the unread body the client
  // may still be sending (see kDrainTimeout), then closes.
  void drain() {
    timer_.cancel();
    if (current_) ctx_.exchanges.end(current_);
    current_ = 0;
    if constexpr (!kIsTls<Stream>) {
      beast::error_code ec;
      lowest(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
    }
    uncharge();
    buffer_.consume(buffer_.size());
    buffer_.shrink_to_fit();
    lowest(stream_).expires_after(kDrainTimeout);
    drain_some();
  }

  void drain_some() {
    stream_.async_read_some(buffer_.prepare(kDrainChunk),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > self->ctx_.settings.max_body_bytes)
                                return self->shutdown();
                              self->drain_some();
                            });
  }

  void shutdown() {
    timer_.cancel();
    if (current_) ctx_.exchanges.end(current_);
    current_ = 0;
    uncharge();
    beast::error_code ec;
    if constexpr (kIsTls<Stream>) {
      lowest(stream_).expires_after(std::chrono::seconds(2));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        lowest(self->stream_).socket().close(ignored);
      });
    } else {
      lowest(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  ServerContext& ctx_;
  net::Worker& worker_;
  Stream stream_;
  std::string peer_, local_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::string path_, query_, provider_;
  const Route* route_ = nullptr;
  uint64_t current_ = 0;
  uint64_t charged_ = 0;  // counted against http.max_unauthenticated_bytes
  uint64_t drained_ = 0;
  bool first_ = true, waiting_ = false, authenticating_ = false;
  std::chrono::steady_clock::time_point auth_started_{};
  bb_auth_ticket login_ticket_ = 0;  // while authenticating
  std::shared_ptr<ServerContext::Counters> counters_;
};

}  // namespace

void serve_http(ServerContext& ctx, net::Worker& worker, tcp::socket socket,
                asio::ssl::context* tls, std::string peer, std::string local) {
  if (tls) {
    std::make_shared<HttpConnection<TlsStream>>(
        ctx, worker, TlsStream(beast::tcp_stream(std::move(socket)), *tls), std::move(peer),
        std::move(local))
        ->run();
  } else {
    std::make_shared<HttpConnection<beast::tcp_stream>>(
        ctx, worker, beast::tcp_stream(std::move(socket)), std::move(peer), std::move(local))
        ->run();
  }
}

}  // namespace backbone::kernel::http
