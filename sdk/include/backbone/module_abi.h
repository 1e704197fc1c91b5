/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Backbone module ABI.
 *
 * The one contract between the Backbone kernel and its modules. It is plain C
 * so that a module built with another compiler, another C++ standard library
 * or other library versions keeps loading into every kernel of the same ABI
 * major version.
 *
 * Rules that hold for everything below:
 *  - Every struct and table starts with `uint32_t struct_size`. Within one
 *    major version fields are only appended; read a field of a struct that
 *    came from the other side only after checking it with BB_HAS().
 *  - Pointers passed in either direction are borrowed for the duration of the
 *    call: the receiver copies what it keeps. Memory is freed only by the side
 *    that allocated it.
 *  - Status codes: negative is an error, 0 is success, positive is a
 *    non-error state (BB_PENDING). Unknown codes count as BB_E_INTERNAL.
 *  - No exceptions, no longjmp across this boundary.
 *  - Strings are UTF-8 {ptr,len}; strings handed out by the host are also
 *    NUL-terminated, modules need not terminate theirs.
 *  - The host never calls back into a module synchronously from a host API
 *    call, so a module may hold its own locks while calling the host.
 */
#ifndef BACKBONE_MODULE_ABI_H
#define BACKBONE_MODULE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BB_ABI_MAJOR 1u
#define BB_ABI_MINOR 3u

#if defined(_WIN32)
#define BB_EXPORT __declspec(dllexport)
#else
#define BB_EXPORT __attribute__((visibility("default")))
#endif

/* Does the size-prefixed struct `p` of type T, received from the other side,
 * contain `field`? */
#define BB_HAS(p, T, field) ((p)->struct_size >= offsetof(T, field) + sizeof(((T*)0)->field))

typedef int32_t bb_status;
enum {
  BB_OK = 0,
  BB_PENDING = 1, /* the result follows through a *_complete call */
  BB_E_INVALID = -1,
  BB_E_NOT_FOUND = -2,
  BB_E_UNSUPPORTED = -3,
  BB_E_NOMEM = -4,
  BB_E_STALE = -5, /* the ticket, connection or watch no longer exists */
  BB_E_INTERNAL = -6,
  BB_E_STATE = -7 /* the call is not allowed in the current lifecycle phase */
};

/* Log levels (bb_host_api.log). */
enum { BB_LOG_TRACE = 0, BB_LOG_DEBUG = 1, BB_LOG_INFO = 2, BB_LOG_WARN = 3, BB_LOG_ERROR = 4 };

/* Module kinds (bb_module_descriptor.kinds, a bit set). Start order follows
 * the lowest bit set: config sources, authenticators, http, transports. */
enum {
  BB_KIND_CONFIG = 1,
  BB_KIND_AUTH = 2,
  BB_KIND_HTTP = 4,
  BB_KIND_TRANSPORT = 8, /* always started last, once every other module is ready */
  BB_KIND_CLUSTER = 16   /* ABI 1.2: shares messages and state with other brokers */
};

/* bb_host_api.metric_set kinds (ABI 1.2). */
enum { BB_METRIC_COUNTER = 1, BB_METRIC_GAUGE = 2 };

/* bb_module_descriptor.flags */
enum { BB_MODULE_SERIALIZE = 1 /* authenticate() is never called concurrently */ };

/* bb_auth_result.verdict */
enum {
  BB_AUTH_ALLOW = 1,
  BB_AUTH_DENY = 2,        /* bad user name or password */
  BB_AUTH_FORBIDDEN = 3,   /* credentials valid, but not authorized */
  BB_AUTH_UNAVAILABLE = 4, /* the provider could not decide (network, timeout) */
  BB_AUTH_IGNORE = 5       /* not this provider's user name: ask the next one */
};

/* bb_statement.effect */
enum { BB_EFFECT_ALLOW = 1, BB_EFFECT_DENY = 2 };

