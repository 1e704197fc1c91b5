/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A plain C99 authenticator built from the frozen ABI 1.0 header: proves that
 * old modules keep loading into newer kernels of the same major version. */
#include <string.h>

#include "frozen/module_abi_1_0.h"

static const bb_host_api* g_host;
static bb_host_ctx* g_ctx;

static bb_status authenticate(void* user, const bb_auth_request* req, bb_auth_ticket t,
                              bb_auth_result* out) {
  static const bb_statement all = {BB_EFFECT_ALLOW, 0, {"*", 1}, {"**", 2}};
  (void)user;
  (void)t;
  if (req->password.len == 9 && memcmp(req->password.ptr, "frozen-ok", 9) == 0) {
    out->verdict = BB_AUTH_ALLOW;
    out->principal.ptr = "frozen";
    out->principal.len = 6;
    out->statements = &all;
    out->statement_count = 1;
  } else {
    out->verdict = BB_AUTH_DENY;
  }
  return BB_OK;
}

static const bb_authenticator kAuth = {sizeof(bb_authenticator), 0, {"frozen", 6}, authenticate, 0};

static bb_status configure(bb_module* m, int32_t reloading) {
  (void)m;
  if (reloading) return BB_OK;
  return g_host->register_authenticator(g_ctx, &kAuth, 0);
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

#ifndef FROZEN_ABI_MAJOR
#define FROZEN_ABI_MAJOR BB_ABI_MAJOR
#endif

BB_EXPORT const bb_module_descriptor* bb_module_entry(void) {
  static const bb_module_descriptor d = {sizeof(bb_module_descriptor),
                                         FROZEN_ABI_MAJOR,
                                         0,
                                         BB_KIND_AUTH,
                                         0,
                                         0,
                                         MODULE_NAME,
                                         "1.0.0",
                                         create};
  return &d;
}
