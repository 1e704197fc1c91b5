// SPDX-License-Identifier: GPL-3.0-or-later
// MQTT over TCP (and TLS) on the kernel's worker threads.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>

#include <climits>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>

namespace backbone::modules::tcp {
namespace {

using nlohmann::json;

std::string address_string(const sockaddr_storage& ss) {
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
    port = ntohs(a->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
    port = ntohs(a->sin6_port);
  }
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

std::string ssl_error() {
  char buf[256];
  ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
  return buf;
}

class TcpModule;

// One accepted connection. Lives on the worker the kernel bound it to.
struct Conn {
  TcpModule* module = nullptr;
  int fd = -1;
  SSL* ssl = nullptr;
  bool handshake_done = false;
  bb_conn_id id = 0;
  bb_io_watch watch = 0;
  std::string out;  // bytes the socket did not take yet
  size_t out_offset = 0;
  bool read_paused = false;
  bool above_watermark = false;
  bool closing = false;    // close requested: flush, then tear down
  bool peer_gone = false;  // EOF, reset or error: no one is left to read a goodbye
  // After the kernel closed it: a timer bounding the linger (see linger()).
  int linger_timer = -1;
  bb_io_watch linger_watch = 0;
  int busy = 0;  // inside a callback: tear down afterwards
  bool dead = false;
};

class TcpModule : public sdk::Module {
 public:
  using sdk::Module::Module;

  bb_status configure(bool reloading) override {
    if (reloading) return BB_E_UNSUPPORTED;
    const auto text = host().config("");
    const json doc = text ? sdk::parse_json(*text) : json::object();
    sdk::Settings settings(doc);
    settings.known({"enabled", "address", "port", "backlog", "write_buffer_high", "tls"});
    settings.get_string("address", address_, /*allow_empty=*/true);
    settings.get_int<uint16_t>("port", port_, 0, 65535);
    settings.get_int<int>("backlog", backlog_, 0, INT_MAX);
    settings.get_int<size_t>("write_buffer_high", high_watermark_, 4096, SIZE_MAX);
    sdk::Settings tls = settings.object("tls");
    const bool with_tls = settings.has("tls");
    if (!settings.ok()) return fail(settings.error());
    if (with_tls && !configure_tls(tls)) return BB_E_INVALID;
    return BB_OK;
  }

  bb_status start() override {
    sockaddr_storage ss{};
    socklen_t len;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, address_.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(port_);
      len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address_.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(port_);
      len = sizeof(sockaddr_in6);
    } else {
      return fail("setting 'address': '" + address_ + "' is not an IPv4 or IPv6 address");
    }
    listen_fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return fail(std::string("socket: ") + std::strerror(errno));
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    const std::string where = address_ + ":" + std::to_string(port_);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
        ::listen(listen_fd_, backlog_) != 0) {
      const std::string err = std::strerror(errno);
      ::close(listen_fd_);
      listen_fd_ = -1;
      return fail("cannot listen on " + where + ": " + err);
    }
    if (host().io_watch(listen_fd_, 0, &TcpModule::on_accept, this, &listen_watch_) != BB_OK ||
        host().io_want(listen_watch_, BB_IO_READ) != BB_OK) {
      return fail("cannot watch the listening socket");
    }
    host().info("listening for MQTT" + std::string(tls_ ? " over TLS" : "") + " on " + where);
    return BB_OK;
  }

  void stop() override {
    if (listen_fd_ >= 0) {
      host().io_unwatch(listen_watch_);
      ::close(listen_fd_);
      listen_fd_ = -1;
    }
    std::unordered_set<Conn*> lingering;
    {
      std::lock_guard lock(linger_mutex_);
      lingering.swap(lingering_);
    }
    for (Conn* c : lingering) release(c);  // io_unwatch waits for a callback in progress
  }

  ~TcpModule() override {
    if (tls_) SSL_CTX_free(tls_);
  }

 private:
  bb_status fail(const std::string& message) {
    host().error(message);
    return BB_E_INVALID;
  }