/* I/O readiness (bb_io_fn events, bb_host_api.io_want interest). */
enum { BB_IO_READ = 1, BB_IO_WRITE = 2, BB_IO_ERROR = 4 };

typedef struct bb_str {
  const char* ptr;
  size_t len;
} bb_str;

typedef struct bb_bytes {
  const uint8_t* ptr;
  size_t len;
} bb_bytes;

typedef struct bb_host_ctx bb_host_ctx; /* host-owned, one per module instance */
typedef struct bb_module bb_module;     /* module-owned instance, opaque to the host */
typedef uint64_t bb_conn_id;            /* generation-tagged; 0 is never valid */
typedef uint64_t bb_auth_ticket;        /* generation-tagged; 0 is never valid */
typedef uint64_t bb_io_watch;           /* generation-tagged; 0 is never valid */
typedef uint64_t bb_http_exchange;      /* ABI 1.1; generation-tagged; 0 is never valid */
typedef uint64_t bb_ws_id;              /* ABI 1.1; generation-tagged; 0 is never valid */

/* A message a module publishes. The host copies everything it keeps before
 * publish() returns. */
typedef struct bb_message {
  uint32_t struct_size;
  uint8_t qos;
  uint8_t retain;
  uint8_t _pad[2];
  uint32_t expiry_s; /* 0 = never expires */
  uint32_t _pad2;
  bb_str topic;
  bb_bytes payload;
  bb_str content_type; /* may be empty */
  /* ABI 1.2: the MQTT 5 properties that travel with the message (payload
   * format, content type, response topic, correlation data, user
   * properties), encoded as in a PUBLISH packet, without the length prefix.
   * May be empty; a malformed block makes the publish BB_E_INVALID. */
  bb_bytes properties;
} bb_message;

/* ABI 1.3: a client's session started on a broker, and who it belongs to. */
typedef struct bb_session_start {
  uint32_t struct_size;
  /* The login holds "mqtt:connect" on the client id: it may take the client
   * id over from another principal's session (SPEC §6). */
  int32_t may_take_over;
  bb_str client_id;
  uint64_t connected_at_unix_ms; /* wall clock */
  bb_str provider;               /* the principal: provider + name */
  bb_str principal;
} bb_session_start;

/* ABI 1.2: what a cluster module sees of this broker. Registered during
 * configure(); the callbacks run on the thread that accepted the message or
 * the client, on the per-message path: copy what is needed and return, never
 * block. Messages delivered through publish_routed are not shown. */
typedef struct bb_message_tap {
  uint32_t struct_size;
  uint32_t _pad;
  /* A message passed authorization and the topic rules (a client's, a will,
   * a module's); `m->expiry_s` is its remaining lifetime. */
  void (*message)(void* user, const bb_message* m);
  /* A client's session started on this broker (CONNACK sent) at
   * `connected_at_unix_ms` (wall clock). */
  void (*session_started)(void* user, bb_str client_id, uint64_t connected_at_unix_ms);
  /* ABI 1.3, preferred over session_started when set: the same event with
   * the session's principal. */
  void (*session_started_as)(void* user, const bb_session_start* s);
} bb_message_tap;

/* One (effect, action pattern, resource pattern) triple. An IAM statement
 * with several actions and resources is sent as their cross product; the
 * evaluation result is the same. Layout frozen for ABI major 1. */
typedef struct bb_statement {
  int32_t effect; /* BB_EFFECT_* */
  int32_t _pad;
  bb_str action;   /* "mqtt:publish", "mqtt:*", "*" */
  bb_str resource; /* "sensors/+/temp", "sensors/#" */
} bb_statement;

/* ABI 1.3: how much a principal may use (SPEC §6 quotas), beside what its
 * statements allow. A field left 0 takes the broker's default (config
 * "limits.principal"); BB_QUOTA_UNLIMITED lifts the limit. Rates are token
 * buckets: a burst of 0 is one second's worth of the rate. */
