// Ring buffer: FIFO order across the storage wrap-around, overflow drops the oldest and counts it.
#include "check.h"
#include "gridtwin/ring_buffer.h"

using gridtwin::RingBuffer;

TEST(fifo_order_survives_many_wraps_of_the_storage) {
  RingBuffer<int, 5> ring;
  int next_in = 0;
  int next_out = 0;
  for (int round = 0; round < 23; ++round) {  // 3 in, 2 out: head and tail wrap repeatedly
    for (int k = 0; k < 3 && !ring.full(); ++k) CHECK(ring.push(next_in++));
    for (int k = 0; k < 2 && !ring.empty(); ++k) {
      CHECK_EQ(ring.front(), next_out++);
      ring.pop_front();
    }
    for (size_t i = 0; i < ring.size(); ++i) CHECK_EQ(ring.at(i), next_out + static_cast<int>(i));
  }
  CHECK_EQ(ring.dropped(), 0u);
}

TEST(overflow_drops_the_oldest_and_counts_it) {
  RingBuffer<int, 4> ring;
  for (int v = 0; v < 4; ++v) CHECK(ring.push(v));
  CHECK(ring.full());
  CHECK(!ring.push(4));
  CHECK(!ring.push(5));
  CHECK_EQ(ring.size(), 4u);
  CHECK_EQ(ring.dropped(), 2u);
  for (size_t i = 0; i < 4; ++i) CHECK_EQ(ring.at(i), static_cast<int>(i) + 2);
  for (int v = 6; v < 106; ++v) ring.push(v);
  CHECK_EQ(ring.dropped(), 102u);
  CHECK_EQ(ring.front(), 102);
  CHECK_EQ(ring.at(3), 105);
}

TEST(pop_front_clamps_to_the_size) {
  RingBuffer<int, 3> ring;
  ring.push(1);
  ring.push(2);
  ring.pop_front(10);
  CHECK(ring.empty());
  ring.push(3);
  CHECK_EQ(ring.front(), 3);
  CHECK_EQ(ring.size(), 1u);
}
