/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A plain C99 module built from the frozen ABI 1.4 header: a message tap
 * from before ABI 1.5, whose bb_message_tap ends at session_started_as (no
 * message_held). It proves such a tap keeps loading and hearing of every
 * message through `message`, and that the publisher's acknowledgements are
 * not held for it. GET /frozen14 (no login) answers what the tap heard:
 * {"messages":N,"qos1":M,"sessions":S}. Its authenticator "frozen14" lets
 * the password "frozen-ok" do everything. */
#include <stdio.h>
#include <string.h>

#include "frozen/module_abi_1_4.h"

static const bb_host_api* g_host;
static bb_host_ctx* g_ctx;
/* Written on the kernel's workers, read on another thread: __atomic builtins. */
static uint32_t g_messages, g_qos1, g_sessions;

static bb_status authenticate(void* user, const bb_auth_request* req, bb_auth_ticket t,
                              bb_auth_result* out) {
  static const bb_statement all = {BB_EFFECT_ALLOW, 0, {"*", 1}, {"**", 2}};
  (void)user;
  (void)t;
  if (req->password.len == 9 && memcmp(req->password.ptr, "frozen-ok", 9) == 0) {
    out->verdict = BB_AUTH_ALLOW;
    out->principal.ptr = "frozen14";
    out->principal.len = 8;
    out->statements = &all;
    out->statement_count = 1;
  } else {
    out->verdict = BB_AUTH_DENY;
  }
  return BB_OK;
}

static void on_message(void* user, const bb_message* m) {
  (void)user;
  __atomic_fetch_add(&g_messages, 1, __ATOMIC_RELAXED);
  if (m->qos >= 1) __atomic_fetch_add(&g_qos1, 1, __ATOMIC_RELAXED);
}

static void on_session(void* user, const bb_session_start* s) {
  (void)user;
  (void)s;
  __atomic_fetch_add(&g_sessions, 1, __ATOMIC_RELAXED);
}

static const bb_message_tap kTap = {sizeof(bb_message_tap), 0, on_message, 0, on_session};

static void handle(void* user, const bb_http_request* req, bb_http_exchange ex) {
  char body[128];
  bb_http_response r;
  (void)user;
  (void)req;
  snprintf(body, sizeof body, "{\"messages\":%u,\"qos1\":%u,\"sessions\":%u}",
           (unsigned)__atomic_load_n(&g_messages, __ATOMIC_RELAXED),
           (unsigned)__atomic_load_n(&g_qos1, __ATOMIC_RELAXED),
           (unsigned)__atomic_load_n(&g_sessions, __ATOMIC_RELAXED));
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.status = 200;
  r.content_type.ptr = "application/json";
  r.content_type.len = 16;
  r.body.ptr = (const uint8_t*)body;
  r.body.len = strlen(body);
  g_host->http_respond(g_ctx, ex, &r);
}

static const bb_authenticator kAuth = {
    sizeof(bb_authenticator), 0, {"frozen14", 8}, authenticate, 0};

static bb_http_route g_route;

static bb_status configure(bb_module* m, int32_t reloading) {
  bb_status s;
  (void)m;
  if (reloading) return BB_OK;
  s = g_host->register_authenticator(g_ctx, &kAuth, 0);
  if (s != BB_OK) return s;
  s = g_host->register_message_tap(g_ctx, &kTap, 0);
  if (s != BB_OK) return s;
  memset(&g_route, 0, sizeof g_route);
  g_route.struct_size = sizeof g_route;
  g_route.path.ptr = "/frozen14";
  g_route.path.len = 9;
  g_route.methods.ptr = "GET";
  g_route.methods.len = 3;
  g_route.summary.ptr = "What a tap of ABI 1.4 heard";
  g_route.summary.len = 27;
  g_route.handle = handle;
  return g_host->http_route(g_ctx, &g_route, 0);
}
static bb_status start(bb_module* m) {
  (void)m;
  return BB_OK;
}
static void stop(bb_module* m) {
  (void)m;
}
static void destroy(bb_module* m) {
  (void)m;
}

static const bb_module_ops kOps = {sizeof(bb_module_ops), 0, configure, start, stop, destroy};

static bb_status create(const bb_host_api* host, bb_host_ctx* ctx, const bb_module_ops** ops,
                        bb_module** out) {
  static int instance;
  g_host = host;
  g_ctx = ctx;
  *ops = &kOps;
  *out = (bb_module*)&instance;
  return BB_OK;
}

BB_EXPORT const bb_module_descriptor* bb_module_entry(void) {
  static const bb_module_descriptor d = {sizeof(bb_module_descriptor),
                                         BB_ABI_MAJOR,
                                         4,
                                         BB_KIND_AUTH | BB_KIND_HTTP | BB_KIND_CLUSTER,
                                         0,
                                         0,
                                         "frozen14",
                                         "1.4.0",
                                         create};
  return &d;
}
