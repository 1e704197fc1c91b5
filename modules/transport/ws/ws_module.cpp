// SPDX-License-Identifier: GPL-3.0-or-later
// MQTT over WebSocket: a route on the kernel's HTTP listener whose binary
// messages carry the MQTT byte stream (MQTT 5 §6). The kernel does the
// WebSocket protocol; this module binds each WebSocket to an MQTT connection
// on the same worker.
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace backbone::modules::ws {
namespace {

using nlohmann::json;

class WsModule;

struct Conn {
  WsModule* module = nullptr;
  bb_ws_id ws = 0;
  bb_conn_id conn = 0;
};

class WsModule : public sdk::Module {
 public:
  using sdk::Module::Module;

  bb_status configure(bool reloading) override {
    if (reloading) return BB_E_UNSUPPORTED;
    const auto text = host().config("");
    const json doc = text ? sdk::parse_json(*text) : json::object();
    sdk::Settings settings(doc);
    std::vector<std::string> subprotocols;
    settings.known({"path", "subprotocols", "max_message_size"});
    settings.get_string("path", path_);
    if (settings.has("path") && path_.front() != '/')
      settings.fail("path", "expected an absolute path such as \"/ws\"");
    settings.get_strings("subprotocols", subprotocols, /*non_empty=*/true);
    for (size_t i = 0; i < subprotocols.size(); ++i) {
      if (subprotocols[i].find(',') != std::string::npos)
        settings.fail("subprotocols[" + std::to_string(i) + "]", "must not contain ','");
    }
    // 0 = the kernel's limit.
    settings.get_int<uint32_t>("max_message_size", max_message_size_, 0, UINT32_MAX);
    if (!settings.ok()) return fail(settings.error());
    if (!subprotocols.empty()) {
      subprotocols_.clear();
      for (const std::string& p : subprotocols)
        subprotocols_ += (subprotocols_.empty() ? "" : ",") + p;
    }
    if (!host().has_http()) {
      return fail("this kernel has no HTTP listener (needs module ABI 1.1)");
    }
    return BB_OK;
  }

  // Transports start once authenticators and config sources are ready, so
  // the route appears only then: no client slips in before policies load.
  bb_status start() override {
    route_ = bb_http_route{};
    route_.struct_size = sizeof(route_);
    route_.flags = BB_HTTP_WEBSOCKET;
    route_.path = sdk::str(path_);
    route_.summary = sdk::str("MQTT 3.1.1 / 5.0 over WebSocket (binary frames)");
    route_.subprotocols = sdk::str(subprotocols_);
    route_.max_message_size = max_message_size_;
    route_.ws_open = &WsModule::ws_open;
    route_.ws_data = &WsModule::ws_data;
    route_.ws_backpressure = &WsModule::ws_backpressure;
    route_.ws_closed = &WsModule::ws_closed;
    const bb_status status = host().route(route_, this);
    if (status == BB_E_UNSUPPORTED) {
      host().warn("MQTT over WebSocket is not served: " + host().last_error());
      return BB_OK;
    }
    if (status != BB_OK) return fail("cannot serve " + path_ + ": " + host().last_error());
    return BB_OK;
  }

  void stop() override { stopped_ = true; }

 private:
  bb_status fail(const std::string& why) {
    host().error(why);
    return BB_E_INVALID;
  }

  static bb_status ws_open(void* user, bb_ws_id ws, const bb_conn_info* info,
                           const bb_http_request*, void** ws_user) noexcept {
    auto* self = static_cast<WsModule*>(user);
    if (self->stopped_) return BB_E_STATE;
    auto* c = new (std::nothrow) Conn{self, ws, 0};
    if (!c) return BB_E_NOMEM;
    bb_conn_info mine = *info;
    mine.struct_size = sizeof(mine);
    mine.flags = BB_CONN_ON_CALLING_WORKER;  // WebSocket I/O runs on this worker
    const bb_status status = self->host().conn_open(mine, kOps, c, &c->conn);
    if (status != BB_OK) {
      delete c;
      return status;
    }
    *ws_user = c;
    return BB_OK;
  }

  static void ws_data(void* ws_user, bb_bytes data) noexcept {
    auto* c = static_cast<Conn*>(ws_user);
    c->module->host().conn_feed(c->conn, data);
  }

  static void ws_backpressure(void* ws_user, int32_t above) noexcept {
    auto* c = static_cast<Conn*>(ws_user);
    c->module->host().conn_backpressure(c->conn, above != 0);
  }

  static void ws_closed(void* ws_user) noexcept {
    auto* c = static_cast<Conn*>(ws_user);
    c->module->host().conn_closed(c->conn);
    delete c;
  }

  static bb_status write(void* conn_user, const bb_bytes* chunks, size_t count) noexcept {
    auto* c = static_cast<Conn*>(conn_user);
    return c->module->host().ws_send(c->ws, chunks, count);
  }

  static void pause_read(void* conn_user, int32_t paused) noexcept {
    auto* c = static_cast<Conn*>(conn_user);
    c->module->host().ws_pause(c->ws, paused != 0);
  }

  static void close(void* conn_user) noexcept {
    auto* c = static_cast<Conn*>(conn_user);
    c->module->host().ws_close(c->ws, BB_WS_NORMAL);
  }

  static constexpr bb_conn_ops kOps{sizeof(bb_conn_ops), 0, &WsModule::write, &WsModule::pause_read,
                                    &WsModule::close};

  std::string path_ = "/ws";
  std::string subprotocols_ = "mqtt,mqttv3.1";
  uint32_t max_message_size_ = 0;
  bb_http_route route_{};
  bool stopped_ = false;
};

}  // namespace
}  // namespace backbone::modules::ws

BACKBONE_MODULE(backbone::modules::ws::WsModule, "ws", "1.0.0", BB_KIND_TRANSPORT, 0)
