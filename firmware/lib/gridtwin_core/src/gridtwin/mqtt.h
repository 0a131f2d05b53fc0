// MQTT 5 publishing, the alternative to the HTTP POST: the packets a device needs (CONNECT,
// PUBLISH at QoS 1 with the device key as user property "api-key") and a reader for what the
// broker answers (CONNACK, PUBACK). The collector subscribes to gridtwin/<device>/readings
// (`gridtwin collect --mqtt`, see gridtwin_lib/collect/mqtt.py); the body is the same payload
// v1 text the HTTP path posts. No heap: the caller owns every buffer and the socket.
//
// A PUBACK comes from the broker: "delivered" means the broker holds the reading for the
// collector's persistent session. The broker answering "no matching subscribers" (0x10) means
// nobody will get it, so the reading is kept and retried like an HTTP 5xx.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "bounded_writer.h"
#include "uplink.h"

namespace gridtwin {

namespace mqtt {

inline constexpr uint8_t kConnect = 1, kConnack = 2, kPublish = 3, kPuback = 4, kDisconnect = 14;
inline constexpr uint8_t kPropPayloadFormat = 0x01, kPropUserProperty = 0x26;
inline constexpr uint8_t kNoMatchingSubscribers = 0x10, kPayloadFormatInvalid = 0x99;

inline size_t cstr_length(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

inline size_t varint_size(uint32_t v) { return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4; }

// Big-endian binary writer into a caller's buffer; ok() turns false on overflow (nothing is
// written past the end).
class PacketWriter {
 public:
  PacketWriter(uint8_t* buffer, size_t capacity) : buf_(buffer), cap_(capacity) {}
  void byte(uint8_t b) {
    if (len_ < cap_) {
      buf_[len_++] = b;
    } else {
      overflow_ = true;
    }
  }
  void u16(uint16_t v) {
    byte(static_cast<uint8_t>(v >> 8));
    byte(static_cast<uint8_t>(v & 0xFFu));
  }
  void varint(uint32_t v) {
    do {
      uint8_t b = static_cast<uint8_t>(v & 0x7Fu);
      v >>= 7;
      if (v > 0) b = static_cast<uint8_t>(b | 0x80u);
      byte(b);
    } while (v > 0);
  }
  void str(const char* s) {  // UTF-8 string: 2-byte length, then the bytes
    const size_t n = cstr_length(s);
    u16(static_cast<uint16_t>(n));
    for (size_t i = 0; i < n; ++i) byte(static_cast<uint8_t>(s[i]));
  }
  size_t length() const { return len_; }
  bool ok() const { return !overflow_; }

 private:
  uint8_t* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool overflow_ = false;
};

// CONNECT, MQTT 5, clean start; username/password may be null (broker accounts are optional:
// the collector checks the device key on every PUBLISH). Returns the length, 0 if it does not fit.
inline size_t connect_packet(uint8_t* buffer, size_t capacity, const char* client_id, uint16_t keep_alive_s,
                             const char* username, const char* password) {
  const bool user = username != nullptr && username[0] != '\0';
  const bool pass = user && password != nullptr && password[0] != '\0';
  size_t remaining = 6 + 1 + 1 + 2 + 1 + 2 + cstr_length(client_id);  // "MQTT", version, flags, keep alive, props, id
  if (user) remaining += 2 + cstr_length(username);
  if (pass) remaining += 2 + cstr_length(password);
  PacketWriter w(buffer, capacity);
  w.byte(kConnect << 4);
  w.varint(static_cast<uint32_t>(remaining));
  w.str("MQTT");
  w.byte(5);
  w.byte(static_cast<uint8_t>(0x02u | (user ? 0x80u : 0u) | (pass ? 0x40u : 0u)));  // clean start
  w.u16(keep_alive_s);
  w.varint(0);  // no properties
  w.str(client_id);
  if (user) w.str(username);
  if (pass) w.str(password);
  return w.ok() ? w.length() : 0;
}

// Everything of a QoS 1 PUBLISH before its payload; the payload_length bytes of the body are
// sent right after it (so a 7 KiB batch is never copied). Returns the length, 0 if it does not fit.
inline size_t publish_header(uint8_t* buffer, size_t capacity, const char* topic, uint16_t packet_id,
                             const char* api_key, size_t payload_length) {
  const size_t props = 2 + 1 + 2 + 7 + 2 + cstr_length(api_key);  // payload format, user property
  const size_t remaining = 2 + cstr_length(topic) + 2 + varint_size(static_cast<uint32_t>(props)) + props + payload_length;
  if (remaining > 268435455u) return 0;
  PacketWriter w(buffer, capacity);
  w.byte(static_cast<uint8_t>(kPublish << 4 | 0x02u));  // QoS 1, not DUP, not retained
  w.varint(static_cast<uint32_t>(remaining));
  w.str(topic);
  w.u16(packet_id);
  w.varint(static_cast<uint32_t>(props));
  w.byte(kPropPayloadFormat);
  w.byte(1);  // UTF-8 text
  w.byte(kPropUserProperty);
  w.str("api-key");
  w.str(api_key);
  return w.ok() ? w.length() : 0;
}

// DISCONNECT, normal disconnection (2 bytes).
inline size_t disconnect_packet(uint8_t* buffer, size_t capacity) {
  PacketWriter w(buffer, capacity);
  w.byte(kDisconnect << 4);
  w.byte(0);
  return w.ok() ? w.length() : 0;
}

// gridtwin/<device_id>/readings into buffer; false when it does not fit. The collector's
// device names hold no '/', '+' or '#'.
inline bool readings_topic(char* buffer, size_t capacity, const char* device_id) {
  BoundedWriter w(buffer, capacity);
  w.put("gridtwin/");
  w.put(device_id);
  w.put("/readings");
  return w.ok();
}

// What the broker sends, one byte at a time: CONNACK and PUBACK are decoded (type, reason
// code, packet id); any other packet is skipped whole.
class PacketReader {
 public:
  struct Packet {
    uint8_t type = 0;
    uint8_t reason = 0;      // CONNACK / PUBACK reason code (0 = success)
    uint16_t packet_id = 0;  // PUBACK
  };

  // True when b completed a packet (then packet() holds it); false while one is incomplete
  // or when the stream is malformed (then malformed() is true and the connection must go).
  bool feed(uint8_t b) {
    if (malformed_) return false;
    switch (state_) {
      case State::kType:
        current_ = Packet();
        current_.type = static_cast<uint8_t>(b >> 4);
        remaining_ = 0;
        shift_ = 0;
        seen_ = 0;
        state_ = State::kLength;
        return false;
      case State::kLength:
        remaining_ |= static_cast<uint32_t>(b & 0x7Fu) << shift_;
        shift_ = static_cast<uint8_t>(shift_ + 7);
        if (b & 0x80u) {
          if (shift_ >= 28) malformed_ = true;
          return false;
        }
        if (remaining_ == 0) return finish();
        state_ = State::kBody;
        return false;
      case State::kBody:
        take(b);
        ++seen_;
        return seen_ == remaining_ ? finish() : false;
    }
    return false;
  }
  const Packet& packet() const { return current_; }
  bool malformed() const { return malformed_; }
  void reset() { *this = PacketReader(); }

 private:
  enum class State : uint8_t { kType, kLength, kBody };

  void take(uint8_t b) {
    if (current_.type == kConnack && seen_ == 1) current_.reason = b;  // byte 0: session present
    if (current_.type == kPuback) {
      if (seen_ == 0) current_.packet_id = static_cast<uint16_t>(b << 8);
      if (seen_ == 1) current_.packet_id = static_cast<uint16_t>(current_.packet_id | b);
      if (seen_ == 2) current_.reason = b;  // absent (remaining length 2) means success
    }
  }
  bool finish() {
    state_ = State::kType;
    return true;
  }

  State state_ = State::kType;
  Packet current_;
  uint32_t remaining_ = 0;
  uint32_t seen_ = 0;
  uint8_t shift_ = 0;
  bool malformed_ = false;
};

// A PUBACK's reason code as the node's outcome (the same three fates as an HTTP status).
inline PostOutcome classify_puback(uint8_t reason) {
  if (reason == kPayloadFormatInvalid) return PostOutcome::kRejected;
  if (reason < 0x80u && reason != kNoMatchingSubscribers) return PostOutcome::kDelivered;
  return PostOutcome::kRetry;  // not authorized, quota exceeded, server busy, nobody subscribed, ...
}

}  // namespace mqtt

struct MqttConfig {
  const char* host;
  uint16_t port = 1883;
  const char* client_id;         // e.g. the device id
  const char* device_id;         // NAME registered with `gridtwin devices add NAME`
  const char* api_key;           // that device's key, sent with every PUBLISH
  const char* username = nullptr;  // broker account, when the broker requires one
  const char* password = nullptr;
  uint16_t keep_alive_s = 60;    // readings every 10 s keep the connection alive
  uint32_t timeout_ms = 3000;    // for CONNACK and each PUBACK; the loop blocks at most this long
};

// One connection to the broker over a Socket with the Arduino WiFiClient's shape:
//   bool connect(const char* host, uint16_t port); bool connected(); void stop();
//   size_t write(const uint8_t* data, size_t n); int read();  (-1: no byte now)
//   uint32_t millis(); void idle();  (e.g. yield() so the WiFi stack runs)
// publish() sends one body and waits for its PUBACK: the node's on_post_result gets the outcome.
template <typename Socket>
class MqttUplink {
 public:
  MqttUplink(Socket& socket, const MqttConfig& config) : socket_(socket), config_(config) {}