#define BB_QUOTA_UNLIMITED UINT64_MAX
typedef struct bb_quotas {
  uint32_t struct_size;
  uint32_t _pad;
  uint64_t max_connections;     /* connected at once, per principal */
  uint64_t max_subscriptions;   /* per session */
  uint64_t max_queued_messages; /* per session */
  uint64_t max_session_expiry_s;
  uint64_t max_retained;       /* retained messages published by the principal */
  uint64_t max_retained_bytes; /* their payload bytes */
  uint64_t publish_rate;       /* messages per second, over all its connections */
  uint64_t publish_burst;
  uint64_t publish_bytes_rate; /* payload bytes per second */
  uint64_t publish_bytes_burst;
} bb_quotas;

/* Filled by the host; valid only during authenticate(). */
typedef struct bb_auth_request {
  uint32_t struct_size;
  uint32_t _pad;
  bb_conn_id conn; /* 0 for HTTP API requests */
  bb_str client_id;
  bb_str username; /* the provider name by Backbone's convention */
  bb_str transport;
  bb_str peer_address;
  bb_bytes password;
} bb_auth_request;

/* Read by the host during auth_complete(), or right after authenticate()
 * returned BB_OK on the same thread, and copied: what *out points to must
 * stay valid until that thread calls into the module again. */
typedef struct bb_auth_result {
  uint32_t struct_size;
  int32_t verdict;   /* BB_AUTH_* */
  bb_str principal;  /* who logged in, for logs and audit; never a secret */
  bb_str log_reason; /* why a login failed, for the log only; never a secret */
  const bb_statement* statements;
  size_t statement_count;
  int64_t expires_at_unix_s; /* 0 = credentials do not expire */
  /* ABI 1.3: the principal's quotas; null = the broker's defaults. They
   * replace the principal's quotas for its live sessions too. */
  const bb_quotas* quotas;
} bb_auth_result;

/* Registered by an authenticator module; must outlive its registration. */
typedef struct bb_authenticator {
  uint32_t struct_size;
  uint32_t _pad;
  bb_str name; /* the CONNECT user name that selects it: "jwt", "admin" */
  /* Thread: any kernel worker, concurrently unless BB_MODULE_SERIALIZE.
   * Returns BB_OK with *out filled, or BB_PENDING and then calls
   * host->auth_complete(ticket) exactly once, from any thread. */
  bb_status (*authenticate)(void* user, const bb_auth_request* req, bb_auth_ticket ticket,
                            bb_auth_result* out);
  /* Optional. The request is no longer wanted (connection gone, timeout);
   * auth_complete for it may still be called and returns BB_E_STALE. */
  void (*cancel)(void* user, bb_auth_ticket ticket);
} bb_authenticator;

/* Callbacks of a connection a transport opened. Thread: the worker the
 * connection is bound to (see conn_open); never re-entered. */
typedef struct bb_conn_ops {
  uint32_t struct_size;
  uint32_t _pad;
  /* Send these chunks in order. The transport must take all bytes: send
   * what it can now and copy the rest into its own buffer. Above its high
   * watermark it calls host->conn_backpressure(conn, 1). */
  bb_status (*write)(void* conn_user, const bb_bytes* chunks, size_t count);
  /* Stop (1) or resume (0) reading from the connection: the kernel pushes
   * back on a publisher whose messages cannot be delivered yet. */
  void (*pause_read)(void* conn_user, int32_t paused);
  /* Close the connection after flushing what was written. The transport
   * then calls host->conn_closed() (possibly later, from the same worker). */
  void (*close)(void* conn_user);
} bb_conn_ops;

typedef struct bb_conn_info {
  uint32_t struct_size;
  uint32_t _pad;
  bb_str transport; /* "tcp", "ws" */
  bb_str peer;      /* "127.0.0.1:51234" */
  bb_str local;
  bb_str tls_subject; /* empty without a client certificate */
  /* ABI 1.1 */
  uint32_t flags; /* BB_CONN_* set */
  uint32_t _pad2;
} bb_conn_info;

