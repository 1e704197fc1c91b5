// SPDX-License-Identifier: GPL-3.0-or-later
// The bb_host_api table every module receives, assembled from the sections.
// Designated initializers: the compiler checks the order is the ABI's.
#include "kernel/module_host/host_api/host_api.hpp"

namespace backbone::kernel::module_host {

namespace {

constexpr bb_host_api kHostApi{
    .struct_size = sizeof(bb_host_api),
    .abi_major = BB_ABI_MAJOR,
    .abi_minor = BB_ABI_MINOR,
    ._pad = 0,
    // ABI 1.0
    .log = &host_api::log,
    .log_enabled = &host_api::log_enabled,
    .config_get = &host_api::config_get,
    .config_submit = &host_api::config_submit,
    .publish = &host_api::publish,
    .register_authenticator = &host_api::register_authenticator,
    .auth_complete = &host_api::auth_complete,
    .conn_open = &host_api::conn_open,
    .conn_feed = &host_api::conn_feed,
    .conn_backpressure = &host_api::conn_backpressure,
    .conn_closed = &host_api::conn_closed,
    .io_watch = &host_api::io_watch,
    .io_want = &host_api::io_want,
    .io_unwatch = &host_api::io_unwatch,
    .post = &host_api::post,
    .ready = &host_api::ready,
    .principal_update = &host_api::principal_update,
    // ABI 1.1
    .last_error = &host_api::last_error,
    .http_route = &host_api::http_route,
    .http_respond = &host_api::http_respond,
    .http_authorize = &host_api::http_authorize,
    .http_publish = &host_api::http_publish,
    .ws_send = &host_api::ws_send,
    .ws_pause = &host_api::ws_pause,
    .ws_close = &host_api::ws_close,
    .inspect = &host_api::inspect,
    .session_kick = &host_api::session_kick,
    .state_path = &host_api::state_path,
    // ABI 1.2
    .register_message_tap = &host_api::register_message_tap,
    .publish_routed = &host_api::publish_routed,
    .session_takeover = &host_api::session_takeover,
    .metric_set = &host_api::metric_set,
    // ABI 1.3
    .http_authorize_grant = &host_api::http_authorize_grant,
    .principal_quotas = &host_api::principal_quotas,
    .session_takeover_as = &host_api::session_takeover_as,
    // ABI 1.5
    .ack_release = &host_api::ack_release,
    .publish_routed_durable = &host_api::publish_routed_durable,
};

}  // namespace

const bb_host_api* ModuleHost::api() {
  return &kHostApi;
}

}  // namespace backbone::kernel::module_host