  PostOutcome publish(const char* body, size_t length) {
    if (!ensure_connected()) return PostOutcome::kRetry;
    char topic[64];
    if (!mqtt::readings_topic(topic, sizeof topic, config_.device_id)) return PostOutcome::kRejected;
    next_id_ = static_cast<uint16_t>(next_id_ == 0xFFFFu ? 1u : next_id_ + 1u);
    uint8_t header[192];
    const size_t n = mqtt::publish_header(header, sizeof header, topic, next_id_, config_.api_key, length);
    if (n == 0) return PostOutcome::kRejected;
    if (socket_.write(header, n) != n ||
        socket_.write(reinterpret_cast<const uint8_t*>(body), length) != length) {
      drop();
      return PostOutcome::kRetry;
    }
    mqtt::PacketReader::Packet ack;
    if (!await(mqtt::kPuback, next_id_, ack)) return PostOutcome::kRetry;
    return mqtt::classify_puback(ack.reason);
  }

  // Says goodbye (DISCONNECT) and closes the socket.
  void close() {
    if (socket_.connected()) {
      uint8_t packet[2];
      socket_.write(packet, mqtt::disconnect_packet(packet, sizeof packet));
    }
    drop();
  }

  bool session_up() const { return up_; }
  uint16_t last_packet_id() const { return next_id_; }

