/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A plain C99 module built from the frozen ABI 1.3 header: a BB_HTTP_AUTH
 * route from before ABI 1.4, whose bb_http_route ends at ws_closed and
 * which checks its action itself (http_authorize), as every module did then.
 * It proves such a route keeps loading and behaving as it did: the kernel
 * authenticates (401) and leaves the action to the module. Its authenticator
 * "frozen13" lets the token "frozen-ok" do mgmt:read-frozen on frozen/a. */
#include <string.h>

#include "frozen/module_abi_1_3.h"

static const bb_host_api* g_host;
static bb_host_ctx* g_ctx;

static bb_status authenticate(void* user, const bb_auth_request* req, bb_auth_ticket t,
                              bb_auth_result* out) {
  static const bb_statement read_a = {
      BB_EFFECT_ALLOW, 0, {"mgmt:read-frozen", 16}, {"frozen/a", 8}};
  (void)user;
  (void)t;
  if (req->password.len == 9 && memcmp(req->password.ptr, "frozen-ok", 9) == 0) {
    out->verdict = BB_AUTH_ALLOW;
    out->principal.ptr = "frozen13";
    out->principal.len = 8;
    out->statements = &read_a;
    out->statement_count = 1;
  } else {
    out->verdict = BB_AUTH_DENY;
  }
  return BB_OK;
}

static void respond(bb_http_exchange ex, int32_t status, const char* body) {
  bb_http_response r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.status = status;
  r.content_type.ptr = "application/json";
  r.content_type.len = 16;
  r.body.ptr = (const uint8_t*)body;
  r.body.len = strlen(body);
  g_host->http_respond(g_ctx, ex, &r);
}

/* GET /frozen13/NAME: mgmt:read-frozen on "frozen/NAME", checked here. */
static void handle(void* user, const bb_http_request* req, bb_http_exchange ex) {
  static const char kBase[] = "/frozen13/";
  char resource[256] = "frozen/";
  const size_t base = sizeof kBase - 1;
  bb_str action = {"mgmt:read-frozen", 16};
  bb_str target;
  (void)user;
  if (req->path.len <= base || req->path.len - base > sizeof resource - 8) {
    respond(ex, 404, "{\"error\":\"not_found\",\"message\":\"no such item\"}");
    return;
  }
  memcpy(resource + 7, req->path.ptr + base, req->path.len - base);
  target.ptr = resource;
  target.len = 7 + req->path.len - base;
  if (!g_host->http_authorize(g_ctx, ex, action, target)) {
    respond(ex, 403, "{\"error\":\"forbidden\",\"message\":\"checked by the 1.3 module\"}");
    return;
  }
  respond(ex, 200, "{\"ok\":true}");
}

static const bb_authenticator kAuth = {
    sizeof(bb_authenticator), 0, {"frozen13", 8}, authenticate, 0};

static bb_http_route g_route;

static bb_status configure(bb_module* m, int32_t reloading) {
  bb_status s;
  (void)m;
  if (reloading) return BB_OK;
  s = g_host->register_authenticator(g_ctx, &kAuth, 0);
  if (s != BB_OK) return s;
  memset(&g_route, 0, sizeof g_route);
  g_route.struct_size = sizeof g_route;
  g_route.flags = BB_HTTP_AUTH | BB_HTTP_PREFIX;
  g_route.path.ptr = "/frozen13";
  g_route.path.len = 9;
  g_route.methods.ptr = "GET";
  g_route.methods.len = 3;
  g_route.summary.ptr = "A route of ABI 1.3";
  g_route.summary.len = 18;
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
                                         3,
                                         BB_KIND_AUTH | BB_KIND_HTTP,
                                         0,
                                         0,
                                         "frozen13",
                                         "1.3.0",
                                         create};
  return &d;
}
