/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Layout of ABI 1.0, 1.1 and 1.2 on LP64 targets: any change here is an ABI break.
 * Within major 1, fields are only appended. */
#include <backbone/module_abi.h>
#include <stddef.h>

#ifdef __cplusplus
#define BB_STATIC_ASSERT static_assert
#else
#define BB_STATIC_ASSERT _Static_assert
#endif

BB_STATIC_ASSERT(sizeof(bb_str) == 16, "bb_str");
BB_STATIC_ASSERT(sizeof(bb_bytes) == 16, "bb_bytes");
BB_STATIC_ASSERT(offsetof(bb_message, qos) == 4, "bb_message.qos");
BB_STATIC_ASSERT(offsetof(bb_message, expiry_s) == 8, "bb_message.expiry_s");
BB_STATIC_ASSERT(offsetof(bb_message, topic) == 16, "bb_message.topic");
BB_STATIC_ASSERT(offsetof(bb_message, content_type) == 48, "bb_message.content_type");
BB_STATIC_ASSERT(offsetof(bb_message, properties) == 64, "bb_message.properties (1.2)");
BB_STATIC_ASSERT(offsetof(bb_message, shared_listed) == 80, "bb_message.shared_listed (1.5)");
BB_STATIC_ASSERT(offsetof(bb_message, shared_group_count) == 84,
                 "bb_message.shared_group_count (1.5)");
BB_STATIC_ASSERT(offsetof(bb_message, shared_groups) == 88, "bb_message.shared_groups (1.5)");
BB_STATIC_ASSERT(sizeof(bb_message) == 96, "bb_message");
BB_STATIC_ASSERT(offsetof(bb_message_tap, message) == 8, "bb_message_tap.message");
BB_STATIC_ASSERT(offsetof(bb_message_tap, session_started) == 16, "bb_message_tap.session_started");
BB_STATIC_ASSERT(sizeof(bb_message_tap) == 56, "bb_message_tap");
BB_STATIC_ASSERT(sizeof(bb_statement) == 40, "bb_statement");
BB_STATIC_ASSERT(offsetof(bb_auth_request, conn) == 8, "bb_auth_request.conn");
BB_STATIC_ASSERT(offsetof(bb_auth_request, password) == 80, "bb_auth_request.password");
BB_STATIC_ASSERT(offsetof(bb_auth_result, principal) == 8, "bb_auth_result.principal");
BB_STATIC_ASSERT(offsetof(bb_auth_result, statements) == 40, "bb_auth_result.statements");
BB_STATIC_ASSERT(offsetof(bb_auth_result, expires_at_unix_s) == 56, "bb_auth_result.expires");
BB_STATIC_ASSERT(offsetof(bb_authenticator, authenticate) == 24, "bb_authenticator.authenticate");
BB_STATIC_ASSERT(offsetof(bb_conn_ops, write) == 8, "bb_conn_ops.write");
BB_STATIC_ASSERT(offsetof(bb_conn_ops, close) == 24, "bb_conn_ops.close");
BB_STATIC_ASSERT(offsetof(bb_conn_info, tls_subject) == 56, "bb_conn_info.tls_subject");
BB_STATIC_ASSERT(offsetof(bb_conn_info, flags) == 72, "bb_conn_info.flags (1.1)");
BB_STATIC_ASSERT(sizeof(bb_conn_info) == 80, "bb_conn_info");
BB_STATIC_ASSERT(offsetof(bb_host_api, log) == 16, "bb_host_api.log");
BB_STATIC_ASSERT(offsetof(bb_host_api, ready) == 16 + 15 * 8, "bb_host_api.ready");
BB_STATIC_ASSERT(offsetof(bb_host_api, principal_update) == 16 + 16 * 8,
                 "bb_host_api.principal_update");
BB_STATIC_ASSERT(offsetof(bb_host_api, last_error) == 16 + 17 * 8, "bb_host_api.last_error (1.1)");
BB_STATIC_ASSERT(offsetof(bb_host_api, http_route) == 16 + 18 * 8, "bb_host_api.http_route");
BB_STATIC_ASSERT(offsetof(bb_host_api, ws_send) == 16 + 22 * 8, "bb_host_api.ws_send");
BB_STATIC_ASSERT(offsetof(bb_host_api, session_kick) == 16 + 26 * 8, "bb_host_api.session_kick");
BB_STATIC_ASSERT(offsetof(bb_host_api, state_path) == 16 + 27 * 8, "bb_host_api.state_path");
BB_STATIC_ASSERT(offsetof(bb_host_api, register_message_tap) == 16 + 28 * 8,
                 "bb_host_api.register_message_tap (1.2)");
