/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A plain C test module of ABI 1.5 (the current header): its message tap
 * (message_held) keeps every hold it is given and releases them when asked,
 * so the wire tests can watch a publisher's acknowledgement wait for a
 * module. Routes (no login):
 *   GET  /holdtap          {"held":N,"given":G,"unheld":U}  (holds kept now,
 *                          non-zero holds ever given, messages with hold 0)
 *   POST /holdtap/release  releases every kept hold: {"released":N}
 *   POST /holdtap/routed   publish_routed_durable of "holdtap/routed" (QoS 1),
 *                          answered from its `done`: {"done":true} */
#include <stdio.h>
#include <string.h>

#include <backbone/module_abi.h>

static const bb_host_api* g_host;
static bb_host_ctx* g_ctx;

static char g_lock; /* __atomic_test_and_set spin lock around the holds */
static bb_ack_hold g_holds[1024];
static uint32_t g_held, g_given, g_unheld;

static void lock(void) {
  while (__atomic_test_and_set(&g_lock, __ATOMIC_ACQUIRE)) {
  }
}
static void unlock(void) {
  __atomic_clear(&g_lock, __ATOMIC_RELEASE);
}

static void on_held(void* user, const bb_message* m, bb_ack_hold hold) {
  (void)user;
  (void)m;
  lock();
  if (hold == 0) {
    ++g_unheld;
  } else if (g_held < sizeof g_holds / sizeof g_holds[0]) {
    g_holds[g_held++] = hold;
    ++g_given;
  } else {
    unlock();
    g_host->ack_release(g_ctx, hold); /* full: never stall the publisher */
    return;
  }
  unlock();
}

static bb_message_tap g_tap;

static void respond(bb_http_exchange ex, const char* body) {
  bb_http_response r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.status = 200;
  r.content_type.ptr = "application/json";
  r.content_type.len = 16;
  r.body.ptr = (const uint8_t*)body;
  r.body.len = strlen(body);
  g_host->http_respond(g_ctx, ex, &r);
}

static void routed_done(void* user) {
  respond((bb_http_exchange)(uintptr_t)user, "{\"done\":true}");
}

static void handle(void* user, const bb_http_request* req, bb_http_exchange ex) {
  char body[128];
  (void)user;
  if (req->path.len == 16 && memcmp(req->path.ptr, "/holdtap/release", 16) == 0) {
    bb_ack_hold holds[sizeof g_holds / sizeof g_holds[0]];
    uint32_t n, i;
    lock();
    n = g_held;
    memcpy(holds, g_holds, n * sizeof holds[0]);
    g_held = 0;
    unlock();
    for (i = 0; i < n; ++i) g_host->ack_release(g_ctx, holds[i]);
    snprintf(body, sizeof body, "{\"released\":%u}", (unsigned)n);
  } else if (req->path.len == 15 && memcmp(req->path.ptr, "/holdtap/routed", 15) == 0) {
    bb_message m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    m.qos = 1;
    m.topic.ptr = "holdtap/routed";
    m.topic.len = 14;
    m.payload.ptr = (const uint8_t*)"durable";
    m.payload.len = 7;
    if (g_host->publish_routed_durable(g_ctx, &m, routed_done, (void*)(uintptr_t)ex) != BB_OK)
      respond(ex, "{\"done\":false}");
    return;
  } else {
    lock();
    snprintf(body, sizeof body, "{\"held\":%u,\"given\":%u,\"unheld\":%u}", (unsigned)g_held,
             (unsigned)g_given, (unsigned)g_unheld);
    unlock();
  }
  respond(ex, body);
}

static bb_http_route g_route;

static bb_status configure(bb_module* m, int32_t reloading) {
  bb_status s;
  (void)m;
  if (reloading) return BB_OK;
  memset(&g_tap, 0, sizeof g_tap);
  g_tap.struct_size = sizeof g_tap;
  g_tap.message_held = on_held;
  s = g_host->register_message_tap(g_ctx, &g_tap, 0);
  if (s != BB_OK) return s;
  memset(&g_route, 0, sizeof g_route);
  g_route.struct_size = sizeof g_route;
  g_route.flags = BB_HTTP_PREFIX;
  g_route.path.ptr = "/holdtap";
  g_route.path.len = 8;
  g_route.methods.ptr = "GET,POST";
  g_route.methods.len = 8;
  g_route.summary.ptr = "Holds of a test tap";
  g_route.summary.len = 19;
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
                                         5,
                                         BB_KIND_HTTP | BB_KIND_CLUSTER,
                                         0,
                                         0,
                                         "holdtap",
                                         "1.5.0",
                                         create};
  return &d;
}
