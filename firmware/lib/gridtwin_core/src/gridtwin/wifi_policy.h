// WiFi reconnect policy as a pure state machine; the sketch feeds it WiFi.status() and calls
// WiFi.begin() when it says so. A dropped link first gets a grace period for the SDK's own
// auto-reconnect; after that, and after every connect attempt that timed out, it retries with
// a growing pause. It never asks for a reboot: that would lose the readings buffered in RAM.
#pragma once

#include <stdint.h>

#include "backoff.h"
#include "timing.h"

namespace gridtwin {

enum class WifiAction : uint8_t { kNone, kBegin };

struct WifiPolicyConfig {
  uint32_t connect_timeout_ms = 20000;  // a WiFi.begin() that has not connected by then failed
  uint32_t grace_ms = 10000;            // after a drop, leave the SDK this long to reconnect alone
  BackoffPolicy retry = {5000, 120000};  // pause after failed attempts: 5 s, doubled per failure, <= 2 min
};

class WifiPolicy {
 public:
  enum class State : uint8_t { kStart, kConnecting, kConnected, kLost, kPaused };

  explicit WifiPolicy(WifiPolicyConfig config = {}) : config_(config) {}

  WifiAction update(uint32_t now_ms, bool connected) {
    if (connected) {  // also at boot, when the SDK joined from its own saved settings
      if (state_ != State::kConnected) {
        state_ = State::kConnected;
        failed_attempts_ = 0;
      }
      return WifiAction::kNone;
    }
    switch (state_) {
      case State::kStart:
        return begin(now_ms);
      case State::kConnected:
        enter(State::kLost, now_ms, config_.grace_ms);
        return WifiAction::kNone;
      case State::kConnecting:
        if (!wait_.over(now_ms)) return WifiAction::kNone;
        if (failed_attempts_ < 0xFFFFu) ++failed_attempts_;
        enter(State::kPaused, now_ms, pause_ms());
        return WifiAction::kNone;
      case State::kLost:
      case State::kPaused:
        return wait_.over(now_ms) ? begin(now_ms) : WifiAction::kNone;
    }
    return WifiAction::kNone;
  }

  bool link_up() const { return state_ == State::kConnected; }
  State state() const { return state_; }
  uint32_t failed_attempts() const { return failed_attempts_; }

  // Pause after the current number of failed attempts (no jitter: the access point is local).
  uint32_t pause_ms() const { return backoff_ceiling_ms(config_.retry, failed_attempts_); }

 private:
  WifiAction begin(uint32_t now_ms) {
    enter(State::kConnecting, now_ms, config_.connect_timeout_ms);
    return WifiAction::kBegin;
  }

  void enter(State state, uint32_t now_ms, uint32_t wait_ms) {
    state_ = state;
    wait_.start_ms = now_ms;
    wait_.wait_ms = wait_ms;
  }

  WifiPolicyConfig config_;
  State state_ = State::kStart;
  Wait wait_;
  uint32_t failed_attempts_ = 0;
};

}  // namespace gridtwin
