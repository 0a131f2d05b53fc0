// The portable headers compile and work after Arduino's macros (see arduino_macros_stub.h),
// and pull in nothing Arduino-specific: this file is built without any Arduino header path.
#include "arduino_macros_stub.h"

#include "gridtwin/aggregator.h"
#include "gridtwin/backoff.h"
#include "gridtwin/bounded_writer.h"
#include "gridtwin/measurement.h"
#include "gridtwin/node.h"
#include "gridtwin/oled_pages.h"
#include "gridtwin/payload.h"
#include "gridtwin/ring_buffer.h"
#include "gridtwin/timing.h"
#include "gridtwin/uplink.h"
#include "gridtwin/wifi_policy.h"

#include "check.h"

#if defined(ARDUINO) || defined(ESP8266)
#error "the host tests must build without any Arduino or ESP8266 definitions"
#endif

TEST(portable_headers_work_under_arduino_macros) {
  gridtwin::Node<4> node("esp8266-macro");
  node.begin(0, 1);
  node.add_sample(gridtwin::Sample{{230.0f, 0.5f, 100.0f, 1.5f, 50.0f, 0.9f}});
  CHECK(node.close_period_if_due(10000, 0));
  char body[600];
  CHECK(node.send_due(10000, true));
  const size_t length = node.build_post(body, sizeof body, 10250);
  CHECK_EQ(body,
           "{\"v\":1,\"device_id\":\"esp8266-macro\",\"boot\":1,\"seq\":0,\"age_ms\":250,\"voltage\":230.0,"
           "\"current\":0.500,\"power\":100.0,\"energy\":1.500,\"frequency\":50.0,\"pf\":0.90,\"sensor_error\":false}");
  CHECK_EQ(length, std::strlen(body));
  node.on_post_result(gridtwin::classify_http_status(201), 10300, 0);
  CHECK_EQ(node.pending(), 0u);
  gridtwin::WifiPolicy wifi;
  CHECK(wifi.update(0, false) == gridtwin::WifiAction::kBegin);
  CHECK_EQ(gridtwin::oled_page(2000, node.latest(), {true, 0, 0}).value, "0.500");
}
