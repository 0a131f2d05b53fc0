// One PZEM-004T v3 measurement as fixed-point counts at the sensor's own resolution.
//
// Portable C++17, no Arduino header: compiled by the firmware and by the host tests.
// Values are kept as integer counts (0.1 V, 0.001 A, 0.1 W, 1 Wh, 0.1 Hz, 0.01) so the
// payload prints exact decimals without printf("%f") and a buffered reading costs 40 bytes.
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>

namespace gridtwin {

enum Field : uint8_t { kVoltage, kCurrent, kPower, kEnergy, kFrequency, kPowerFactor, kFieldCount };

struct FieldSpec {
  const char* json_name;  // payload key (payload v1)
  const char* label;      // OLED page title
  const char* unit;       // unit of the payload value (SI, energy in kWh)
  uint32_t counts_per_unit;  // resolution of the PZEM-004T v3 register
  uint8_t decimals;          // log10(counts_per_unit): digits after the point in the payload
};

inline constexpr FieldSpec kFieldSpecs[kFieldCount] = {
    {"voltage", "Voltage", "V", 10, 1},
    {"current", "Current", "A", 1000, 3},
    {"power", "Power", "W", 10, 1},
    {"energy", "Energy", "kWh", 1000, 3},  // 1 Wh resolution
    {"frequency", "Frequency", "Hz", 10, 1},
    {"pf", "Power factor", "", 100, 2},
};

inline constexpr uint8_t kAllFields = static_cast<uint8_t>((1u << kFieldCount) - 1u);

// A value converted to counts; false when the sensor gave NaN/inf, a negative value
// (no PZEM register is signed) or one too large for 32 bits: all are read errors.
inline bool to_counts(double value, Field field, uint32_t& counts) {
  if (!isfinite(value) || value < 0.0) return false;
  const double scaled = value * kFieldSpecs[field].counts_per_unit + 0.5;  // round half up
  if (scaled >= 4294967296.0) return false;
  counts = static_cast<uint32_t>(scaled);
  return true;
}

// One sensor sample as the PZEM004Tv30 library returns it (NaN on a failed read).
struct Sample {
  float value[kFieldCount];

  static Sample failed() {
    Sample s{};
    for (float& v : s.value) v = NAN;
    return s;
  }
};

struct Measurement {
  uint32_t counts[kFieldCount];  // value x counts_per_unit, meaningful only where valid
  uint8_t valid;                 // bit f set: counts[f] is a value; clear: the sensor gave none

  bool has(Field f) const { return (valid >> f) & 1u; }
  bool complete() const { return valid == kAllFields; }

  static Measurement from(const Sample& s) {
    Measurement m{};
    for (uint8_t f = 0; f < kFieldCount; ++f) {
      if (to_counts(s.value[f], static_cast<Field>(f), m.counts[f])) m.valid |= static_cast<uint8_t>(1u << f);
    }
    return m;
  }
};

// One aggregated 10 s reading waiting in RAM until the collector acknowledges it.
struct Reading {
  uint32_t seq;       // per boot, +1 per reading
  uint32_t taken_ms;  // millis() when the period closed (age_ms = now - taken_ms, wrap-safe)
  uint32_t unix_s;    // UTC seconds when the period closed; 0 while the clock is not NTP-synced
  Measurement m;

  bool sensor_error() const { return !m.complete(); }
};

static_assert(sizeof(Reading) <= 40, "a buffered reading should stay within 40 bytes of RAM");

}  // namespace gridtwin