/* bb_conn_info.flags (ABI 1.1) */
enum {
  /* Bind the connection to the calling kernel worker instead of the next one
   * round robin (a transport whose I/O already runs on a worker: ws). */
  BB_CONN_ON_CALLING_WORKER = 1
};

/* ---- HTTP (ABI 1.1) ----
 * The kernel runs one HTTP(S) listener (settings "http" of the config file)
 * that modules share: each registers routes; the kernel parses requests,
 * enforces size limits and timeouts, authenticates requests of BB_HTTP_AUTH
 * routes and performs WebSocket upgrades. */

/* bb_http_route.flags */
enum {
  BB_HTTP_PREFIX = 1,   /* path matches itself and everything below "path/" */
  BB_HTTP_AUTH = 2,     /* Authorization: Bearer + X-Auth-Provider required (401) */
  BB_HTTP_WEBSOCKET = 4 /* a WebSocket endpoint (ws_* callbacks), GET upgrade only */
};

typedef struct bb_http_header {
  bb_str name;
  bb_str value;
} bb_http_header;

/* Filled by the host; valid only during handle(). */
typedef struct bb_http_request {
  uint32_t struct_size;
  uint32_t _pad;
  bb_str method; /* "GET" */
  bb_str path;   /* percent-decoded, without the query */
  bb_str query;  /* raw text after '?', may be empty */
  const bb_http_header* headers;
  size_t header_count;
  bb_bytes body;
  bb_str peer;
  /* BB_HTTP_AUTH routes: who made the request (never a secret). */
  bb_str provider;
  bb_str principal;
} bb_http_request;

/* Read and copied by the host during http_respond(). */
typedef struct bb_http_response {
  uint32_t struct_size;
  int32_t status; /* 200, 404... */
  bb_str content_type;
  const bb_http_header* headers;
  size_t header_count;
  bb_bytes body;
} bb_http_response;

/* Registered by a module; must outlive its registration. */
typedef struct bb_http_route {
  uint32_t struct_size;
  uint32_t flags; /* BB_HTTP_* set */
  bb_str path;    /* "/health"; with BB_HTTP_PREFIX "/api/clients" */
  bb_str methods; /* "GET,PUT,DELETE"; others are answered 405 */
  bb_str summary; /* one line for the OpenAPI document */
  bb_str openapi; /* optional JSON object merged into the route's OpenAPI path item */
  /* Thread: a kernel worker. Answer exactly once with host->http_respond(),
   * during the call or later from any thread. */
  void (*handle)(void* user, const bb_http_request* req, bb_http_exchange ex);
  /* BB_HTTP_WEBSOCKET: subprotocols offered to clients, comma separated
   * ("mqtt,mqttv3.1"); the first one the client lists that is here is
   * chosen; a client listing none is refused with 400. */
  bb_str subprotocols;
  uint32_t max_message_size; /* larger messages close with 1009; 0 = host limit */
  uint32_t _pad2;
  /* Thread: the WebSocket's worker, for every ws_* callback. BB_OK accepts
   * the upgrade and sets *ws_user; anything else answers 503. */
  bb_status (*ws_open)(void* user, bb_ws_id ws, const bb_conn_info* info,
                       const bb_http_request* req, void** ws_user);
  /* Payload bytes of binary messages, in order; a message may arrive in
   * several calls. */
  void (*ws_data)(void* ws_user, bb_bytes data);
  /* The host's send buffer of this WebSocket crossed its high (1) or low (0)
   * watermark. */
  void (*ws_backpressure)(void* ws_user, int32_t above_high_watermark);
  /* The WebSocket is gone; no ws_* host call for it is valid afterwards. */
  void (*ws_closed)(void* ws_user);
} bb_http_route;

/* WebSocket close codes a module may pass to ws_close. */
enum { BB_WS_NORMAL = 1000, BB_WS_PROTOCOL_ERROR = 1002, BB_WS_TOO_BIG = 1009 };

typedef void (*bb_task_fn)(void* arg);
/* Thread: the worker the watch is bound to. `events` is a BB_IO_* set. */
typedef void (*bb_io_fn)(void* user, int32_t events);

