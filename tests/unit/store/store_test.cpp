// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/store/store.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>

#include <gtest/gtest.h>

namespace backbone::kernel::store {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/backbone-store-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<Store> open(State& state, StoreSettings settings = {}) {
    return Store::open(dir_, settings, state);
  }
  std::string log_path() const { return dir_ + "/store.log"; }

  std::string dir_;
};

std::shared_ptr<message::Message> message(std::string topic, std::string payload, uint8_t qos = 1,
                                         bool retain = false) {
  auto m = std::make_shared<message::Message>();
  m->topic = std::move(topic);
  m->payload = std::move(payload);
  m->qos = qos;
  m->retain = retain;
  return m;
}

SubscriptionRecord sub(uint8_t qos, uint32_t id = 0) {
  SubscriptionRecord r;
  r.options.qos = qos;
  r.options.no_local = true;
  r.options.retain_handling = 2;
  r.subscription_id = id;
  return r;
}

TEST(StoreChecksum, Crc32cMatchesTheStandardCheckValue) {
  // RFC 3720 B.4 / the CRC catalogue's check value for "123456789".
  EXPECT_EQ(detail::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(detail::crc32c_portable("123456789", 9), 0xE3069283u);
  std::string long_text(1000, '\0');
  for (size_t i = 0; i < long_text.size(); ++i) long_text[i] = static_cast<char>(i * 131);
  for (size_t n : {0, 1, 7, 8, 9, 63, 1000})
    EXPECT_EQ(detail::crc32c(long_text.data(), n), detail::crc32c_portable(long_text.data(), n));
}

TEST_F(StoreTest, EmptyDirectoryGivesEmptyStateAndAPrivateLog) {
  State state;
  auto store = open(state);
  EXPECT_TRUE(state.sessions.empty());
  EXPECT_TRUE(state.messages.empty());
  EXPECT_TRUE(state.retained.empty());
  struct stat st {};
  ASSERT_EQ(::stat(log_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(StoreTest, SessionsSubscriptionsQueuesAndRetainedSurviveReopening) {
  {
    State state;
    auto store = open(state);
    uint64_t key = 0;
    store->put_session(key, "dev-1", 3600, 5);
    EXPECT_NE(key, 0u);
    store->subscribe(key, "a/+", sub(1, 7));
    store->subscribe(key, "b/#", sub(2));
    store->unsubscribe(key, "b/#");
    uint64_t first = 0, second = 0;
    const uint32_t ids[] = {7, 9};
    store->enqueue(key, first, message("a/1", "one"), 1, false, ids, 2);
    store->enqueue(key, second, message("a/2", "two"), 2, true, nullptr, 0);
    EXPECT_LT(first, second);
    store->done(key, first);
    auto retained = message("r/x", "kept", 1, true);
    retained->forward_props = std::string("\x26\x00\x01k\x00\x01v", 7);
    store->set_retained(retained);
    store->set_retained(message("r/gone", "x", 0, true));
    store->set_retained(message("r/gone", "", 0, true));  // removed
    store->sync();
  }
  State state;
  auto store = open(state);
  ASSERT_EQ(state.sessions.size(), 1u);
  const SessionRecord& s = state.sessions.begin()->second;
  EXPECT_EQ(s.client_id, "dev-1");
  EXPECT_EQ(s.expiry_interval_s, 3600u);
  EXPECT_EQ(s.version, 5);
  ASSERT_EQ(s.subscriptions.size(), 1u);
  const SubscriptionRecord& a = s.subscriptions.at("a/+");
  EXPECT_EQ(a.options.qos, 1);
  EXPECT_TRUE(a.options.no_local);
  EXPECT_FALSE(a.options.retain_as_published);
  EXPECT_EQ(a.options.retain_handling, 2);
  EXPECT_EQ(a.subscription_id, 7u);
  ASSERT_EQ(s.queue.size(), 1u);
  const QueuedRef& q = s.queue.begin()->second;
  EXPECT_EQ(q.qos, 2);
  EXPECT_TRUE(q.retain);
  ASSERT_EQ(state.messages.size(), 1u);
  EXPECT_EQ(state.messages.at(q.message_id).message->payload, "two");
  EXPECT_EQ(state.messages.at(q.message_id).references, 1u);
  ASSERT_EQ(state.retained.size(), 1u);
  EXPECT_EQ(state.retained.at("r/x")->payload, "kept");
  EXPECT_EQ(state.retained.at("r/x")->forward_props, std::string("\x26\x00\x01k\x00\x01v", 7));
  // New keys and ids never reuse old ones.
  uint64_t key = 0;
  store->put_session(key, "dev-2", 10, 4);
  EXPECT_GT(key, state.sessions.begin()->first);
  uint64_t id = 0;
  store->enqueue(key, id, message("a/3", "three"), 1, false, nullptr, 0);
  EXPECT_GT(id, q.message_id);
}

TEST_F(StoreTest, OneMessageQueuedForManySessionsIsWrittenOnce) {
  const std::string payload(4096, 'p');
  {
    State state;
    auto store = open(state);
    auto m = message("fan/out", payload);
    uint64_t id = 0;
    for (int i = 0; i < 20; ++i) {
      uint64_t key = 0;
      store->put_session(key, "s" + std::to_string(i), 60, 5);
      store->enqueue(key, id, m, 1, false, nullptr, 0);
    }
    store->sync();
    EXPECT_LT(store->counters().log_bytes, 2 * payload.size());
  }
  State state;
  auto store = open(state);
  ASSERT_EQ(state.messages.size(), 1u);
  EXPECT_EQ(state.messages.begin()->second.references, 20u);
}

TEST_F(StoreTest, EndingASessionReleasesItsMessages) {
  {
    State state;
    auto store = open(state);
    uint64_t a = 0, b = 0, id = 0;
    store->put_session(a, "a", 60, 5);
    store->put_session(b, "b", 60, 5);
    auto m = message("t", "shared");
    store->enqueue(a, id, m, 1, false, nullptr, 0);
    store->enqueue(b, id, m, 1, false, nullptr, 0);
    uint64_t only_a = 0;
    store->enqueue(a, only_a, message("t", "a only"), 1, false, nullptr, 0);
    store->end_session(a);
    store->sync();
  }
  State state;
  auto store = open(state);
  ASSERT_EQ(state.sessions.size(), 1u);
  EXPECT_EQ(state.sessions.begin()->second.client_id, "b");
  ASSERT_EQ(state.messages.size(), 1u);
  EXPECT_EQ(state.messages.begin()->second.message->payload, "shared");
  EXPECT_EQ(state.messages.begin()->second.references, 1u);
}

TEST_F(StoreTest, ReopeningRewritesTheLogToItsLiveState) {
  {
    State state;
    auto store = open(state);
    uint64_t key = 0;
    store->put_session(key, "busy", 60, 5);
    for (int i = 0; i < 500; ++i) {
      uint64_t id = 0;
      store->enqueue(key, id, message("t", std::string(200, 'x')), 1, false, nullptr, 0);
      store->done(key, id);
    }
    store->sync();
    EXPECT_GT(fs::file_size(log_path()), 100'000u);
  }
  State state;
  auto store = open(state);
  EXPECT_LT(fs::file_size(log_path()), 100u);
  EXPECT_EQ(state.sessions.size(), 1u);
  EXPECT_TRUE(state.messages.empty());
  EXPECT_FALSE(fs::exists(log_path() + ".tmp"));
}

TEST_F(StoreTest, GrowthBeyondTheThresholdCompactsWhileRunning) {
  StoreSettings settings;
  settings.compact_min_bytes = 64 * 1024;
  State state;
  auto store = open(state, settings);
  uint64_t key = 0;
  store->put_session(key, "busy", 60, 5);
  uint64_t kept = 0;
  store->enqueue(key, kept, message("t", "still owed"), 1, false, nullptr, 0);
  for (int i = 0; i < 2000; ++i) {
    uint64_t id = 0;
    store->enqueue(key, id, message("t", std::string(200, 'x')), 1, false, nullptr, 0);
    store->done(key, id);
    if (i % 100 == 0) store->sync();
  }
  store->sync();
  EXPECT_LT(fs::file_size(log_path()), 64u * 1024 + 4096);
  store.reset();
  State again;
  auto reopened = open(again);
  ASSERT_EQ(again.messages.size(), 1u);
  EXPECT_EQ(again.messages.begin()->second.message->payload, "still owed");
}

TEST_F(StoreTest, ATornTailIsCutAndEverythingBeforeItKept) {
  {
    State state;
    auto store = open(state);
    store->set_retained(message("r/1", "one", 1, true));
    store->set_retained(message("r/2", "two", 1, true));
    store->sync();
  }
  const auto size = fs::file_size(log_path());
  fs::resize_file(log_path(), size - 3);  // the last record cut short
  {
    State state;
    auto store = open(state);
    EXPECT_EQ(state.retained.size(), 1u);
    EXPECT_TRUE(state.retained.contains("r/1"));
  }
  {
    std::ofstream out(log_path(), std::ios::app | std::ios::binary);
    out << "garbage that is not a record";
  }
  State state;
  auto store = open(state);
  EXPECT_EQ(state.retained.size(), 1u);
}

TEST_F(StoreTest, ACorruptRecordEndsTheReplay) {
  {
    State state;
    auto store = open(state);
    store->set_retained(message("r/1", "one", 1, true));
    store->set_retained(message("r/2", "two", 1, true));
    store->set_retained(message("r/3", "three", 1, true));
    store->sync();
  }
  std::string data;
  {
    std::ifstream in(log_path(), std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t at = data.find("two");
  ASSERT_NE(at, std::string::npos);
  data[at] = 'T';  // its CRC no longer matches
  {
    std::ofstream out(log_path(), std::ios::binary | std::ios::trunc);
    out << data;
  }
  State state;
  auto store = open(state);
  EXPECT_EQ(state.retained.size(), 1u);
  EXPECT_TRUE(state.retained.contains("r/1"));
}

TEST_F(StoreTest, CompletionsRunOnceTheirRecordIsDurable) {
  for (Durability d : {Durability::kSync, Durability::kPeriodic}) {
    StoreSettings settings;
    settings.durability = d;
    State state;
    auto store = open(state, settings);
    std::promise<void> done;
    const uint64_t seq = store->set_retained(message("r", "x", 1, true));
    store->when_durable(seq, [&] { done.set_value(); });
    EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_TRUE(store->durable(seq));
    // Already durable: runs at once, on the caller's thread.
    bool inline_run = false;
    store->when_durable(seq, [&] { inline_run = true; });
    EXPECT_TRUE(inline_run);
  }
}

TEST_F(StoreTest, CountersFollowAppendsSyncsAndRewrites) {
  State state;
  auto store = open(state);
  const Store::Counters at_start = store->counters();
  EXPECT_EQ(at_start.records, 0u);
  EXPECT_EQ(at_start.rewrites, 1u);  // the log is rewritten once at start
  store->set_retained(message("r/1", "one", 1, true));
  store->set_retained(message("r/2", "two", 1, true));
  store->sync();
  const Store::Counters c = store->counters();
  EXPECT_EQ(c.records, 2u);
  EXPECT_GE(c.syncs, 1u);
  EXPECT_GT(c.bytes_written, 0u);
  EXPECT_EQ(c.log_bytes, fs::file_size(log_path()));
  EXPECT_EQ(c.write_errors, 0u);
}

TEST_F(StoreTest, MessageExpiryIsKeptAsWallClockTime) {
  {
    State state;
    auto store = open(state);
    uint64_t key = 0, id = 0;
    store->put_session(key, "s", 60, 5);
    auto m = std::make_shared<message::Message>();
    m->topic = "t";
    m->payload = "x";
    m->qos = 1;
    m->expires_at = message::Clock::now() + std::chrono::seconds(100);
    store->enqueue(key, id, m, 1, false, nullptr, 0);
    store->sync();
  }
  State state;
  auto store = open(state);
  ASSERT_EQ(state.messages.size(), 1u);
  const auto& m = *state.messages.begin()->second.message;
  ASSERT_TRUE(m.expires_at.has_value());
  const auto left = *m.remaining_expiry(message::Clock::now());
  EXPECT_GE(left, 95u);
  EXPECT_LE(left, 100u);
}

TEST_F(StoreTest, ALogThatCannotBeOpenedIsAnErrorNamingTheFile) {
  fs::create_directory(log_path());  // refused even to root
  State state;
  try {
    open(state);
    FAIL() << "opened a directory as the log";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(log_path()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace backbone::kernel::store
