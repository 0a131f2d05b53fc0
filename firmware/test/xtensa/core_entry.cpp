// The portable core as the sketch uses it, compiled for the ESP8266's CPU (Xtensa LX106) with
// Debian's gcc-xtensa-lx106 and picolibc: proves the core builds with the C headers the
// device toolchain has, and gives its flash and RAM footprint (firmware/footprint.py).
// The socket is declared, not defined: the sketch's WiFiClient adapter supplies it at link time.
#include <stddef.h>
#include <stdint.h>

#include <gridtwin/mqtt.h>
#include <gridtwin/node.h>
#include <gridtwin/oled_pages.h>
#include <gridtwin/timing.h>
#include <gridtwin/uplink.h>
#include <gridtwin/wifi_policy.h>

#ifndef GT_BUFFER_READINGS
#define GT_BUFFER_READINGS 256
#endif

struct DeviceSocket {
  bool connect(const char* host, uint16_t port);
  bool connected();
  void stop();
  size_t write(const uint8_t* data, size_t n);
  int read();
  uint32_t millis();
  void idle();
};

namespace {
gridtwin::Node<GT_BUFFER_READINGS> node("esp8266-3c71bf");
gridtwin::WifiPolicy wifi;
DeviceSocket socket;
gridtwin::MqttConfig mqtt_config() {
  gridtwin::MqttConfig c;
  c.host = "192.168.1.10";
  c.client_id = "esp8266-3c71bf";
  c.device_id = "esp8266-3c71bf";
  c.api_key = "key";
  return c;
}
gridtwin::MqttUplink<DeviceSocket> mqtt_uplink(socket, mqtt_config());
char body[8192];
}  // namespace

extern "C" {

void gt_begin(uint32_t now_ms, uint32_t boot) { node.begin(now_ms, boot); }

void gt_sample(const float* values, uint32_t now_ms, uint32_t unix_s) {
  gridtwin::Sample s{};
  for (uint8_t f = 0; f < gridtwin::kFieldCount; ++f) s.value[f] = values[f];
  node.add_sample(s);
  node.close_period_if_due(now_ms, unix_s);
}

int gt_wifi(uint32_t now_ms, bool connected) { return static_cast<int>(wifi.update(now_ms, connected)); }

// One send step over HTTP (status from the HTTP client) or MQTT (status < -1000 selects MQTT).
size_t gt_send(uint32_t now_ms, int http_status, uint32_t random) {
  if (!node.send_due(now_ms, wifi.link_up())) return 0;
  const size_t length = node.build_post(body, sizeof body, now_ms);
  if (length == 0) return 0;
  const gridtwin::PostOutcome outcome = http_status < -1000 ? mqtt_uplink.publish(body, length)
                                                            : gridtwin::classify_http_status(http_status);
  node.on_post_result(outcome, now_ms, random);
  return length;
}

const char* gt_page(uint32_t now_ms) {
  static gridtwin::OledPage page;
  page = gridtwin::oled_page(now_ms, node.latest(), {wifi.link_up(), node.pending(), node.dropped()});
  return page.value;
}

uint32_t gt_synced(int64_t unix_s) { return gridtwin::synced_unix_s(unix_s); }

}  // extern "C"
