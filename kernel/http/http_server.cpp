// SPDX-License-Identifier: GPL-3.0-or-later
// Beast's string_view is std::string_view here (no other translation unit
// of the kernel includes Beast).
#define BOOST_BEAST_USE_STD_STRING_VIEW
#include "kernel/http/http_server.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
// Beast before 1.86 asserts on a legal split of a chunked body's last chunk
// ("0\r\n", then "\r"), so any client could abort a build with assertions;
// the code after the assertion handles it (boostorg/beast#2861). The request
// parser is compiled without Boost assertions, as in a release build.
#include <boost/version.hpp>
#if BOOST_VERSION < 108600
#define BOOST_DISABLE_ASSERTS
#include <boost/beast/http/basic_parser.hpp>
#undef BOOST_DISABLE_ASSERTS
#include <boost/assert.hpp>
#endif
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <malloc.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <backbone/json.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <optional>

#include "kernel/broker/broker.hpp"
#include "kernel/http/ws_frame.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/protocol/codec.hpp"

namespace backbone::kernel::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using nlohmann::json;

namespace {

constexpr uint64_t kTicketBit = 1ull << 63;
constexpr auto kHandlerTimeout = std::chrono::seconds(30);
// A WebSocket's send buffer: above the high watermark the module is told to
// stop producing (MQTT back-pressure), below the low one to resume.
constexpr size_t kWsHighWatermark = 1024 * 1024;
constexpr size_t kWsLowWatermark = 256 * 1024;
// Reads start small (idle WebSockets stay cheap) and double while they fill
// the buffer (busy publishers get few, large reads).
constexpr size_t kWsMinReadChunk = 4 * 1024;
constexpr size_t kWsMaxReadChunk = 64 * 1024;
// A closing WebSocket gets this long to flush and exchange close frames; a
// peer that does not read would otherwise hold it open forever.
constexpr auto kWsCloseGrace = std::chrono::seconds(2);
// After a response that leaves a request body unread, what the client still
// sends is read and discarded (bounded by http.max_body_bytes and this time)
// before closing: closing with unread bytes makes the kernel send a reset,
// which can destroy the response before the client reads it.
constexpr auto kDrainTimeout = std::chrono::seconds(2);
constexpr size_t kDrainChunk = 4 * 1024;
// An idle keep-alive connection keeps at most this much read buffer.
constexpr size_t kIdleReadBuffer = 16 * 1024;
// glibc keeps freed memory in its arenas; once this much connection memory
// was freed, a periodic malloc_trim returns it to the system.
constexpr uint64_t kTrimAfterReleased = 8 * 1024 * 1024;
constexpr auto kTrimInterval = std::chrono::seconds(1);

// Everything a WebSocket may have queued that the socket did not take yet.
// Above the high watermark the MQTT connection stops producing, but one
// batch may overshoot it, and replies to the peer's own packets (PUBACK,
// pong) are not held back: the budget leaves room for that, and a peer that
// keeps sending without reading exceeds it and is cut.
size_t ws_send_budget(uint64_t max_message) {
  return 2 * kWsHighWatermark + static_cast<size_t>(max_message);
}

std::string text(bb_str s) {
  return s.ptr ? std::string(s.ptr, s.len) : std::string();
}

std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view item = list.substr(start, end - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
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

std::string error_body(std::string_view error, std::string_view message) {
  return json{{"error", error}, {"message", message}}.dump();
}

struct ResponseData {
  unsigned status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool close = false;
};

}  // namespace

bool Route::allows_method(std::string_view method) const {
  for (const auto& m : methods) {
    if (m == method) return true;
  }
  return false;
}

struct Exchange {
  uint64_t id = 0;
  std::weak_ptr<ConnectionBase> conn;
  net::Worker* worker = nullptr;
  std::shared_ptr<const authz::Policy> policy;
  std::string provider;
  std::string principal;
  quota::PrincipalPtr usage;  // the requester's quotas and usage (SPEC §6)
};

// An HTTP connection as the exchange registry sees it.
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void on_response(uint64_t ex, std::shared_ptr<ResponseData> r) = 0;
  virtual void on_auth(uint64_t ex, std::shared_ptr<auth::Outcome> outcome) = 0;
};

class WebSocketBase {
 public:
  virtual ~WebSocketBase() = default;
  virtual void send(const bb_bytes* chunks, size_t count) = 0;
  virtual void pause(bool paused) = 0;
  virtual void close(uint16_t code) = 0;
};

struct HttpServer::Impl {
  Impl(HttpServer& s, broker::Broker& b, net::WorkerPool& w) : server(s), broker(b), workers(w) {
    websockets.resize(w.size());
  }

  HttpServer& server;
  broker::Broker& broker;
  net::WorkerPool& workers;
  std::unique_ptr<asio::ssl::context> tls;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::atomic<bool> stopping{false};
  // Shared with the connections: one still queued in a worker at shutdown
  // is destroyed after the server.
  struct Counters {
    std::atomic<uint32_t> connections{0};
    // Bytes held for requests not authenticated (http.max_unauthenticated_bytes).
    std::atomic<uint64_t> unauthenticated{0};
    // Connection memory freed since the last malloc_trim.
    std::atomic<uint64_t> released{0};
  };
  std::shared_ptr<Counters> counters = std::make_shared<Counters>();
  std::unique_ptr<asio::steady_timer> trim_timer;

