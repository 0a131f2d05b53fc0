// A blocking-connect, non-blocking-read TCP socket with the WiFiClient shape MqttUplink expects,
// for host runs against a real broker (tests/test_collect_mqtt.py). Host only: POSIX sockets.
#pragma once

#include <netdb.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>

namespace support {

class PosixSocket {
 public:
  ~PosixSocket() { stop(); }

  bool connect(const char* host, uint16_t port) {
    stop();
    char service[8];
    std::snprintf(service, sizeof service, "%u", static_cast<unsigned>(port));
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host, service, &hints, &found) != 0) return false;
    for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
      fd_ = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd_ >= 0 && ::connect(fd_, a->ai_addr, a->ai_addrlen) != 0) {
        ::close(fd_);
        fd_ = -1;
      }
    }
    freeaddrinfo(found);
    return fd_ >= 0;
  }
  bool connected() const { return fd_ >= 0; }
  void stop() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  size_t write(const uint8_t* data, size_t n) {
    size_t sent = 0;
    while (fd_ >= 0 && sent < n) {
      const ssize_t k = ::send(fd_, data + sent, n - sent, MSG_NOSIGNAL);
      if (k <= 0) {
        stop();
        break;
      }
      sent += static_cast<size_t>(k);
    }
    return sent;
  }
  int read() {
    if (fd_ < 0) return -1;
    uint8_t b = 0;
    const ssize_t k = ::recv(fd_, &b, 1, MSG_DONTWAIT);
    if (k == 1) return b;
    if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) stop();  // closed by the broker
    return -1;
  }
  uint32_t millis() const {
    timespec t{};
    clock_gettime(CLOCK_MONOTONIC, &t);
    return static_cast<uint32_t>(t.tv_sec * 1000 + t.tv_nsec / 1000000);
  }
  void idle() { usleep(1000); }

 private:
  int fd_ = -1;
};

}  // namespace support
