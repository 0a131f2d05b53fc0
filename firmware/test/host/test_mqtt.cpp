// MQTT 5 publishing: packet bytes decoded field by field, a fake broker that answers CONNACK
// and PUBACK (with chosen reason codes, late, or never), and the Node draining its queue
// through it as it does over HTTP.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "check.h"
#include "gridtwin/mqtt.h"
#include "gridtwin/node.h"
#include "support.h"

using namespace gridtwin;

namespace {

// A decoded packet as the broker sees it (only what the tests look at).
struct Decoded {
  uint8_t type = 0, flags = 0;
  std::string protocol, client_id, username, password, topic, key_name, key, payload;
  uint8_t version = 0, connect_flags = 0, payload_format = 0;
  uint16_t keep_alive = 0, packet_id = 0;
};

struct Cursor {
  const std::vector<uint8_t>& b;
  size_t at;
  uint8_t u8() { return b[at++]; }
  uint16_t u16() {
    const uint16_t v = static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
    at += 2;
    return v;
  }
  uint32_t varint() {
    uint32_t v = 0;
    for (uint8_t shift = 0;; shift = static_cast<uint8_t>(shift + 7)) {
      const uint8_t c = u8();
      v |= static_cast<uint32_t>(c & 0x7Fu) << shift;
      if (!(c & 0x80u)) return v;
    }
  }
  std::string str() {
    const uint16_t n = u16();
    std::string s(reinterpret_cast<const char*>(&b[at]), n);
    at += n;
    return s;
  }
};

// Decodes one packet from bytes[at...]; advances at past it.
Decoded decode(const std::vector<uint8_t>& bytes, size_t& at) {
  Cursor c{bytes, at};
  Decoded d;
  const uint8_t first = c.u8();
  d.type = static_cast<uint8_t>(first >> 4);
  d.flags = static_cast<uint8_t>(first & 0x0Fu);
  const uint32_t remaining = c.varint();
  const size_t end = c.at + remaining;
  if (d.type == mqtt::kConnect) {
    d.protocol = c.str();
    d.version = c.u8();
    d.connect_flags = c.u8();
    d.keep_alive = c.u16();
    c.at += c.varint();  // properties
    d.client_id = c.str();
    if (d.connect_flags & 0x80u) d.username = c.str();
    if (d.connect_flags & 0x40u) d.password = c.str();
  } else if (d.type == mqtt::kPublish) {
    d.topic = c.str();
    d.packet_id = c.u16();
    const size_t props_end = c.varint() + c.at;
    while (c.at < props_end) {
      const uint8_t id = c.u8();
      if (id == mqtt::kPropPayloadFormat) d.payload_format = c.u8();
      if (id == mqtt::kPropUserProperty) {
        d.key_name = c.str();
        d.key = c.str();
      }
    }
    d.payload.assign(reinterpret_cast<const char*>(&bytes[c.at]), end - c.at);
  }
  at = end;
  return d;
}

// The broker side of a socket: decodes what the device writes and queues the answers.
struct FakeBroker {
  bool accept_tcp = true;
  uint8_t connack_reason = 0;
  std::vector<uint8_t> puback_reasons;  // per PUBLISH in order; 0 when the list is shorter
  bool answer_publish = true;           // false: the PUBACK never comes (timeout)
  bool short_puback = false;            // PUBACK without reason code (remaining length 2)
  bool noise_first = false;             // a PINGRESP and a stale PUBACK before the real one

  bool open = false;
  uint32_t now = 0;
  int connects = 0;
  std::vector<uint8_t> written;
  std::vector<Decoded> packets;
  std::vector<uint8_t> to_device;
  size_t read_at = 0;
  size_t decoded_upto = 0;