  mutable std::shared_mutex routes_mutex;
  std::vector<std::unique_ptr<Route>> routes;

  std::mutex exchanges_mutex;
  std::unordered_map<uint64_t, std::shared_ptr<Exchange>> exchanges;
  std::atomic<uint64_t> next_exchange{1};

  // WebSockets per worker; each map is touched only by its worker.
  std::vector<std::unordered_map<bb_ws_id, std::shared_ptr<WebSocketBase>>> websockets;
  std::atomic<uint64_t> next_ws{1};

  const config::HttpSettings& settings() const { return server.settings(); }

  // The route for `path` (longest match) and whether any route has the path.
  const Route* find_route(std::string_view path, std::string_view method, bool& path_known,
                          std::string& allow) const {
    std::shared_lock lock(routes_mutex);
    const Route* best = nullptr;
    size_t best_len = 0;
    path_known = false;
    for (const auto& r : routes) {
      const bool match = path == r->path ||
                         (r->prefix && path.size() > r->path.size() &&
                          path.substr(0, r->path.size()) == r->path && path[r->path.size()] == '/');
      if (!match || r->path.size() < best_len) continue;
      if (r->path.size() > best_len) {
        best_len = r->path.size();
        allow.clear();
        best = nullptr;
      }
      path_known = true;
      for (const auto& m : r->methods) allow += (allow.empty() ? "" : ", ") + m;
      if (r->allows_method(method)) best = r.get();
    }
    return best;
  }

  std::shared_ptr<Exchange> new_exchange(std::weak_ptr<ConnectionBase> conn, net::Worker& worker) {
    auto ex = std::make_shared<Exchange>();
    ex->id = next_exchange.fetch_add(1) & ~kTicketBit;
    ex->conn = std::move(conn);
    ex->worker = &worker;
    std::lock_guard lock(exchanges_mutex);
    exchanges.emplace(ex->id, ex);
    return ex;
  }

  std::shared_ptr<Exchange> find_exchange(uint64_t id) {
    std::lock_guard lock(exchanges_mutex);
    auto it = exchanges.find(id);
    return it == exchanges.end() ? nullptr : it->second;
  }

  void end_exchange(uint64_t id) {
    std::lock_guard lock(exchanges_mutex);
    exchanges.erase(id);
  }

  bb_ws_id add_websocket(net::Worker& worker, std::shared_ptr<WebSocketBase> ws) {
    const bb_ws_id id = (next_ws.fetch_add(1) << 8) | worker.index();
    websockets[worker.index()].emplace(id, std::move(ws));
    return id;
  }

  WebSocketBase* find_websocket(bb_ws_id id) {
    const uint32_t w = static_cast<uint32_t>(id & 0xFF);
    if (w >= websockets.size()) return nullptr;
    auto& map = websockets[w];
    auto it = map.find(id);
    return it == map.end() ? nullptr : it->second.get();
  }

  void remove_websocket(bb_ws_id id) {
    const uint32_t w = static_cast<uint32_t>(id & 0xFF);
    if (w < websockets.size()) websockets[w].erase(id);
  }

  void accept();

  void arm_trim() {
    trim_timer->expires_after(kTrimInterval);
    trim_timer->async_wait([this](beast::error_code ec) {
      if (ec || stopping) return;
      if (counters->released.load() >= kTrimAfterReleased) {
        counters->released.store(0);
        malloc_trim(0);
      }
      arm_trim();
    });
  }
};

