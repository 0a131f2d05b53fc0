// The device's whole behaviour minus the hardware: samples in, 10 s readings queued with a
// per-boot sequence number, POST bodies out, acknowledgements and failures back. The sketch
// (src/main.cpp) and the host outage simulation drive this same class. No heap: the queue and
// every buffer are fixed-size members or caller-owned.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "aggregator.h"
#include "measurement.h"
#include "payload.h"
#include "ring_buffer.h"
#include "timing.h"
#include "uplink.h"

namespace gridtwin {

struct NodeConfig {
  uint32_t report_period_ms = 10000;  // one reading per period
  size_t max_batch = 30;              // readings per POST when draining a backlog
  BackoffPolicy backoff = {};         // after a failed POST: 2 s, 4 s, ... <= 60 s, with jitter
  uint32_t flush_gap_ms = 200;        // pause between two delivered batches of a backlog
};

template <size_t Capacity>
class Node {
 public:
  explicit Node(const char* device_id, NodeConfig config = {})
      : device_id_(device_id), config_(config), period_(config.report_period_ms),
        scheduler_(config.backoff, config.flush_gap_ms) {}

  // Starts the first report period; `boot_id` is random per boot (ESP.random()).
  void begin(uint32_t now_ms, uint32_t boot_id) {
    boot_ = boot_id;
    period_.start(now_ms);
  }

  // One 100 ms sample from the sensor (NaN where the read failed).
  void add_sample(const Sample& sample) {
    aggregator_.add(sample);
    latest_ = Measurement::from(sample);
  }

  // Closes the report period when it is over and queues its reading; true when it did.
  // unix_s is synced_unix_s(time(nullptr)): 0 leaves ts out of the payload.
  bool close_period_if_due(uint32_t now_ms, uint32_t unix_s) {
    if (!period_.due(now_ms)) return false;
    Reading r{};
    r.seq = next_seq_++;
    r.taken_ms = now_ms;
    r.unix_s = unix_s;
    r.m = aggregator_.close();
    queue_.push(r);
    return true;
  }

  bool send_due(uint32_t now_ms, bool link_up) const { return scheduler_.due(now_ms, link_up, queue_.size()); }

  // Writes the next POST body (the oldest <= max_batch readings that fit) into buffer and
  // returns its length; 0 when nothing is queued or not one reading fits.
  size_t build_post(char* buffer, size_t capacity, uint32_t now_ms) {
    BoundedWriter w(buffer, capacity);
    in_flight_ = write_batch(w, identity(), queue_, config_.max_batch, now_ms, queue_.dropped());
    return in_flight_.length;
  }

  // The fate of the body built last. Delivered or rejected readings leave the queue, matched
  // by seq, so a reading that overflow already dropped is never confused with a newer one.
  void on_post_result(PostOutcome outcome, uint32_t now_ms, uint32_t random) {
    if (in_flight_.count > 0 && outcome != PostOutcome::kRetry) {
      size_t removed = 0;
      while (!queue_.empty() && in_flight(queue_.front().seq)) {
        queue_.pop_front();
        ++removed;
      }
      (outcome == PostOutcome::kDelivered ? delivered_ : rejected_) += static_cast<uint32_t>(removed);
    }
    in_flight_ = Batch();
    scheduler_.on_result(outcome, now_ms, random);
  }

  DeviceIdentity identity() const { return DeviceIdentity{device_id_, boot_}; }
  const Measurement& latest() const { return latest_; }  // last sample, for the display
  size_t pending() const { return queue_.size(); }
  uint32_t dropped() const { return queue_.dropped(); }  // lost to overflow, since boot
  uint32_t delivered() const { return delivered_; }      // acknowledged by the collector
  uint32_t rejected() const { return rejected_; }        // refused for good (400/422)
  uint32_t next_seq() const { return next_seq_; }
  const SendScheduler& scheduler() const { return scheduler_; }
  static constexpr size_t capacity() { return Capacity; }

 private:
  bool in_flight(uint32_t seq) const {  // seq within [first, last], wrap-safe
    return seq - in_flight_.first_seq <= in_flight_.last_seq - in_flight_.first_seq;
  }

  const char* device_id_;
  uint32_t boot_ = 0;
  NodeConfig config_;
  PeriodTimer period_;
  Aggregator aggregator_;
  Measurement latest_{};
  RingBuffer<Reading, Capacity> queue_;
  SendScheduler scheduler_;
  Batch in_flight_;
  uint32_t next_seq_ = 0;
  uint32_t delivered_ = 0;
  uint32_t rejected_ = 0;
};

}  // namespace gridtwin
