// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/listener.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ssl/context.hpp>

#include <malloc.h>

#include <chrono>
#include <string>

#include "kernel/http/http_connection.hpp"
#include "kernel/http/server_context.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::http {

namespace {

namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using error_code = boost::system::error_code;

// glibc keeps freed memory in its arenas; once this much connection memory
// was freed, a periodic malloc_trim returns it to the system.
constexpr uint64_t kTrimAfterReleased = 8 * 1024 * 1024;
constexpr auto kTrimInterval = std::chrono::seconds(1);

std::unique_ptr<asio::ssl::context> make_tls_context(const config::HttpSettings& settings) {
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  error_code ec;
  ctx->use_certificate_chain_file(settings.tls_cert, ec);
  if (ec)
    throw config::ConfigError("http.tls_cert: cannot use '" + settings.tls_cert +
                              "': " + ec.message());
  ctx->use_private_key_file(settings.tls_key, asio::ssl::context::pem, ec);
  if (ec)
    throw config::ConfigError("http.tls_key: cannot use '" + settings.tls_key +
                              "': " + ec.message());
  return ctx;
}

std::string endpoint_text(const tcp::endpoint& e) {
  const auto addr = e.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" +
         std::to_string(e.port());
}

}  // namespace

Listener::Listener(ServerContext& ctx, net::WorkerPool& workers) : ctx_(ctx), workers_(workers) {}

Listener::~Listener() = default;

uint16_t Listener::open() {
  const config::HttpSettings& settings = ctx_.settings;
  if (!settings.tls_cert.empty()) tls_ = make_tls_context(settings);
  error_code ec;
  const auto address = asio::ip::make_address(settings.address, ec);
  if (ec) throw config::ConfigError("http.address: invalid address '" + settings.address + "'");
  auto acceptor = std::make_unique<tcp::acceptor>(workers_.at(0).io());
  const tcp::endpoint endpoint(address, settings.port);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw config::ConfigError("http: cannot listen on " + settings.address + ":" +
                              std::to_string(settings.port) + ": " + ec.message());
  const uint16_t port = acceptor->local_endpoint().port();
  acceptor_ = std::move(acceptor);
  trim_timer_ = std::make_unique<asio::steady_timer>(workers_.at(0).io());
  workers_.at(0).post([this] {
    accept();
    arm_trim();
  });
  return port;
}

std::future<void> Listener::close() {
  auto closed = std::make_shared<std::promise<void>>();
  auto done = closed->get_future();
  workers_.at(0).post([this, closed] {
    error_code ec;
    acceptor_->close(ec);
    trim_timer_->cancel();
    closed->set_value();
  });
  return done;
}

void Listener::accept() {
  net::Worker& worker = workers_.next();
  acceptor_->async_accept(worker.io(), [this, &worker](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || ctx_.stopping) return;
    if (!ec) {
      if (ctx_.counters->connections.load() >= ctx_.settings.max_connections) {
        spdlog::warn("http: connection limit ({}) reached, refusing a connection",
                     ctx_.settings.max_connections);
        error_code ignored;
        socket.close(ignored);
      } else {
        ctx_.counters->connections.fetch_add(1);
        worker.post([this, &worker, s = std::move(socket)]() mutable {
          error_code e;
          const auto remote = s.remote_endpoint(e);
          const auto local = s.local_endpoint(e);
          if (e) {
            ctx_.counters->connections.fetch_sub(1);
            return;
          }
          s.set_option(tcp::no_delay(true), e);
          serve_http(ctx_, worker, std::move(s), tls_.get(), endpoint_text(remote),
                     endpoint_text(local));
        });
      }
    } else {
      spdlog::warn("http: accept failed: {}", ec.message());
    }
    accept();
  });
}

void Listener::arm_trim() {
  trim_timer_->expires_after(kTrimInterval);
  trim_timer_->async_wait([this](error_code ec) {
    if (ec || ctx_.stopping) return;
    if (ctx_.counters->released.load() >= kTrimAfterReleased) {
      ctx_.counters->released.store(0);
      malloc_trim(0);
    }
    arm_trim();
  });
}

}  // namespace backbone::kernel::http
