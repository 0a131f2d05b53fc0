// Copy to src/config.h (git-ignored) and fill in. Never commit a real key.
#pragma once

// WiFi network the device joins (2.4 GHz; the ESP8266 has no 5 GHz radio).
#define GT_WIFI_SSID "your-ssid"
#define GT_WIFI_PASSWORD "your-wifi-password"

// The collector's single-phase endpoint (`gridtwin collect`); plain HTTP on the local network.
#define GT_COLLECTOR_URL "http://192.168.1.10:8000/api/energy-data/"

// Must equal NAME in `gridtwin devices add NAME` (the collector rejects any other device_id
// for this key); at most 32 bytes.
#define GT_DEVICE_ID "esp8266-3c71bf"

// The key `gridtwin devices add NAME` printed once; sent as the X-API-Key header.
#define GT_API_KEY "paste-the-key-here"

// Readings kept in RAM while the collector cannot be reached: 40 bytes each, one per 10 s.
// 256 = 42 minutes of outage in 10 KiB; past that the oldest are dropped (and counted).
#define GT_BUFFER_READINGS 256

// Uplink: 0 = HTTP POST to GT_COLLECTOR_URL; 1 = MQTT 5 to the broker below (topic
// gridtwin/<GT_DEVICE_ID>/readings, GT_API_KEY as user property "api-key", QoS 1), for a
// collector started with `gridtwin collect --mqtt mqtt://BROKER:1883`.
#define GT_UPLINK_MQTT 0
#define GT_MQTT_HOST "192.168.1.10"
#define GT_MQTT_PORT 1883
// The broker's own account, when it requires one (Mosquitto password_file); nullptr if not.
#define GT_MQTT_USERNAME nullptr
#define GT_MQTT_PASSWORD nullptr