namespace {

template <class Stream>
constexpr bool kIsTls = !std::is_same_v<Stream, beast::tcp_stream>;

template <class Stream>
beast::tcp_stream& lowest(Stream& s) {
  return beast::get_lowest_layer(s);
}

std::string endpoint_text(const tcp::endpoint& e) {
  const auto addr = e.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" +
         std::to_string(e.port());
}

// Asks the route's module to take a new WebSocket (bb_http_route.ws_open).
bb_status open_websocket(const Route& route, bb_ws_id id, const std::string& peer,
                         const std::string& local, std::string_view method, std::string_view path,
                         void** user) {
  static constexpr std::string_view kTransport = "ws";
  bb_conn_info info{};
  info.struct_size = sizeof(info);
  info.transport = bb_str{kTransport.data(), kTransport.size()};
  info.peer = bb_str{peer.data(), peer.size()};
  info.local = bb_str{local.data(), local.size()};
  bb_http_request r{};
  r.struct_size = sizeof(r);
  r.method = bb_str{method.data(), method.size()};
  r.path = bb_str{path.data(), path.size()};
  r.peer = info.peer;
  return route.table->ws_open(route.user, id, &info, &r, user);
}

// --- WebSocket ---

template <class Stream>
class WebSocketConnection : public WebSocketBase,
                            public std::enable_shared_from_this<WebSocketConnection<Stream>> {
 public:
  WebSocketConnection(HttpServer::Impl& impl, net::Worker& worker, Stream&& stream,
                      const Route& route, std::string peer, std::string local)
      : impl_(impl),
        worker_(worker),
        ws_(std::move(stream)),
        route_(route),
        peer_(std::move(peer)),
        local_(std::move(local)),
        timer_(worker.io()) {}

  void start(bhttp::request<bhttp::string_body> req, std::string subprotocol) {
    id_ = impl_.add_websocket(worker_, this->shared_from_this());
    const bb_status status =
        open_websocket(route_, id_, peer_, local_, req.method_string(), req.target(), &user_);
    if (status != BB_OK) {
      impl_.remove_websocket(id_);
      spdlog::info("http {}: WebSocket on {} refused by module '{}' (status {})", peer_,
                   route_.path, route_.module, status);
      auto res = std::make_shared<bhttp::response<bhttp::string_body>>(
          bhttp::status::service_unavailable, req.version());
      res->set(bhttp::field::content_type, "application/json");
      res->body() = error_body("unavailable", "the server cannot accept this connection now");
      res->prepare_payload();
      res->keep_alive(false);
      bhttp::async_write(
          ws_.next_layer(), *res,
          [self = this->shared_from_this(), res](beast::error_code, size_t) {
            beast::error_code ec;
            lowest(self->ws_.next_layer()).socket().shutdown(tcp::socket::shutdown_both, ec);
          });
      return;
    }
    open_ = true;
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = std::chrono::milliseconds(impl_.settings().request_timeout_ms);
    timeouts.idle_timeout = websocket::stream_base::none();  // MQTT keep-alive governs idleness
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ws_.set_option(websocket::stream_base::decorator([subprotocol](websocket::response_type& res) {
      res.set(bhttp::field::server, "backbone");
      res.set(bhttp::field::sec_websocket_protocol, subprotocol);
    }));
    const uint32_t limit = route_.max_message_size ? route_.max_message_size
                                                   : impl_.broker.limits().max_packet_size + 16;
    send_budget_ = ws_send_budget(limit);
    ws_.read_message_max(limit);
    ws_.auto_fragment(false);
    ws_.binary(true);
    lowest(ws_.next_layer()).expires_never();
    // Kept until the handshake completes: the accept operation reads it.
    upgrade_request_ = std::make_unique<bhttp::request<bhttp::string_body>>(std::move(req));
    ws_.async_accept(*upgrade_request_, [self = this->shared_from_this()](beast::error_code ec) {
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
    close_code_ = code;
    timer_.expires_after(kWsCloseGrace);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec) self->closed("close timed out");
    });
    flush();
  }

