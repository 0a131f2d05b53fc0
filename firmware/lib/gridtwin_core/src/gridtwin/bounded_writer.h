// Text into a caller-owned fixed buffer: no heap, always NUL-terminated, overflow is sticky.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace gridtwin {

class BoundedWriter {
 public:
  BoundedWriter(char* buffer, size_t capacity) : buf_(buffer), cap_(capacity) {
    if (cap_ > 0) buf_[0] = '\0';
  }

  void put(char c) {
    if (len_ + 1 >= cap_) {  // keep one byte for the terminating NUL
      overflow_ = true;
      return;
    }
    buf_[len_++] = c;
    buf_[len_] = '\0';
  }

  void put(const char* text) {
    while (*text != '\0') put(*text++);
  }

  void put_uint(uint32_t value) {
    char digits[10];
    size_t n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10u);
      value /= 10u;
    } while (value != 0);
    while (n > 0) put(digits[--n]);
  }

  // counts with `decimals` digits after the point: (12345, 3) -> "12.345", (500, 1) -> "50.0".
  void put_fixed(uint32_t counts, uint8_t decimals) {
    uint32_t divisor = 1;
    for (uint8_t i = 0; i < decimals; ++i) divisor *= 10u;
    put_uint(counts / divisor);
    if (decimals == 0) return;
    put('.');
    uint32_t fraction = counts % divisor;
    for (uint32_t d = divisor / 10u; d > 0; d /= 10u) {
      put(static_cast<char>('0' + fraction / d));
      fraction %= d;
    }
  }

  // A JSON string literal: quotes, backslash and control characters escaped; other bytes
  // (UTF-8 included) pass through unchanged.
  void put_json_string(const char* text) {
    static const char kHex[] = "0123456789abcdef";
    put('"');
    for (; *text != '\0'; ++text) {
      const unsigned char c = static_cast<unsigned char>(*text);
      if (c == '"' || c == '\\') {
        put('\\');
        put(static_cast<char>(c));
      } else if (c == '\n') {
        put("\\n");
      } else if (c == '\r') {
        put("\\r");
      } else if (c == '\t') {
        put("\\t");
      } else if (c < 0x20) {
        put("\\u00");
        put(kHex[c >> 4]);
        put(kHex[c & 0x0f]);
      } else {
        put(static_cast<char>(c));
      }
    }
    put('"');
  }

  size_t length() const { return len_; }
  bool ok() const { return !overflow_; }
  const char* c_str() const { return buf_; }

  // Undo everything written after `mark` (a former length()), overflow included.
  void rewind(size_t mark) {
    if (mark > len_) return;
    len_ = mark;
    overflow_ = false;
    if (cap_ > 0) buf_[len_] = '\0';
  }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool overflow_ = false;
};

}  // namespace gridtwin
