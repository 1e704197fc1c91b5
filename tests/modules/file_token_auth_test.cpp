// SPDX-License-Identifier: GPL-3.0-or-later
// The example third-party authenticator (sdk/examples/file_token_auth),
// driven through the fake host like any first-party module.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "module_test_support.hpp"

namespace backbone::modules::file_token_auth {
namespace {

using backbone::testing::FakeHost;
using backbone::testing::Statement;
using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const bb_module_descriptor* descriptor() {
  return test::module_descriptor(BB_TEST_FILE_TOKEN_AUTH_MODULE);
}

class FileTokenAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test::temp_path("file_token_auth_test.txt");
    write(
        "# token effect action resource\n"
        "\n"
        "tok-sensor allow mqtt:publish sensors/+/temp\n"
        "  tok-sensor   disallow   mqtt:publish   sensors/secret/temp   # trailing comment\n"
        "tok-viewer allow mqtt:subscribe sensors/#\n");
  }
  void TearDown() override { std::remove(path_.c_str()); }
  void write(const std::string& text) { std::ofstream(path_) << text; }

  std::string path_;
};

TEST_F(FileTokenAuthTest, ExportsOnlyTheEntry) {
  ASSERT_NE(descriptor(), nullptr);
  EXPECT_THAT(test::exported_symbols(BB_TEST_FILE_TOKEN_AUTH_MODULE),
              ElementsAre("bb_module_entry"));
}

TEST_F(FileTokenAuthTest, TokensFromTheFile) {
  FakeHost host(Json{{"file", path_}}.dump());
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  auto r = host.authenticate("filetoken", "tok-sensor");
  EXPECT_EQ(r.verdict, BB_AUTH_ALLOW);
  EXPECT_EQ(r.principal, "filetoken:line3");
  EXPECT_THAT(r.statements,
              ElementsAre(Statement{BB_EFFECT_ALLOW, "mqtt:publish", "sensors/+/temp"},
                          Statement{BB_EFFECT_DENY, "mqtt:publish", "sensors/secret/temp"}));
  r = host.authenticate("filetoken", "tok-viewer");
  EXPECT_THAT(r.statements, ElementsAre(Statement{BB_EFFECT_ALLOW, "mqtt:subscribe", "sensors/#"}));
  for (const char* wrong : {"", "tok", "tok-sensorx", "#", "token"}) {
    r = host.authenticate("filetoken", wrong);
    EXPECT_EQ(r.verdict, BB_AUTH_DENY) << wrong;
    EXPECT_EQ(r.log_reason, "unknown token");
  }
  EXPECT_FALSE(host.leaked("tok-sensor"));
  EXPECT_THAT(host.violations(), IsEmpty());
}

TEST_F(FileTokenAuthTest, CustomNameAndReload) {
  FakeHost host(Json{{"file", path_}, {"name", "devices"}}.dump());
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  EXPECT_FALSE(host.authenticator("filetoken").has_value());
  EXPECT_EQ(host.authenticate("devices", "tok-viewer").verdict, BB_AUTH_ALLOW);
  write("tok-new allow * **\n");
  ASSERT_EQ(host.configure(/*reloading=*/true), BB_OK) << host.log_text();
  EXPECT_EQ(host.authenticate("devices", "tok-viewer").verdict, BB_AUTH_DENY);
  EXPECT_EQ(host.authenticate("devices", "tok-new").verdict, BB_AUTH_ALLOW);
}

TEST_F(FileTokenAuthTest, BadSettingsAndFiles) {
  struct Case {
    Json settings;
    std::string message;
  };
  const std::string missing = test::temp_path("no_such_token_file.txt");
  for (const Case& c : {
           Case{Json::object(), "setting 'file': required"},
           Case{{{"file", path_}, {"nmae", "x"}}, "setting 'nmae': unknown key"},
           Case{{{"file", 3}}, "setting 'file': expected a non-empty string"},
           Case{{{"file", missing}}, "setting 'file': cannot read '" + missing + "'"},
       }) {
    FakeHost host(c.settings.dump());
    EXPECT_EQ(host.load(descriptor()), BB_E_INVALID) << c.settings.dump();
    EXPECT_TRUE(host.logged(c.message, BB_LOG_ERROR)) << host.log_text();
  }
  write("ok-token allow a b\nsecret-token allow onlytwo\n");
  FakeHost host(Json{{"file", path_}}.dump());
  EXPECT_EQ(host.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(host.logged("line 2: expected '<token> <effect> <action> <resource>'"))
      << host.log_text();
  EXPECT_FALSE(host.leaked("secret-token"));
  write("secret-token permit a b\n");
  FakeHost host2(Json{{"file", path_}}.dump());
  EXPECT_EQ(host2.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(host2.logged("line 1: effect: expected allow, deny or disallow")) << host2.log_text();
}

}  // namespace
}  // namespace backbone::modules::file_token_auth
