// A tiny test runner: TEST(name) registers a case, CHECK/CHECK_EQ record failures and go on.
// Prints "N passed, M failed" (cases) as its last line; exit status 1 when any failed.
#pragma once

#include <cinttypes>
#include <cstdio>
#include <cstring>

namespace check {

struct Case {
  const char* name;
  void (*run)();
  Case* next;
};

inline Case*& first_case() {
  static Case* head = nullptr;
  return head;
}

inline int& failures_in_case() {
  static int n = 0;
  return n;
}

struct Registrar {
  Case node;
  Registrar(const char* name, void (*run)()) : node{name, run, nullptr} {
    Case** tail = &first_case();
    while (*tail != nullptr) tail = &(*tail)->next;
    *tail = &node;
  }
};

inline void fail(const char* file, int line, const char* what) {
  ++failures_in_case();
  std::printf("  FAIL %s:%d: %s\n", file, line, what);
}

inline bool equal(const char* a, const char* b) { return std::strcmp(a, b) == 0; }
template <typename A, typename B>
bool equal(const A& a, const B& b) { return a == b; }

inline void show(const char* v) { std::printf("\"%s\"", v); }
inline void show(char* v) { show(static_cast<const char*>(v)); }
inline void show(bool v) { std::printf("%s", v ? "true" : "false"); }
template <typename T>
void show(const T& v) { std::printf("%" PRIdMAX, static_cast<intmax_t>(v)); }

template <typename A, typename B>
void check_eq(const A& a, const B& b, const char* a_text, const char* b_text, const char* file, int line) {
  if (equal(a, b)) return;
  ++failures_in_case();
  std::printf("  FAIL %s:%d: %s == %s\n    left:  ", file, line, a_text, b_text);
  show(a);
  std::printf("\n    right: ");
  show(b);
  std::printf("\n");
}

inline int run_all() {
  int passed = 0;
  int failed = 0;
  for (Case* c = first_case(); c != nullptr; c = c->next) {
    failures_in_case() = 0;
    c->run();
    if (failures_in_case() == 0) {
      ++passed;
    } else {
      ++failed;
      std::printf("FAILED %s\n", c->name);
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace check

#define TEST(name)                                                   \
  static void name();                                                \
  static const check::Registrar name##_registrar(#name, &name);      \
  static void name()

#define CHECK(cond) \
  ((cond) ? (void)0 : check::fail(__FILE__, __LINE__, #cond))

#define CHECK_EQ(a, b) check::check_eq((a), (b), #a, #b, __FILE__, __LINE__)