/* The host API. Static in the kernel. Every function may be called from any
 * thread unless its comment says otherwise. */
typedef struct bb_host_api {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t _pad;

  void (*log)(bb_host_ctx* h, int32_t level, bb_str msg);
  int32_t (*log_enabled)(bb_host_ctx* h, int32_t level);

  /* The module's settings (a JSON value) at `key`; an empty key yields the
   * whole settings object. *out stays valid until the next config_get of
   * this instance or the end of configure/start, whichever comes first.
   * BB_E_NOT_FOUND when the key is absent. Thread: control thread. */
  bb_status (*config_get)(bb_host_ctx* h, bb_str key, bb_str* out);

  /* A config source hands the kernel a resource as JSON text:
   *   kind "client":   {"statements": [...], "token_sha256": "<hex>"}
   *   kind "topic":    {"patterns": [...]}
   *   kind "settings": {"module-name": {settings to merge}} (env source)
   * `deleted` removes the named resource. An invalid resource returns
   * BB_E_INVALID and changes nothing (fail closed); the reason is logged. */
  bb_status (*config_submit)(bb_host_ctx* h, bb_str kind, bb_str name, bb_str json,
                             int32_t deleted);

  /* Publish through the same authorization-free but rule-checked ingress as
   * a client (modules are trusted principals). */
  bb_status (*publish)(bb_host_ctx* h, const bb_message* m);

  /* Thread: control thread, during configure() only. */
  bb_status (*register_authenticator)(bb_host_ctx* h, const bb_authenticator* a, void* user);
  bb_status (*auth_complete)(bb_host_ctx* h, bb_auth_ticket t, const bb_auth_result* r);

  /* A transport accepted a connection. Binds it to a kernel worker and
   * returns its id; *worker_out says which worker (pass the id as the
   * affinity of io_watch so socket I/O runs on the same thread). */
  bb_status (*conn_open)(bb_host_ctx* h, const bb_conn_info* info, const bb_conn_ops* ops,
                         void* conn_user, bb_conn_id* out);
  /* Bytes read from the connection. Thread: the connection's worker only.
   * The host parses and may call ops->write / ops->close before returning. */
  bb_status (*conn_feed)(bb_host_ctx* h, bb_conn_id c, bb_bytes data);
  /* The transport's send buffer crossed its high (1) or low (0) watermark.
   * Thread: the connection's worker only. */
  void (*conn_backpressure)(bb_host_ctx* h, bb_conn_id c, int32_t above_high_watermark);
  /* The connection is gone; the host calls no op of it after this returns.
   * Thread: the connection's worker only. */
  void (*conn_closed)(bb_host_ctx* h, bb_conn_id c);

  /* Readiness callbacks for a non-blocking fd on a kernel worker: the one
   * `affinity` is bound to, or any worker when affinity is 0. Interest is
   * level-like: the callback fires while the fd is ready for an event in the
   * current interest set. The module keeps ownership of the fd and closes it
   * only after io_unwatch. */
  bb_status (*io_watch)(bb_host_ctx* h, int32_t fd, bb_conn_id affinity, bb_io_fn fn, void* user,
                        bb_io_watch* out);
  /* Thread: the watch's worker only. */
  bb_status (*io_want)(bb_host_ctx* h, bb_io_watch w, int32_t interest);
  /* Thread: the watch's worker only. No callback runs after it returns. */
  void (*io_unwatch)(bb_host_ctx* h, bb_io_watch w);

  /* Run fn(arg) later on a kernel worker (delay in milliseconds). */
  bb_status (*post)(bb_host_ctx* h, uint32_t delay_ms, bb_task_fn fn, void* arg);

  /* After start() returned BB_PENDING: the module is ready now. */
  bb_status (*ready)(bb_host_ctx* h);

  /* The statements of `principal`, logged in through this module's
   * authenticator `provider`, changed: live sessions switch to the new
   * statements within a second (subscriptions no longer allowed are removed,
   * queued messages no longer readable are dropped). `revoked` = 1 cuts those
   * sessions instead (credentials withdrawn). */
  bb_status (*principal_update)(bb_host_ctx* h, bb_str provider, bb_str principal,
                                const bb_statement* statements, size_t statement_count,
                                int32_t revoked);

  /* ---- ABI 1.1 (check with BB_HAS before use) ---- */

  /* Why the calling thread's last failed host call failed, for a status
   * message (e.g. a rule refused by config_submit). *out stays valid until
   * the next host call on this thread. */
  bb_status (*last_error)(bb_host_ctx* h, bb_str* out);

  /* Thread: control thread, during configure() or start(). A path and
   * method already taken by another route is BB_E_INVALID. */
  bb_status (*http_route)(bb_host_ctx* h, const bb_http_route* r, void* user);
  /* Any thread, exactly once per exchange. */
  bb_status (*http_respond)(bb_host_ctx* h, bb_http_exchange ex, const bb_http_response* r);
  /* BB_HTTP_AUTH routes, until the exchange is answered: 1 when the
   * requester's statements allow `action` on `resource`, else 0. */
  int32_t (*http_authorize)(bb_host_ctx* h, bb_http_exchange ex, bb_str action, bb_str resource);
  /* Publishes on behalf of the requester of a BB_HTTP_AUTH exchange through
   * the ingress pipeline of MQTT clients (authorization and topic rules).
   * *reason_code is the MQTT v5 reason (0 = accepted, 0x87 not authorized,
   * 0x95/0x99/0x9A/0x9B topic rules); *reason_string stays valid until the
   * next host call on this thread. */
  bb_status (*http_publish)(bb_host_ctx* h, bb_http_exchange ex, const bb_message* m,
                            int32_t* reason_code, bb_str* reason_string);

  /* WebSocket output. Thread: the WebSocket's worker only. */
  bb_status (*ws_send)(bb_host_ctx* h, bb_ws_id ws, const bb_bytes* chunks, size_t count);
  void (*ws_pause)(bb_host_ctx* h, bb_ws_id ws, int32_t paused);
  /* Sends a close frame after what is queued; ws_closed follows. */
  void (*ws_close)(bb_host_ctx* h, bb_ws_id ws, uint16_t code);

  /* Read-only broker state as JSON (Prometheus text for "metrics"):
   * "ready", "stats", "sessions", "topics", "openapi", "metrics". *out stays
   * valid until the next host call on this thread. BB_E_NOT_FOUND for an
   * unknown name. */
  bb_status (*inspect)(bb_host_ctx* h, bb_str what, bb_str arg, bb_str* out);
  /* Disconnects the client's connection (v5 reason 0x98) and ends its
   * session. BB_E_NOT_FOUND when there is no such session. */
  bb_status (*session_kick)(bb_host_ctx* h, bb_str client_id);

  /* The module's own directory for durable state, "<state_dir>/<module>",
   * created (0700) on first use; BB_E_NOT_FOUND when the broker runs without
   * a state directory (then keep state in memory). *out stays valid for the
   * module's lifetime. */
  bb_status (*state_path)(bb_host_ctx* h, bb_str* out);

  /* ---- ABI 1.2 (check with BB_HAS before use) ---- */

  /* Thread: control thread, during configure() only. */
  bb_status (*register_message_tap)(bb_host_ctx* h, const bb_message_tap* tap, void* user);
  /* Delivers a message another broker accepted: it updates the retained
   * messages and reaches the local subscribers, each subscriber's read
   * permission checked; the publisher's authorization and the topic rules
   * were applied where it was published, and no tap sees it. */
  bb_status (*publish_routed)(bb_host_ctx* h, const bb_message* m);
  /* The client connected to another broker at `connected_at_unix_ms`: its
   * connection here is closed (v5 reason 0x8E, session taken over) and its
   * session here ended, unless it connected here at that time or later (the
   * later connection wins). BB_E_NOT_FOUND when there is no such session or
   * it is the later one. */
  bb_status (*session_takeover)(bb_host_ctx* h, bb_str client_id, uint64_t connected_at_unix_ms);
  /* Sets the current value of one of the module's metrics, shown in
   * /metrics as backbone_<module>_<name> (a '-' in the module's name becomes
   * '_') and in /api/stats under "modules". `name`: 1-64 characters of a-z,
   * 0-9 and _; `kind`: BB_METRIC_*, fixed by the first call (a counter only
   * grows); at most 64 metrics per module. BB_E_INVALID otherwise
   * (last_error says why). */
  bb_status (*metric_set)(bb_host_ctx* h, bb_str name, bb_str help, int32_t kind, double value);

  /* ---- ABI 1.3 (check with BB_HAS before use) ---- */

  /* Delegation (a caller may hand out only what it holds). For the requester
   * of a BB_HTTP_AUTH exchange, until it is answered: the index of the first
   * BB_EFFECT_ALLOW statement in `statements[0, count)` that the requester's
   * own statements do not cover (for every action its action pattern matches
   * and every resource its resource pattern matches, the requester is
   * allowed), or -1 when it covers them all. Deny statements are always
   * covered. Fails closed: an invalid pattern is not covered, and an unknown
   * or answered exchange yields 0 (count > 0). Thread: any. Borrowed
   * pointers, nothing kept. Since 1.3. */
  int64_t (*http_authorize_grant)(bb_host_ctx* h, bb_http_exchange ex,
                                  const bb_statement* statements, size_t count);
  /* The quotas of `principal`, logged in through this module's authenticator
   * `provider`, changed (null = back to the broker's defaults): its live
   * sessions use them within a second, new logins at once. BB_E_INVALID for
   * a bad struct. Thread: any. Since 1.3. */
  bb_status (*principal_quotas)(bb_host_ctx* h, bb_str provider, bb_str principal,
                                const bb_quotas* quotas);
  /* session_takeover with the new session's principal (a bb_session_start
   * another broker's tap saw): the local session is left alone when it
   * belongs to another principal and `s->may_take_over` is 0 (SPEC §6:
   * client ids belong to their principal), as when it connected here later.
   * BB_E_NOT_FOUND then (last_error says which), and when there is no such
   * session. Thread: any. Since 1.3. */
  bb_status (*session_takeover_as)(bb_host_ctx* h, const bb_session_start* s);
} bb_host_api;