 private:
  void read() {
    if (reading_ || paused_ || !open_) return;
    reading_ = true;
    ws_.async_read_some(
        buffer_.prepare(chunk_), [self = this->shared_from_this()](beast::error_code ec, size_t n) {
          self->reading_ = false;
          if (ec) return self->closed(ec == websocket::error::closed ? "" : ec.message());
          if (n == self->chunk_ && self->chunk_ < kWsMaxReadChunk) self->chunk_ *= 2;
          self->buffer_.commit(n);
          if (!self->ws_.got_binary()) {
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
                        [self = this->shared_from_this()](beast::error_code ec) {
                          self->writing_ = false;
                          // A pending read completes with "closed" and ends
                          // the connection; without one (paused, or reading
                          // stopped at a bad frame) it ends here.
                          if (ec || !self->reading_) self->closed(ec ? ec.message() : "");
                        });
      }
      return;
    }
    sending_.swap(out_);
    writing_ = true;
    ws_.async_write(asio::buffer(sending_),
                    [self = this->shared_from_this()](beast::error_code ec, size_t) {
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
    impl_.remove_websocket(id_);
    timer_.cancel();
    beast::error_code ec;
    lowest(ws_.next_layer()).socket().close(ec);
    impl_.counters->released.fetch_add(out_.capacity() + sending_.capacity() + buffer_.capacity());
    route_.table->ws_closed(user_);
  }

  HttpServer::Impl& impl_;
  net::Worker& worker_;
  websocket::stream<Stream> ws_;
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

// --- WebSocket over plain TCP: our own framing ---
//
// Beast's websocket stream costs a composed asynchronous operation per
// message written; with one write per subscriber per event batch that made
// MQTT over WebSocket several times slower than TCP. Over plain TCP the
// server side of RFC 6455 is small: frames are written with one non-blocking
// writev straight from the MQTT connection's chunks (only what the socket
// does not take is copied), and read frames are unmasked in place. wss://
// keeps Beast's stream over TLS.

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

class PlainWebSocket : public WebSocketBase, public std::enable_shared_from_this<PlainWebSocket> {
 public:
  PlainWebSocket(HttpServer::Impl& impl, net::Worker& worker, tcp::socket socket,
                 const Route& route, std::string peer, std::string local)
      : impl_(impl),
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
    id_ = impl_.add_websocket(worker_, shared_from_this());
    if (open_websocket(route_, id_, peer_, local_, method, path, &user_) != BB_OK) {
      impl_.remove_websocket(id_);
      // Best effort: the socket is fresh, so this small answer fits its buffer.
      const std::string body =
          error_body("unavailable", "the server cannot accept this connection now");
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
    max_message_ = route_.max_message_size ? route_.max_message_size
                                           : impl_.broker.limits().max_packet_size + 16;
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
    uint8_t header[10];
    const size_t header_len = frame_header(header, 0x2, total);
    write_frame(header, header_len, chunks, count);
  }

  void pause(bool paused) override {
    paused_ = paused;
    if (!paused_) arm_read();
  }

  void close(uint16_t code) override { start_close(code); }

 private:
  static size_t frame_header(uint8_t* h, uint8_t opcode, size_t len) {
    h[0] = static_cast<uint8_t>(0x80 | opcode);
    if (len < 126) {
      h[1] = static_cast<uint8_t>(len);
      return 2;
    }
    if (len < 65536) {
      h[1] = 126;
      h[2] = static_cast<uint8_t>(len >> 8);
      h[3] = static_cast<uint8_t>(len);
      return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; ++i) h[2 + i] = static_cast<uint8_t>(uint64_t{len} >> (56 - 8 * i));
    return 10;
  }

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
        uint8_t h[10];
        const size_t hl = frame_header(h, 0xA, len);
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
    if (peer_closed_ && out_.empty()) fail("");
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
    impl_.remove_websocket(id_);
    timer_.cancel();
    boost::system::error_code ec;
    socket_.close(ec);
    // Freed with this object, once its pending handlers are cancelled.
    impl_.counters->released.fetch_add(out_.capacity() + in_.capacity());
    route_.table->ws_closed(user_);
  }

  static std::string errno_text() { return std::strerror(errno); }

  HttpServer::Impl& impl_;
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

// --- HTTP ---

template <class Stream>
class HttpConnection : public ConnectionBase,
                       public std::enable_shared_from_this<HttpConnection<Stream>> {
 public:
  HttpConnection(HttpServer::Impl& impl, net::Worker& worker, Stream&& stream, std::string peer,
                 std::string local)
      : impl_(impl),
        worker_(worker),
        stream_(std::move(stream)),
        peer_(std::move(peer)),
        local_(std::move(local)),
        timer_(worker.io()),
        counters_(impl.counters) {}

  ~HttpConnection() override {
    uncharge();
    counters_->released.fetch_add(buffer_.capacity() +
                                  (parser_ ? parser_->get().body().capacity() : 0));
    counters_->connections.fetch_sub(1);
  }

  void run() {
    if constexpr (kIsTls<Stream>) {
      lowest(stream_).expires_after(std::chrono::milliseconds(impl_.settings().request_timeout_ms));
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

  void on_response(uint64_t ex, std::shared_ptr<ResponseData> r) override {
    if (ex != current_ || !waiting_) return;
    waiting_ = false;
    timer_.cancel();
    write(std::move(*r));
  }

  void on_auth(uint64_t ex, std::shared_ptr<auth::Outcome> outcome) override {
    if (ex != current_ || !authenticating_) return;
    authenticating_ = false;
    timer_.cancel();
    authenticated(std::move(*outcome));
  }

 private:
  bhttp::request<bhttp::string_body>& request() { return parser_->get(); }

  void read() {
    if (parser_) counters_->released.fetch_add(request().body().capacity());
    parser_.emplace();
    parser_->body_limit(impl_.settings().max_body_bytes);
    parser_->header_limit(impl_.settings().max_header_bytes);
    lowest(stream_).expires_after(std::chrono::milliseconds(
        first_ ? impl_.settings().request_timeout_ms : impl_.settings().idle_timeout_ms));
    // The header alone first: a request is routed, and on BB_HTTP_AUTH routes
    // authenticated, before its body is read.
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_header(ec); });
  }

  // Ends the connection or answers with an error when a read failed.
  bool read_failed(beast::error_code ec) {
    if (!ec) return false;
    if (current_) impl_.end_exchange(current_);
    current_ = 0;
    if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      shutdown();
    } else if (ec == bhttp::error::body_limit) {
      fail(413, "payload_too_large",
           "the request body exceeds " + std::to_string(impl_.settings().max_body_bytes) + " bytes",
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
    if (impl_.stopping) return fail(503, "unavailable", "the server is shutting down", true);
    const std::string_view target = request().target();
    const size_t q = target.find('?');
    auto path = percent_decode(target.substr(0, q));
    if (!path || path->empty() || path->front() != '/')
      return fail(400, "bad_request", "invalid request target", false);
    path_ = std::move(*path);
    query_ = q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1));
    const std::string method(request().method_string());
    bool known = false;
    std::string allow;
    const Route* route = impl_.find_route(path_, method, known, allow);
    if (!route) {
      if (!known) return fail(404, "not_found", "no such resource: " + path_, false);
      ResponseData r =
          error_response(405, "method_not_allowed",
                         method + " is not allowed on " + path_ + " (allowed: " + allow + ")");
      r.headers.emplace_back("Allow", allow);
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
    auto ex = impl_.new_exchange(this->weak_from_this(), worker_);
    current_ = ex->id;
    // Until its sender is authenticated (on routes without authentication:
    // until answered), what a request holds counts against one budget shared
    // by all connections, so unauthenticated clients cannot exhaust memory.
    uint64_t held = buffer_.capacity();
    if (!route->auth && !parser_->is_done())
      held += parser_->content_length().value_or(impl_.settings().max_body_bytes);
    if (!charge(held)) {
      spdlog::info("http {}: {} {} refused: http.max_unauthenticated_bytes ({}) in use", peer_,
                   method, path_, impl_.settings().max_unauthenticated_bytes);
      return fail_exchange(503, "unavailable",
                           "too many unauthenticated requests in progress; retry later", true);
    }
    if (route->auth) return authenticate(*ex);
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return on_body({});
    lowest(stream_).expires_after(std::chrono::milliseconds(impl_.settings().request_timeout_ms));
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->on_body(ec); });
  }

  void on_body(beast::error_code ec) {
    if (read_failed(ec)) return;
    lowest(stream_).expires_never();
    auto ex = impl_.find_exchange(current_);
    if (!ex) return shutdown();
    dispatch(*ex);
  }

  // Counts `bytes` against http.max_unauthenticated_bytes; false, counting
  // nothing, when that would exceed it.
  bool charge(uint64_t bytes) {
    auto& total = counters_->unauthenticated;
    const uint64_t limit = impl_.settings().max_unauthenticated_bytes;
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
      ResponseData r =
          error_response(426, "upgrade_required", path_ + " serves WebSocket connections only");
      r.headers.emplace_back("Upgrade", "websocket");
      return write(std::move(r));
    }
    const auto offered = split_list(request()[bhttp::field::sec_websocket_protocol]);
    std::string chosen;
    for (const auto& o : offered) {
      for (const auto& s : route.subprotocols) {
        if (chosen.empty() && iequals(o, s)) chosen = s;
      }
    }
    if (chosen.empty()) {
      std::string list;
      for (const auto& s : route.subprotocols) list += (list.empty() ? "" : ", ") + s;
      return fail(400, "bad_request", "WebSocket subprotocol required: one of " + list, true);
    }
    if constexpr (kIsTls<Stream>) {
      auto ws = std::make_shared<WebSocketConnection<Stream>>(impl_, worker_, std::move(stream_),
                                                              route, peer_, local_);
      ws->start(parser_->release(), chosen);
    } else {
      const auto key = request()[bhttp::field::sec_websocket_key];
      if (request()[bhttp::field::sec_websocket_version] != "13" || key.empty() ||
          request().method() != bhttp::verb::get) {
        ResponseData r = error_response(400, "bad_request",
                                        "a WebSocket upgrade needs GET, Sec-WebSocket-Key and "
                                        "Sec-WebSocket-Version: 13");
        r.headers.emplace_back("Sec-WebSocket-Version", "13");
        r.close = true;
        return write(std::move(r));
      }
      const std::string handshake =
          "HTTP/1.1 101 Switching Protocols\r\nServer: backbone\r\nUpgrade: websocket\r\n"
          "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
          websocket_accept(key) + "\r\nSec-WebSocket-Protocol: " + chosen + "\r\n\r\n";
      const std::string method(request().method_string());
      lowest(stream_).expires_never();
      auto ws = std::make_shared<PlainWebSocket>(impl_, worker_, stream_.release_socket(), route,
                                                 peer_, local_);
      if (!ws->start(method, path_, handshake)) {
        spdlog::info("http {}: WebSocket on {} refused by module '{}'", peer_, route.path,
                     route.module);
        // The socket is gone with `ws`; the client sees the connection close.
      }
    }
  }

