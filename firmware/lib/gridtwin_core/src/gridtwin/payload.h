// Payload v1 text (see gridtwin_lib/ingest/firmware.py and firmware/README.md):
//   {"v":1,"device_id":"esp8266-3c71bf","boot":7,"seq":1234,"ts":1732300000,"age_ms":0,
//    "voltage":229.8,"current":0.412,"power":88.1,"energy":12.345,"frequency":50.0,"pf":0.93,
//    "sensor_error":false}
// A missing value is null (never 0) and sets sensor_error; ts is omitted while the clock is
// not synced; "dropped":N (readings lost to buffer overflow since boot) appears when N > 0.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "bounded_writer.h"
#include "measurement.h"

namespace gridtwin {

inline constexpr uint32_t kPayloadVersion = 1;
inline constexpr size_t kMaxDeviceIdBytes = 32;
// Longest reading object: every number at 10 digits, a 32-byte device id escaped as \u00XX.
inline constexpr size_t kMaxReadingJsonBytes = 480;

struct DeviceIdentity {
  const char* device_id;  // the name registered with `gridtwin devices add NAME`
  uint32_t boot;          // random at boot: (device_id, boot, seq) is unique
};

inline void write_reading(BoundedWriter& w, const DeviceIdentity& id, const Reading& r, uint32_t now_ms,
                          uint32_t dropped) {
  w.put("{\"v\":");
  w.put_uint(kPayloadVersion);
  w.put(",\"device_id\":");
  w.put_json_string(id.device_id);
  w.put(",\"boot\":");
  w.put_uint(id.boot);
  w.put(",\"seq\":");
  w.put_uint(r.seq);
  if (r.unix_s != 0) {
    w.put(",\"ts\":");
    w.put_uint(r.unix_s);
  }
  w.put(",\"age_ms\":");
  w.put_uint(now_ms - r.taken_ms);
  for (uint8_t f = 0; f < kFieldCount; ++f) {
    const FieldSpec& spec = kFieldSpecs[f];
    w.put(",\"");
    w.put(spec.json_name);
    w.put("\":");
    if (r.m.has(static_cast<Field>(f))) {
      w.put_fixed(r.m.counts[f], spec.decimals);
    } else {
      w.put("null");
    }
  }
  w.put(r.sensor_error() ? ",\"sensor_error\":true" : ",\"sensor_error\":false");
  if (dropped > 0) {
    w.put(",\"dropped\":");
    w.put_uint(dropped);
  }
  w.put('}');
}

struct Batch {
  size_t count = 0;        // readings in the body
  uint32_t first_seq = 0;  // seq of the oldest one
  uint32_t last_seq = 0;   // seq of the newest one
  size_t length = 0;       // body bytes, 0 when not even one reading fits
};

// The oldest readings of `queue` (at most max_count, as many whole ones as fit the writer's
// buffer) as one body: a bare object for a single reading, a JSON array for several.
template <typename Queue>
Batch write_batch(BoundedWriter& w, const DeviceIdentity& id, const Queue& queue, size_t max_count,
                  uint32_t now_ms, uint32_t dropped) {
  Batch batch;
  const size_t want = queue.size() < max_count ? queue.size() : max_count;
  if (want == 0) return batch;
  const size_t start = w.length();
  const bool as_array = want > 1;
  if (as_array) w.put('[');
  for (size_t i = 0; i < want; ++i) {
    const size_t mark = w.length();
    if (i > 0) w.put(',');
    write_reading(w, id, queue.at(i), now_ms, dropped);
    if (as_array && w.ok()) w.put(']');  // the array must still close after this element
    if (!w.ok()) {
      w.rewind(mark);
      break;
    }
    if (as_array) w.rewind(w.length() - 1);  // drop the trial ']'
    ++batch.count;
  }
  if (batch.count == 0) {
    w.rewind(start);
    return batch;
  }
  if (as_array) w.put(']');
  batch.first_seq = queue.at(0).seq;
  batch.last_seq = queue.at(batch.count - 1).seq;
  batch.length = w.length() - start;
  return batch;
}

}  // namespace gridtwin
