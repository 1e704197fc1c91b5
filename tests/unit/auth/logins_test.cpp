// SPDX-License-Identifier: GPL-3.0-or-later
// The kernel's promises to authenticators (module_abi.h): every abandoned
// login is cancelled through the module, answers for tickets no longer
// wanted return BB_E_STALE, and a requester hears at most once.
#include "kernel/auth/logins.hpp"

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernel/net/worker_pool.hpp"

namespace backbone::kernel::auth {
namespace {

// An authenticator that answers what the test tells it to.
struct FakeAuthenticator {
  bb_status status = BB_PENDING;
  int32_t verdict = BB_AUTH_ALLOW;
  std::vector<bb_auth_ticket> asked;
  std::vector<bb_auth_ticket> cancelled;
  Logins* answer_inside = nullptr;  // answers through complete() before returning

  static bb_status authenticate(void* user, const bb_auth_request*, bb_auth_ticket ticket,
                                bb_auth_result* out) {
    auto* self = static_cast<FakeAuthenticator*>(user);
    self->asked.push_back(ticket);
    if (self->status == BB_OK) out->verdict = self->verdict;
    if (self->answer_inside) {
      bb_auth_result r{};
      r.struct_size = sizeof(r);
      r.verdict = self->verdict;
      EXPECT_EQ(self->answer_inside->complete(ticket, r), BB_OK);
    }
    return self->status;
  }
  static void cancel(void* user, bb_auth_ticket ticket) {
    static_cast<FakeAuthenticator*>(user)->cancelled.push_back(ticket);
  }
};

class LoginsTest : public ::testing::Test {
 protected:
  LoginsTest() {
    table_.struct_size = sizeof(table_);
    table_.name = bb_str{"fake", 4};
    table_.authenticate = &FakeAuthenticator::authenticate;
    table_.cancel = &FakeAuthenticator::cancel;
    EXPECT_TRUE(logins_.add("fake", Authenticator{&table_, &fake_, false, nullptr}));
    request_.struct_size = sizeof(request_);
  }

  Logins::Started start() {
    return logins_.start(*logins_.find("fake"), request_, worker_,
                         [this](Outcome&& o) { answers_.push_back(std::move(o)); });
  }
  bb_status answer(bb_auth_ticket t, int32_t verdict = BB_AUTH_ALLOW) {
    bb_auth_result r{};
    r.struct_size = sizeof(r);
    r.verdict = verdict;
    r.principal = bb_str{"alice", 5};
    return logins_.complete(t, r);
  }
  void run_worker() {
    worker_.io().restart();
    worker_.io().poll();
  }

  FakeAuthenticator fake_;
  bb_authenticator table_{};
  bb_auth_request request_{};
  Logins logins_{std::chrono::milliseconds(1000)};
  net::Worker worker_{0};
  std::vector<Outcome> answers_;
};

TEST_F(LoginsTest, RegistryRefusesATakenName) {
  EXPECT_FALSE(logins_.add("fake", Authenticator{&table_, &fake_, false, nullptr}));
  EXPECT_NE(logins_.find("fake"), nullptr);
  EXPECT_EQ(logins_.find("other"), nullptr);
  EXPECT_EQ(logins_.names(), std::vector<std::string>{"fake"});
}

TEST_F(LoginsTest, SynchronousAnswerLeavesNothingPending) {
  fake_.status = BB_OK;
  fake_.verdict = BB_AUTH_FORBIDDEN;
  auto started = start();
  EXPECT_EQ(started.status, BB_OK);
  EXPECT_EQ(started.outcome.verdict, BB_AUTH_FORBIDDEN);
  EXPECT_EQ(logins_.pending(), 0u);
  // Its ticket is not one the module may answer later.
  EXPECT_EQ(answer(fake_.asked.at(0)), BB_E_STALE);
}

TEST_F(LoginsTest, PendingAnswerReachesTheRequesterOnItsWorkerOnce) {
  auto started = start();
  ASSERT_EQ(started.status, BB_PENDING);
  EXPECT_NE(started.ticket, 0u);
  EXPECT_EQ(logins_.pending(), 1u);
  EXPECT_EQ(answer(started.ticket), BB_OK);
  EXPECT_TRUE(answers_.empty());  // not on the module's thread
  run_worker();
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_EQ(answers_[0].principal, "alice");
  EXPECT_EQ(answer(started.ticket), BB_E_STALE);  // a second answer
  run_worker();
  EXPECT_EQ(answers_.size(), 1u);
  EXPECT_TRUE(fake_.cancelled.empty());
}

TEST_F(LoginsTest, AnswerFromInsideAuthenticateIsKept) {
  fake_.answer_inside = &logins_;
  auto started = start();
  EXPECT_EQ(started.status, BB_PENDING);
  run_worker();
  EXPECT_EQ(answers_.size(), 1u);
  EXPECT_EQ(logins_.pending(), 0u);
}

TEST_F(LoginsTest, CancelTellsTheAuthenticatorAndLaterAnswersAreStale) {
  auto started = start();
  logins_.cancel(started.ticket);
  EXPECT_EQ(fake_.cancelled, std::vector<bb_auth_ticket>{started.ticket});
  EXPECT_EQ(answer(started.ticket), BB_E_STALE);
  logins_.cancel(started.ticket);  // twice: told once
  EXPECT_EQ(fake_.cancelled.size(), 1u);
  run_worker();
  EXPECT_TRUE(answers_.empty());
}

TEST_F(LoginsTest, UnknownTicketsAreStale) {
  EXPECT_EQ(answer(0), BB_E_STALE);
  EXPECT_EQ(answer(12345), BB_E_STALE);
}

TEST_F(LoginsTest, TimeoutCancelsAndAnswersTimedOut) {
  auto started = start();
  logins_.expire(message::Clock::now());  // not yet
  EXPECT_EQ(logins_.pending(), 1u);
  logins_.expire(message::Clock::now() + std::chrono::seconds(2));
  EXPECT_EQ(fake_.cancelled, std::vector<bb_auth_ticket>{started.ticket});
  run_worker();
  ASSERT_EQ(answers_.size(), 1u);
  EXPECT_TRUE(answers_[0].timed_out);
  EXPECT_EQ(answers_[0].verdict, BB_AUTH_UNAVAILABLE);
  EXPECT_EQ(answer(started.ticket), BB_E_STALE);
}

TEST_F(LoginsTest, ShutdownCancelsEveryPendingLogin) {
  auto a = start();
  auto b = start();
  logins_.cancel_all();
  EXPECT_EQ(fake_.cancelled.size(), 2u);
  EXPECT_EQ(logins_.pending(), 0u);
  EXPECT_EQ(answer(a.ticket), BB_E_STALE);
  EXPECT_EQ(answer(b.ticket), BB_E_STALE);
}

TEST_F(LoginsTest, AuthenticatorWithoutCancelIsNotCalled) {
  table_.cancel = nullptr;
  auto started = start();
  logins_.cancel(started.ticket);
  EXPECT_EQ(answer(started.ticket), BB_E_STALE);
}

TEST_F(LoginsTest, FailedAuthenticatorLeavesNothingPending) {
  fake_.status = BB_E_INTERNAL;
  auto started = start();
  EXPECT_EQ(started.status, BB_E_INTERNAL);
  EXPECT_EQ(started.ticket, 0u);
  EXPECT_EQ(logins_.pending(), 0u);
}

}  // namespace
}  // namespace backbone::kernel::auth
