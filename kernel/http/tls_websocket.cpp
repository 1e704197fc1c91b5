// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/http/tls_websocket.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <chrono>
#include <memory>

#include "kernel/http/route_table.hpp"
#include "kernel/http/server_context.hpp"
#include "kernel/http/websocket.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

class TlsWebSocket : public WebSocket, public std::enable_shared_from_this<TlsWebSocket> {
 public:
  TlsWebSocket(ServerContext& ctx, net::Worker& worker, TlsStream&& stream, const Route& route,
               std::string peer, std::string local)
      : ctx_(ctx),
        worker_(worker),
        ws_(std::move(stream)),
        route_(route),
        peer_(std::move(peer)),
        local_(std::move(local)),
        timer_(worker.io()) {}

  void start(bhttp::request<bhttp::string_body> req, std::string subprotocol) {
    id_ = ctx_.websockets.add(worker_, shared_from_this());
    const bb_status status =
        open_websocket(route_, id_, peer_, local_, req.method_string(), req.target(), &user_);
    if (status != BB_OK) {
      ctx_.websockets.remove(id_);
      spdlog::info("http {}: WebSocket on {} refused by module '{}' (status {})", peer_,
                   route_.path, route_.module, status);
      auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
          bhttp::status::service_unavailable, req.version());
      res->set(bhttp::field::content_type, "application/json");
      res->body() = ws_refused_body();
      res->prepare_payload();
      res->keep_alive(false);
      bhttp::async_write(
          ws_.next_layer(), *res, [self = shared_from_this(), res](beast::error_code, size_t) {
            beast::error_code ec;
            beast::get_lowest_layer(self->ws_).socket().shutdown(tcp::socket::shutdown_both, ec);
          });
      return;
    }
    open_ = true;
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::milliseconds(ctx_.settings.request_timeout_ms);
    timeouts.idle_timeout = websocket::stream_base::none();  // MQTT keep-alive governs idleness
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator([subprotocol](websocket::response_type& res) {
      res.set(bhttp::field::server, "backbone");
      res.set(bhttp::field::sec_websocket_protocol, subprotocol);
    }));
    const uint32_t limit = ws_message_limit(route_, ctx_.broker);
    send_budget_ = ws_send_budget(limit);
    ws_.read_message_max(limit);
    ws_.auto_fragment(false);
    ws_.binary(true);
    beast::get_lowest_layer(ws_).expires_never();
    // Kept until the handshake completes: the accept operation reads it.
    upgrade_request_ = std::make_unique<bhttp::request<bhttp::string_body>>(std::move(req));
    ws_.async_accept(*upgrade_request_, [self = shared_from_this()](beast::error_code ec) {
      self->upgrade_request_.reset();
      if (ec) return self->closed("handshake: " + ec.message());
      self->accepted_ = true;
      self->flush();
      self->read();
    });
  }

  void send(const bb_bytes* chunks, size_t count) override {
    if (closing_ || !open_) return;
    for (size_t i = 0; i < count; ++i) {
      if (chunks[i].ptr) out_.append(reinterpret_cast<const char*>(chunks[i].ptr), chunks[i].len);
    }
    if (out_.size() + sending_.size() > send_budget_) {
      spdlog::info("http {}: WebSocket cut: {} bytes queued and the peer does not read", peer_,
                   out_.size() + sending_.size());
      return closed("send budget exceeded");
    }
    if (!above_high_ && out_.size() + sending_.size() > kWsHighWatermark) {
      above_high_ = true;
      route_.table->ws_backpressure(user_, 1);
    }
    flush();
  }

  void pause(bool paused) override {
    paused_ = paused;
    if (!paused_ && accepted_ && !reading_ && open_) read();
  }

  void close(uint16_t code) override {
    if (closing_ || !open_) return;
    closing_ = true;
    paused_ = false;  // input is dropped from now on (see the close handshake in flush)
    close_code_ = code;
    timer_.expires_after(kWsCloseGrace);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec) self->closed("close timed out");
    });
    flush();
  }

 private:
  void read() {
    if (reading_ || paused_ || !open_) return;
    reading_ = true;
    ws_.async_read_some(
        buffer_.prepare(chunk_), [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->reading_ = false;
          if (ec) return self->closed(ec == websocket::error::closed ? "" : ec.message());
          if (n == self->chunk_ && self->chunk_ < kWsMaxReadChunk) self->chunk_ *= 2;
          self->buffer_.commit(n);
          if (!self->ws_.got_binary() && !self->closing_) {
            // MQTT over WebSocket is binary only (MQTT 5 §6).
            self->buffer_.consume(self->buffer_.size());
            return self->close(websocket::close_code::unknown_data);  // 1003
          }
          const auto data = self->buffer_.cdata();
          if (self->open_ && !self->closing_) {
            self->route_.table->ws_data(
                self->user_, bb_bytes{static_cast<const uint8_t*>(data.data()), data.size()});
          }
          self->buffer_.consume(n);
          self->read();
        });
  }

  void flush() {
    if (!accepted_ || writing_ || !open_) return;
    if (out_.empty()) {
      if (closing_ && !close_sent_) {
        close_sent_ = true;
        writing_ = true;
        ws_.async_close(websocket::close_reason(close_code_),
                        [self = shared_from_this()](beast::error_code ec) {
                          self->writing_ = false;
                          if (ec) return self->closed(ec.message());
                          // Reading on drains the peer's input until its
                          // close frame (the read then ends the connection)
                          // or the grace timer: closing with unread input
                          // would reset the connection, and the peer could
                          // lose what was sent last. A stream that failed
                          // at a bad frame fails this read at once.
                          self->read();
                        });
      }
      return;
    }
    sending_.swap(out_);
    writing_ = true;
    ws_.async_write(asio::buffer(sending_),
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->writing_ = false;
                      self->sending_.clear();
                      if (ec) return self->closed(ec.message());
                      if (self->above_high_ && self->out_.size() < kWsLowWatermark) {
                        self->above_high_ = false;
                        if (self->open_) self->route_.table->ws_backpressure(self->user_, 0);
                      }
                      self->flush();
                    });
  }

  void closed(const std::string& why) {
    if (!open_) return;
    open_ = false;
    if (!why.empty()) spdlog::debug("http {}: WebSocket closed: {}", peer_, why);
    ctx_.websockets.remove(id_);
    timer_.cancel();
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
    ctx_.counters->released.fetch_add(out_.capacity() + sending_.capacity() + buffer_.capacity());
    route_.table->ws_closed(user_);
  }

  ServerContext& ctx_;
  net::Worker& worker_;
  websocket::stream<TlsStream> ws_;
  const Route& route_;
  std::string peer_, local_;
  bb_ws_id id_ = 0;
  void* user_ = nullptr;
  asio::steady_timer timer_;
  std::unique_ptr<bhttp::request<bhttp::string_body>> upgrade_request_;
  beast::flat_buffer buffer_;
  size_t chunk_ = kWsMinReadChunk;
  size_t send_budget_ = 0;
  std::string out_, sending_;
  bool open_ = false, accepted_ = false, reading_ = false, writing_ = false, paused_ = false;
  bool closing_ = false, close_sent_ = false, above_high_ = false;
  uint16_t close_code_ = websocket::close_code::normal;
};

}  // namespace

void start_tls_websocket(ServerContext& ctx, net::Worker& worker, TlsStream&& stream,
                         const Route& route, std::string peer, std::string local,
                         bhttp::request<bhttp::string_body> upgrade, std::string subprotocol) {
  auto ws = std::make_shared<TlsWebSocket>(ctx, worker, std::move(stream), route, std::move(peer),
                                           std::move(local));
  ws->start(std::move(upgrade), std::move(subprotocol));
}

}  // namespace backbone::kernel::http
