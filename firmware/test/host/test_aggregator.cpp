// 10 s aggregation of 100 ms samples: means over valid samples, last energy, NaN handling.
#include <limits>

#include "check.h"
#include "gridtwin/aggregator.h"
#include "support.h"

using namespace gridtwin;

namespace {
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
}

TEST(mean_of_valid_samples_and_last_energy) {
  Aggregator agg;
  for (int k = 0; k < 100; ++k) {
    const float step = static_cast<float>(k % 2);  // alternates 0, 1
    agg.add(support::sample(229.0f + step, 1.0f + step, 100.0f + 10.0f * step, 12.000f + 0.001f * static_cast<float>(k),
                            50.0f, 0.90f + 0.02f * step));
  }
  agg.add(Sample::failed());  // a failed read: excluded, not averaged in as 0
  CHECK_EQ(agg.samples(), 101u);
  const Measurement m = agg.close();
  CHECK(m.complete());
  CHECK_EQ(m.counts[kVoltage], 2295u);   // 229.5 V
  CHECK_EQ(m.counts[kCurrent], 1500u);   // 1.500 A
  CHECK_EQ(m.counts[kPower], 1050u);     // 105.0 W
  CHECK_EQ(m.counts[kEnergy], 12099u);   // last valid: 12.099 kWh
  CHECK_EQ(m.counts[kFrequency], 500u);  // 50.0 Hz
  CHECK_EQ(m.counts[kPowerFactor], 91u);
}

TEST(period_without_a_valid_sample_is_a_sensor_error_reading) {
  Aggregator agg;
  for (int k = 0; k < 100; ++k) agg.add(Sample::failed());
  const Measurement m = agg.close();
  CHECK_EQ(m.valid, 0u);
  Aggregator empty;  // no sample at all (the loop was blocked): the same
  CHECK_EQ(empty.close().valid, 0u);
}

TEST(a_field_missing_all_period_is_null_the_others_keep_their_means) {
  Aggregator agg;
  agg.add(support::sample(230.0f, 0.5f, kNaN, 1.0f, 50.0f, 1.0f));
  agg.add(support::sample(232.0f, kNaN, kNaN, kNaN, 50.0f, 1.0f));
  const Measurement m = agg.close();
  CHECK(!m.has(kPower));
  CHECK(!m.complete());
  CHECK_EQ(m.counts[kVoltage], 2310u);
  CHECK_EQ(m.counts[kCurrent], 500u);
  CHECK_EQ(m.counts[kEnergy], 1000u);  // the one valid energy value
}

TEST(close_starts_a_fresh_period) {
  Aggregator agg;
  agg.add(support::sample(100.0f, 1.0f, 1.0f, 1.0f, 50.0f, 1.0f));
  agg.close();
  CHECK_EQ(agg.samples(), 0u);
  agg.add(support::sample(200.0f, 1.0f, 1.0f, 2.0f, 50.0f, 1.0f));
  const Measurement m = agg.close();
  CHECK_EQ(m.counts[kVoltage], 2000u);
  CHECK_EQ(m.counts[kEnergy], 2000u);
}
