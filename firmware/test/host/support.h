// Builders shared by the host tests.
#pragma once

#include <cmath>
#include <cstdint>

#include "gridtwin/measurement.h"

namespace support {

inline gridtwin::Sample sample(float v, float i, float p, float e_kwh, float f, float pf) {
  return gridtwin::Sample{{v, i, p, e_kwh, f, pf}};
}

inline gridtwin::Reading reading(uint32_t seq, const gridtwin::Sample& s, uint32_t taken_ms = 0,
                                 uint32_t unix_s = 1732300000) {
  gridtwin::Reading r{};
  r.seq = seq;
  r.taken_ms = taken_ms;
  r.unix_s = unix_s;
  r.m = gridtwin::Measurement::from(s);
  return r;
}

inline gridtwin::Sample typical() { return sample(229.8f, 0.412f, 88.1f, 12.345f, 50.0f, 0.93f); }

// xorshift32: deterministic stand-in for ESP.random().
struct Random {
  uint32_t state = 2463534242u;
  uint32_t operator()() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
  }
};

}  // namespace support
