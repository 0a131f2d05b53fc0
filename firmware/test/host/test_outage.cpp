// Outage simulation: the real Node (the sketch's logic) at 100 ms steps against a fake
// collector that parses the POST bodies and deduplicates on (device_id, boot, seq), as the real
// collector does. Every reading must end up stored exactly once and in seq order.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <utility>
#include <vector>

#include "check.h"
#include "gridtwin/node.h"
#include "support.h"

using namespace gridtwin;

// Heap allocations made by this program; the Node calls must not make any.
static size_t g_allocations = 0;

void* operator new(std::size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  std::abort();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

enum class Link { kUp, kWifiDown, kCollectorDown };

constexpr uint64_t kUnixStart = 1732300000;

struct Collector {
  std::set<std::pair<uint32_t, uint32_t>> keys;  // (boot, seq): the duplicate key
  std::vector<uint32_t> stored;                  // seqs in the order they were first stored
  std::vector<uint32_t> last_body_seqs;          // seqs of the body received last
  std::vector<uint64_t> failed_at_ms;            // simulated times of failed POSTs
  std::vector<uint32_t> lost_ack_seqs;           // seqs of the body whose acknowledgement was lost
  std::vector<uint32_t> resent_seqs;             // seqs of the body that followed it
  bool capture_next = false;
  size_t posts = 0, duplicates = 0, max_batch = 0, null_voltages = 0;
  uint32_t dropped_reported = 0;
  int lose_next_acks = 0;   // store the body, then let the 2xx get lost on the way back
  int reject_next = 0;      // answer 422 without storing

  static uint32_t field(const char* at, const char* key) {
    return static_cast<uint32_t>(std::strtoul(std::strstr(at, key) + std::strlen(key), nullptr, 10));
  }

  // The HTTP status the device gets for one body.
  int post(const char* body, size_t length, Link link, uint64_t t_ms) {
    ++posts;
    CHECK_EQ(std::strlen(body), length);
    if (link == Link::kCollectorDown) {
      failed_at_ms.push_back(t_ms);
      return -1;  // HTTPC_ERROR_CONNECTION_FAILED
    }
    if (reject_next > 0) {
      --reject_next;
      return 422;
    }
    last_body_seqs.clear();
    for (const char* obj = std::strstr(body, "{\"v\":1,"); obj != nullptr; obj = std::strstr(obj + 1, "{\"v\":1,")) {
      const uint32_t boot = field(obj, "\"boot\":");
      const uint32_t seq = field(obj, "\"seq\":");
      last_body_seqs.push_back(seq);
      if (!keys.insert({boot, seq}).second) {
        ++duplicates;
        continue;
      }
      stored.push_back(seq);
      const char* end = std::strchr(obj, '}');
      const char* null_voltage = std::strstr(obj, "\"voltage\":null");
      if (null_voltage != nullptr && null_voltage < end) ++null_voltages;
      const char* dropped = std::strstr(obj, "\"dropped\":");
      if (dropped != nullptr && dropped < end) dropped_reported = field(obj, "\"dropped\":");
    }
    CHECK_EQ(body[0] == '[', last_body_seqs.size() > 1);
    if (capture_next) {
      resent_seqs = last_body_seqs;
      capture_next = false;
    }
    max_batch = last_body_seqs.size() > max_batch ? last_body_seqs.size() : max_batch;
    if (lose_next_acks > 0) {
      --lose_next_acks;
      lost_ack_seqs = last_body_seqs;
      capture_next = true;
      failed_at_ms.push_back(t_ms);
      return -11;  // HTTPC_ERROR_READ_TIMEOUT: stored, but the device never hears of it
    }
    return 200;
  }
};

template <size_t Capacity>
struct Simulation {
  Node<Capacity> node{"esp8266-sim"};
  Collector collector;
  support::Random random;
  char body[8192];
  uint64_t t_ms = 0;           // simulated time since start (no wrap)
  uint32_t millis0 = 0;        // millis() at start: set near 2^32 to cross the wrap
  uint64_t step = 0;
  size_t node_allocations = 0;

  explicit Simulation(uint32_t start_millis) : millis0(start_millis) { node.begin(start_millis, 0xB007u); }

  // Runs `duration_ms` in 100 ms loop iterations under one link condition.
  void run(uint64_t duration_ms, Link link, bool sensor_ok = true) {
    for (const uint64_t end = t_ms + duration_ms; t_ms < end; t_ms += 100, ++step) {
      const uint32_t now = static_cast<uint32_t>(millis0 + t_ms);
      const float wobble = static_cast<float>(step % 7) * 0.1f;
      const Sample s = sensor_ok ? support::sample(230.0f + wobble, 0.4f, 90.0f, 12.0f + 1e-5f * static_cast<float>(step),
                                                   50.0f, 0.93f)
                                 : Sample::failed();
      const uint32_t unix_s = static_cast<uint32_t>(kUnixStart + t_ms / 1000);
      size_t before = g_allocations;
      node.add_sample(s);
      node.close_period_if_due(now, unix_s);
      const bool due = node.send_due(now, link != Link::kWifiDown);
      const size_t length = due ? node.build_post(body, sizeof body, now) : 0;
      node_allocations += g_allocations - before;
      if (!due) continue;
      CHECK(length > 0);
      const int status = collector.post(body, length, link, t_ms);
      before = g_allocations;
      node.on_post_result(classify_http_status(status), now, random());
      node_allocations += g_allocations - before;
    }
  }

  bool stored_in_seq_order() const {
    for (size_t i = 1; i < collector.stored.size(); ++i) {
      if (collector.stored[i] <= collector.stored[i - 1]) return false;
    }
    return true;
  }
};

constexpr uint64_t kMinute = 60000;

}  // namespace

