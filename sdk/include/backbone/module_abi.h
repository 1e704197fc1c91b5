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
#define BB_ABI_MINOR 5u

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
typedef uint64_t bb_ack_hold;           /* ABI 1.5; 0: nobody waits */

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
  /* ABI 1.5, for publish_routed and publish_routed_durable only (ignored
   * elsewhere, 0 in what taps see): with `shared_listed` 1 the message
   * reaches the shared subscriptions of the groups listed in
   * `shared_groups[0, shared_group_count)` only (each "<group>/<filter>",
   * as after "$share/" in a SUBSCRIBE), and none with a count of 0; with 0
   * (or a struct from before 1.5) every matching group here, as for a
   * message published here. Plain subscriptions are not affected. */
  int32_t shared_listed;
  uint32_t shared_group_count;
  const bb_str* shared_groups;
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
 * configure() (register_message_tap); the callbacks run on the thread that
 * accepted the message or the client (a worker, or the thread that called
 * publish or http_publish), concurrently, on the per-message path: copy
 * what is needed and return, never block. Messages delivered through
 * publish_routed are not shown. Every pointer is valid only during the
 * call. */
typedef struct bb_message_tap {
  uint32_t struct_size;
  uint32_t _pad;
  /* A message passed authorization and the topic rules (a client's, a will,
   * a module's); `m->expiry_s` is its remaining lifetime. Required.
   * Since 1.2. */
  void (*message)(void* user, const bb_message* m);
  /* A client's session started on this broker (CONNACK sent) at
   * `connected_at_unix_ms` (wall clock). Optional (null: not called).
   * Since 1.2. */
  void (*session_started)(void* user, bb_str client_id, uint64_t connected_at_unix_ms);
  /* ABI 1.3, preferred over session_started when set: the same event with
   * the session's principal. Optional. Since 1.3. */
  void (*session_started_as)(void* user, const bb_session_start* s);
  /* ABI 1.5, preferred over `message` when set: the same event, and the
   * publisher's acknowledgement (PUBACK of QoS 1, PUBREC of QoS 2) also
   * waits until the module calls host->ack_release(hold): a module that
   * passes messages on (to other brokers) acknowledges only what it handed
   * over. `hold` is 0 when nobody waits (QoS 0, a will, a module's or the
   * HTTP API's publish). Every non-zero hold must be released exactly once,
   * from any thread, also when the module gives up on the message (else the
   * publisher stalls once its Receive Maximum is held); a hold whose
   * connection closed meanwhile is released without effect. Optional.
   * Since 1.5. */
  void (*message_held)(void* user, const bb_message* m, bb_ack_hold hold);
  /* ABI 1.5: how many of this broker's sessions subscribed to the shared
   * group "$share/<group>/<filter>" are online changed to `online` (0: none
   * here is online now; offline members may remain). Called after the
   * change (a subscribe, an unsubscribe, a connection opened or closed, a
   * session ended), on the thread that made it; calls never overlap and
   * come in the order of the changes. Optional. Since 1.5. */
  void (*shared_members)(void* user, bb_str group, bb_str filter, uint32_t online);
  /* ABI 1.5: while a message accepted here is routed (on the thread that
   * accepted it, after `message`/`message_held` saw it), for each shared
   * group with members here that it matches: 0 when another broker's
   * member gets it (the module sent it there), anything else when one of
   * the members here does. Not called for messages from publish_routed.
   * Without it every matching group here gets its copy. Must not block.
   * Optional. Since 1.5. */
  int32_t (*shared_here)(void* user, const bb_message* m, bb_str group, bb_str filter);
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
  /* A login (MQTT CONNECT, or a request to a BB_HTTP_AUTH route) to decide.
   * Thread: any kernel worker, concurrently unless BB_MODULE_SERIALIZE;
   * never block (answer later instead). `req` and all it points to are
   * valid only during the call. Returns BB_OK with *out filled (see
   * bb_auth_result for how long its pointers must live), or BB_PENDING and
   * then calls host->auth_complete(ticket) exactly once, from any thread.
   * Any other status counts as BB_AUTH_UNAVAILABLE. Required. Since 1.0. */
  bb_status (*authenticate)(void* user, const bb_auth_request* req, bb_auth_ticket ticket,
                            bb_auth_result* out);
  /* Optional. The request is no longer wanted (connection gone, timeout,
   * shutdown); auth_complete for it may still be called and returns
   * BB_E_STALE. Thread: any kernel thread; it may race with the module's
   * own auth_complete for the ticket. Since 1.0. */
  void (*cancel)(void* user, bb_auth_ticket ticket);
} bb_authenticator;

