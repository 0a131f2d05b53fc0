// Fixed-capacity FIFO in static storage: pushing into a full buffer drops the oldest item
// and counts it, so the newest data survives an outage longer than the buffer.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace gridtwin {

template <typename T, size_t Capacity>
class RingBuffer {
  static_assert(Capacity > 0, "a ring buffer needs room for at least one item");

 public:
  // Appends `item`; returns false when the oldest item had to be dropped to make room.
  bool push(const T& item) {
    bool kept_all = true;
    if (count_ == Capacity) {
      head_ = wrap(head_ + 1);
      --count_;
      ++dropped_;
      kept_all = false;
    }
    items_[wrap(head_ + count_)] = item;
    ++count_;
    return kept_all;
  }

  // The i-th oldest item (0 = oldest); i must be < size().
  const T& at(size_t i) const { return items_[wrap(head_ + i)]; }
  const T& front() const { return items_[head_]; }

  // Removes up to n of the oldest items.
  void pop_front(size_t n = 1) {
    if (n > count_) n = count_;
    head_ = wrap(head_ + n);
    count_ -= n;
  }

  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  bool full() const { return count_ == Capacity; }
  static constexpr size_t capacity() { return Capacity; }
  uint32_t dropped() const { return dropped_; }  // items lost to overflow since construction

 private:
  static size_t wrap(size_t index) { return index >= Capacity ? index - Capacity : index; }

  T items_[Capacity] = {};
  size_t head_ = 0;
  size_t count_ = 0;
  uint32_t dropped_ = 0;
};

}  // namespace gridtwin
