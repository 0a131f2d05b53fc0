// What the 128x64 SSD1306 shows: one quantity per page, the page advancing every 2 s, as a
// pure function of millis(). The sketch only draws the returned text.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "bounded_writer.h"
#include "measurement.h"

namespace gridtwin {

inline constexpr uint32_t kOledPageMs = 2000;

// Voltage, current, power, energy, frequency, power factor, then voltage again. At the
// millis() wrap (every 49.7 days) the rotation restarts at voltage: one page is cut short.
inline Field oled_page_at(uint32_t now_ms) { return static_cast<Field>((now_ms / kOledPageMs) % kFieldCount); }

struct LinkStatus {
  bool wifi_up;
  size_t pending;    // readings waiting for the collector
  uint32_t dropped;  // readings lost to buffer overflow since boot
};

struct OledPage {
  Field field;
  char title[16];   // "Voltage"
  char value[12];   // "229.8", or "---" when the sensor gave no value
  char unit[4];     // "V"
  char status[22];  // 21 columns of the 6x8 font: "WiFi ok  queue 3"
};

inline OledPage oled_page(uint32_t now_ms, const Measurement& latest, const LinkStatus& link) {
  OledPage page{};
  page.field = oled_page_at(now_ms);
  const FieldSpec& spec = kFieldSpecs[page.field];
  BoundedWriter(page.title, sizeof page.title).put(spec.label);
  BoundedWriter(page.unit, sizeof page.unit).put(spec.unit);
  BoundedWriter value(page.value, sizeof page.value);
  if (latest.has(page.field)) {
    value.put_fixed(latest.counts[page.field], spec.decimals);
  } else {
    value.put("---");
  }
  BoundedWriter status(page.status, sizeof page.status);
  status.put(link.wifi_up ? "WiFi ok" : "WiFi --");
  status.put("  queue ");
  status.put_uint(static_cast<uint32_t>(link.pending));
  if (link.dropped > 0) {
    status.put(" lost ");
    status.put_uint(link.dropped);
  }
  return page;
}

}  // namespace gridtwin
