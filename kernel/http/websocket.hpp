// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <backbone/module_abi.h>

namespace backbone::kernel::broker {
class Broker;
}

namespace backbone::kernel::http {

struct Route;

// A WebSocket as the server and its module see it; ws:// (PlainWebSocket)
// and wss:// (TlsWebSocket) implement it. Every call comes on the
// WebSocket's worker.
class WebSocket {
 public:
  virtual ~WebSocket() = default;
  // Sends `chunks` as one binary message.
  virtual void send(const bb_bytes* chunks, size_t count) = 0;
  // Stops or resumes reading (the MQTT connection's back-pressure).
  virtual void pause(bool paused) = 0;
  // Sends a close frame with `code` and ends the WebSocket.
  virtual void close(uint16_t code) = 0;
};

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

// The close code of WebSockets the server closes as it stops (RFC 6455
// §7.4.1: going away).
constexpr uint16_t kWsCloseGoingAway = 1001;

// Everything a WebSocket may have queued that the socket did not take yet.
// Above the high watermark the MQTT connection stops producing, but one
// batch may overshoot it, and replies to the peer's own packets (PUBACK,
// pong) are not held back: the budget leaves room for that, and a peer that
// keeps sending without reading exceeds it and is cut.
size_t ws_send_budget(uint64_t max_message);

// The largest message the route's WebSockets accept: its own limit, or the
// broker's packet size limit plus room for the MQTT fixed header.
uint32_t ws_message_limit(const Route& route, const broker::Broker& broker);

// Asks the route's module to take a new WebSocket (bb_http_route.ws_open).
bb_status open_websocket(const Route& route, bb_ws_id id, const std::string& peer,
                         const std::string& local, std::string_view method, std::string_view path,
                         void** user);

// The body of the 503 a WebSocket upgrade gets when its module refuses it.
std::string ws_refused_body();

}  // namespace backbone::kernel::http
