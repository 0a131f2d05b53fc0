// OLED page rotation and text; the WiFi reconnect state machine.
#include <limits>

#include "check.h"
#include "gridtwin/oled_pages.h"
#include "gridtwin/wifi_policy.h"
#include "support.h"

using namespace gridtwin;

TEST(oled_rotates_through_the_six_quantities_every_two_seconds) {
  const Field order[] = {kVoltage, kCurrent, kPower, kEnergy, kFrequency, kPowerFactor, kVoltage};
  for (uint32_t page = 0; page < 7; ++page) {
    CHECK_EQ(oled_page_at(page * 2000), order[page]);
    CHECK_EQ(oled_page_at(page * 2000 + 1999), order[page]);
  }
  CHECK(oled_page_at(0xFFFFFFFFu) < kFieldCount);
  CHECK_EQ(oled_page_at(0), kVoltage);  // after the wrap the rotation restarts
}

TEST(oled_page_text) {
  const Measurement m = Measurement::from(support::typical());
  const LinkStatus up{true, 0, 0};
  OledPage p = oled_page(0, m, up);
  CHECK_EQ(p.title, "Voltage");
  CHECK_EQ(p.value, "229.8");
  CHECK_EQ(p.unit, "V");
  CHECK_EQ(p.status, "WiFi ok  queue 0");
  p = oled_page(6500, m, LinkStatus{false, 123, 4});
  CHECK_EQ(p.title, "Energy");
  CHECK_EQ(p.value, "12.345");
  CHECK_EQ(p.unit, "kWh");
  CHECK_EQ(p.status, "WiFi --  queue 123 lo");  // cut at the display's 21 columns, never overrun
  p = oled_page(10000, m, up);
  CHECK_EQ(p.title, "Power factor");
  CHECK_EQ(p.value, "0.93");
  CHECK_EQ(p.unit, "");
  p = oled_page(2000, Measurement::from(Sample::failed()), up);
  CHECK_EQ(p.value, "---");
}

TEST(wifi_begins_at_boot_and_reports_the_link) {
  WifiPolicy w;
  CHECK(w.update(1000, false) == WifiAction::kBegin);
  CHECK(!w.link_up());
  CHECK(w.update(3000, false) == WifiAction::kNone);
  CHECK(w.update(4000, true) == WifiAction::kNone);
  CHECK(w.link_up());
  WifiPolicy already;  // the SDK joined before the first loop(): no needless begin()
  CHECK(already.update(1000, true) == WifiAction::kNone);
  CHECK(already.link_up());
}

TEST(wifi_drop_gets_a_grace_period_then_retries_with_growing_pauses) {
  WifiPolicyConfig cfg;  // timeout 20 s, grace 10 s, pauses 5 s doubling to 120 s
  WifiPolicy w(cfg);
  uint32_t t = 0xFFFF0000u;  // crosses the millis() wrap on the way
  w.update(t, false);
  w.update(t, true);
  CHECK(w.update(t += 1000, false) == WifiAction::kNone);  // dropped: SDK auto-reconnect first
  CHECK(!w.link_up());
  CHECK(w.update(t + 9999, false) == WifiAction::kNone);
  CHECK(w.update(t += 10000, false) == WifiAction::kBegin);
  const uint32_t pauses[] = {5000, 10000, 20000, 40000, 80000, 120000, 120000};
  for (uint32_t pause : pauses) {
    CHECK(w.update(t + 19999, false) == WifiAction::kNone);
    CHECK(w.update(t += 20000, false) == WifiAction::kNone);  // attempt timed out
    CHECK_EQ(w.pause_ms(), pause);
    CHECK(w.update(t + pause - 1, false) == WifiAction::kNone);
    CHECK(w.update(t += pause, false) == WifiAction::kBegin);
  }
  CHECK(w.update(t += 3000, true) == WifiAction::kNone);
  CHECK(w.link_up());
  CHECK_EQ(w.failed_attempts(), 0u);
}