TEST(outage_then_recovery_delivers_every_reading_once_and_in_order) {
  Simulation<256> sim(0xFFFFFFFFu - 10 * kMinute);  // millis() wraps 10 minutes in
  sim.run(5 * kMinute, Link::kUp);
  sim.run(20 * 1000, Link::kUp, /*sensor_ok=*/false);
  sim.run(5 * kMinute, Link::kUp);
  const size_t before_outage = sim.collector.stored.size();
  CHECK_EQ(sim.node.pending(), 0u);
  sim.run(30 * kMinute, Link::kWifiDown);
  CHECK_EQ(sim.node.pending(), 180u);
  CHECK_EQ(sim.collector.stored.size(), before_outage);
  sim.run(3 * kMinute, Link::kCollectorDown);  // WiFi back, collector unreachable: backoff
  sim.run(10 * kMinute, Link::kUp);

  const uint32_t readings = sim.node.next_seq();
  // 53 min 20 s of 10 s periods; the last one would close at the very end, one step too late.
  CHECK_EQ(readings, 319u);
  CHECK_EQ(sim.node.pending(), 0u);
  CHECK_EQ(sim.node.dropped(), 0u);
  CHECK_EQ(sim.node.delivered(), readings);
  CHECK_EQ(sim.collector.stored.size(), static_cast<size_t>(readings));
  CHECK_EQ(sim.collector.duplicates, 0u);
  CHECK(sim.stored_in_seq_order());
  CHECK_EQ(sim.collector.stored.front(), 0u);
  CHECK_EQ(sim.collector.stored.back(), readings - 1);
  CHECK_EQ(sim.collector.max_batch, 30u);
  CHECK(sim.collector.null_voltages >= 1 && sim.collector.null_voltages <= 2);  // the 20 s without sensor
  CHECK_EQ(sim.node_allocations, 0u);

  // Failed POSTs during the collector outage are spaced by the jittered exponential backoff.
  const std::vector<uint64_t>& failed = sim.collector.failed_at_ms;
  CHECK(failed.size() >= 5 && failed.size() <= 12);
  const BackoffPolicy policy{};
  for (size_t n = 1; n < failed.size(); ++n) {
    const uint64_t gap = failed[n] - failed[n - 1];
    const uint32_t ceiling = backoff_ceiling_ms(policy, static_cast<uint32_t>(n));
    CHECK(gap >= ceiling - ceiling / 2);
    CHECK(gap <= ceiling + 100);  // + one loop iteration
  }
}