  bool connect(const char*, uint16_t) {
    if (!accept_tcp) return false;
    open = true;
    ++connects;
    return true;
  }
  bool connected() const { return open; }
  void stop() { open = false; }
  uint32_t millis() const { return now; }
  void idle() { now += 10; }
  int read() {
    if (read_at >= to_device.size()) return -1;
    return to_device[read_at++];
  }
  size_t write(const uint8_t* data, size_t n) {
    written.insert(written.end(), data, data + n);
    // decode every complete packet written so far and answer it
    while (decoded_upto < written.size()) {
      size_t at = decoded_upto;
      Cursor c{written, at + 1};
      const uint32_t remaining = c.varint();
      if (c.at + remaining > written.size()) break;  // the payload follows in the next write
      Decoded d = decode(written, at);
      decoded_upto = at;
      packets.push_back(d);
      answer(d);
    }
    return n;
  }
  void answer(const Decoded& d) {
    if (d.type == mqtt::kConnect) {
      const uint8_t connack[] = {mqtt::kConnack << 4, 3, 0, connack_reason, 0};
      to_device.insert(to_device.end(), connack, connack + sizeof connack);
    } else if (d.type == mqtt::kPublish && answer_publish) {
      if (noise_first) {
        const uint8_t noise[] = {0xD0, 0, mqtt::kPuback << 4, 2, 0xFF, 0xFE};  // PINGRESP, another id
        to_device.insert(to_device.end(), noise, noise + sizeof noise);
      }
      const size_t k = publishes() - 1;
      const uint8_t reason = k < puback_reasons.size() ? puback_reasons[k] : 0;
      const uint8_t id_hi = static_cast<uint8_t>(d.packet_id >> 8), id_lo = static_cast<uint8_t>(d.packet_id & 0xFF);
      if (short_puback) {
        const uint8_t ack[] = {mqtt::kPuback << 4, 2, id_hi, id_lo};
        to_device.insert(to_device.end(), ack, ack + sizeof ack);
      } else {
        const uint8_t ack[] = {mqtt::kPuback << 4, 3, id_hi, id_lo, reason};
        to_device.insert(to_device.end(), ack, ack + sizeof ack);
      }
    }
  }
  size_t publishes() const {
    size_t n = 0;
    for (const Decoded& d : packets) n += d.type == mqtt::kPublish;
    return n;
  }
};

MqttConfig config() {
  MqttConfig c;
  c.host = "127.0.0.1";
  c.client_id = "esp8266-3c71bf";
  c.device_id = "esp8266-3c71bf";
  c.api_key = "AbCd.secret";
  return c;
}

}  // namespace

TEST(mqtt_connect_and_publish_packets_decode_to_what_the_collector_expects) {
  FakeBroker broker;
  MqttUplink<FakeBroker> uplink(broker, config());
  const char body[] = "{\"v\":1,\"seq\":0}";
  CHECK(uplink.publish(body, sizeof body - 1) == PostOutcome::kDelivered);
  CHECK_EQ(broker.packets.size(), static_cast<size_t>(2));
  const Decoded& c = broker.packets[0];
  CHECK_EQ(c.type, mqtt::kConnect);
  CHECK(c.protocol == "MQTT");
  CHECK_EQ(c.version, 5);
  CHECK_EQ(c.connect_flags, 0x02);  // clean start, no broker account
  CHECK_EQ(c.keep_alive, 60);
  CHECK(c.client_id == "esp8266-3c71bf");
  const Decoded& p = broker.packets[1];
  CHECK_EQ(p.type, mqtt::kPublish);
  CHECK_EQ(p.flags, 0x02);  // QoS 1
  CHECK(p.topic == "gridtwin/esp8266-3c71bf/readings");
  CHECK_EQ(p.packet_id, 1);
  CHECK(p.key_name == "api-key" && p.key == "AbCd.secret");
  CHECK_EQ(p.payload_format, 1);
  CHECK(p.payload == body);
}

TEST(mqtt_broker_account_is_sent_when_configured) {
  FakeBroker broker;
  MqttConfig c = config();
  c.username = "meters";
  c.password = "pw";
  MqttUplink<FakeBroker> uplink(broker, c);
  CHECK(uplink.publish("{}", 2) == PostOutcome::kDelivered);
  CHECK_EQ(broker.packets[0].connect_flags, 0xC2);
  CHECK(broker.packets[0].username == "meters" && broker.packets[0].password == "pw");
}

TEST(mqtt_puback_reason_codes_map_to_the_http_outcomes) {
  CHECK(mqtt::classify_puback(0x00) == PostOutcome::kDelivered);
  CHECK(mqtt::classify_puback(0x10) == PostOutcome::kRetry);   // nobody subscribed: keep it
  CHECK(mqtt::classify_puback(0x87) == PostOutcome::kRetry);   // not authorized (like 401/403)
  CHECK(mqtt::classify_puback(0x97) == PostOutcome::kRetry);   // quota exceeded (like 429)
  CHECK(mqtt::classify_puback(0x99) == PostOutcome::kRejected);  // payload format invalid (like 422)
  FakeBroker broker;
  broker.puback_reasons = {0x10, 0x00};
  MqttUplink<FakeBroker> uplink(broker, config());
  CHECK(uplink.publish("{}", 2) == PostOutcome::kRetry);
  CHECK(uplink.publish("{}", 2) == PostOutcome::kDelivered);
  CHECK_EQ(broker.connects, 1);  // one session for both
  CHECK_EQ(broker.packets[2].packet_id, 2);
}