  void authenticate(Exchange& ex) {
    const auto authorization = request()[bhttp::field::authorization];
    const auto provider = request()["X-Auth-Provider"];
    std::string_view token;
    if (authorization.size() > 7 && iequals(authorization.substr(0, 7), "Bearer "))
      token = authorization.substr(7);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    if (token.empty() || provider.empty()) {
      return fail_exchange(401, "unauthorized",
                           "send 'Authorization: Bearer <token>' and 'X-Auth-Provider: "
                           "<provider>'");
    }
    provider_.assign(provider.data(), provider.size());
    const auth::Authenticator* auth = impl_.broker.logins().find(provider_);
    if (!auth) {
      spdlog::info("http {}: {} {}: no authentication provider '{}'", peer_,
                   std::string(request().method_string()), path_, provider_);
      return fail_exchange(401, "unauthorized", "invalid credentials");
    }
    bb_auth_request req{};
    req.struct_size = sizeof(req);
    const std::string transport = "http";
    req.username = bb_str{provider_.data(), provider_.size()};
    req.transport = bb_str{transport.data(), transport.size()};
    req.peer_address = bb_str{peer_.data(), peer_.size()};
    req.password = bb_bytes{reinterpret_cast<const uint8_t*>(token.data()), token.size()};
    bb_auth_result result{};
    result.struct_size = sizeof(result);
    authenticating_ = true;
    auth_started_ = std::chrono::steady_clock::now();
    bb_status status;
    {
      std::unique_lock<std::mutex> serial;
      if (auth->serial_mutex) serial = std::unique_lock(*auth->serial_mutex);
      status = auth->table->authenticate(auth->user, &req, ex.id | kTicketBit, &result);
    }
    if (status == BB_PENDING) {
      timer_.expires_after(std::chrono::milliseconds(impl_.broker.limits().auth_timeout_ms));
      timer_.async_wait([self = this->shared_from_this(), id = ex.id](beast::error_code ec) {
        if (ec || id != self->current_ || !self->authenticating_) return;
        self->authenticating_ = false;
        spdlog::warn("http {}: provider '{}' did not answer in time", self->peer_, self->provider_);
        self->fail_exchange(503, "unavailable", "the authentication provider did not answer");
      });
      return;
    }
    authenticating_ = false;
    if (status != BB_OK) {
      spdlog::warn("http {}: provider '{}' failed with status {}", peer_, provider_, status);
      return fail_exchange(503, "unavailable", "the authentication provider failed");
    }
    authenticated(auth::copy_result(result));
  }

