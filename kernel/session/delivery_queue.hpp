// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstddef>
#include <memory>
#include <utility>

namespace backbone::kernel::session {

// FIFO of deliveries as a growable ring. Unlike std::deque it allocates
// nothing until the first push, which matters with tens of thousands of idle
// sessions, and it reuses its buffer without per-element allocations.
template <class T>
class RingQueue {
 public:
  RingQueue() = default;
  RingQueue(const RingQueue&) = delete;
  RingQueue& operator=(const RingQueue&) = delete;
  RingQueue(RingQueue&& o) noexcept { swap(o); }
  RingQueue& operator=(RingQueue&& o) noexcept {
    clear();
    swap(o);
    return *this;
  }
  ~RingQueue() { clear(); }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return buffer_[head_]; }
  T& operator[](size_t i) { return buffer_[(head_ + i) & (capacity_ - 1)]; }

  void push_back(T value) {
    if (size_ == capacity_) grow();
    buffer_[(head_ + size_) & (capacity_ - 1)] = std::move(value);
    ++size_;
  }
  void pop_front() {
    buffer_[head_] = T();
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
    if (size_ == 0) head_ = 0;
  }
  // Releases the buffer too, so a drained idle session holds no memory.
  void clear() {
    buffer_.reset();
    capacity_ = size_ = head_ = 0;
  }
  void swap(RingQueue& o) noexcept {
    std::swap(buffer_, o.buffer_);
    std::swap(capacity_, o.capacity_);
    std::swap(size_, o.size_);
    std::swap(head_, o.head_);
  }
  // Drops the buffer once empty if it grew large during a burst.
  void shrink_if_idle() {
    if (size_ == 0 && capacity_ > 64) clear();
  }

 private:
  void grow() {
    const size_t capacity = capacity_ == 0 ? 8 : capacity_ * 2;
    auto buffer = std::make_unique<T[]>(capacity);
    for (size_t i = 0; i < size_; ++i) buffer[i] = std::move((*this)[i]);
    buffer_ = std::move(buffer);
    capacity_ = capacity;
    head_ = 0;
  }

  std::unique_ptr<T[]> buffer_;
  size_t capacity_ = 0;  // a power of two
  size_t size_ = 0;
  size_t head_ = 0;
};

}  // namespace backbone::kernel::session
