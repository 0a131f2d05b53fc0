// Turns the 100 ms samples of one report period into one reading: mean voltage, current,
// power, frequency and power factor over the samples where the sensor gave a value, and the
// last energy counter value. A field with no value in the whole period stays null.
#pragma once

#include <stdint.h>

#include "measurement.h"

namespace gridtwin {

class Aggregator {
 public:
  void add(const Sample& sample) {
    for (uint8_t f = 0; f < kFieldCount; ++f) {
      const float v = sample.value[f];
      if (!isfinite(v) || v < 0.0f) continue;  // NaN: failed Modbus read
      if (f == kEnergy) {  // a counter: its last value, not its mean
        sum_[f] = v;
        n_[f] = 1;
      } else {
        sum_[f] += v;
        ++n_[f];
      }
    }
    ++samples_;
  }

  // The period's measurement; starts the next period.
  Measurement close() {
    Measurement m{};
    for (uint8_t f = 0; f < kFieldCount; ++f) {
      if (n_[f] > 0 && to_counts(sum_[f] / n_[f], static_cast<Field>(f), m.counts[f])) {
        m.valid |= static_cast<uint8_t>(1u << f);
      }
    }
    *this = Aggregator();
    return m;
  }

  uint16_t samples() const { return samples_; }  // samples taken in this period, valid or not

 private:
  double sum_[kFieldCount] = {};
  uint16_t n_[kFieldCount] = {};
  uint16_t samples_ = 0;
};

}  // namespace gridtwin
