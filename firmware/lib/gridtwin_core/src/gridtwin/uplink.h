// When to POST: as soon as a reading is queued while the link is up; after a failed POST,
// exponential backoff with jitter; after a delivered batch, the next batch follows after a
// short gap so a backlog drains in order without starving the 100 ms sampling.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "backoff.h"
#include "timing.h"

namespace gridtwin {

enum class PostOutcome : uint8_t {
  kDelivered,  // 2xx: the collector has the readings (duplicates included): drop them here
  kRejected,   // 400/422: the collector will never take this body: drop it, count it, go on
  kRetry,      // transport error (<0), 401/403 (key), 408, 429, 5xx, ...: keep and back off
};

inline PostOutcome classify_http_status(int status) {
  if (status >= 200 && status < 300) return PostOutcome::kDelivered;
  if (status == 400 || status == 422) return PostOutcome::kRejected;
  return PostOutcome::kRetry;
}

class SendScheduler {
 public:
  SendScheduler(BackoffPolicy policy, uint32_t flush_gap_ms) : policy_(policy), flush_gap_ms_(flush_gap_ms) {}

  bool due(uint32_t now_ms, bool link_up, size_t pending) const {
    return link_up && pending > 0 && wait_.over(now_ms);
  }

  void on_result(PostOutcome outcome, uint32_t now_ms, uint32_t random) {
    wait_.start_ms = now_ms;
    if (outcome == PostOutcome::kRetry) {
      if (failures_ < 0xFFFFu) ++failures_;
      wait_.wait_ms = backoff_delay_ms(policy_, failures_, random);
    } else {
      failures_ = 0;
      wait_.wait_ms = flush_gap_ms_;
    }
  }

  uint32_t failures() const { return failures_; }  // consecutive failed POSTs
  uint32_t wait_ms() const { return wait_.wait_ms; }

 private:
  BackoffPolicy policy_;
  uint32_t flush_gap_ms_;
  uint32_t failures_ = 0;
  Wait wait_;  // starts over (wait 0): the first POST may go at once
};

}  // namespace gridtwin
