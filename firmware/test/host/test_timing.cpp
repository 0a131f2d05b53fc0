// Backoff bounds, HTTP status classes, the send scheduler, periods across the millis() wrap.
#include <cstdint>
#include <initializer_list>

#include "check.h"
#include "gridtwin/timing.h"
#include "gridtwin/uplink.h"
#include "support.h"

using namespace gridtwin;

TEST(backoff_ceiling_doubles_from_base_to_cap) {
  const BackoffPolicy p{2000, 60000};
  const uint32_t expected[] = {2000, 4000, 8000, 16000, 32000, 60000, 60000};
  for (uint32_t n = 1; n <= 7; ++n) CHECK_EQ(backoff_ceiling_ms(p, n), expected[n - 1]);
  CHECK_EQ(backoff_ceiling_ms(p, 0xFFFFFFFFu), 60000u);
  const BackoffPolicy huge{0x40000000u, 0xF0000000u};  // doubling must not overflow 32 bits
  CHECK_EQ(backoff_ceiling_ms(huge, 3), 0xF0000000u);
}

TEST(backoff_delay_stays_within_half_ceiling_and_ceiling) {
  const BackoffPolicy p{};
  support::Random rnd;
  for (uint32_t n = 1; n <= 40; ++n) {
    const uint32_t ceiling = backoff_ceiling_ms(p, n);
    uint32_t lowest = 0xFFFFFFFFu;
    uint32_t highest = 0;
    for (int k = 0; k < 2000; ++k) {
      const uint32_t d = backoff_delay_ms(p, n, rnd());
      lowest = d < lowest ? d : lowest;
      highest = d > highest ? d : highest;
    }
    CHECK(lowest >= ceiling - ceiling / 2);
    CHECK(highest <= ceiling);
    CHECK(highest - lowest > ceiling / 4);  // the jitter really spreads
    CHECK_EQ(backoff_delay_ms(p, n, 0), ceiling - ceiling / 2);
    CHECK_EQ(backoff_delay_ms(p, n, ceiling / 2), ceiling);
    CHECK(backoff_delay_ms(p, n, 0xFFFFFFFFu) <= ceiling);
  }
}

TEST(http_status_classes) {
  CHECK(classify_http_status(200) == PostOutcome::kDelivered);
  CHECK(classify_http_status(207) == PostOutcome::kDelivered);
  CHECK(classify_http_status(422) == PostOutcome::kRejected);
  CHECK(classify_http_status(400) == PostOutcome::kRejected);
  for (int status : {-1, -11, 0, 301, 401, 403, 404, 408, 429, 500, 503}) {
    CHECK(classify_http_status(status) == PostOutcome::kRetry);
  }
}

TEST(scheduler_waits_out_the_backoff_and_resets_on_success) {
  SendScheduler s(BackoffPolicy{2000, 60000}, 200);
  const uint32_t t0 = 0xFFFFF000u;  // the waits straddle the millis() wrap
  CHECK(s.due(t0, true, 1));
  CHECK(!s.due(t0, false, 1));  // link down
  CHECK(!s.due(t0, true, 0));   // nothing to send
  s.on_result(PostOutcome::kRetry, t0, 0);  // waits exactly 1000 ms (half of 2 s)
  CHECK(!s.due(t0 + 999, true, 1));
  CHECK(s.due(t0 + 1000, true, 1));
  s.on_result(PostOutcome::kRetry, t0 + 1000, 0xFFFFFFFFu);
  CHECK_EQ(s.failures(), 2u);
  CHECK(s.wait_ms() >= 2000u && s.wait_ms() <= 4000u);
  const uint32_t t1 = t0 + 1000 + s.wait_ms();
  CHECK(!s.due(t1 - 1, true, 1));
  CHECK(s.due(t1, true, 1));
  s.on_result(PostOutcome::kDelivered, t1, 0);
  CHECK_EQ(s.failures(), 0u);
  CHECK(!s.due(t1 + 199, true, 5));
  CHECK(s.due(t1 + 200, true, 5));
  CHECK(s.due(t1 + 0x7FFFFFFFu, true, 5));  // long idle stays due (no signed-deadline flip)
  CHECK(s.due(t1 + 0xF0000000u, true, 5));
}

TEST(period_timer_fires_every_period_across_the_wrap_and_skips_bursts) {
  PeriodTimer t(10000);
  uint32_t now = 0xFFFF0000u;
  t.start(now);
  int fired = 0;
  for (int step = 0; step < 1000; ++step) {  // 100 s in 100 ms steps, wrapping at ~65 s
    now += 100;
    if (t.due(now)) ++fired;
  }
  CHECK_EQ(fired, 10);
  now += 35000;  // the loop was blocked for 35 s
  CHECK(t.due(now));
  CHECK(!t.due(now + 9999));
  CHECK(t.due(now + 10000));
}

TEST(clock_counts_as_synced_only_after_sntp) {
  CHECK_EQ(synced_unix_s(0), 0u);
  CHECK_EQ(synced_unix_s(28800), 0u);  // ESP8266 clock before SNTP
  CHECK_EQ(synced_unix_s(1732300000), 1732300000u);
  CHECK_EQ(synced_unix_s(0x100000000ll), 0u);
}
