// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/module_host/host_api/io_watch.hpp"

#include <boost/asio/posix/stream_descriptor.hpp>

#include <chrono>
#include <future>

#include "kernel/connection/connection_table.hpp"
#include "kernel/module_host/host_api/host_api.hpp"
#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::module_host {

// Level-like readiness notifications for a module's fd on one worker.
class IoWatch : public std::enable_shared_from_this<IoWatch> {
 public:
  IoWatch(net::Worker& worker, int fd, bb_io_fn fn, void* user)
      : descriptor_(worker.io(), fd), fn_(fn), user_(user) {}

  void want(int32_t interest) {
    interest_ = interest;
    arm();
  }

  void unwatch() {
    active_ = false;
    boost::system::error_code ec;
    descriptor_.cancel(ec);
    descriptor_.release();  // the module owns and closes the fd
  }

 private:
  void arm() {
    if (!active_) return;
    if ((interest_ & BB_IO_READ) && !reading_) {
      reading_ = true;
      descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                             [self = shared_from_this()](boost::system::error_code ec) {
                               self->reading_ = false;
                               self->fire(ec, BB_IO_READ);
                             });
    }
    if ((interest_ & BB_IO_WRITE) && !writing_) {
      writing_ = true;
      descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                             [self = shared_from_this()](boost::system::error_code ec) {
                               self->writing_ = false;
                               self->fire(ec, BB_IO_WRITE);
                             });
    }
  }

  void fire(boost::system::error_code ec, int32_t event) {
    if (!active_ || ec == boost::asio::error::operation_aborted) return;
    if (!(interest_ & event)) return;
    fn_(user_, ec ? BB_IO_ERROR : event);
    if (active_) arm();
  }

  boost::asio::posix::stream_descriptor descriptor_;
  bb_io_fn fn_;
  void* user_;
  int32_t interest_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool active_ = true;
};

IoWatches::IoWatches(net::WorkerPool& workers) : workers_(workers), by_worker_(workers.size()) {}

IoWatches::~IoWatches() {
  for (uint32_t w = 0; w < by_worker_.workers(); ++w) {
    for (auto& [id, watch] : by_worker_.on(w)) watch->unwatch();
  }
}

bb_io_watch IoWatches::watch(net::Worker& worker, int fd, bb_io_fn fn, void* user) {
  const bb_io_watch id = by_worker_.next_id(worker);
  by_worker_.add(worker, id, std::make_shared<IoWatch>(worker, fd, fn, user));
  return id;
}

IoWatch* IoWatches::find(bb_io_watch w) {
  return by_worker_.find(w);
}

bb_status IoWatches::want(bb_io_watch w, int32_t interest) {
  const uint32_t owner = by_worker_.worker_of(w);
  if (owner >= workers_.size()) return BB_E_STALE;
  net::Worker& worker = workers_.at(owner);
  if (net::WorkerPool::current() != &worker) {
    // Forwarded: queued behind the watch's creation on its worker.
    worker.post([this, w, interest] {
      if (IoWatch* watch = find(w)) watch->want(interest);
    });
    return BB_OK;
  }
  IoWatch* watch = find(w);
  if (!watch) return BB_E_STALE;
  watch->want(interest);
  return BB_OK;
}

void IoWatches::unwatch(bb_io_watch w) {
  const uint32_t owner = by_worker_.worker_of(w);
  if (owner >= by_worker_.workers()) return;
  auto remove = [this, w, owner] {
    auto& map = by_worker_.on(owner);
    auto it = map.find(w);
    if (it == map.end()) return;
    it->second->unwatch();
    map.erase(it);
  };
  net::Worker& worker = workers_.at(owner);
  if (net::WorkerPool::current() == &worker || worker.io().stopped()) {
    remove();
    return;
  }
  // From another thread (a module's stop()): run it on the owner and wait,
  // so the module may close the fd once this returns.
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  worker.post([remove, done] {
    remove();
    done->set_value();
  });
  finished.wait_for(std::chrono::seconds(2));
}

namespace host_api {

bb_status io_watch(bb_host_ctx* h, int32_t fd, bb_conn_id affinity, bb_io_fn fn, void* user,
                   bb_io_watch* out) noexcept {
  try {
    if (!instance_of(h) || fd < 0 || !fn || !out) return BB_E_INVALID;
    net::WorkerPool& workers = h->host->workers();
    // With an affinity, the socket's I/O runs on the thread of that connection.
    net::Worker& worker =
        affinity != 0
            ? workers.at(connection::ConnectionTable::worker_of(affinity) % workers.size())
            : workers.next();
    *out = h->host->io_watches().watch(worker, fd, fn, user);
    return BB_OK;
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

bb_status io_want(bb_host_ctx* h, bb_io_watch w, int32_t interest) noexcept {
  try {
    ModuleHost* host = host_of(h);
    if (!host) return BB_E_INVALID;
    return host->io_watches().want(w, interest);
  } catch (...) {
    return BB_E_INTERNAL;
  }
}

void io_unwatch(bb_host_ctx* h, bb_io_watch w) noexcept {
  try {
    if (ModuleHost* host = host_of(h)) host->io_watches().unwatch(w);
  } catch (...) {
  }
}

}  // namespace host_api

}  // namespace backbone::kernel::module_host