  bool configure_tls(sdk::Settings& tls) {
    std::string cert, key, ca;
    bool require_client_cert = false;
    tls.known({"cert", "key", "ca", "require_client_cert"});
    tls.get_string("cert", cert, /*allow_empty=*/true);
    tls.get_string("key", key, /*allow_empty=*/true);
    tls.get_string("ca", ca, /*allow_empty=*/true);
    tls.get_bool("require_client_cert", require_client_cert);
    if (!tls.ok()) return fail(tls.error()) == BB_OK;
    if (cert.empty() || key.empty())
      return fail("setting 'tls': 'cert' and 'key' are required") == BB_OK;
    tls_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(tls_, cert.c_str()) != 1)
      return fail("setting 'tls.cert': cannot load '" + cert + "': " + ssl_error()) == BB_OK;
    if (SSL_CTX_use_PrivateKey_file(tls_, key.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail("setting 'tls.key': cannot load '" + key + "': " + ssl_error()) == BB_OK;
    if (!ca.empty() && SSL_CTX_load_verify_locations(tls_, ca.c_str(), nullptr) != 1)
      return fail("setting 'tls.ca': cannot load '" + ca + "': " + ssl_error()) == BB_OK;
    if (require_client_cert) {
      if (ca.empty()) return fail("setting 'tls.require_client_cert' needs 'tls.ca'") == BB_OK;
      SSL_CTX_set_verify(tls_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return true;
  }

  static void on_accept(void* user, int32_t) {
    auto* self = static_cast<TcpModule*>(user);
    for (int i = 0; i < 64; ++i) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      const int fd = ::accept4(self->listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
          self->host().warn(std::string("accept: ") + std::strerror(errno));
        return;
      }
      self->adopt(fd, peer);
    }
  }

  void adopt(int fd, const sockaddr_storage& peer) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto* c = new Conn;
    c->module = this;
    c->fd = fd;
    // Kept by the kernel, not here: idle connections should cost little.
    const std::string peer_name = address_string(peer);
    std::string local_name;
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0)
      local_name = address_string(local);
    if (tls_) {
      c->ssl = SSL_new(tls_);
      SSL_set_fd(c->ssl, fd);
      SSL_set_accept_state(c->ssl);
    }
    static constexpr bb_conn_ops kOps{sizeof(bb_conn_ops), 0, &TcpModule::write, &TcpModule::pause,
                                      &TcpModule::close};
    bb_conn_info info{};
    info.struct_size = sizeof(info);
    info.transport = sdk::str(tls_ ? "tls" : "tcp");
    info.peer = sdk::str(peer_name);
    info.local = sdk::str(local_name);
    if (host().conn_open(info, kOps, c, &c->id) != BB_OK) {
      host().warn("refused connection from " + peer_name + " (connection limit)");
      if (c->ssl) SSL_free(c->ssl);
      ::close(fd);
      delete c;
      return;
    }
    if (host().io_watch(fd, c->id, &TcpModule::on_io, c, &c->watch) != BB_OK) {
      host().conn_closed(c->id);
      if (c->ssl) SSL_free(c->ssl);
      ::close(fd);
      delete c;
      return;
    }
    want(c);
  }

  void want(Conn* c) {
    int32_t interest = 0;
    if (!c->read_paused && !c->closing) interest |= BB_IO_READ;
    if (c->out.size() > c->out_offset || (c->ssl && !c->handshake_done)) interest |= BB_IO_WRITE;
    if (c->closing && c->out.size() <= c->out_offset) interest |= BB_IO_WRITE;
    host().io_want(c->watch, interest);
  }

  // Thread: the connection's worker, or the accepting one right after
  // adopt() (the kernel forwards io_want to the watch's worker).
  static void on_io(void* user, int32_t events) {
    auto* c = static_cast<Conn*>(user);
    TcpModule* self = c->module;
    if (c->dead) return;
    if (c->linger_timer >= 0) {
      self->discard(c);
      return;
    }
    ++c->busy;
    if (events & BB_IO_ERROR) {
      c->closing = c->peer_gone = true;
      c->out.clear();
      c->out_offset = 0;
    }
    if ((events & BB_IO_WRITE) && !c->closing) self->drain(c);
    if ((events & BB_IO_READ) && !c->closing && !c->read_paused) self->read(c);
    if (c->closing) self->drain(c);
    --c->busy;
    if (c->closing && (c->out.size() <= c->out_offset || c->dead)) {
      if (!c->peer_gone && !c->dead && self->linger(c)) return;
      self->teardown(c);
      return;
    }
    if (!c->dead) self->want(c);
  }

