// Payload text: exact v1 JSON, null for NaN, rounding to the PZEM resolutions, escaping, batches.
#include <cmath>
#include <cstring>
#include <limits>

#include "check.h"
#include "gridtwin/payload.h"
#include "gridtwin/ring_buffer.h"
#include "support.h"

using namespace gridtwin;

namespace {

const DeviceIdentity kId{"esp8266-3c71bf", 7};
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Text {
  char buf[1024];
  BoundedWriter w{buf, sizeof buf};
};

const char* one(const Reading& r, uint32_t now_ms = 0, uint32_t dropped = 0, const DeviceIdentity& id = kId) {
  static Text t;
  t.w.rewind(0);
  write_reading(t.w, id, r, now_ms, dropped);
  return t.w.ok() ? t.buf : "<overflow>";
}

const char* value_text(Field f, float value) {  // the payload text of one field
  static char out[32];
  Sample s = support::typical();
  s.value[f] = value;
  const char* text = one(support::reading(1, s));
  char key[24] = ",\"";
  std::strcat(key, kFieldSpecs[f].json_name);
  std::strcat(key, "\":");
  const char* at = std::strstr(text, key) + std::strlen(key);
  const size_t n = std::strcspn(at, ",}");
  std::memcpy(out, at, n);
  out[n] = '\0';
  return out;
}

}  // namespace

TEST(payload_matches_the_v1_contract_exactly) {
  CHECK_EQ(one(support::reading(1234, support::typical())),
           "{\"v\":1,\"device_id\":\"esp8266-3c71bf\",\"boot\":7,\"seq\":1234,\"ts\":1732300000,\"age_ms\":0,"
           "\"voltage\":229.8,\"current\":0.412,\"power\":88.1,\"energy\":12.345,\"frequency\":50.0,\"pf\":0.93,"
           "\"sensor_error\":false}");
}

TEST(nan_is_null_with_sensor_error_never_zero) {
  CHECK_EQ(one(support::reading(5, Sample::failed())),
           "{\"v\":1,\"device_id\":\"esp8266-3c71bf\",\"boot\":7,\"seq\":5,\"ts\":1732300000,\"age_ms\":0,"
           "\"voltage\":null,\"current\":null,\"power\":null,\"energy\":null,\"frequency\":null,\"pf\":null,"
           "\"sensor_error\":true}");
  Sample partial = support::typical();
  partial.value[kFrequency] = kNaN;
  const char* text = one(support::reading(6, partial));
  CHECK(std::strstr(text, "\"frequency\":null,") != nullptr);
  CHECK(std::strstr(text, "\"voltage\":229.8,") != nullptr);
  CHECK(std::strstr(text, "\"sensor_error\":true}") != nullptr);
}

TEST(values_round_to_the_sensor_resolution) {
  CHECK_EQ(value_text(kVoltage, 229.849f), "229.8");
  CHECK_EQ(value_text(kVoltage, 229.85f), "229.9");  // half up
  CHECK_EQ(value_text(kVoltage, 0.0f), "0.0");
  CHECK_EQ(value_text(kCurrent, 0.0004f), "0.000");
  CHECK_EQ(value_text(kCurrent, 0.0006f), "0.001");
  CHECK_EQ(value_text(kCurrent, 100.0f), "100.000");
  CHECK_EQ(value_text(kPower, 23000.04f), "23000.0");
  CHECK_EQ(value_text(kEnergy, 0.001f), "0.001");  // 1 Wh, energy in kWh
  CHECK_EQ(value_text(kEnergy, 9999.999f), "9999.999");
  CHECK_EQ(value_text(kFrequency, 49.96f), "50.0");
  CHECK_EQ(value_text(kPowerFactor, 1.0f), "1.00");
  CHECK_EQ(value_text(kPowerFactor, 0.05f), "0.05");
  CHECK_EQ(value_text(kPowerFactor, std::numeric_limits<float>::infinity()), "null");
  CHECK_EQ(value_text(kPower, -1.0f), "null");  // no PZEM register is signed: a read error
  CHECK_EQ(value_text(kEnergy, 5e9f), "null");  // does not fit 32-bit counts
}

TEST(device_id_is_escaped) {
  const DeviceIdentity odd{"lab \"A\"\\\n\t\x01 m\xc3\xa9ter", 1};
  const char* text = one(support::reading(0, support::typical()), 0, 0, odd);
  CHECK(std::strstr(text, "\"device_id\":\"lab \\\"A\\\"\\\\\\n\\t\\u0001 m\xc3\xa9ter\",") != nullptr);
}