BB_STATIC_ASSERT(offsetof(bb_host_api, session_takeover) == 16 + 30 * 8,
                 "bb_host_api.session_takeover");
BB_STATIC_ASSERT(offsetof(bb_host_api, metric_set) == 16 + 31 * 8, "bb_host_api.metric_set");
BB_STATIC_ASSERT(offsetof(bb_host_api, http_authorize_grant) == 16 + 32 * 8,
                 "bb_host_api.http_authorize_grant (1.3)");
BB_STATIC_ASSERT(offsetof(bb_host_api, principal_quotas) == 16 + 33 * 8,
                 "bb_host_api.principal_quotas (1.3)");
BB_STATIC_ASSERT(offsetof(bb_host_api, session_takeover_as) == 16 + 34 * 8,
                 "bb_host_api.session_takeover_as (1.3)");
BB_STATIC_ASSERT(offsetof(bb_host_api, ack_release) == 16 + 35 * 8,
                 "bb_host_api.ack_release (1.5)");
BB_STATIC_ASSERT(offsetof(bb_host_api, publish_routed_durable) == 16 + 36 * 8,
                 "bb_host_api.publish_routed_durable (1.5)");
BB_STATIC_ASSERT(sizeof(bb_host_api) == 16 + 37 * 8, "bb_host_api");
BB_STATIC_ASSERT(offsetof(bb_message_tap, session_started_as) == 24,
                 "bb_message_tap.session_started_as (1.3)");
BB_STATIC_ASSERT(offsetof(bb_message_tap, message_held) == 32, "bb_message_tap.message_held (1.5)");
BB_STATIC_ASSERT(offsetof(bb_message_tap, shared_members) == 40,
                 "bb_message_tap.shared_members (1.5)");
BB_STATIC_ASSERT(offsetof(bb_message_tap, shared_here) == 48, "bb_message_tap.shared_here (1.5)");
BB_STATIC_ASSERT(sizeof(bb_ack_hold) == 8, "bb_ack_hold");
BB_STATIC_ASSERT(sizeof(bb_session_start) == 64, "bb_session_start (1.3)");
BB_STATIC_ASSERT(sizeof(bb_quotas) == 8 + 10 * 8, "bb_quotas (1.3)");
BB_STATIC_ASSERT(offsetof(bb_auth_result, quotas) == 64, "bb_auth_result.quotas (1.3)");
BB_STATIC_ASSERT(sizeof(bb_http_header) == 32, "bb_http_header");
BB_STATIC_ASSERT(offsetof(bb_http_request, headers) == 56, "bb_http_request.headers");
BB_STATIC_ASSERT(offsetof(bb_http_request, principal) == 120, "bb_http_request.principal");
BB_STATIC_ASSERT(sizeof(bb_http_request) == 136, "bb_http_request");
BB_STATIC_ASSERT(offsetof(bb_http_response, body) == 40, "bb_http_response.body");
BB_STATIC_ASSERT(offsetof(bb_http_route, handle) == 72, "bb_http_route.handle");
BB_STATIC_ASSERT(offsetof(bb_http_route, max_message_size) == 96, "bb_http_route.max_message_size");
BB_STATIC_ASSERT(offsetof(bb_http_route, ws_closed) == 128, "bb_http_route.ws_closed");
BB_STATIC_ASSERT(offsetof(bb_http_route, resource) == 136, "bb_http_route.resource (1.4)");
BB_STATIC_ASSERT(offsetof(bb_http_route, actions) == 152, "bb_http_route.actions (1.4)");
BB_STATIC_ASSERT(sizeof(bb_http_route) == 168, "bb_http_route");
BB_STATIC_ASSERT(offsetof(bb_module_ops, configure) == 8, "bb_module_ops.configure");
BB_STATIC_ASSERT(offsetof(bb_module_descriptor, name) == 24, "bb_module_descriptor.name");
BB_STATIC_ASSERT(offsetof(bb_module_descriptor, create) == 40, "bb_module_descriptor.create");
BB_STATIC_ASSERT(BB_ABI_MAJOR == 1 && BB_ABI_MINOR == 5, "version");
BB_STATIC_ASSERT(BB_KIND_TRANSPORT == 8 && BB_KIND_CLUSTER == 16, "kinds are never renumbered");
BB_STATIC_ASSERT(BB_OK == 0 && BB_PENDING == 1 && BB_E_INVALID == -1 && BB_E_STATE == -7,
                 "status codes are never renumbered");