  void authenticated(auth::Outcome&& outcome) {
    impl_.broker.metrics().observe_login(provider_, outcome.verdict,
                                         std::chrono::steady_clock::now() - auth_started_);
    auto ex = impl_.find_exchange(current_);
    if (!ex) return;
    const std::string what = std::string(request().method_string()) + " " + path_;
    if (outcome.verdict == BB_AUTH_ALLOW && outcome.expires_at_unix_s > 0 &&
        outcome.expires_at_unix_s <= std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count()) {
      outcome.verdict = BB_AUTH_DENY;
      outcome.log_reason = "credentials expired";
    }
    switch (outcome.verdict) {
      case BB_AUTH_ALLOW: {
        std::string error;
        auto policy = authz::Policy::compile(outcome.statements, &error);
        if (!policy) {
          spdlog::warn("http {}: {}: statements of '{}' from '{}' are invalid: {}", peer_, what,
                       outcome.principal, provider_, error);
          return fail_exchange(403, "forbidden", "the credentials carry invalid statements");
        }
        ex->policy = std::move(policy);
        ex->provider = provider_;
        ex->principal = outcome.principal;
        // The same quotas as the principal's MQTT sessions, from this login.
        ex->usage = impl_.broker.principals().get(provider_, outcome.principal);
        if (ex->usage->replace_quotas(quota::Quotas::resolve(
                outcome.quotas ? &*outcome.quotas : nullptr, impl_.broker.limits().principal)))
          impl_.broker.update_quotas(provider_, outcome.principal,
                                     outcome.quotas ? &*outcome.quotas : nullptr);
        // Authenticated: its body no longer counts as unauthenticated memory.
        uncharge();
        return read_body();
      }
      case BB_AUTH_FORBIDDEN:
        spdlog::info("http {}: {}: '{}' ({}) not authorized: {}", peer_, what, outcome.principal,
                     provider_, outcome.log_reason);
        return fail_exchange(403, "forbidden", "not authorized");
      case BB_AUTH_UNAVAILABLE:
        spdlog::warn("http {}: {}: provider '{}' unavailable: {}", peer_, what, provider_,
                     outcome.log_reason);
        return fail_exchange(503, "unavailable", "the authentication provider is unavailable");
      default:
        spdlog::info("http {}: {}: login with provider '{}' refused: {}", peer_, what, provider_,
                     outcome.log_reason);
        return fail_exchange(401, "unauthorized", "invalid credentials");
    }
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
      self->impl_.end_exchange(id);
      self->write(error_response(504, "timeout", "the request was not answered in time"));
    });
    route_->table->handle(route_->user, &r, ex.id);
  }

  static ResponseData error_response(unsigned status, std::string_view error,
                                     std::string_view message) {
    ResponseData r;
    r.status = status;
    r.content_type = "application/json";
    r.body = error_body(error, message);
    return r;
  }

  void fail(unsigned status, std::string_view error, std::string_view message, bool close) {
    ResponseData r = error_response(status, error, message);
    r.close = close;
    write(std::move(r));
  }

  void fail_exchange(unsigned status, std::string_view error, std::string_view message,
                     bool close = false) {
    impl_.end_exchange(current_);
    fail(status, error, message, close);
  }

  void write(ResponseData r) {
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
    res->keep_alive(!r.close && !unread && request().keep_alive() && !impl_.stopping);
    res->prepare_payload();
    lowest(stream_).expires_after(std::chrono::milliseconds(impl_.settings().request_timeout_ms));
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
    if (current_) impl_.end_exchange(current_);
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
                              if (ec || self->drained_ > self->impl_.settings().max_body_bytes)
                                return self->shutdown();
                              self->drain_some();
                            });
  }

  void shutdown() {
    timer_.cancel();
    if (current_) impl_.end_exchange(current_);
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

  HttpServer::Impl& impl_;
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
  std::shared_ptr<HttpServer::Impl::Counters> counters_;
};

}  // namespace

void HttpServer::Impl::accept() {
  net::Worker& worker = workers.next();
  acceptor->async_accept(worker.io(), [this, &worker](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || stopping) return;
    if (!ec) {
      if (counters->connections.load() >= settings().max_connections) {
        spdlog::warn("http: connection limit ({}) reached, refusing a connection",
                     settings().max_connections);
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        counters->connections.fetch_add(1);
        worker.post([this, &worker, s = std::move(socket)]() mutable {
          beast::error_code e;
          const auto remote = s.remote_endpoint(e);
          const auto local = s.local_endpoint(e);
          if (e) {
            counters->connections.fetch_sub(1);
            return;
          }
          s.set_option(tcp::no_delay(true), e);
          if (tls) {
            using Tls = beast::ssl_stream<beast::tcp_stream>;
            std::make_shared<HttpConnection<Tls>>(*this, worker,
                                                  Tls(beast::tcp_stream(std::move(s)), *tls),
                                                  endpoint_text(remote), endpoint_text(local))
                ->run();
          } else {
            std::make_shared<HttpConnection<beast::tcp_stream>>(
                *this, worker, beast::tcp_stream(std::move(s)), endpoint_text(remote),
                endpoint_text(local))
                ->run();
          }
        });
      }
    } else {
      spdlog::warn("http: accept failed: {}", ec.message());
    }
    accept();
  });
}