 private:
  bool ensure_connected() {
    if (up_ && socket_.connected()) return true;
    drop();
    if (!socket_.connect(config_.host, config_.port)) return false;
    uint8_t packet[160];
    const size_t n = mqtt::connect_packet(packet, sizeof packet, config_.client_id, config_.keep_alive_s,
                                          config_.username, config_.password);
    if (n == 0 || socket_.write(packet, n) != n) {
      drop();
      return false;
    }
    mqtt::PacketReader::Packet ack;
    if (!await(mqtt::kConnack, 0, ack)) return false;
    if (ack.reason != 0) {  // bad credentials, not authorized, ...: try again after the backoff
      drop();
      return false;
    }
    up_ = true;
    return true;
  }

  // Reads until a packet of `type` (and packet id, for PUBACK) arrives; false on timeout,
  // a closed socket or a malformed stream (the connection is dropped then).
  bool await(uint8_t type, uint16_t packet_id, mqtt::PacketReader::Packet& out) {
    const uint32_t start = socket_.millis();
    while (socket_.millis() - start < config_.timeout_ms) {
      const int c = socket_.read();
      if (c < 0) {
        if (!socket_.connected()) break;
        socket_.idle();
        continue;
      }
      if (reader_.feed(static_cast<uint8_t>(c))) {
        const mqtt::PacketReader::Packet& p = reader_.packet();
        if (p.type == type && (type != mqtt::kPuback || p.packet_id == packet_id)) {
          out = p;
          return true;
        }
      } else if (reader_.malformed()) {
        break;
      }
    }
    drop();
    return false;
  }

  void drop() {
    if (socket_.connected()) socket_.stop();
    up_ = false;
    reader_.reset();
  }

  Socket& socket_;
  MqttConfig config_;
  mqtt::PacketReader reader_;
  uint16_t next_id_ = 0;
  bool up_ = false;
};

}  // namespace gridtwin
