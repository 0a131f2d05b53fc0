// Host test entry point. `gridtwin_host_tests` runs every TEST; `gridtwin_host_tests --payloads`
// prints payload bodies built by the firmware code, one per line, for tests/test_firmware.py
// to feed to the Python reader; `gridtwin_host_tests --mqtt-publish HOST PORT DEVICE KEY N`
// queues N readings in a Node and publishes them to a real broker through MqttUplink, the
// way the sketch does (tests/test_collect_mqtt.py checks the collector logged them).
#include <cstdio>
#include <limits>
#include <cstring>

#include <cstdlib>
#include <ctime>

#include "check.h"
#include "gridtwin/mqtt.h"
#include "gridtwin/node.h"
#include "gridtwin/payload.h"
#include "posix_socket.h"
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

// Queues `count` readings (the first alone, the rest as a backlog batch of <= 30) and publishes
// them; prints "delivered D pending P" and returns 0 when everything was delivered.
int mqtt_publish(const char* host, const char* port, const char* device, const char* key, const char* count_text) {
  gridtwin::MqttConfig config;
  config.host = host;
  config.port = static_cast<uint16_t>(std::atoi(port));
  config.client_id = device;
  config.device_id = device;
  config.api_key = key;
  support::PosixSocket socket;
  gridtwin::MqttUplink<support::PosixSocket> uplink(socket, config);
  gridtwin::Node<64> node(device);
  const uint32_t count = static_cast<uint32_t>(std::atoi(count_text));
  const uint32_t unix_now = static_cast<uint32_t>(std::time(nullptr));
  node.begin(0, 77);
  support::Random random;
  char body[8192];
  for (uint32_t period = 1; period <= count; ++period) {
    node.add_sample(support::sample(230.0f + static_cast<float>(period) / 10.0f, 1.0f, 200.0f, 1.0f, 50.0f, 0.95f));
    node.close_period_if_due(period * 10000, unix_now - (count - period) * 10);
    if (period > 1 && period < count) continue;  // the middle readings wait: a backlog
    for (int attempt = 0; attempt < 5 && node.pending() > 0; ++attempt) {
      const size_t length = node.build_post(body, sizeof body, period * 10000);
      node.on_post_result(uplink.publish(body, length), period * 10000, random());
    }
  }
  uplink.close();
  std::printf("delivered %u pending %u\n", static_cast<unsigned>(node.delivered()), static_cast<unsigned>(node.pending()));
  return node.pending() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--payloads") == 0) return print_payloads();
  if (argc == 7 && std::strcmp(argv[1], "--mqtt-publish") == 0) return mqtt_publish(argv[2], argv[3], argv[4], argv[5], argv[6]);
  return check::run_all();
}
