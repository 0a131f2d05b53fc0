// millis() arithmetic that stays right across the 32-bit wrap (every 49.7 days): only
// durations (now - start, unsigned) are compared, never absolute deadlines.
#pragma once

#include <stdint.h>

namespace gridtwin {

inline uint32_t elapsed_ms(uint32_t now_ms, uint32_t since_ms) { return now_ms - since_ms; }

// A wait of wait_ms started at start_ms; correct for waits shorter than 49.7 days.
struct Wait {
  uint32_t start_ms = 0;
  uint32_t wait_ms = 0;

  bool over(uint32_t now_ms) const { return elapsed_ms(now_ms, start_ms) >= wait_ms; }
};

// Fires once per period. When the loop fell more than a whole period behind (a blocking
// HTTP request), it fires once and restarts from now instead of firing a burst.
class PeriodTimer {
 public:
  explicit PeriodTimer(uint32_t period_ms) : period_ms_(period_ms) {}

  void start(uint32_t now_ms) { start_ms_ = now_ms; }

  bool due(uint32_t now_ms) {
    if (elapsed_ms(now_ms, start_ms_) < period_ms_) return false;
    start_ms_ += period_ms_;
    if (elapsed_ms(now_ms, start_ms_) >= period_ms_) start_ms_ = now_ms;
    return true;
  }

  uint32_t period_ms() const { return period_ms_; }

 private:
  uint32_t period_ms_;
  uint32_t start_ms_ = 0;
};

// Unix seconds from time(nullptr), or 0 while SNTP has not set the clock (the ESP8266
// starts at 1970). Anything before 2023-11-14 is taken as "not synced".
inline uint32_t synced_unix_s(int64_t time_now_s) {
  constexpr int64_t kEarliestPlausible = 1700000000;
  if (time_now_s < kEarliestPlausible || time_now_s > 0xFFFFFFFFll) return 0;
  return static_cast<uint32_t>(time_now_s);
}

}  // namespace gridtwin
