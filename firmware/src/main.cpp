// GridTwin energy monitor: ESP8266 NodeMCU + PZEM-004T v3 (9600 baud) + SSD1306 OLED (0x3C).
// This file only wires hardware libraries to the portable logic in lib/gridtwin_core, which
// the host tests exercise (firmware/test/host). Not compiled on the build machine: see README.
#include <Arduino.h>
#include <Adafruit_GFX.h>
#include <Adafruit_SSD1306.h>
#include <ESP8266HTTPClient.h>
#include <ESP8266WiFi.h>
#include <PZEM004Tv30.h>
#include <SoftwareSerial.h>
#include <WiFiClient.h>
#include <Wire.h>
#include <time.h>

#if __has_include("config.h")
#include "config.h"
#else
#error "Copy src/config.example.h to src/config.h and fill in WiFi, collector URL, device id and API key"
#endif

#include <gridtwin/mqtt.h>
#include <gridtwin/node.h>
#include <gridtwin/oled_pages.h>
#include <gridtwin/timing.h>
#include <gridtwin/wifi_policy.h>

static_assert(sizeof(GT_DEVICE_ID) - 1 <= gridtwin::kMaxDeviceIdBytes, "GT_DEVICE_ID is longer than 32 bytes");

namespace {

constexpr uint8_t kPzemRxPin = D5;  // GPIO14 <- PZEM TX
constexpr uint8_t kPzemTxPin = D6;  // GPIO12 -> PZEM RX
constexpr uint8_t kOledSdaPin = D2;  // GPIO4
constexpr uint8_t kOledSclPin = D1;  // GPIO5
constexpr uint8_t kOledAddress = 0x3C;
constexpr uint32_t kSamplePeriodMs = 100;
constexpr uint32_t kOledRefreshMs = 500;
constexpr uint16_t kHttpTimeoutMs = 3000;  // the loop (and sampling) blocks at most this long
constexpr size_t kPostBufferBytes = 8192;  // 30 readings of a short device id take ~7 KiB
static_assert(kPostBufferBytes >= gridtwin::kMaxReadingJsonBytes + 3, "POST buffer must hold one reading");

SoftwareSerial pzem_serial(kPzemRxPin, kPzemTxPin);
// The Stream constructor leaves begin() to setup() and can be re-run after a millis() wrap.
PZEM004Tv30 pzem(static_cast<Stream&>(pzem_serial));
Adafruit_SSD1306 display(128, 64, &Wire, -1);
WiFiClient wifi_client;
HTTPClient http;

#if GT_UPLINK_MQTT
// WiFiClient with the millis()/idle() MqttUplink needs; everything else is WiFiClient's own.
struct MqttSocket {
  WiFiClient client;
  bool connect(const char* host, uint16_t port) { return client.connect(host, port); }
  bool connected() { return client.connected(); }
  void stop() { client.stop(); }
  size_t write(const uint8_t* data, size_t n) { return client.write(data, n); }
  int read() { return client.read(); }
  uint32_t millis() { return ::millis(); }
  void idle() { yield(); }
};
MqttSocket mqtt_socket;
gridtwin::MqttConfig mqtt_config() {
  gridtwin::MqttConfig c;
  c.host = GT_MQTT_HOST;
  c.port = GT_MQTT_PORT;
  c.client_id = GT_DEVICE_ID;
  c.device_id = GT_DEVICE_ID;
  c.api_key = GT_API_KEY;
  c.username = GT_MQTT_USERNAME;
  c.password = GT_MQTT_PASSWORD;
  c.timeout_ms = kHttpTimeoutMs;
  return c;
}
gridtwin::MqttUplink<MqttSocket> mqtt_uplink(mqtt_socket, mqtt_config());
#endif

gridtwin::Node<GT_BUFFER_READINGS> node(GT_DEVICE_ID);
gridtwin::WifiPolicy wifi;
gridtwin::PeriodTimer sample_timer(kSamplePeriodMs);
gridtwin::PeriodTimer oled_timer(kOledRefreshMs);
char post_body[kPostBufferBytes];  // static: no heap use per POST for the body
bool display_ok = false;
uint32_t last_loop_ms = 0;

gridtwin::Sample read_sensor() {
  gridtwin::Sample s{};
  // voltage() performs the Modbus read; the other getters return values from that same read.
  // A failed read costs up to 100 ms per getter, so the other five are not tried after it.
  s.value[gridtwin::kVoltage] = pzem.voltage();
  if (std::isnan(s.value[gridtwin::kVoltage])) return gridtwin::Sample::failed();
  s.value[gridtwin::kCurrent] = pzem.current();
  s.value[gridtwin::kPower] = pzem.power();
  s.value[gridtwin::kEnergy] = pzem.energy();  // kWh, 1 Wh resolution
  s.value[gridtwin::kFrequency] = pzem.frequency();
  s.value[gridtwin::kPowerFactor] = pzem.pf();
  return s;
}

void post_next_batch(uint32_t now_ms) {
  const size_t length = node.build_post(post_body, sizeof post_body, now_ms);
  if (length == 0) return;
#if GT_UPLINK_MQTT
  node.on_post_result(mqtt_uplink.publish(post_body, length), millis(), ESP.random());
  return;
#endif
  http.begin(wifi_client, GT_COLLECTOR_URL);
  http.addHeader("Content-Type", "application/json");
  http.addHeader("X-API-Key", GT_API_KEY);
  const int status = http.POST(reinterpret_cast<uint8_t*>(post_body), length);
  http.end();
  node.on_post_result(gridtwin::classify_http_status(status), millis(), ESP.random());
}

void draw(uint32_t now_ms) {
  const gridtwin::OledPage page =
      gridtwin::oled_page(now_ms, node.latest(), {wifi.link_up(), node.pending(), node.dropped()});
  display.clearDisplay();
  display.setTextColor(SSD1306_WHITE);
  display.setTextSize(1);
  display.setCursor(0, 0);
  display.print(page.title);
  display.setTextSize(strlen(page.value) <= 7 ? 3 : 2);  // 18 px per character at size 3
  display.setCursor(0, 18);
  display.print(page.value);
  display.setTextSize(1);
  display.print(' ');
  display.print(page.unit);
  display.setCursor(0, 56);
  display.print(page.status);
  display.display();
}

}  // namespace