TEST(lost_acknowledgement_resends_the_same_seqs_and_the_collector_drops_the_duplicates) {
  Simulation<256> sim(123456);
  sim.run(2 * kMinute, Link::kUp);
  sim.run(10 * kMinute, Link::kWifiDown);  // 60 readings queued
  sim.collector.lose_next_acks = 1;
  const size_t posts_before = sim.collector.posts;
  sim.run(1000, Link::kUp);  // the first batch: stored, acknowledgement lost
  CHECK_EQ(sim.collector.posts, posts_before + 1);
  CHECK_EQ(sim.collector.lost_ack_seqs.size(), 30u);
  sim.run(5000, Link::kUp);  // backoff of 1-2 s, then the retry
  CHECK(sim.collector.posts > posts_before + 1);
  CHECK(sim.collector.resent_seqs == sim.collector.lost_ack_seqs);  // identical seqs re-sent
  CHECK_EQ(sim.collector.resent_seqs.front(), 11u);  // the oldest queued: seqs 0..10 went before the outage
  CHECK_EQ(sim.collector.duplicates, 30u);
  sim.run(3 * kMinute, Link::kUp);
  const uint32_t readings = sim.node.next_seq();
  CHECK_EQ(sim.node.pending(), 0u);
  CHECK_EQ(sim.collector.stored.size(), static_cast<size_t>(readings));
  CHECK(sim.stored_in_seq_order());
  CHECK_EQ(sim.collector.duplicates, 30u);  // only the batch whose ack was lost
  CHECK_EQ(sim.node_allocations, 0u);
}

TEST(outage_longer_than_the_buffer_drops_the_oldest_and_reports_how_many) {
  Simulation<64> sim(0);
  sim.run(1 * kMinute, Link::kUp);
  sim.run(20 * kMinute, Link::kWifiDown);  // seqs 5..124 (0..4 were sent) into 64 places
  CHECK_EQ(sim.node.pending(), 64u);
  CHECK_EQ(sim.node.dropped(), 56u);
  sim.run(2 * kMinute, Link::kUp);  // its first step queues seq 125 before the first POST: one more dropped
  const uint32_t readings = sim.node.next_seq();
  CHECK_EQ(sim.node.pending(), 0u);
  CHECK_EQ(sim.node.dropped(), 57u);
  CHECK_EQ(sim.collector.stored.size(), static_cast<size_t>(readings) - 57);
  CHECK(sim.stored_in_seq_order());
  CHECK_EQ(sim.collector.dropped_reported, 57u);
  // The lost ones are exactly the oldest of the outage: seqs 5..61.
  std::set<uint32_t> stored(sim.collector.stored.begin(), sim.collector.stored.end());
  for (uint32_t seq = 0; seq < readings; ++seq) CHECK_EQ(stored.count(seq) == 0, seq >= 5 && seq < 62);
}

TEST(rejected_body_is_dropped_and_the_queue_goes_on) {
  Simulation<16> sim(0);
  sim.collector.reject_next = 1;
  sim.run(25000, Link::kUp);  // two readings: the first answered 422, the second accepted
  CHECK_EQ(sim.node.rejected(), 1u);
  CHECK_EQ(sim.node.delivered(), 1u);
  CHECK_EQ(sim.node.pending(), 0u);
  CHECK(sim.collector.stored == std::vector<uint32_t>{1});
}

TEST(acknowledgement_matches_by_seq_when_overflow_dropped_part_of_the_batch_in_flight) {
  // Only possible with a POST that does not block the loop, but the queue must stay right then too.
  Node<4> node("esp8266-async");
  node.begin(0, 1);
  for (uint32_t period = 1; period <= 4; ++period) node.close_period_if_due(period * 10000, 0);
  char body[4096];
  CHECK(node.build_post(body, sizeof body, 40000) > 0);  // seqs 0..3 in flight
  node.close_period_if_due(50000, 0);                    // seq 4 pushes seq 0 out
  node.on_post_result(PostOutcome::kDelivered, 50100, 0);
  CHECK_EQ(node.pending(), 1u);  // seq 4 stays queued
  CHECK_EQ(node.delivered(), 3u);
  CHECK_EQ(node.dropped(), 1u);
  CHECK(node.build_post(body, sizeof body, 50300) > 0);
  CHECK(std::strstr(body, "\"seq\":4,") != nullptr);
}