TEST(mqtt_short_puback_and_unrelated_packets_before_it) {
  FakeBroker broker;
  broker.short_puback = true;
  broker.noise_first = true;
  MqttUplink<FakeBroker> uplink(broker, config());
  CHECK(uplink.publish("{}", 2) == PostOutcome::kDelivered);
}

TEST(mqtt_refused_connection_missing_puback_and_no_tcp_are_retried_on_a_new_session) {
  FakeBroker refused;
  refused.connack_reason = 0x86;  // bad user name or password
  MqttUplink<FakeBroker> a(refused, config());
  CHECK(a.publish("{}", 2) == PostOutcome::kRetry);
  CHECK(!refused.open && refused.publishes() == 0);

  FakeBroker silent;
  silent.answer_publish = false;
  MqttUplink<FakeBroker> b(silent, config());
  CHECK(b.publish("{}", 2) == PostOutcome::kRetry);
  CHECK(!silent.open);  // the session is dropped after the timeout
  CHECK(silent.now >= 3000 && silent.now < 3100);  // waited the configured timeout, not longer
  silent.answer_publish = true;
  CHECK(b.publish("{}", 2) == PostOutcome::kDelivered);
  CHECK_EQ(silent.connects, 2);

  FakeBroker down;
  down.accept_tcp = false;
  MqttUplink<FakeBroker> c(down, config());
  CHECK(c.publish("{}", 2) == PostOutcome::kRetry);
}

TEST(mqtt_malformed_stream_drops_the_session) {
  mqtt::PacketReader reader;
  const uint8_t bad[] = {0x40, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};  // remaining length over 4 bytes
  bool completed = false;
  for (uint8_t b : bad) completed = reader.feed(b) || completed;
  CHECK(!completed && reader.malformed());
}

TEST(mqtt_packet_builders_refuse_buffers_that_are_too_small) {
  uint8_t small[8];
  CHECK_EQ(mqtt::connect_packet(small, sizeof small, "esp8266-3c71bf", 60, nullptr, nullptr), static_cast<size_t>(0));
  CHECK_EQ(mqtt::publish_header(small, sizeof small, "gridtwin/x/readings", 1, "k", 10), static_cast<size_t>(0));
  char topic[12];
  CHECK(!mqtt::readings_topic(topic, sizeof topic, "esp8266-3c71bf"));
  uint8_t big[300];
  // a 7 KiB batch: the remaining length takes two bytes
  const size_t n = mqtt::publish_header(big, sizeof big, "gridtwin/x/readings", 1, "k", 7000);
  size_t at = 0;
  std::vector<uint8_t> bytes(big, big + n);
  bytes.resize(n + 7000, '0');
  const Decoded d = decode(bytes, at);
  CHECK_EQ(at, bytes.size());
  CHECK_EQ(d.payload.size(), static_cast<size_t>(7000));
}

TEST(mqtt_node_backlog_drains_through_the_broker_once_it_answers) {
  Node<16> node("esp8266-3c71bf");
  node.begin(0, 42);
  for (uint32_t period = 1; period <= 5; ++period) {
    node.add_sample(support::typical());
    node.close_period_if_due(period * 10000, 1732300000 + period * 10);
  }
  FakeBroker broker;
  broker.answer_publish = false;
  MqttUplink<FakeBroker> uplink(broker, config());
  support::Random random;
  char body[4096];
  size_t n = node.build_post(body, sizeof body, 50000);
  node.on_post_result(uplink.publish(body, n), 50000, random());
  CHECK_EQ(node.pending(), static_cast<size_t>(5));  // no PUBACK: kept
  broker.answer_publish = true;
  n = node.build_post(body, sizeof body, 60000);
  node.on_post_result(uplink.publish(body, n), 60000, random());
  CHECK_EQ(node.pending(), static_cast<size_t>(0));
  CHECK_EQ(node.delivered(), static_cast<uint32_t>(5));
  const Decoded& last = broker.packets.back();
  CHECK(last.payload.rfind("[{\"v\":1,\"device_id\":\"esp8266-3c71bf\",\"boot\":42,\"seq\":0,", 0) == 0);
}