  // The kernel closed the connection with its last words (a DISCONNECT or a
  // refused CONNACK) queued. Closing a socket with unread input makes the
  // kernel send a reset, which can destroy those words before the peer
  // reads them (a client still writing gets a broken pipe). So the write
  // side is shut (FIN after the last bytes) and input is read and dropped
  // until the peer closes or kLingerMs pass. The kernel is told at once.
  static constexpr int kLingerMs = 2000;

  bool linger(Conn* c) {
    const int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (timer < 0) return false;
    itimerspec when{};
    when.it_value.tv_sec = kLingerMs / 1000;
    when.it_value.tv_nsec = (kLingerMs % 1000) * 1000000L;
    const auto* api = host().api();
    if (timerfd_settime(timer, 0, &when, nullptr) != 0 ||
        api->io_watch(host().ctx(), timer, c->id, &TcpModule::on_linger_timeout, c,
                      &c->linger_watch) != BB_OK) {
      ::close(timer);
      return false;
    }
    c->linger_timer = timer;
    if (c->ssl) SSL_shutdown(c->ssl);  // close_notify, after what was sent
    ::shutdown(c->fd, SHUT_WR);
    {
      std::lock_guard lock(linger_mutex_);
      lingering_.insert(c);
    }
    api->conn_closed(host().ctx(), c->id);
    api->io_want(host().ctx(), c->watch, BB_IO_READ);
    api->io_want(host().ctx(), c->linger_watch, BB_IO_READ);
    return true;
  }

  // Bounded per turn like read(); the linger's timer bounds the whole.
  void discard(Conn* c) {
    char buf[64 * 1024];
    for (int i = 0; i < 16; ++i) {
      const ssize_t n = ::recv(c->fd, buf, sizeof(buf), 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (n <= 0) return end_linger(c);  // the peer closed (or reset): done
    }
  }

  static void on_linger_timeout(void* user, int32_t) {
    static_cast<Conn*>(user)->module->end_linger(static_cast<Conn*>(user));
  }

  // Thread: the connection's worker.
  void end_linger(Conn* c) {
    {
      std::lock_guard lock(linger_mutex_);
      if (lingering_.erase(c) == 0) return;  // stop() has taken it
    }
    release(c);
  }

  // The kernel no longer knows the connection (conn_closed was called).
  void release(Conn* c) {
    const auto* api = host().api();
    api->io_unwatch(host().ctx(), c->linger_watch);
    api->io_unwatch(host().ctx(), c->watch);
    ::close(c->linger_timer);
    if (c->ssl) SSL_free(c->ssl);
    ::close(c->fd);
    delete c;
  }

  void read(Conn* c) {
    char buf[64 * 1024];
    for (int i = 0; i < 16 && !c->closing && !c->read_paused; ++i) {
      ssize_t n;
      if (c->ssl) {
        n = SSL_read(c->ssl, buf, sizeof(buf));
        if (n <= 0) {
          const int err = SSL_get_error(c->ssl, static_cast<int>(n));
          if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            if (!c->handshake_done && SSL_is_init_finished(c->ssl)) c->handshake_done = true;
            return;
          }
          c->closing = c->peer_gone = true;
          c->out.clear();
          c->out_offset = 0;
          return;
        }
        c->handshake_done = true;
      } else {
        n = ::recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
          c->closing = c->peer_gone = true;  // peer closed or reset
          c->out.clear();
          c->out_offset = 0;
          return;
        }
      }
      host().conn_feed(c->id, std::string_view(buf, static_cast<size_t>(n)));
      if (static_cast<size_t>(n) < sizeof(buf) && !c->ssl) return;
    }
  }