/* Callbacks of a connection a transport opened. Thread: the worker the
 * connection is bound to (see conn_open); never re-entered. The host calls
 * them until conn_closed for the connection returned. All since 1.0. */
typedef struct bb_conn_ops {
  uint32_t struct_size;
  uint32_t _pad;
  /* Send these chunks in order. The transport must take all bytes: send
   * what it can now and copy the rest into its own buffer (`chunks` and
   * their bytes are valid only during the call). Above its high watermark
   * it calls host->conn_backpressure(conn, 1). Required; the host ignores
   * the status (a failing transport closes and calls conn_closed). */
  bb_status (*write)(void* conn_user, const bb_bytes* chunks, size_t count);
  /* Stop (1) or resume (0) reading from the connection: the kernel pushes
   * back on a publisher whose messages cannot be delivered yet, and on a
   * client that does not read what it is sent. Optional (null: the host
   * never pauses the connection). */
  void (*pause_read)(void* conn_user, int32_t paused);
  /* Close the connection after flushing what was written. The transport
   * then calls host->conn_closed() (during this call or later, from the
   * same worker). Required. */
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
  /* A request to the route. Thread: a kernel worker. `req` and all it
   * points to are valid only during the call; `ex` until it is answered.
   * Answer exactly once with host->http_respond(), during the call or later
   * from any thread; an exchange not answered in time is answered 504 by the
   * host. Required without BB_HTTP_WEBSOCKET. Since 1.1. */
  void (*handle)(void* user, const bb_http_request* req, bb_http_exchange ex);
  /* BB_HTTP_WEBSOCKET: subprotocols offered to clients, comma separated
   * ("mqtt,mqttv3.1"); the first one the client lists that is here is
   * chosen; a client listing none is refused with 400. */
  bb_str subprotocols;
  uint32_t max_message_size; /* larger messages close with 1009; 0 = host limit */
  uint32_t _pad2;
  /* A client asks to upgrade to a WebSocket on this route. Thread: the
   * WebSocket's worker, for every ws_* callback. `info` and `req` are valid
   * only during the call. BB_OK accepts the upgrade and sets *ws_user
   * (passed to the other ws_* callbacks); anything else answers 503. The
   * ws_* callbacks are required with BB_HTTP_WEBSOCKET. Since 1.1. */
  bb_status (*ws_open)(void* user, bb_ws_id ws, const bb_conn_info* info,
                       const bb_http_request* req, void** ws_user);
  /* Payload bytes of binary messages, in order; a message may arrive in
   * several calls. `data` is valid only during the call. Since 1.1. */
  void (*ws_data)(void* ws_user, bb_bytes data);
  /* The host's send buffer of this WebSocket crossed its high (1) or low (0)
   * watermark. Since 1.1. */
  void (*ws_backpressure)(void* ws_user, int32_t above_high_watermark);
  /* The WebSocket is gone; no ws_* host call for it is valid afterwards.
   * Called once, last. Since 1.1. */
  void (*ws_closed)(void* ws_user);
  /* ABI 1.4: the management actions of a BB_HTTP_AUTH route, which the
   * kernel checks itself. Both empty (or a route from an older module): the
   * module checks what it needs through http_authorize, as before 1.4.
   *
   * `resource` is the route's resource base ("topics"): no '+', '#' or '*',
   * no '/' at either end. A request to the path itself (or to "path/")
   * names the collection, resource = `resource`; a request to "path/NAME"
   * (BB_HTTP_PREFIX) names an item, resource = `resource` + "/" + NAME,
   * NAME as the module receives it in bb_http_request.path (percent-decoded,
   * never normalised: "/api/topics/../x" is the item "../x" of "topics").
   *
   * `actions` lists the action per method, comma separated, blanks around
   * entries ignored:
   *     entry  = METHOD "=" action          ; the collection
   *            | METHOD "/" "*" "=" action  ; an item (needs BB_HTTP_PREFIX)
   * METHOD is one of the route's `methods`; an action is 1-128 of the
   * characters A-Z a-z 0-9 : . _ - ("mgmt:get-topic"). Example (split only
   * because a C comment cannot hold the two characters together):
   *     "GET=mgmt:list-topics,GET/" "*=mgmt:get-topic,PUT/" "*=mgmt:put-topic"
   *
   * After authenticating a request and reading its body, and before
   * handle(), the kernel checks the entry of the request's method and
   * target with the requester's statements (as http_authorize, counted in
   * the same denial metric) and, when they do not allow it, writes the audit
   * line (sdk::Host::audit, result=denied) and answers 403 {"error":
   * "forbidden","message":"not allowed: ACTION on RESOURCE"} without calling
   * handle(). A method with no entry for the target reaches handle()
   * unchecked. The OpenAPI document gives every method of a BB_HTTP_AUTH
   * route security, 401 and 403, and an operation with an action the
   * description "Requires the management action 'ACTION'.", also on paths
   * the module describes itself ("path/{param}" paths take the item
   * entries).
   *
   * Read by the host during http_route() only (copied). http_route() fails
   * with BB_E_INVALID (last_error says why) for a malformed entry, a method
   * the route does not serve, an entry given twice, an item entry without
   * BB_HTTP_PREFIX, actions without BB_HTTP_AUTH, on a WebSocket route, or
   * with an invalid or missing `resource`, or a `resource` without
   * actions. Thread: as http_route. Since 1.4. */
  bb_str resource;
  bb_str actions;
} bb_http_route;

