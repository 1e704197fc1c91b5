// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>
#include <thread>

#include "kernel/module_host/host_api/host_api.hpp"
#include "kernel/module_host/host_api/io_watch.hpp"
#include "kernel/module_host/module_host.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::module_host {
namespace {

TEST(HostApiTable, HasEveryFunctionOfTheCurrentAbi) {
  const bb_host_api* api = ModuleHost::api();
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->struct_size, sizeof(bb_host_api));
  EXPECT_EQ(api->abi_major, BB_ABI_MAJOR);
  EXPECT_EQ(api->abi_minor, BB_ABI_MINOR);
  EXPECT_TRUE(BB_HAS(api, bb_host_api, session_takeover_as));
  EXPECT_TRUE(BB_HAS(api, bb_host_api, publish_routed_durable));
  // Every slot after the header is a function pointer, and none is null.
  const auto* first = reinterpret_cast<const char*>(&api->log);
  const auto* end = reinterpret_cast<const char*>(api) + sizeof(bb_host_api);
  for (const char* p = first; p < end; p += sizeof(void (*)())) {
    void (*fn)() = nullptr;
    std::memcpy(&fn, p, sizeof(fn));
    EXPECT_NE(fn, nullptr) << "slot at offset " << (p - reinterpret_cast<const char*>(api));
  }
}

// Without a context no host function reaches the kernel: they fail (or do
// nothing) instead of dereferencing anything.
TEST(HostApiTable, RefusesCallsWithoutAContext) {
  const bb_host_api* api = ModuleHost::api();
  bb_str out{};
  bb_conn_id conn = 0;
  bb_io_watch watch = 0;
  const bb_str empty{"", 0};
  EXPECT_EQ(api->config_get(nullptr, empty, &out), BB_E_INVALID);
  EXPECT_EQ(api->config_submit(nullptr, bb_str{"topic", 5}, empty, empty, 1), BB_E_INVALID);
  EXPECT_EQ(api->publish(nullptr, nullptr), BB_E_INVALID);
  EXPECT_EQ(api->register_authenticator(nullptr, nullptr, nullptr), BB_E_INVALID);
  bb_auth_result result{};
  result.struct_size = sizeof(result);
  EXPECT_EQ(api->auth_complete(nullptr, 1, &result), BB_E_INVALID);
  bb_conn_info info{};
  info.struct_size = sizeof(info);
  bb_conn_ops ops{};
  ops.struct_size = sizeof(ops);
  EXPECT_EQ(api->conn_open(nullptr, &info, &ops, nullptr, &conn), BB_E_INVALID);
  EXPECT_EQ(api->conn_feed(nullptr, 1, bb_bytes{nullptr, 0}), BB_E_INVALID);
  api->conn_backpressure(nullptr, 1, 1);
  api->conn_closed(nullptr, 1);
  EXPECT_EQ(api->io_watch(
                nullptr, 0, 0, [](void*, int32_t) {}, nullptr, &watch),
            BB_E_INVALID);
  EXPECT_EQ(api->io_want(nullptr, 1, BB_IO_READ), BB_E_INVALID);
  api->io_unwatch(nullptr, 1);
  EXPECT_EQ(api->post(
                nullptr, 0, [](void*) {}, nullptr),
            BB_E_INVALID);
  EXPECT_EQ(api->ready(nullptr), BB_E_INVALID);
  EXPECT_EQ(api->principal_update(nullptr, empty, empty, nullptr, 0, 1), BB_E_INVALID);
  EXPECT_EQ(api->http_route(nullptr, nullptr, nullptr), BB_E_INVALID);
  bb_http_response response{};
  response.struct_size = sizeof(response);
  EXPECT_EQ(api->http_respond(nullptr, 1, &response), BB_E_INVALID);
  EXPECT_EQ(api->http_authorize(nullptr, 1, empty, empty), 0);
  bb_statement grant{BB_EFFECT_ALLOW, 0, bb_str{"*", 1}, bb_str{"#", 1}};
  EXPECT_EQ(api->http_authorize_grant(nullptr, 1, &grant, 1), 0);
  int32_t reason = 0;
  EXPECT_EQ(api->http_publish(nullptr, 1, nullptr, &reason, &out), BB_E_INVALID);
  EXPECT_EQ(api->ws_send(nullptr, 1, nullptr, 0), BB_E_INVALID);
  api->ws_pause(nullptr, 1, 1);
  api->ws_close(nullptr, 1, BB_WS_NORMAL);
  EXPECT_EQ(api->inspect(nullptr, bb_str{"stats", 5}, empty, &out), BB_E_INVALID);
  EXPECT_EQ(api->session_kick(nullptr, empty), BB_E_INVALID);
  EXPECT_EQ(api->state_path(nullptr, &out), BB_E_INVALID);
  EXPECT_EQ(api->register_message_tap(nullptr, nullptr, nullptr), BB_E_INVALID);
  EXPECT_EQ(api->publish_routed(nullptr, nullptr), BB_E_INVALID);
  EXPECT_EQ(api->ack_release(nullptr, 1), BB_E_INVALID);
  static bool done_called = false;
  EXPECT_EQ(api->publish_routed_durable(
                nullptr, nullptr, [](void*) { done_called = true; }, nullptr),
            BB_E_INVALID);
  EXPECT_FALSE(done_called);  // never when the call fails
  EXPECT_EQ(api->session_takeover(nullptr, empty, 1), BB_E_INVALID);
  EXPECT_EQ(api->metric_set(nullptr, empty, empty, BB_METRIC_GAUGE, 1), BB_E_INVALID);
  EXPECT_EQ(api->session_takeover_as(nullptr, nullptr), BB_E_INVALID);
}