/* Thread: control thread only; calls never overlap. */
typedef struct bb_module_ops {
  uint32_t struct_size;
  uint32_t _pad;
  /* Read settings, register authenticators. `reloading` is 1 on SIGHUP;
   * BB_E_UNSUPPORTED there means "needs a restart". */
  bb_status (*configure)(bb_module* m, int32_t reloading);
  /* BB_OK, or BB_PENDING followed later by host->ready(). */
  bb_status (*start)(bb_module* m);
  /* Afterwards the module calls no host function except log. */
  void (*stop)(bb_module* m);
  void (*destroy)(bb_module* m);
} bb_module_ops;

typedef struct bb_module_descriptor {
  uint32_t struct_size;
  uint32_t abi_major;     /* BB_ABI_MAJOR the module was built with */
  uint32_t abi_min_minor; /* oldest host minor the module works with */
  uint32_t kinds;         /* BB_KIND_* set */
  uint32_t flags;         /* BB_MODULE_* set */
  uint32_t _pad;
  const char* name;    /* "tcp", "jwt" */
  const char* version; /* "1.0.0" */
  /* Must not call the host. On BB_OK *ops and *out are set. */
  bb_status (*create)(const bb_host_api* host, bb_host_ctx* ctx, const bb_module_ops** ops,
                      bb_module** out);
} bb_module_descriptor;

/* The only symbol a module exports. It must not allocate, start threads or
 * call the host. */
BB_EXPORT const bb_module_descriptor* bb_module_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* BACKBONE_MODULE_ABI_H */
