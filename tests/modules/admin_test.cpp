// SPDX-License-Identifier: GPL-3.0-or-later
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "module_test_support.hpp"

namespace backbone::modules::admin {
namespace {

using backbone::testing::FakeHost;
using backbone::testing::Statement;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kToken = "s3cr3t-admin-token-0123456789abcdef";

const bb_module_descriptor* descriptor() {
  return test::module_descriptor(BB_TEST_ADMIN_MODULE);
}

std::string settings_with_token(const std::string& token) {
  return std::string(R"({"token": ")") + token + R"("})";
}

TEST(AdminModule, DescriptorAndExports) {
  const bb_module_descriptor* d = descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->name, "admin");
  EXPECT_EQ(d->abi_major, BB_ABI_MAJOR);
  EXPECT_EQ(d->kinds, static_cast<uint32_t>(BB_KIND_AUTH));
  EXPECT_THAT(test::exported_symbols(BB_TEST_ADMIN_MODULE), ElementsAre("bb_module_entry"));
}

TEST(AdminModule, RightTokenGrantsEverything) {
  FakeHost host(settings_with_token(kToken));
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  ASSERT_TRUE(host.authenticator("admin").has_value());
  auto r = host.authenticate("admin", kToken);
  EXPECT_EQ(r.status, BB_OK);
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(r.principal, "admin");
  EXPECT_THAT(r.statements, ElementsAre(Statement{BB_EFFECT_ALLOW, "*", "**"}));
  EXPECT_EQ(r.expires_at_unix_s, 0);
  EXPECT_FALSE(host.leaked(kToken));
  EXPECT_TRUE(host.violations().empty());
}

TEST(AdminModule, WrongTokensAreDenied) {
  FakeHost host(settings_with_token(kToken));
  ASSERT_EQ(host.load(descriptor()), BB_OK);
  const std::string token = kToken;
  for (const std::string& wrong :
       {std::string("wrong"), std::string(), token.substr(0, token.size() - 1), token + "x",
        std::string("S3CR3T-ADMIN-TOKEN-0123456789ABCDEF"), std::string(token.size(), 'a')}) {
    auto r = host.authenticate("admin", wrong);
    EXPECT_EQ(r.status, BB_OK);
    EXPECT_EQ(r.verdict, BB_AUTH_DENY) << wrong;
    EXPECT_EQ(r.log_reason, "invalid admin token");
    EXPECT_TRUE(r.statements.empty());
  }
  EXPECT_FALSE(host.leaked(kToken));
}

TEST(AdminModule, OffWithoutToken) {
  for (const char* settings : {"{}", R"({"token": ""})", R"({"token": null})", "null"}) {
    FakeHost host(settings);
    ASSERT_EQ(host.load(descriptor()), BB_OK) << settings;
    EXPECT_TRUE(host.logged("admin provider off (no token)", BB_LOG_INFO)) << host.log_text();
    EXPECT_TRUE(host.authenticators().empty());
    EXPECT_EQ(host.authenticate("admin", "").status, BB_E_NOT_FOUND);
  }
  FakeHost host;
  host.set_settings(std::nullopt);  // config_get answers BB_E_NOT_FOUND
  ASSERT_EQ(host.load(descriptor()), BB_OK);
  EXPECT_TRUE(host.authenticators().empty());
}

TEST(AdminModule, RejectsUnknownKeysAndWrongTypes) {
  struct Case {
    const char* settings;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"token": "x", "tokn": "y"})", "setting 'tokn': unknown key (known: token)"},
           Case{R"({"token": 42})", "setting 'token': expected a string, got number"},
           Case{R"({"token": ["a"]})", "setting 'token': expected a string, got array"},
           Case{R"([1])", "settings: expected a JSON object"},
           Case{R"({"token": )", "settings: expected a JSON object"},
       }) {
    FakeHost host(c.settings);
    EXPECT_EQ(host.load(descriptor()), BB_E_INVALID) << c.settings;
    EXPECT_TRUE(host.logged(c.message, BB_LOG_ERROR)) << host.log_text();
    EXPECT_TRUE(host.authenticators().empty());
  }
}

TEST(AdminModule, ReloadSwapsToken) {
  FakeHost host(settings_with_token(kToken));
  ASSERT_EQ(host.load(descriptor()), BB_OK);
  ASSERT_EQ(host.start(), BB_OK);
  host.set_settings(settings_with_token("another-token"));
  ASSERT_EQ(host.configure(/*reloading=*/true), BB_OK) << host.log_text();
  EXPECT_EQ(host.authenticate("admin", kToken).verdict, BB_AUTH_DENY);
  EXPECT_EQ(host.authenticate("admin", "another-token").verdict, BB_AUTH_ALLOW);
  host.set_settings("{}");
  EXPECT_EQ(host.configure(/*reloading=*/true), BB_E_UNSUPPORTED);
  EXPECT_TRUE(host.violations().empty());
}

}  // namespace
}  // namespace backbone::modules::admin