TEST(ts_is_left_out_until_the_clock_is_synced_and_age_survives_the_millis_wrap) {
  Reading r = support::reading(3, support::typical(), 0xFFFFFF00u, 0);
  const char* text = one(r, 0x00000100u);
  CHECK(std::strstr(text, "\"ts\"") == nullptr);
  CHECK(std::strstr(text, ",\"seq\":3,\"age_ms\":512,") != nullptr);
}

TEST(dropped_appears_only_when_readings_were_lost) {
  const Reading r = support::reading(3, support::typical());
  CHECK(std::strstr(one(r, 0, 0), "dropped") == nullptr);
  CHECK(std::strstr(one(r, 0, 17), ",\"sensor_error\":false,\"dropped\":17}") != nullptr);
}

TEST(longest_possible_reading_fits_the_declared_bound) {
  char id[kMaxDeviceIdBytes + 1];
  std::memset(id, 0x01, kMaxDeviceIdBytes);  // every byte escaped to \u0001
  id[kMaxDeviceIdBytes] = '\0';
  Reading r{};
  r.seq = 0xFFFFFFFFu;
  r.unix_s = 0xFFFFFFFFu;
  r.taken_ms = 1;
  for (uint32_t& c : r.m.counts) c = 0xFFFFFFFFu;
  r.m.valid = 0x1F;  // sensor_error true, pf null
  const char* text = one(r, 0, 0xFFFFFFFFu, DeviceIdentity{id, 0xFFFFFFFFu});
  CHECK(std::strcmp(text, "<overflow>") != 0);
  CHECK(std::strlen(text) <= kMaxReadingJsonBytes);
}

TEST(writer_never_writes_past_its_buffer) {
  char buf[8];
  std::memset(buf, 'x', sizeof buf);
  BoundedWriter w(buf, 6);
  w.put("abcdefgh");
  CHECK(!w.ok());
  CHECK_EQ(w.length(), 5u);
  CHECK_EQ(buf, "abcde");
  CHECK_EQ(buf[6], 'x');
  w.rewind(2);
  CHECK(w.ok());
  CHECK_EQ(buf, "ab");
}

TEST(batch_is_an_array_in_seq_order_and_a_single_reading_a_bare_object) {
  RingBuffer<Reading, 40> queue;
  char buf[16384];
  BoundedWriter single(buf, sizeof buf);
  queue.push(support::reading(10, support::typical()));
  Batch b = write_batch(single, kId, queue, 30, 0, 0);
  CHECK_EQ(b.count, 1u);
  CHECK_EQ(buf[0], '{');
  CHECK_EQ(b.length, std::strlen(buf));
  for (uint32_t seq = 11; seq < 45; ++seq) queue.push(support::reading(seq, support::typical()));
  BoundedWriter w(buf, sizeof buf);
  b = write_batch(w, kId, queue, 30, 0, 0);
  CHECK_EQ(b.count, 30u);
  CHECK_EQ(b.first_seq, 10u);
  CHECK_EQ(b.last_seq, 39u);
  CHECK_EQ(buf[0], '[');
  CHECK_EQ(buf[b.length - 1], ']');
  CHECK(std::strstr(buf, "\"seq\":10,") < std::strstr(buf, "\"seq\":11,"));
  CHECK(std::strstr(buf, "},{\"v\":1,") != nullptr);
}

TEST(batch_holds_only_whole_readings_that_fit_the_buffer) {
  RingBuffer<Reading, 8> queue;
  for (uint32_t seq = 0; seq < 8; ++seq) queue.push(support::reading(seq, support::typical()));
  const size_t one_len = std::strlen(one(queue.at(0)));
  char buf[1024];
  BoundedWriter w(buf, 3 * one_len + 5);  // room for "[" + 3 objects + 2 commas + "]" + NUL
  const Batch b = write_batch(w, kId, queue, 30, 0, 0);
  CHECK_EQ(b.count, 3u);
  CHECK_EQ(b.last_seq, 2u);
  CHECK_EQ(b.length, 3 * one_len + 4);
  CHECK_EQ(buf[b.length - 1], ']');
  BoundedWriter tiny(buf, 20);
  CHECK_EQ(write_batch(tiny, kId, queue, 30, 0, 0).length, 0u);
  CHECK_EQ(buf, "");
}