TEST(HostApiRouted, SharedGroupListOfARoutedMessage) {
  const bb_str listed[] = {{"g/t/+", 5}, {"h/#", 3}};
  bb_message m{};
  m.struct_size = sizeof(m);
  broker::Origin origin;
  broker::SharedGroups groups;
  // shared_listed 0: every group, as before.
  ASSERT_TRUE(host_api::routed_origin(&m, groups, origin));
  EXPECT_TRUE(origin.routed);
  EXPECT_EQ(origin.shared_only, nullptr);
  m.shared_listed = 1;
  m.shared_group_count = 2;
  m.shared_groups = listed;
  ASSERT_TRUE(host_api::routed_origin(&m, groups, origin));
  ASSERT_EQ(origin.shared_only, &groups);
  EXPECT_EQ(groups.count, 2u);
  EXPECT_TRUE(groups.contains("g", "t/+"));
  EXPECT_TRUE(groups.contains("h", "#"));
  EXPECT_FALSE(groups.contains("g", "t/#"));
  EXPECT_FALSE(groups.contains("g/t", "+"));  // a group name has no '/'
  EXPECT_FALSE(groups.contains("h", "#/x"));
  // An empty list: no group.
  m.shared_group_count = 0;
  m.shared_groups = nullptr;
  ASSERT_TRUE(host_api::routed_origin(&m, groups, origin));
  ASSERT_EQ(origin.shared_only, &groups);
  EXPECT_EQ(groups.count, 0u);
  // A count without a list is refused.
  m.shared_group_count = 1;
  EXPECT_FALSE(host_api::routed_origin(&m, groups, origin));
  // A struct from before 1.5: whatever follows it is not read.
  m.struct_size = offsetof(bb_message, shared_listed);
  ASSERT_TRUE(host_api::routed_origin(&m, groups, origin));
  EXPECT_EQ(origin.shared_only, nullptr);
}

TEST(HostApiTable, LastErrorSaysWhyTheThreadsLastCallFailed) {
  const bb_host_api* api = ModuleHost::api();
  bb_quotas quotas{};
  const bb_str empty{"", 0};
  ASSERT_EQ(api->principal_quotas(nullptr, empty, empty, &quotas), BB_E_INVALID);
  bb_str why{};
  ASSERT_EQ(api->last_error(nullptr, &why), BB_OK);
  EXPECT_EQ(std::string(why.ptr, why.len), "bad bb_quotas");
  // Another thread has its own.
  std::thread([api] {
    bb_str other{};
    ASSERT_EQ(api->last_error(nullptr, &other), BB_OK);
    EXPECT_EQ(other.len, 0u);
  }).join();
  EXPECT_EQ(api->last_error(nullptr, nullptr), BB_E_INVALID);
}

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe(fds), 0); }
  ~Pipe() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  int fds[2];
};

bool eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

TEST(IoWatches, CallsBackWhileTheFdIsReadyForTheInterestAndNotAfterUnwatch) {
  net::WorkerPool workers(2);
  workers.start();
  {
    IoWatches watches(workers);
    Pipe pipe;
    std::atomic<int> reads{0};
    auto on_ready = [](void* user, int32_t events) {
      if (events & BB_IO_READ) static_cast<std::atomic<int>*>(user)->fetch_add(1);
    };
    const bb_io_watch id = watches.watch(workers.at(1), pipe.fds[0], on_ready, &reads);
    EXPECT_EQ(id & 0xFF, 1u);  // the worker's index travels in the id
    ASSERT_EQ(watches.want(id, BB_IO_READ), BB_OK);
    ASSERT_EQ(::write(pipe.fds[1], "x", 1), 1);
    EXPECT_TRUE(eventually([&] { return reads.load() >= 2; }));  // level-like: fires again
    watches.unwatch(id);  // from another thread: waits for the worker
    const int seen = reads.load();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(reads.load(), seen);
    EXPECT_EQ(watches.want(id, BB_IO_READ), BB_OK);  // forwarded, then ignored
    std::promise<void> drained;                      // the forwarded call ran before `watches` goes
    workers.at(1).post([&] { drained.set_value(); });
    drained.get_future().wait();
    char byte = 0;
    EXPECT_EQ(::read(pipe.fds[0], &byte, 1), 1);  // the fd stayed open
  }
  workers.stop();
}

TEST(IoWatches, AnUnknownWatchIsStaleOnItsWorker) {
  net::WorkerPool workers(1);
  workers.start();
  {
    IoWatches watches(workers);
    std::promise<bb_status> status;
    workers.at(0).post([&] { status.set_value(watches.want((42u << 8) | 0, BB_IO_READ)); });
    EXPECT_EQ(status.get_future().get(), BB_E_STALE);
    EXPECT_EQ(watches.want((42u << 8) | 7, BB_IO_READ), BB_E_STALE);  // no worker 7
    watches.unwatch((42u << 8) | 7);
  }
  workers.stop();
}

}  // namespace
}  // namespace backbone::kernel::module_host
