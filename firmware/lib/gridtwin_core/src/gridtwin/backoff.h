// Exponential backoff with jitter, shared by the POST retries and the WiFi reconnect pauses.
#pragma once

#include <stdint.h>

namespace gridtwin {

struct BackoffPolicy {
  uint32_t base_ms = 2000;  // ceiling after the first failure
  uint32_t cap_ms = 60000;  // ceiling never grows past this
};

// Ceiling of the wait after `failures` consecutive failures (>= 1): base * 2^(failures-1), capped.
inline uint32_t backoff_ceiling_ms(const BackoffPolicy& p, uint32_t failures) {
  uint32_t ceiling = p.base_ms;
  for (uint32_t i = 1; i < failures && ceiling < p.cap_ms; ++i) {
    ceiling = ceiling > p.cap_ms / 2 ? p.cap_ms : ceiling * 2;
  }
  return ceiling < p.cap_ms ? ceiling : p.cap_ms;
}

// "Equal jitter": uniform in [ceiling - ceiling/2, ceiling], so devices that failed together
// spread out but none retries sooner than half the ceiling. `random` is any uint32 (ESP.random()).
inline uint32_t backoff_delay_ms(const BackoffPolicy& p, uint32_t failures, uint32_t random) {
  const uint32_t ceiling = backoff_ceiling_ms(p, failures);
  const uint32_t half = ceiling / 2;
  return ceiling - half + random % (half + 1);
}

}  // namespace gridtwin
