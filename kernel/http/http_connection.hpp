// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <string>

#include <boost/asio/ip/tcp.hpp>

namespace boost::asio::ssl {
class context;
}
namespace backbone::kernel::net {
class Worker;
}

namespace backbone::kernel::http {

struct ServerContext;

// Serves HTTP (HTTPS when `tls` is set) on an accepted `socket`, on
// `worker`: requests are parsed within http.max_header_bytes and
// http.max_body_bytes, routed, authenticated on BB_HTTP_AUTH routes before
// their body is read, handed to their module and answered; the bytes of
// requests whose sender is not authenticated count against
// http.max_unauthenticated_bytes; a WebSocket upgrade hands the socket over.
// The connection counts itself in ctx.counters->connections (already
// incremented by the listener) until it ends.
void serve_http(ServerContext& ctx, net::Worker& worker, boost::asio::ip::tcp::socket socket,
                boost::asio::ssl::context* tls, std::string peer, std::string local);

}  // namespace backbone::kernel::http