HttpServer::HttpServer(broker::Broker& broker, net::WorkerPool& workers)
    : impl_(std::make_unique<Impl>(*this, broker, workers)) {}

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
  if (path.empty() || path.front() != '/' || (path.size() > 1 && path.back() == '/')) {
    *error = "invalid route path '" + path + "'";
    return BB_E_INVALID;
  }
  auto route = std::make_unique<Route>();
  route->module = module;
  route->path = path;
  route->prefix = (r.flags & BB_HTTP_PREFIX) != 0;
  route->auth = (r.flags & BB_HTTP_AUTH) != 0;
  route->websocket = (r.flags & BB_HTTP_WEBSOCKET) != 0;
  route->methods = route->websocket ? std::vector<std::string>{"GET"} : split_list(text(r.methods));
  route->summary = text(r.summary);
  route->table = &r;
  route->user = user;
  if (route->websocket) {
    route->subprotocols = split_list(text(r.subprotocols));
    route->max_message_size = r.max_message_size;
    if (!r.ws_open || !r.ws_data || !r.ws_backpressure || !r.ws_closed ||
        route->subprotocols.empty()) {
      *error = "WebSocket route '" + path + "' needs ws_* callbacks and subprotocols";
      return BB_E_INVALID;
    }
  } else if (!r.handle || route->methods.empty()) {
    *error = "route '" + path + "' needs a handler and methods";
    return BB_E_INVALID;
  }
  if (r.openapi.len > 0) {
    route->openapi = sdk::parse_json(text(r.openapi));
    if (!route->openapi.is_object()) {
      *error = "route '" + path + "': openapi is not a JSON object";
      return BB_E_INVALID;
    }
  }
  std::unique_lock lock(impl_->routes_mutex);
  for (const auto& other : impl_->routes) {
    if (other->path != path) continue;
    for (const auto& m : route->methods) {
      if (other->allows_method(m)) {
        *error = m + " " + path + " is already served by module '" + other->module + "'";
        return BB_E_INVALID;
      }
    }
  }
  spdlog::info("[{}] serving {}{} {}", module, path, route->prefix ? "/*" : "",
               route->websocket ? "(WebSocket)" : text(r.methods));
  impl_->routes.push_back(std::move(route));
  lock.unlock();
  if (armed_ && !listening_) {
    try {
      listen();
    } catch (const std::exception& e) {
      *error = e.what();
      std::unique_lock relock(impl_->routes_mutex);
      impl_->routes.pop_back();
      return BB_E_INVALID;
    }
  }
  return BB_OK;
}

void HttpServer::start() {
  armed_ = true;
  bool any;
  {
    std::shared_lock lock(impl_->routes_mutex);
    any = !impl_->routes.empty();
  }
  if (any) listen();
}

void HttpServer::listen() {
  if (!settings_.enabled || listening_) return;
  if (!settings_.tls_cert.empty()) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    beast::error_code ec;
    ctx->use_certificate_chain_file(settings_.tls_cert, ec);
    if (ec)
      throw config::ConfigError("http.tls_cert: cannot use '" + settings_.tls_cert +
                                "': " + ec.message());
    ctx->use_private_key_file(settings_.tls_key, asio::ssl::context::pem, ec);
    if (ec)
      throw config::ConfigError("http.tls_key: cannot use '" + settings_.tls_key +
                                "': " + ec.message());
    impl_->tls = std::move(ctx);
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(settings_.address, ec);
  if (ec) throw config::ConfigError("http.address: invalid address '" + settings_.address + "'");
  auto acceptor = std::make_unique<tcp::acceptor>(impl_->workers.at(0).io());
  const tcp::endpoint endpoint(address, settings_.port);
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw config::ConfigError("http: cannot listen on " + settings_.address + ":" +
                              std::to_string(settings_.port) + ": " + ec.message());
  bound_port_ = acceptor->local_endpoint().port();
  impl_->acceptor = std::move(acceptor);
  impl_->trim_timer = std::make_unique<asio::steady_timer>(impl_->workers.at(0).io());
  listening_ = true;
  impl_->workers.at(0).post([this] {
    impl_->accept();
    impl_->arm_trim();
  });
  spdlog::info("http: listening on {}:{} ({})", settings_.address, bound_port_,
               impl_->tls ? "https" : "http");
}

