// SPDX-License-Identifier: GPL-3.0-or-later
// ws:// with our own framing. Beast's websocket stream costs a composed
// asynchronous operation per message written; with one write per subscriber
// per event batch that made MQTT over WebSocket several times slower than
// TCP. Over plain TCP the server side of RFC 6455 is small: frames are
// written with one non-blocking writev straight from the MQTT connection's
// chunks (only what the socket does not take is copied), and read frames are
// unmasked in place. wss:// keeps Beast's stream over TLS (tls_websocket.cpp).
#include "kernel/http/plain_websocket.hpp"
#include "kernel/http/beast.hpp"  // before any other Beast header

#include <spdlog/spdlog.h>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "kernel/http/route_table.hpp"
#include "kernel/http/server_context.hpp"
#include "kernel/http/websocket.hpp"
#include "kernel/http/ws_frame.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/protocol/codec.hpp"

namespace backbone::kernel::http {

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

// The Sec-WebSocket-Accept value for `key` (RFC 6455 §4.2.2).
std::string websocket_accept(std::string_view key) {
  static constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string text(key);
  text += kGuid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  unsigned char out[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

namespace {

class PlainWebSocket : public WebSocket, public std::enable_shared_from_this<PlainWebSocket> {
 public:
  PlainWebSocket(ServerContext& ctx, net::Worker& worker, tcp::socket socket, const Route& route,
                 std::string peer, std::string local)
      : ctx_(ctx),
        worker_(worker),
        socket_(std::move(socket)),
        route_(route),
        peer_(std::move(peer)),
        local_(std::move(local)),
        timer_(worker.io()) {}

  // `handshake` is the 101 response, sent before anything else.
  bool start(const std::string& method, const std::string& path, std::string handshake) {
    boost::system::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return false;
    id_ = ctx_.websockets.add(worker_, shared_from_this());
    if (open_websocket(route_, id_, peer_, local_, method, path, &user_) != BB_OK) {
      ctx_.websockets.remove(id_);
      // Best effort: the socket is fresh, so this small answer fits its buffer.
      const std::string body = ws_refused_body();
      const std::string answer =
          "HTTP/1.1 503 Service Unavailable\r\nServer: backbone\r\n"
          "Content-Type: application/json\r\nConnection: close\r\n"
          "Content-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body;
      [[maybe_unused]] const ssize_t n =
          ::send(socket_.native_handle(), answer.data(), answer.size(), MSG_NOSIGNAL);
      socket_.close(ec);
      return false;
    }
    open_ = true;
    max_message_ = ws_message_limit(route_, ctx_.broker);
    send_budget_ = ws_send_budget(max_message_);
    out_ = std::move(handshake);
    flush();
    arm_read();
    return true;
  }

  void send(const bb_bytes* chunks, size_t count) override {
    if (!open_ || closing_) return;
    size_t total = 0;
    for (size_t i = 0; i < count; ++i) total += chunks[i].len;
    if (total == 0) return;
    uint8_t header[kWsMaxServerHeader];
    const size_t header_len = write_ws_frame_header(header, 0x2, total);
    write_frame(header, header_len, chunks, count);
  }

  void pause(bool paused) override {
    paused_ = paused;
    if (!paused_) arm_read();
  }

  void close(uint16_t code) override { start_close(code); }

 private:
  // Writes what the socket takes now; queues the rest (in order).
  void write_frame(const uint8_t* header, size_t header_len, const bb_bytes* chunks, size_t count) {
    if (out_.empty() && count < 63) {
      iovec iov[64];
      iov[0] = iovec{const_cast<uint8_t*>(header), header_len};
      size_t total = header_len;
      for (size_t i = 0; i < count; ++i) {
        iov[i + 1] = iovec{const_cast<uint8_t*>(chunks[i].ptr), chunks[i].len};
        total += chunks[i].len;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = count + 1;
      ssize_t n;
      do {
        n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return fail("send: " + errno_text());
      size_t done = n > 0 ? static_cast<size_t>(n) : 0;
      if (done == total) return;
      // Keep the unsent tail.
      for (size_t i = 0; i <= count; ++i) {
        const auto* base = static_cast<const char*>(iov[i].iov_base);
        if (done >= iov[i].iov_len) {
          done -= iov[i].iov_len;
          continue;
        }
        out_.append(base + done, iov[i].iov_len - done);
        done = 0;
      }
    } else {
      out_.append(reinterpret_cast<const char*>(header), header_len);
      for (size_t i = 0; i < count; ++i)
        out_.append(reinterpret_cast<const char*>(chunks[i].ptr), chunks[i].len);
    }
    if (over_budget()) return;
    if (!above_high_ && out_.size() > kWsHighWatermark) {
      above_high_ = true;
      route_.table->ws_backpressure(user_, 1);
    }
    flush();
  }

  void flush() {
    while (!out_.empty()) {
      ssize_t n;
      do {
        n = ::send(socket_.native_handle(), out_.data(), out_.size(), MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!write_armed_) {
          write_armed_ = true;
          socket_.async_wait(
              tcp::socket::wait_write, [self = shared_from_this()](boost::system::error_code ec) {
                self->write_armed_ = false;
                if (ec)
                  return self->fail(
                      ec == asio::error::operation_aborted ? "" : "write: " + ec.message());
                self->flush();
              });
        }
        return;
      }
      if (n <= 0) return fail("send: " + errno_text());
      out_.erase(0, static_cast<size_t>(n));
    }
    if (above_high_ && out_.size() < kWsLowWatermark) {
      above_high_ = false;
      if (open_) route_.table->ws_backpressure(user_, 0);
    }
    if (out_.empty() && close_sent_ && !shut_down_) {
      // The peer answers with its close frame or closes (start_close bounds
      // the wait).
      shut_down_ = true;
      boost::system::error_code ec;
      socket_.shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  void arm_read() {
    if (!open_ || paused_ || read_armed_) return;
    read_armed_ = true;
    socket_.async_wait(
        tcp::socket::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
          self->read_armed_ = false;
          if (ec)
            return self->fail(ec == asio::error::operation_aborted ? "" : "read: " + ec.message());
          self->on_readable();
        });
  }

  void on_readable() {
    for (int round = 0; round < 16 && open_ && !paused_; ++round) {
      if (in_.size() - in_len_ < chunk_) in_.resize(in_len_ + chunk_);
      ssize_t n;
      do {
        n = ::recv(socket_.native_handle(), in_.data() + in_len_, in_.size() - in_len_, 0);
      } while (n < 0 && errno == EINTR);
      if (n == 0) return fail("");
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return fail("recv: " + errno_text());
      }
      if (static_cast<size_t>(n) == chunk_ && chunk_ < kWsMaxReadChunk) chunk_ *= 2;
      in_len_ += static_cast<size_t>(n);
      parse();
    }
    if (open_ && in_len_ == 0 && in_.capacity() > kWsMaxReadChunk) {
      std::vector<uint8_t>().swap(in_);  // an idle connection gives its buffer back
      chunk_ = kWsMinReadChunk;
    }
    arm_read();
  }

  // Handles every complete frame in in_[0, in_len_).
  void parse() {
    size_t off = 0;
    // Handling a frame may close the WebSocket (ws_data can end the MQTT
    // connection): nothing after it is parsed then.
    while (open_ && !closing_ && in_len_ - off >= 2) {
      uint8_t* f = in_.data() + off;
      WsFrame frame;
      const WsParse status =
          parse_ws_frame(f, in_len_ - off, in_message_, message_len_, max_message_, frame);
      if (status == WsParse::kProtocolError)
        return start_close(websocket::close_code::protocol_error);
      if (status == WsParse::kTooBig) return start_close(websocket::close_code::too_big);
      if (status == WsParse::kNeedMore) {
        // Make sure the buffer can hold the whole frame.
        if (frame.header + frame.length > in_.size() - off)
          in_.resize(off + frame.header + frame.length);
        break;
      }
      unmask_ws_frame(f, frame);
      const bool fin = frame.fin;
      const uint8_t opcode = frame.opcode;
      const uint64_t len = frame.length;
      const bool control = opcode & 0x08;
      uint8_t* payload = f + frame.header;
      off += frame.header + len;
      if (!control) {
        const uint8_t kind = opcode == 0x0 ? message_opcode_ : opcode;
        if (opcode != 0x0) message_opcode_ = opcode;
        message_len_ = fin ? 0 : message_len_ + len;
        in_message_ = !fin;
        if (kind == 0x1) {
          // MQTT over WebSocket is binary only (MQTT 5 §6).
          const bool utf8 =
              protocol::valid_utf8(std::string_view(reinterpret_cast<const char*>(payload), len));
          return start_close(utf8 ? websocket::close_code::unknown_data
                                  : websocket::close_code::bad_payload);
        }
        if (len > 0) route_.table->ws_data(user_, bb_bytes{payload, len});
        continue;
      }
      if (opcode == 0x9) {  // ping: pong with the same payload
        uint8_t h[kWsMaxServerHeader];
        const size_t hl = write_ws_frame_header(h, 0xA, len);
        const bb_bytes body{payload, len};
        write_frame(h, hl, &body, 1);
      } else if (opcode == 0x8) {  // close: answer and end
        uint16_t code = websocket::close_code::normal;
        if (len >= 2) code = static_cast<uint16_t>((payload[0] << 8) | payload[1]);
        if (len == 1) code = websocket::close_code::protocol_error;
        peer_closed_ = true;
        return start_close(code);
      }
    }
    if (closing_) {
      in_len_ = 0;  // a closing WebSocket reads only to see the peer go
    } else if (off > 0) {
      std::memmove(in_.data(), in_.data() + off, in_len_ - off);
      in_len_ -= off;
    }
  }

  void start_close(uint16_t code) {
    if (!open_ || closing_) return;
    closing_ = true;
    timer_.expires_after(kWsCloseGrace);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code e) {
      if (!e) self->fail("close timed out");
    });
    uint8_t frame[4] = {0x88, 2, static_cast<uint8_t>(code >> 8), static_cast<uint8_t>(code)};
    out_.append(reinterpret_cast<const char*>(frame), sizeof frame);
    if (over_budget()) return;
    close_sent_ = true;
    flush();
    if (peer_closed_ && out_.empty()) return fail("");
    // Input is dropped from now on, so a pause no longer protects anything;
    // unread input at close would make the kernel reset the connection and
    // the peer could lose the close frame and the MQTT reason before it.
    paused_ = false;
    arm_read();
  }

  // Cuts the connection when out_ exceeds the send budget.
  bool over_budget() {
    if (out_.size() <= send_budget_) return false;
    spdlog::info("http {}: WebSocket cut: {} bytes queued and the peer does not read", peer_,
                 out_.size());
    fail("send budget exceeded");
    return true;
  }

  void fail(const std::string& why) {
    if (!open_) return;
    open_ = false;
    if (!why.empty()) spdlog::debug("http {}: WebSocket closed: {}", peer_, why);
    ctx_.websockets.remove(id_);
    timer_.cancel();
    boost::system::error_code ec;
    socket_.close(ec);
    // Freed with this object, once its pending handlers are cancelled.
    ctx_.counters->released.fetch_add(out_.capacity() + in_.capacity());
    route_.table->ws_closed(user_);
  }

  static std::string errno_text() { return std::strerror(errno); }

  ServerContext& ctx_;
  net::Worker& worker_;
  tcp::socket socket_;
  const Route& route_;
  std::string peer_, local_;
  asio::steady_timer timer_;
  bb_ws_id id_ = 0;
  void* user_ = nullptr;
  std::vector<uint8_t> in_;
  size_t in_len_ = 0;
  size_t chunk_ = kWsMinReadChunk;
  std::string out_;
  uint64_t max_message_ = 0;
  size_t send_budget_ = 0;
  uint64_t message_len_ = 0;
  uint8_t message_opcode_ = 0;
  bool in_message_ = false;
  bool open_ = false, paused_ = false, read_armed_ = false, write_armed_ = false;
  bool closing_ = false, close_sent_ = false, peer_closed_ = false, shut_down_ = false;
  bool above_high_ = false;
};

}  // namespace

bool start_plain_websocket(ServerContext& ctx, net::Worker& worker, tcp::socket socket,
                           const Route& route, std::string peer, std::string local,
                           const std::string& method, const std::string& path, std::string_view key,
                           const std::string& subprotocol) {
  std::string handshake =
      "HTTP/1.1 101 Switching Protocols\r\nServer: backbone\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
      websocket_accept(key) + "\r\nSec-WebSocket-Protocol: " + subprotocol + "\r\n\r\n";
  auto ws = std::make_shared<PlainWebSocket>(ctx, worker, std::move(socket), route, std::move(peer),
                                             std::move(local));
  return ws->start(method, path, std::move(handshake));
}

}  // namespace backbone::kernel::http
