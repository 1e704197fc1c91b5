// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include <backbone/module_abi.h>

#include "kernel/net/per_worker.hpp"

namespace backbone::kernel::module_host {

class IoWatch;

// The readiness watches modules hold on their fds (bb_host_api.io_watch),
// one table per worker, each touched only by its worker. A watch id carries
// its worker's index in its low byte.
class IoWatches {
 public:
  explicit IoWatches(net::WorkerPool& workers);
  // Releases the fds still watched without closing them: they are the
  // modules'. Runs after the workers stopped.
  ~IoWatches();
  IoWatches(const IoWatches&) = delete;
  IoWatches& operator=(const IoWatches&) = delete;

  // Any thread: a watch of `fd` on `worker`, effective in the order of
  // what that worker runs.
  bb_io_watch watch(net::Worker& worker, int fd, bb_io_fn fn, void* user);
  // Any thread (forwarded to the watch's worker); BB_E_STALE when the watch
  // is unknown on its own worker.
  bb_status want(bb_io_watch w, int32_t interest);
  // Any thread; from another than the watch's worker it waits (up to 2 s)
  // until the watch is gone, so the caller may close the fd afterwards.
  void unwatch(bb_io_watch w);

 private:
  IoWatch* find(bb_io_watch w);

  net::WorkerPool& workers_;
  net::PerWorker<std::shared_ptr<IoWatch>> by_worker_;
};

}  // namespace backbone::kernel::module_host