void HttpServer::stop() {
  if (impl_->stopping.exchange(true) || !listening_) return;
  std::vector<std::future<void>> done;
  auto close_acceptor = std::make_shared<std::promise<void>>();
  done.push_back(close_acceptor->get_future());
  impl_->workers.at(0).post([this, close_acceptor] {
    beast::error_code ec;
    impl_->acceptor->close(ec);
    impl_->trim_timer->cancel();
    close_acceptor->set_value();
  });
  for (uint32_t w = 0; w < impl_->workers.size(); ++w) {
    auto closed = std::make_shared<std::promise<void>>();
    done.push_back(closed->get_future());
    impl_->workers.at(w).post([this, w, closed] {
      std::vector<std::shared_ptr<WebSocketBase>> open;
      for (auto& [id, ws] : impl_->websockets[w]) open.push_back(ws);
      for (auto& ws : open) ws->close(websocket::close_code::going_away);
      closed->set_value();
    });
  }
  for (auto& f : done) f.wait_for(std::chrono::seconds(2));
}

bb_status HttpServer::respond(bb_http_exchange ex, const bb_http_response& r) {
  auto exchange = impl_->find_exchange(ex);
  if (!exchange) return BB_E_STALE;
  impl_->end_exchange(ex);
  auto data = std::make_shared<ResponseData>();
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
  auto exchange = impl_->find_exchange(ex);
  return exchange ? exchange->policy : nullptr;
}

quota::PrincipalPtr HttpServer::principal_of(bb_http_exchange ex) {
  auto exchange = impl_->find_exchange(ex);
  return exchange ? exchange->usage : nullptr;
}

int32_t HttpServer::authorize(bb_http_exchange ex, std::string_view action,
                              std::string_view resource) {
  auto policy = policy_of(ex);
  if (!policy) return 0;
  const bool allowed = action == "mqtt:subscribe" ? policy->allows_subscribe(resource)
                                                  : policy->allows(action, resource);
  if (!allowed) impl_->broker.metrics().count_denial(action);
  return allowed ? 1 : 0;
}

bb_status HttpServer::auth_complete(bb_auth_ticket t, auth::Outcome&& outcome) {
  auto exchange = impl_->find_exchange(t & ~kTicketBit);
  if (!exchange) return BB_E_STALE;
  auto shared = std::make_shared<auth::Outcome>(std::move(outcome));
  exchange->worker->post([exchange, shared] {
    if (auto conn = exchange->conn.lock()) conn->on_auth(exchange->id, shared);
  });
  return BB_OK;
}

bb_status HttpServer::ws_send(bb_ws_id ws, const bb_bytes* chunks, size_t count) {
  WebSocketBase* w = impl_->find_websocket(ws);
  if (!w) return BB_E_STALE;
  w->send(chunks, count);
  return BB_OK;
}

void HttpServer::ws_pause(bb_ws_id ws, bool paused) {
  if (WebSocketBase* w = impl_->find_websocket(ws)) w->pause(paused);
}

void HttpServer::ws_close(bb_ws_id ws, uint16_t code) {
  if (WebSocketBase* w = impl_->find_websocket(ws)) w->close(code);
}

json HttpServer::openapi() const {
  json paths = json::object();
  std::shared_lock lock(impl_->routes_mutex);
  for (const auto& r : impl_->routes) {
    if (r->openapi.is_object() && !r->openapi.empty() && r->openapi.begin().key().front() == '/') {
      // The module describes its paths itself ("/api/clients/{name}"...).
      for (const auto& [p, item] : r->openapi.items()) paths[p].update(item);
      continue;
    }
    json item = json::object();
    for (const auto& m : r->methods) {
      std::string lower;
      for (char c : m) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      json op = {{"summary", r->summary}, {"responses", json::object()}};
      if (r->websocket) {
        op["responses"]["101"] = {{"description", "Switching Protocols (subprotocols: " + [&] {
                                     std::string s;
                                     for (const auto& p : r->subprotocols)
                                       s += (s.empty() ? "" : ", ") + p;
                                     return s;
                                   }() + ")"}};
      } else {
        op["responses"]["200"] = {{"description", "OK"}};
      }
      if (r->auth) {
        op["security"] = json::array({{{"bearer", json::array()}, {"provider", json::array()}}});
        op["responses"]["401"] = {{"$ref", "#/components/responses/Unauthorized"}};
        op["responses"]["403"] = {{"$ref", "#/components/responses/Forbidden"}};
      }
      item[lower] = std::move(op);
    }
    if (r->openapi.is_object()) item.update(r->openapi, true);
    paths[r->path].update(item);
  }
  const json error_schema = {
      {"type", "object"},
      {"required", {"error", "message"}},
      {"properties", {{"error", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}};
  auto error_response = [](const char* description) {
    return json{{"description", description},
                {"content",
                 {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}};
  };
  return json{
      {"openapi", "3.0.3"},
      {"info", {{"title", "Backbone management API"}, {"version", BACKBONE_VERSION}}},
      {"paths", paths},
      {"components",
       {{"securitySchemes",
         {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}},
          {"provider", {{"type", "apiKey"}, {"in", "header"}, {"name", "X-Auth-Provider"}}}}},
        {"schemas", {{"Error", error_schema}}},
        {"responses",
         {{"Unauthorized", error_response("Missing or invalid credentials")},
          {"Forbidden", error_response("The statements do not allow the action")},
          {"BadRequest", error_response("Malformed JSON or a wrong field")},
          {"NotFound", error_response("No such resource")}}}}}};
}

}  // namespace backbone::kernel::http
