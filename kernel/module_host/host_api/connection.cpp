// SPDX-License-Identifier: GPL-3.0-or-later
// Host functions of transport modules' connections: each is one call into
// the connection table, which owns the connections.
#include <spdlog/spdlog.h>

#include <string_view>

#include "kernel/connection/connection_table.hpp"
#include "kernel/module_host/host_api/host_api.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::module_host::host_api {

bb_status conn_open(bb_host_ctx* h, const bb_conn_info* info, const bb_conn_ops* ops,
                    void* conn_user, bb_conn_id* out) noexcept {
  try {
    auto* i = instance_of(h);
    if (!i || !info || !ops || !ops->write || !ops->close || !out) return BB_E_INVALID;
    if (i->stopped) return BB_E_STATE;
    const bool here =
        BB_HAS(info, bb_conn_info, flags) && (info->flags & BB_CONN_ON_CALLING_WORKER);
    if (here && !net::WorkerPool::current()) return BB_E_STATE;
    const bb_conn_id id = h->host->connections().open(*info, ops, conn_user, here);
    if (id == 0) return BB_E_NOMEM;  // connection limit reached
    *out = id;
    return BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status conn_feed(bb_host_ctx* h, bb_conn_id c, bb_bytes data) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host) return BB_E_INVALID;
    if (!host->connections().find(c)) return BB_E_STALE;
    host->connections().feed(c,
                             std::string_view(reinterpret_cast<const char*>(data.ptr), data.len));
    return BB_OK;
  } catch (const std::exception& e) {
    spdlog::error("connection {}: internal error: {}", c, e.what());
    return BB_E_INTERNAL;
  }
}

void conn_backpressure(bb_host_ctx* h, bb_conn_id c, int32_t above) noexcept {
  try {
    if (ModuleHost* host = host_of(h)) host->connections().backpressure(c, above != 0);
  } catch (...) {
  }
}

void conn_closed(bb_host_ctx* h, bb_conn_id c) noexcept {
  try {
    if (ModuleHost* host = host_of(h)) host->connections().closed(c);
  } catch (const std::exception& e) {
    spdlog::error("connection {}: error while closing: {}", c, e.what());
  }
}

}  // namespace backbone::kernel::module_host::host_api
