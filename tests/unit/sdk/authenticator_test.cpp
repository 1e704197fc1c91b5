// SPDX-License-Identifier: GPL-3.0-or-later
// sdk::Authenticator and sdk::AuthReply against a host that records what the
// authenticator registers and completes.
#include <gtest/gtest.h>
#include <backbone/authenticator.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace backbone::sdk {
namespace {

// The host side of the two calls an authenticator makes.
struct RecordingHost {
  const bb_authenticator* table = nullptr;
  void* user = nullptr;
  bb_auth_ticket completed_ticket = 0;
  int32_t completed_verdict = 0;
  std::string completed_principal;
  size_t completed_statements = 0;
  std::vector<std::string> errors;
};

RecordingHost& recording(bb_host_ctx* ctx) {
  return *reinterpret_cast<RecordingHost*>(ctx);
}

bb_host_api recording_api() {
  bb_host_api api{};
  api.struct_size = sizeof(api);
  api.abi_major = BB_ABI_MAJOR;
  api.abi_minor = BB_ABI_MINOR;
  api.log = [](bb_host_ctx* h, int32_t level, bb_str msg) {
    if (level == BB_LOG_ERROR) recording(h).errors.emplace_back(view(msg));
  };
  api.register_authenticator = [](bb_host_ctx* h, const bb_authenticator* a, void* user) {
    recording(h).table = a;
    recording(h).user = user;
    return bb_status{BB_OK};
  };
  api.auth_complete = [](bb_host_ctx* h, bb_auth_ticket t, const bb_auth_result* r) {
    RecordingHost& host = recording(h);
    host.completed_ticket = t;
    host.completed_verdict = r->verdict;
    host.completed_principal = std::string(view(r->principal));
    host.completed_statements = r->statement_count;
    return bb_status{BB_OK};
  };
  return api;
}

// Allows "good" as principal "alice", throws for "throw", answers "later"
// through complete() and denies the rest.
class TestAuthenticator final : public Authenticator {
 public:
  std::optional<bb_auth_ticket> pending;
  std::optional<bb_auth_ticket> cancelled;
  std::string seen_client_id;

  using Authenticator::complete;

 protected:
  std::optional<AuthReply> authenticate(const LoginRequest& request) override {
    seen_client_id = std::string(request.client_id);
    if (request.password == "throw") throw std::runtime_error("boom");
    if (request.password == "later") {
      pending = request.ticket;
      return std::nullopt;
    }
    if (request.password != "good") return AuthReply::deny("bad password");
    StatementList statements;
    statements.allow("mqtt:publish", "a/#");
    statements.add(BB_EFFECT_DENY, "mqtt:publish", "a/secret");
    bb_quotas quotas{};
    quotas.struct_size = sizeof(quotas);
    quotas.max_connections = 3;
    return AuthReply::allow("alice", std::move(statements), 1234, quotas);
  }
  void cancel(bb_auth_ticket ticket) noexcept override { cancelled = ticket; }
};

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(auth_.register_with(Host(&api_, ctx()), "test"), BB_OK);
    ASSERT_NE(recorder_.table, nullptr);
  }
  bb_host_ctx* ctx() { return reinterpret_cast<bb_host_ctx*>(&recorder_); }

  bb_status login(std::string_view password, bb_auth_result& out, bb_auth_ticket ticket = 7) {
    bb_auth_request req{};
    req.struct_size = sizeof(req);
    req.client_id = str("c1");
    req.username = str("test");
    req.password = bytes(password);
    out = bb_auth_result{};
    out.struct_size = sizeof(out);
    return recorder_.table->authenticate(recorder_.user, &req, ticket, &out);
  }

  RecordingHost recorder_;
  bb_host_api api_ = recording_api();
  TestAuthenticator auth_;
};

TEST_F(AuthenticatorTest, RegistersItsTableUnderTheName) {
  EXPECT_EQ(view(recorder_.table->name), "test");
  EXPECT_EQ(recorder_.table->struct_size, sizeof(bb_authenticator));
  EXPECT_NE(recorder_.table->cancel, nullptr);
}

TEST_F(AuthenticatorTest, AllowCarriesStatementsExpiryAndQuotas) {
  bb_auth_result out{};
  ASSERT_EQ(login("good", out), BB_OK);
  EXPECT_EQ(auth_.seen_client_id, "c1");
  EXPECT_EQ(out.verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(view(out.principal), "alice");
  ASSERT_EQ(out.statement_count, 2u);
  EXPECT_EQ(out.statements[0].effect, BB_EFFECT_ALLOW);
  EXPECT_EQ(view(out.statements[0].resource), "a/#");
  EXPECT_EQ(out.statements[1].effect, BB_EFFECT_DENY);
  EXPECT_EQ(view(out.statements[1].resource), "a/secret");
  EXPECT_EQ(out.expires_at_unix_s, 1234);
  ASSERT_NE(out.quotas, nullptr);
  EXPECT_EQ(out.quotas->max_connections, 3u);
}

TEST_F(AuthenticatorTest, DenyCarriesOnlyTheReason) {
  bb_auth_result out{};
  ASSERT_EQ(login("wrong", out), BB_OK);
  EXPECT_EQ(out.verdict, BB_AUTH_DENY);
  EXPECT_EQ(view(out.log_reason), "bad password");
  EXPECT_EQ(out.statements, nullptr);
  EXPECT_EQ(out.statement_count, 0u);
  EXPECT_EQ(out.quotas, nullptr);
}

TEST_F(AuthenticatorTest, QuotasOnlyWhenTheHostsResultHasTheField) {
  bb_auth_result out{};
  bb_auth_request req{};
  req.struct_size = sizeof(req);
  req.password = bytes("good");
  out.struct_size = offsetof(bb_auth_result, quotas);  // a host before ABI 1.3
  ASSERT_EQ(recorder_.table->authenticate(recorder_.user, &req, 1, &out), BB_OK);
  EXPECT_EQ(out.verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(out.quotas, nullptr);
}

TEST_F(AuthenticatorTest, PendingLoginsAreCompletedAndCancelled) {
  bb_auth_result out{};
  ASSERT_EQ(login("later", out, 42), BB_PENDING);
  ASSERT_EQ(auth_.pending, 42u);
  StatementList statements;
  statements.allow("*", "**");
  EXPECT_EQ(auth_.complete(42, AuthReply::allow("bob", std::move(statements))), BB_OK);
  EXPECT_EQ(recorder_.completed_ticket, 42u);
  EXPECT_EQ(recorder_.completed_verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(recorder_.completed_principal, "bob");
  EXPECT_EQ(recorder_.completed_statements, 1u);
  recorder_.table->cancel(recorder_.user, 43);
  EXPECT_EQ(auth_.cancelled, 43u);
}

TEST_F(AuthenticatorTest, AnExceptionIsAnInternalErrorAndLogged) {
  bb_auth_result out{};
  EXPECT_EQ(login("throw", out), BB_E_INTERNAL);
  ASSERT_EQ(recorder_.errors.size(), 1u);
  EXPECT_NE(recorder_.errors[0].find("boom"), std::string::npos);
}

TEST(AuthReply, ForbiddenNamesThePrincipal) {
  AuthReply r = AuthReply::forbidden("carol", "no role");
  bb_auth_result out{};
  out.struct_size = sizeof(out);
  r.fill(&out);
  EXPECT_EQ(out.verdict, BB_AUTH_FORBIDDEN);
  EXPECT_EQ(view(out.principal), "carol");
  EXPECT_EQ(view(out.log_reason), "no role");
  EXPECT_EQ(out.statement_count, 0u);
}

}  // namespace
}  // namespace backbone::sdk
