// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/net/worker_pool.hpp"

#include <pthread.h>
#include <sched.h>

#include <string>

namespace backbone::kernel::net {
namespace {
thread_local Worker* t_current = nullptr;
}

void Worker::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (!deferred_posted_) {
    deferred_posted_ = true;
    post([this] { run_deferred(); });
  }
}

void Worker::run_deferred() {
  deferred_posted_ = false;
  // Deferred work may defer more; run until quiet, bounded per turn.
  for (int round = 0; round < 4 && !deferred_.empty(); ++round) {
    std::vector<std::function<void()>> batch;
    batch.swap(deferred_);
    for (auto& fn : batch) fn();
  }
  if (!deferred_.empty() && !deferred_posted_) {
    deferred_posted_ = true;
    post([this] { run_deferred(); });
  }
}

WorkerPool::WorkerPool(uint32_t count) {
  if (count == 0) count = 1;
  for (uint32_t i = 0; i < count; ++i) workers_.push_back(std::make_unique<Worker>(i));
}

WorkerPool::~WorkerPool() {
  stop();
}

void WorkerPool::start() {
  for (auto& w : workers_) {
    guards_.push_back(boost::asio::make_work_guard(w->io_));
    Worker* worker = w.get();
    worker->thread_ = std::thread([worker] {
      t_current = worker;
      const std::string name = "bb-worker-" + std::to_string(worker->index());
      pthread_setname_np(pthread_self(), name.c_str());
      worker->io_.run();
      t_current = nullptr;
    });
  }
}

void WorkerPool::stop() {
  guards_.clear();
  for (auto& w : workers_) w->io_.stop();
  for (auto& w : workers_) {
    if (w->thread_.joinable()) w->thread_.join();
  }
}

Worker& WorkerPool::next() {
  return *workers_[next_.fetch_add(1, std::memory_order_relaxed) % workers_.size()];
}

Worker* WorkerPool::current() {
  return t_current;
}

uint32_t WorkerPool::available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return static_cast<uint32_t>(n);
  }
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

}  // namespace backbone::kernel::net
