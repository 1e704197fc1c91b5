// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <future>
#include <memory>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

namespace boost::asio::ssl {
class context;
}
namespace backbone::kernel::net {
class WorkerPool;
}

namespace backbone::kernel::http {

struct ServerContext;

// The HTTP(S) listening socket: TLS context, accept loop (connections spread
// over the workers, http.max_connections), and the periodic return of freed
// connection memory to the system.
class Listener {
 public:
  Listener(ServerContext& ctx, net::WorkerPool& workers);
  ~Listener();

  // Control thread. Loads the TLS files when http.tls_cert is set, binds and
  // listens, then accepts on worker 0. Throws config::ConfigError (port in
  // use, invalid address, unreadable TLS files). Returns the bound port.
  uint16_t open();
  bool tls() const { return tls_ != nullptr; }
  // Stops accepting (on worker 0); the future is ready once it has.
  std::future<void> close();

 private:
  void accept();
  void arm_trim();

  ServerContext& ctx_;
  net::WorkerPool& workers_;
  std::unique_ptr<boost::asio::ssl::context> tls_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::unique_ptr<boost::asio::steady_timer> trim_timer_;
};

}  // namespace backbone::kernel::http
