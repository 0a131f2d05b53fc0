// Host test entry point. `gridtwin_host_tests` runs every TEST; `gridtwin_host_tests --payloads`
// prints payload bodies built by the firmware code, one per line, for tests/test_firmware.py
// to feed to the Python reader.
#include <cstdio>
#include <limits>
#include <cstring>

#include "check.h"
#include "gridtwin/node.h"
#include "gridtwin/payload.h"
#include "support.h"

namespace {

void print_reading(const gridtwin::DeviceIdentity& id, const gridtwin::Reading& r) {
  char buf[gridtwin::kMaxReadingJsonBytes + 1];
  gridtwin::BoundedWriter w(buf, sizeof buf);
  gridtwin::write_reading(w, id, r, r.taken_ms + 40, 0);
  std::printf("%s\n", buf);
}

// 1: a typical reading; 2: the sensor failed all period; 3: frequency missing; 4: a device id
// that needs escaping; 5: a batch of three readings from the Node, the way a backlog is sent.
int print_payloads() {
  const gridtwin::DeviceIdentity id{"esp8266-3c71bf", 7};
  print_reading(id, support::reading(1234, support::typical(), 5000, 1732300000));
  print_reading(id, support::reading(1235, gridtwin::Sample::failed(), 15000, 1732300010));
  gridtwin::Sample no_frequency = support::typical();
  no_frequency.value[gridtwin::kFrequency] = std::numeric_limits<float>::quiet_NaN();
  print_reading(id, support::reading(1236, no_frequency, 25000, 1732300020));
  print_reading({"bench \"B\"\\1", 8}, support::reading(1, support::typical(), 35000, 1732300030));

  gridtwin::Node<8> node("esp8266-3c71bf");
  node.begin(0, 9);
  for (uint32_t period = 1; period <= 3; ++period) {
    for (int k = 0; k < 100; ++k) node.add_sample(support::sample(230.0f + static_cast<float>(period), 1.0f, 200.0f,
                                                                  static_cast<float>(period), 50.0f, 0.95f));
    node.close_period_if_due(period * 10000, 1732300000 + period * 10);
  }
  char body[4096];
  if (node.build_post(body, sizeof body, 30000) == 0) return 1;
  std::printf("%s\n", body);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--payloads") == 0) return print_payloads();
  return check::run_all();
}