/* WebSocket close codes a module may pass to ws_close. */
enum { BB_WS_NORMAL = 1000, BB_WS_PROTOCOL_ERROR = 1002, BB_WS_TOO_BIG = 1009 };

/* A task given to bb_host_api.post. Thread: a kernel worker. Since 1.0. */
typedef void (*bb_task_fn)(void* arg);
/* Thread: the worker the watch is bound to. `events` is a BB_IO_* set
 * (BB_IO_ERROR when waiting on the fd failed). Since 1.0. */
typedef void (*bb_io_fn)(void* user, int32_t events);

/* The host API: the functions a module calls. One static table in the
 * kernel, handed to create() and valid for the life of the process.
 *
 * Common to every function below unless its comment says otherwise:
 *  - `h` is the bb_host_ctx the module received in create(): owned by the
 *    host, valid until the module's destroy() returns. With a null `h` a
 *    function returning bb_status fails with BB_E_INVALID (except where
 *    noted); the others do nothing or return their "no" value.
 *  - Threads: "control thread" is the thread calling bb_module_ops;
 *    "worker" is one of the kernel's I/O threads; "any" includes threads the
 *    module started itself.
 *  - Pointer arguments are borrowed for the call (see the rules above);
 *    text a function hands out is owned by the host for the stated time.
 *  - Any bb_status function may also return BB_E_INTERNAL for an
 *    unexpected failure inside the kernel; it never throws.
 *  - last_error (1.1) says why a call failed only where a comment says so;
 *    other failures leave the calling thread's last error unchanged.
 *  - "Since" is the ABI minor version that appended the function; check
 *    BB_HAS(host, bb_host_api, fn) before calling one newer than the
 *    module's abi_min_minor. */
