// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace backbone::kernel::net {

// One io_context per worker thread. Each connection lives on exactly one
// worker; work for it from another thread is posted to that worker's queue.
class Worker {
 public:
  explicit Worker(uint32_t index) : index_(index) {}
  uint32_t index() const { return index_; }
  boost::asio::io_context& io() { return io_; }

  template <class F>
  void post(F&& f) {
    boost::asio::post(io_, std::forward<F>(f));
  }

  // Work to run once the current batch of events is handled (used to
  // coalesce writes: one flush per connection per event batch).
  void defer(std::function<void()> fn);
  void run_deferred();

 private:
  friend class WorkerPool;
  uint32_t index_;
  boost::asio::io_context io_;
  std::thread thread_;
  std::vector<std::function<void()>> deferred_;
  bool deferred_posted_ = false;
};

class WorkerPool {
 public:
  explicit WorkerPool(uint32_t count);
  ~WorkerPool();

  void start();
  void stop();  // stops the loops and joins the threads

  uint32_t size() const { return static_cast<uint32_t>(workers_.size()); }
  Worker& at(uint32_t index) { return *workers_[index]; }
  Worker& next();  // round robin for new connections

  // The worker whose thread is calling, or nullptr on any other thread.
  static Worker* current();

  // CPUs this process may run on (honours taskset / cgroup cpusets).
  static uint32_t available_cpus();

 private:
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::atomic<uint32_t> next_{0};
};

}  // namespace backbone::kernel::net
