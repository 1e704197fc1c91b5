// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include "kernel/http/beast.hpp"  // before any other Beast header

#include <string>

#include <boost/beast/ssl.hpp>

namespace backbone::kernel::net {
class Worker;
}

namespace backbone::kernel::http {

struct Route;
struct ServerContext;

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// wss://: serves a WebSocket on `stream` (an HTTPS connection's, after its
// `upgrade` request for `route` with a subprotocol the route serves), on
// `worker`, with Beast's websocket stream. Answers 503 and closes when the
// route's module refuses it.
void start_tls_websocket(ServerContext& ctx, net::Worker& worker, TlsStream&& stream,
                         const Route& route, std::string peer, std::string local,
                         boost::beast::http::request<boost::beast::http::string_body> upgrade,
                         std::string subprotocol);

}  // namespace backbone::kernel::http