void setup() {
  Serial.begin(115200);
  pzem_serial.begin(PZEM_BAUD_RATE);
  Wire.begin(kOledSdaPin, kOledSclPin);
  display_ok = display.begin(SSD1306_SWITCHCAPVCC, kOledAddress, true, false);
  if (!display_ok) Serial.println(F("SSD1306 not found at 0x3C: running without display"));

  WiFi.persistent(false);  // do not rewrite flash on every begin()
  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  configTime(0, 0, "pool.ntp.org", "time.nist.gov");  // UTC; SNTP syncs in the background

  http.setReuse(true);
  http.setTimeout(kHttpTimeoutMs);

  const uint32_t now = millis();
  node.begin(now, ESP.random());  // boot id: (device_id, boot, seq) stays unique across reboots
  sample_timer.start(now);
  oled_timer.start(now);
  last_loop_ms = now;
}

void loop() {
  const uint32_t now = millis();
  if (now < last_loop_ms) {
    // millis() wrapped (49.7 days): PZEM004Tv30 keeps its last-read time in 64 bits and
    // compares it with millis(), so it would return cached values forever. Start it afresh.
    pzem = PZEM004Tv30(static_cast<Stream&>(pzem_serial));
  }
  last_loop_ms = now;

  if (sample_timer.due(now)) node.add_sample(read_sensor());
  node.close_period_if_due(now, gridtwin::synced_unix_s(static_cast<int64_t>(time(nullptr))));

  if (wifi.update(now, WiFi.status() == WL_CONNECTED) == gridtwin::WifiAction::kBegin) {
    WiFi.begin(GT_WIFI_SSID, GT_WIFI_PASSWORD);
  }
  if (node.send_due(now, wifi.link_up())) post_next_batch(now);

  if (display_ok && oled_timer.due(now)) draw(now);
}