typedef struct bb_host_api {
  uint32_t struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  uint32_t _pad;

  /* Writes `msg` to the broker's log at `level` (BB_LOG_*; below TRACE
   * counts as TRACE, above WARN as ERROR), prefixed with the module's name.
   * Thread: any, also after stop(). `msg` is copied. `h` may be null (the
   * line then names no module). Since 1.0. */
  void (*log)(bb_host_ctx* h, int32_t level, bb_str msg);
  /* 1 when a message at `level` would be written, else 0: lets a module
   * skip formatting what nobody reads. Thread: any, also after stop(). `h`
   * may be null. Since 1.0. */
  int32_t (*log_enabled)(bb_host_ctx* h, int32_t level);

  /* The module's settings (a JSON value) at the top-level `key`, as JSON
   * text in *out; an empty key yields the whole settings object. *out is
   * owned by the host and stays valid until the next config_get of this
   * instance or the end of configure/start, whichever comes first.
   * Thread: control thread, during configure() or start().
   * Errors: BB_E_INVALID (null `out`), BB_E_NOT_FOUND (no such key).
   * Since 1.0. */
  bb_status (*config_get)(bb_host_ctx* h, bb_str key, bb_str* out);

  /* A config source hands the kernel a resource as JSON text. The kinds the
   * host accepts:
   *   kind "topic":    a topic rule set named `name` (the body of a topic
   *                    rule: {"patterns": [...]}); `deleted` = 1 removes the
   *                    set named `name` and `json` is ignored. Thread: any.
   *   kind "settings": {"module-name": {settings to merge}, ...} (the env
   *                    source): merged over the named modules' settings
   *                    ("http" is the kernel's listener); {"enabled": true}
   *                    in a module's object loads a module the file did not
   *                    enable. `name` is informative; `deleted` is not
   *                    supported (BB_E_INVALID). Thread: control thread,
   *                    during the config source's configure() (config
   *                    sources are configured before every other module).
   * Every string is copied. Errors (last_error says why, and the host logs
   * it): BB_E_INVALID for JSON that does not parse, settings that are not an
   * object, or a rule set the host refuses (the previous rules stay: fail
   * closed); BB_E_UNSUPPORTED for any other kind. Since 1.0. */
  bb_status (*config_submit)(bb_host_ctx* h, bb_str kind, bb_str name, bb_str json,
                             int32_t deleted);

  /* Publish through the same authorization-free but rule-checked ingress as
   * a client (modules are trusted principals): the topic rules and the
   * topic length and level limits apply. A message nobody subscribed to is
   * BB_OK. Thread: any. `m` and all it points to are copied before the
   * call returns. Errors (last_error says why): BB_E_INVALID for a null or
   * invalid message (QoS above 2, a topic name that is not valid UTF-8 or
   * has wildcards or exceeds the limits, a bad content type or, since 1.2,
   * a malformed property block) and for a message the topic rules refuse.
   * Since 1.0. */
  bb_status (*publish)(bb_host_ctx* h, const bb_message* m);

  /* Registers the provider `a->name` (the CONNECT user name, or the
   * X-Auth-Provider header of HTTP requests, that selects it). `a` must stay
   * valid and unchanged until the module is destroyed; `user` is passed
   * back to its callbacks. BB_MODULE_SERIALIZE in the descriptor makes the
   * host serialize authenticate(). Thread: control thread, during
   * configure() only. Errors: BB_E_INVALID (null `a` or `a->authenticate`,
   * empty name, or a name another authenticator registered), BB_E_STATE
   * (after configure() returned). Since 1.0. */
  bb_status (*register_authenticator)(bb_host_ctx* h, const bb_authenticator* a, void* user);
  /* Answers ticket `t` for which authenticate() returned BB_PENDING: call
   * it exactly once. Thread: any. `r` and all it points to are copied
   * before the call returns. Errors: BB_E_INVALID (null `r`), BB_E_STALE
   * (the login is no longer pending: client gone, timed out, or the broker
   * is stopping; cancel() was or will be called for it). Since 1.0. */
  bb_status (*auth_complete)(bb_host_ctx* h, bb_auth_ticket t, const bb_auth_result* r);

  /* A transport accepted a connection. The host binds it to a kernel
   * worker, the next one round robin (or, since 1.1, the calling worker
   * with BB_CONN_ON_CALLING_WORKER in info->flags), and sets *out to its id.
   * Every call on the connection, the host's to `ops` and the module's
   * conn_feed/conn_backpressure/conn_closed, runs on that worker: pass the
   * id as the affinity of io_watch so the socket's I/O runs there too.
   * Thread: any (a worker with BB_CONN_ON_CALLING_WORKER). `info` is copied;
   * `ops` must stay valid until conn_closed for this connection returned;
   * `conn_user` is passed back to the ops. Errors: BB_E_INVALID (null
   * `info`, `ops` or `out`, or ops without write or close), BB_E_STATE
   * (the module was stopped, or BB_CONN_ON_CALLING_WORKER off a worker),
   * BB_E_NOMEM (the broker's connection limit is reached: close the
   * socket). Since 1.0. */
  bb_status (*conn_open)(bb_host_ctx* h, const bb_conn_info* info, const bb_conn_ops* ops,
                         void* conn_user, bb_conn_id* out);
  /* Bytes read from the connection, in order. The host copies what it does
   * not parse at once, and may call ops->write, ops->pause_read or
   * ops->close of this connection before returning; a protocol error is
   * not an error here (the host closes the connection through ops->close).
   * Thread: the connection's worker only. Errors: BB_E_STALE (the
   * connection is gone, e.g. after conn_closed). Since 1.0. */
  bb_status (*conn_feed)(bb_host_ctx* h, bb_conn_id c, bb_bytes data);
  /* The transport's send buffer crossed its high (1) or low (0) watermark:
   * above it the host stops reading from the connection (ops->pause_read)
   * and resumes, flushing what waits, below it. An unknown id is ignored.
   * Thread: the connection's worker only. Since 1.0. */
  void (*conn_backpressure)(bb_host_ctx* h, bb_conn_id c, int32_t above_high_watermark);
  /* The connection is gone (peer closed, error, or after ops->close): call
   * it once per connection, possibly from inside ops->close. The host calls
   * no op of it after this returns and the id becomes stale. An unknown id
   * is ignored. Thread: the connection's worker only. Since 1.0. */
  void (*conn_closed)(bb_host_ctx* h, bb_conn_id c);

  /* Readiness callbacks for a non-blocking fd on a kernel worker: the one
   * `affinity` (a bb_conn_id) is bound to, or any worker when affinity is 0.
   * The watch starts with no interest: call io_want. Interest is
   * level-like: `fn(user, events)` runs on the watch's worker while the fd
   * is ready for an event in the current interest set. The module keeps
   * ownership of the fd and closes it only after io_unwatch; `user` must
   * stay valid until then. Thread: any; the watch takes effect on its
   * worker in order with what that worker runs. Errors: BB_E_INVALID
   * (fd < 0, null `fn` or `out`). Since 1.0. */
  bb_status (*io_watch)(bb_host_ctx* h, int32_t fd, bb_conn_id affinity, bb_io_fn fn, void* user,
                        bb_io_watch* out);
  /* Sets the watch's interest (a BB_IO_READ | BB_IO_WRITE set; 0 = none).
   * Thread: the watch's worker; from another thread the call is queued to
   * that worker and returns BB_OK without checking the watch. Errors:
   * BB_E_STALE (no such watch, on its worker). Since 1.0. */
  bb_status (*io_want)(bb_host_ctx* h, bb_io_watch w, int32_t interest);
  /* Ends the watch and leaves the fd open for the module to close. No
   * callback runs after it returns. Thread: the watch's worker; from
   * another thread (e.g. in stop()) it waits, at most 2 seconds, until the
   * worker dropped the watch. An unknown watch is ignored. Since 1.0. */
  void (*io_unwatch)(bb_host_ctx* h, bb_io_watch w);

  /* Runs fn(arg) once on a kernel worker (round robin), after `delay_ms`
   * milliseconds, or as soon as possible for 0. It cannot be cancelled; a
   * task still waiting when the workers stop never runs. `arg` belongs to
   * the module and must stay valid until fn ran. Thread: any. Errors:
   * BB_E_INVALID (null `fn`). Since 1.0. */
  bb_status (*post)(bb_host_ctx* h, uint32_t delay_ms, bb_task_fn fn, void* arg);

  /* After start() returned BB_PENDING: the module is ready now (transports
   * start once every other module is; GET /ready answers 200 once all
   * are). Thread: any. Since 1.0. */
  bb_status (*ready)(bb_host_ctx* h);

  /* The statements of `principal`, logged in through this module's
   * authenticator `provider`, changed: live sessions switch to the new
   * statements within a second (subscriptions no longer allowed are removed,
   * queued messages no longer readable are dropped). `revoked` = 1 cuts those
   * sessions instead (credentials withdrawn) and `statements` is ignored.
   * Thread: any. Everything is copied. Errors: BB_E_INVALID (null
   * `statements` with a count, or statements the host cannot compile: the
   * previous ones stay, last_error says why). Since 1.0. */
  bb_status (*principal_update)(bb_host_ctx* h, bb_str provider, bb_str principal,
                                const bb_statement* statements, size_t statement_count,
                                int32_t revoked);

  /* ---- ABI 1.1 (check with BB_HAS before use) ---- */

  /* Why the calling thread's last failed host call failed, for a status
   * message (e.g. a rule refused by config_submit); empty when none set it.
   * *out is owned by the host and stays valid until the next host call on
   * this thread. Thread: any. `h` may be null. Errors: BB_E_INVALID (null
   * `out`). Since 1.1. */
  bb_status (*last_error)(bb_host_ctx* h, bb_str* out);

  /* Adds a route to the kernel's HTTP listener. `r` must stay valid and
   * unchanged until the module is destroyed; `user` is passed to handle()
   * and ws_open(). Thread: control thread, during configure() or start().
   * Errors (last_error says why): BB_E_INVALID (null `r`, a struct without
   * ws_closed, a path that does not start with '/' or ends with one, no
   * handle or methods, a WebSocket route without its ws_* callbacks or
   * subprotocols, `openapi` not a JSON object, a path and method already
   * taken by another route, or since 1.4 a bad `resource` or `actions`
   * declaration), BB_E_UNSUPPORTED (HTTP is off, or the path is
   * under /api and the REST API is off). Since 1.1. */
  bb_status (*http_route)(bb_host_ctx* h, const bb_http_route* r, void* user);
  /* Answers exchange `ex`, exactly once. `r` and all it points to are copied
   * before the call returns; a status outside 100-599 is sent as 500, a
   * header with CR or LF (or ':' in its name) is dropped. Thread: any,
   * during handle() or later. Errors: BB_E_INVALID (null `r`), BB_E_STALE
   * (the exchange is unknown, answered, timed out (504) or its connection
   * is gone).
   * Since 1.1. */
  bb_status (*http_respond)(bb_host_ctx* h, bb_http_exchange ex, const bb_http_response* r);
  /* BB_HTTP_AUTH routes, until the exchange is answered: 1 when the
   * requester's statements allow `action` on `resource`, else 0 (also for
   * an unknown or answered exchange, or a route without BB_HTTP_AUTH). A
   * denial is counted in the metrics. Thread: any. Since 1.1. */
  int32_t (*http_authorize)(bb_host_ctx* h, bb_http_exchange ex, bb_str action, bb_str resource);
  /* Publishes on behalf of the requester of a BB_HTTP_AUTH exchange through
   * the ingress pipeline of MQTT clients (authorization and topic rules).
   * *reason_code is the MQTT v5 reason (0 = accepted, 0x87 not authorized,
   * 0x95/0x99/0x9A/0x9B topic rules, since 1.3 0x97 when the request
   * exceeds the requester's publish rates, which it then does not spend);
   * *reason_string is owned by the host and stays valid until the next host
   * call on this thread. A refusal is BB_OK with its reason. Thread: any,
   * until the exchange is answered. `m` is copied. Errors: BB_E_INVALID
   * (null `reason_code` or `reason_string`, or an invalid message as for
   * publish, last_error says why), BB_E_STALE (the exchange is unknown,
   * answered, or not on a BB_HTTP_AUTH route). Since 1.1. */
  bb_status (*http_publish)(bb_host_ctx* h, bb_http_exchange ex, const bb_message* m,
                            int32_t* reason_code, bb_str* reason_string);

  /* WebSocket output: queues the chunks' bytes, in order, as binary data
   * (copied before the call returns). Above the host's high watermark the
   * route's ws_backpressure(1) follows; a peer that stops reading for good
   * has its WebSocket closed. Thread: the WebSocket's worker only. Errors:
   * BB_E_INVALID (null `chunks` with a count), BB_E_STALE (the WebSocket is
   * gone). Since 1.1. */
  bb_status (*ws_send)(bb_host_ctx* h, bb_ws_id ws, const bb_bytes* chunks, size_t count);
  /* Stop (1) or resume (0) reading from the WebSocket. An unknown id is
   * ignored. Thread: the WebSocket's worker only. Since 1.1. */
  void (*ws_pause)(bb_host_ctx* h, bb_ws_id ws, int32_t paused);
  /* Sends a close frame with `code` (BB_WS_*) after what is queued;
   * ws_closed follows. An unknown id is ignored. Thread: the WebSocket's
   * worker only. Since 1.1. */
  void (*ws_close)(bb_host_ctx* h, bb_ws_id ws, uint16_t code);

  /* Read-only broker state as JSON (Prometheus text for "metrics"):
   * "ready", "stats", "sessions", "topics", "openapi", "metrics". `arg` is
   * reserved: pass an empty string. *out is owned by the host and stays
   * valid until the next host call on this thread. Thread: any. Errors:
   * BB_E_INVALID (null `out`), BB_E_NOT_FOUND (an unknown name; last_error
   * says so). Since 1.1. */
  bb_status (*inspect)(bb_host_ctx* h, bb_str what, bb_str arg, bb_str* out);
  /* Disconnects the client's connection (v5 reason 0x98) and ends its
   * session. Thread: any. Errors: BB_E_NOT_FOUND (no such session).
   * Since 1.1. */
  bb_status (*session_kick)(bb_host_ctx* h, bb_str client_id);

  /* The module's own directory for durable state, "<state_dir>/<module>",
   * created (0700) on first use. *out is owned by the host and stays valid
   * for the module's lifetime. Thread: any. Errors (last_error says why):
   * BB_E_NOT_FOUND when the broker runs without a state directory (then
   * keep state in memory), BB_E_INTERNAL when the directory cannot be
   * created. Since 1.1. */
  bb_status (*state_path)(bb_host_ctx* h, bb_str* out);

  /* ---- ABI 1.2 (check with BB_HAS before use) ---- */

  /* Shows the module every message and session start of this broker (see
   * bb_message_tap); several taps may be registered. `tap` must stay valid
   * and unchanged until the module is destroyed; `user` is passed back to
   * its callbacks. Thread: control thread, during configure() only. Errors:
   * BB_E_INVALID (null `tap`, or a struct without `message`), BB_E_STATE
   * (after configure() returned). Since 1.2. */
  bb_status (*register_message_tap)(bb_host_ctx* h, const bb_message_tap* tap, void* user);
  /* Delivers a message another broker accepted: it updates the retained
   * messages and reaches the local subscribers, each subscriber's read
   * permission checked; the publisher's authorization and the topic rules
   * were applied where it was published, and no tap sees it. Thread: any.
   * `m` is copied. Errors: BB_E_INVALID (an invalid message as for publish;
   * last_error says why). Since 1.2. */
  bb_status (*publish_routed)(bb_host_ctx* h, const bb_message* m);
  /* The client connected to another broker at `connected_at_unix_ms`: its
   * connection here is closed (v5 reason 0x8E, session taken over) and its
   * session here ended, unless it connected here at that time or later (the
   * later connection wins). Thread: any. Errors: BB_E_INVALID
   * (`connected_at_unix_ms` is 0), BB_E_NOT_FOUND (no such session, or it
   * is the later one). Since 1.2. */
  bb_status (*session_takeover)(bb_host_ctx* h, bb_str client_id, uint64_t connected_at_unix_ms);
  /* Sets the current value of one of the module's metrics, shown in
   * /metrics as backbone_<module>_<name> (a '-' in the module's name becomes
   * '_') and in /api/stats under "modules". `name`: 1-64 characters of a-z,
   * 0-9 and _; `kind`: BB_METRIC_*, fixed by the first call (a counter only
   * grows); at most 64 metrics per module. Thread: any. Strings are copied.
   * Errors: BB_E_INVALID otherwise (last_error says why). Since 1.2. */
  bb_status (*metric_set)(bb_host_ctx* h, bb_str name, bb_str help, int32_t kind, double value);

  /* ---- ABI 1.3 (check with BB_HAS before use) ---- */

  /* Delegation (a caller may hand out only what it holds). For the requester
   * of a BB_HTTP_AUTH exchange, until it is answered: the index of the first
   * BB_EFFECT_ALLOW statement in `statements[0, count)` that the requester's
   * own statements do not cover (for every action its action pattern matches
   * and every resource its resource pattern matches, the requester is
   * allowed), or -1 when it covers them all. Deny statements are always
   * covered. Fails closed: an invalid pattern is not covered, and an unknown
   * or answered exchange, or null `statements`, yields 0 (count > 0).
   * Thread: any. Borrowed pointers, nothing kept. Since 1.3. */
  int64_t (*http_authorize_grant)(bb_host_ctx* h, bb_http_exchange ex,
                                  const bb_statement* statements, size_t count);
  /* The quotas of `principal`, logged in through this module's authenticator
   * `provider`, changed (null = back to the broker's defaults): its live
   * sessions use them within a second, new logins at once. Thread: any.
   * Everything is copied. Errors: BB_E_INVALID (a struct_size too small to
   * be a bb_quotas; last_error says so). Since 1.3. */
  bb_status (*principal_quotas)(bb_host_ctx* h, bb_str provider, bb_str principal,
                                const bb_quotas* quotas);
  /* session_takeover with the new session's principal (a bb_session_start
   * another broker's tap saw): the local session is left alone when it
   * belongs to another principal and `s->may_take_over` is 0 (SPEC §6:
   * client ids belong to their principal), as when it connected here later.
   * Thread: any. `s` is copied. Errors (last_error says why): BB_E_INVALID
   * (null `s`, a struct without `principal`, or `connected_at_unix_ms` 0),
   * BB_E_NOT_FOUND (no such session, it connected here later, or it belongs
   * to another principal). Since 1.3. */
  bb_status (*session_takeover_as)(bb_host_ctx* h, const bb_session_start* s);

  /* ---- ABI 1.5 (check with BB_HAS before use) ---- */

  /* Releases a hold a tap's message_held was given: the publisher's
   * acknowledgement goes out once every hold of the message is released
   * and the broker's store has made the message durable (SPEC §10).
   * Thread: any. Errors: BB_E_INVALID (hold 0). Releasing an unknown hold,
   * or one whose connection is gone, does nothing. Since 1.5. */
  bb_status (*ack_release)(bb_host_ctx* h, bb_ack_hold hold);
  /* publish_routed, and then `done(user)` once every copy the message left
   * here that must survive a restart (queues of persistent sessions, the
   * retained store) is durable: at once on the calling thread when nothing
   * waits (no store, no persistent session reached), else later on the
   * store's thread; never blocks. A module acknowledges a message it
   * received from other brokers only then (at-least-once across brokers).
   * `done` is called exactly once when the call returns BB_OK and never
   * otherwise; it must not block. Thread: any. `m` is copied. Errors: as
   * publish_routed. Since 1.5. */
  bb_status (*publish_routed_durable)(bb_host_ctx* h, const bb_message* m, void (*done)(void* user),
                                      void* user);
} bb_host_api;

