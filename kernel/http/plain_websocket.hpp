// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace backbone::kernel::net {
class Worker;
}

namespace backbone::kernel::http {

struct Route;
struct ServerContext;

// The Sec-WebSocket-Accept value for `key` (RFC 6455 §4.2.2).
std::string websocket_accept(std::string_view key);

// ws://: serves a WebSocket on `socket` (an HTTP connection's, after a valid
// upgrade request for `route` on `path` with Sec-WebSocket-Key `key`), on
// `worker`. Answers 101 with `subprotocol` when the route's module takes the
// WebSocket; otherwise answers 503 and closes the socket, returning false.
bool start_plain_websocket(ServerContext& ctx, net::Worker& worker,
                           boost::asio::ip::tcp::socket socket, const Route& route,
                           std::string peer, std::string local, const std::string& method,
                           const std::string& path, std::string_view key,
                           const std::string& subprotocol);

}  // namespace backbone::kernel::http