  // Sends buffered bytes; returns when the socket would block.
  void drain(Conn* c) {
    while (c->out.size() > c->out_offset) {
      const char* p = c->out.data() + c->out_offset;
      const size_t len = c->out.size() - c->out_offset;
      ssize_t n;
      if (c->ssl) {
        n = SSL_write(c->ssl, p, static_cast<int>(std::min<size_t>(len, 1 << 30)));
        if (n <= 0) {
          const int err = SSL_get_error(c->ssl, static_cast<int>(n));
          if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
          c->out.clear();
          c->out_offset = 0;
          c->closing = c->peer_gone = true;
          break;
        }
      } else {
        n = ::send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EINTR) break;
          c->out.clear();
          c->out_offset = 0;
          c->closing = c->peer_gone = true;
          break;
        }
      }
      c->out_offset += static_cast<size_t>(n);
    }
    if (c->out_offset == c->out.size()) {
      c->out.clear();
      c->out_offset = 0;
    } else if (c->out_offset > 1024 * 1024) {
      c->out.erase(0, c->out_offset);
      c->out_offset = 0;
    }
    update_watermark(c);
  }

  void update_watermark(Conn* c) {
    const size_t pending = c->out.size() - c->out_offset;
    if (!c->above_watermark && pending > high_watermark_) {
      c->above_watermark = true;
      host().conn_backpressure(c->id, true);
    } else if (c->above_watermark && pending < high_watermark_ / 2) {
      c->above_watermark = false;
      host().conn_backpressure(c->id, false);
    }
  }

  static bb_status write(void* user, const bb_bytes* chunks, size_t count) {
    auto* c = static_cast<Conn*>(user);
    TcpModule* self = c->module;
    if (c->dead || (c->closing && c->out.empty() && c->busy == 0)) return BB_E_STALE;
    size_t skip = 0;  // bytes of the chunks the socket took directly
    if (c->out.size() == c->out_offset && !c->ssl) {
      // Nothing queued: hand the chunks to the kernel in one writev.
      iovec iov[64];
      size_t done = 0;
      while (done < count) {
        const size_t n = std::min<size_t>(64, count - done);
        size_t total = 0;
        for (size_t i = 0; i < n; ++i) {
          iov[i].iov_base = const_cast<uint8_t*>(chunks[done + i].ptr);
          iov[i].iov_len = chunks[done + i].len;
          total += chunks[done + i].len;
        }
        const ssize_t sent = ::writev(c->fd, iov, static_cast<int>(n));
        if (sent < 0) {
          if (errno != EAGAIN && errno != EINTR) {
            c->closing = c->peer_gone = true;
            return BB_OK;
          }
          break;
        }
        skip += static_cast<size_t>(sent);
        if (static_cast<size_t>(sent) < total) break;
        done += n;
      }
    }
    for (size_t i = 0; i < count; ++i) {
      const bb_bytes& b = chunks[i];
      if (skip >= b.len) {
        skip -= b.len;
        continue;
      }
      c->out.append(reinterpret_cast<const char*>(b.ptr) + skip, b.len - skip);
      skip = 0;
    }
    if (c->ssl) self->drain(c);
    if (c->out.size() > c->out_offset) {
      self->update_watermark(c);
      if (c->busy == 0) self->want(c);
    }
    return BB_OK;
  }

  static void pause(void* user, int32_t paused) {
    auto* c = static_cast<Conn*>(user);
    if (c->dead) return;
    c->read_paused = paused != 0;
    if (c->busy == 0) c->module->want(c);
  }

  static void close(void* user) {
    auto* c = static_cast<Conn*>(user);
    if (c->dead || c->closing) return;
    c->closing = true;
    // Tear down once the callback that got us here has returned, or once the
    // pending bytes are out.
    if (c->busy == 0) c->module->want(c);
  }

  void teardown(Conn* c) {
    if (c->dead) return;
    c->dead = true;
    host().io_unwatch(c->watch);
    if (c->ssl) {
      SSL_shutdown(c->ssl);
      SSL_free(c->ssl);
    }
    ::shutdown(c->fd, SHUT_RDWR);
    ::close(c->fd);
    host().conn_closed(c->id);
    delete c;
  }

  std::string address_ = "0.0.0.0";
  uint16_t port_ = 1883;
  int backlog_ = 1024;
  size_t high_watermark_ = 1024 * 1024;
  SSL_CTX* tls_ = nullptr;
  int listen_fd_ = -1;
  bb_io_watch listen_watch_ = 0;
  std::mutex linger_mutex_;
  std::unordered_set<Conn*> lingering_;  // closed by the kernel, saying goodbye
};

}  // namespace
}  // namespace backbone::modules::tcp

BACKBONE_MODULE(backbone::modules::tcp::TcpModule, "tcp", "1.0.0", BB_KIND_TRANSPORT, 0)