/* The module's lifecycle, called by the host in this order: configure (and
 * again with reloading = 1 on SIGHUP), start, stop, destroy. Thread: control
 * thread only; calls never overlap. All required, since 1.0. */
typedef struct bb_module_ops {
  uint32_t struct_size;
  uint32_t _pad;
  /* Read settings (config_get), register authenticators, taps and routes.
   * `reloading` is 1 on SIGHUP, with the new settings; BB_E_UNSUPPORTED
   * there means "needs a restart", any other error that the module kept
   * its old settings.
   * An error at start-up stops the broker (log why first). */
  bb_status (*configure)(bb_module* m, int32_t reloading);
  /* BB_OK, or BB_PENDING followed later by host->ready(). Any other status
   * stops the broker's start-up. Transports are started last, once every
   * other module is ready. */
  bb_status (*start)(bb_module* m);
  /* Stop taking work: end watches, connections and threads. Afterwards the
   * module calls no host function except log. Modules stop in the reverse
   * of their load order. */
  void (*stop)(bb_module* m);
  /* Free the instance; `m` and the module's bb_host_ctx are invalid
   * afterwards. Called also for a module that was never started. */
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
  /* Creates an instance. Thread: control thread. Must not call the host;
   * keep `host` (static, valid for the process's life) and `ctx` (valid
   * until destroy() returns) for later calls. On BB_OK *ops (static, or
   * living until destroy() returns) and *out are set; any other status
   * stops the broker's start-up. Since 1.0. */
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
