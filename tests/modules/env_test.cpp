// SPDX-License-Identifier: GPL-3.0-or-later
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <nlohmann/json.hpp>

#include <map>
#include <string>

#include "config/env/env_settings.hpp"
#include "module_test_support.hpp"

namespace backbone::modules::env {
namespace {

using backbone::testing::FakeHost;
using Json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

using Vars = std::map<std::string, std::string>;

EnvSettings parse(const Vars& vars, std::string_view prefix = "") {
  return settings_from_environment(
      [&vars](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
      },
      prefix);
}

// ---- the pure parser -----------------------------------------------------------

TEST(EnvSettings, NothingSetMeansNoSettings) {
  EnvSettings e = parse({});
  EXPECT_EQ(e.settings, Json::object());
  EXPECT_THAT(e.applied, IsEmpty());
  EXPECT_THAT(e.errors, IsEmpty());
  EXPECT_THAT(e.warnings, IsEmpty());
}

TEST(EnvSettings, EmptyValuesCountAsUnset) {
  EnvSettings e = parse({{"ADMIN_TOKEN", ""}, {"TCP_PORT", ""}, {"HTTP_ENABLED", ""}});
  EXPECT_EQ(e.settings, Json::object());
  EXPECT_THAT(e.errors, IsEmpty());
}

TEST(EnvSettings, EveryVariable) {
  EnvSettings e = parse({
      {"ADMIN_TOKEN", "admin-tok"},
      {"TOKEN_SECRET", "jwt-secret"},
      {"K8S_ENABLED", "true"},
      {"HTTP_ENABLED", "yes"},
      {"HTTP_PORT", "8080"},
      {"TCP_ENABLED", "0"},
      {"TCP_PORT", "11883"},
      {"WS_ENABLED", "1"},
      {"API_ENABLED", "false"},
      {"OIDC_ENABLED", "TRUE"},
      {"OIDC_DISCOVERY", "https://idp.example/.well-known/openid-configuration"},
      {"OIDC_CLIENT_ID", "backbone"},
      {"OIDC_CLIENT_SECRET", "oidc-secret"},
      {"OIDC_GROUP_FIELD", "roles"},
      {"OIDC_ADMIN_GROUP", "admins"},
      {"OIDC_WRITER_GROUP", "writers"},
      {"OIDC_READER_GROUP", "readers"},
      {"UNRELATED", "x"},
  });
  EXPECT_THAT(e.errors, IsEmpty());
  const Json expected = Json::parse(R"({
    "admin": {"token": "admin-tok"},
    "jwt": {"secret": "jwt-secret"},
    "k8s": {"enabled": true},
    "http": {"enabled": true, "port": 8080, "api_enabled": false},
    "ws": {"enabled": true},
    "tcp": {"enabled": false, "port": 11883},
    "oidc": {
      "enabled": true,
      "discovery_url": "https://idp.example/.well-known/openid-configuration",
      "client_id": "backbone",
      "client_secret": "oidc-secret",
      "group_field": "roles",
      "admin_group": "admins",
      "writer_group": "writers",
      "reader_group": "readers"
    }
  })");
  EXPECT_EQ(e.settings, expected) << e.settings.dump(2);
  EXPECT_EQ(e.applied.size(), 17u);
}

TEST(EnvSettings, EachVariableAlone) {
  struct Case {
    const char* name;
    const char* value;
    const char* json;
  };
  for (
      const Case& c : {
          Case{"ADMIN_TOKEN", "t", R"({"admin": {"token": "t"}})"},
          Case{"TOKEN_SECRET", "s", R"({"jwt": {"secret": "s"}})"},
          Case{"JWT_SECRET", "s", R"({"jwt": {"secret": "s"}})"},
          Case{"K8S_ENABLED", "no", R"({"k8s": {"enabled": false}})"},
          Case{
              "HTTP_ENABLED", "false",
              R"({"http": {"enabled": false}, "http-api": {"enabled": false}, "ws": {"enabled": false}})"},
          Case{"HTTP_ENABLED", "true", R"({"http": {"enabled": true}, "ws": {"enabled": true}})"},
          Case{"HTTP_PORT", "8883", R"({"http": {"port": 8883}})"},
          Case{"TCP_ENABLED", "Yes", R"({"tcp": {"enabled": true}})"},
          Case{"TCP_PORT", "1", R"({"tcp": {"port": 1}})"},
          Case{"TCP_PORT", "65535", R"({"tcp": {"port": 65535}})"},
          Case{"WS_ENABLED", "NO", R"({"ws": {"enabled": false}})"},
          Case{"API_ENABLED", "1", R"({"http": {"api_enabled": true}})"},
          Case{"OIDC_ENABLED", "0", R"({"oidc": {"enabled": false}})"},
          Case{"OIDC_DISCOVERY", "u", R"({"oidc": {"discovery_url": "u"}})"},
          Case{"OIDC_DISCOVERY_URL", "u", R"({"oidc": {"discovery_url": "u"}})"},
          Case{"OIDC_CLIENT_ID", "c", R"({"oidc": {"client_id": "c"}})"},
          Case{"OIDC_CLIENT_SECRET", "c", R"({"oidc": {"client_secret": "c"}})"},
          Case{"OIDC_GROUP_FIELD", "g", R"({"oidc": {"group_field": "g"}})"},
          Case{"OIDC_ADMIN_GROUP", "g", R"({"oidc": {"admin_group": "g"}})"},
          Case{"OIDC_WRITER_GROUP", "g", R"({"oidc": {"writer_group": "g"}})"},
          Case{"OIDC_READER_GROUP", "g", R"({"oidc": {"reader_group": "g"}})"},
      }) {
    SCOPED_TRACE(std::string(c.name) + "=" + c.value);
    EnvSettings e = parse({{c.name, c.value}});
    EXPECT_THAT(e.errors, IsEmpty());
    EXPECT_EQ(e.settings, Json::parse(c.json)) << e.settings.dump();
    EXPECT_THAT(e.applied, ElementsAre(c.name));
  }
}

TEST(EnvSettings, Aliases) {
  EnvSettings same = parse({{"TOKEN_SECRET", "s"}, {"JWT_SECRET", "s"}});
  EXPECT_THAT(same.errors, IsEmpty());
  EXPECT_EQ(same.settings, Json::parse(R"({"jwt": {"secret": "s"}})"));
  EXPECT_THAT(same.applied, UnorderedElementsAre("TOKEN_SECRET", "JWT_SECRET"));

  EnvSettings differ = parse({{"TOKEN_SECRET", "s1"}, {"JWT_SECRET", "s2"}});
  EXPECT_THAT(differ.errors,
              ElementsAre("environment variables TOKEN_SECRET and JWT_SECRET are both set and "
                          "differ; set only one"));
  EXPECT_EQ(differ.settings, Json::object());

  EnvSettings url = parse({{"OIDC_DISCOVERY", "a"}, {"OIDC_DISCOVERY_URL", "b"}});
  EXPECT_THAT(url.errors, ElementsAre("environment variables OIDC_DISCOVERY and "
                                      "OIDC_DISCOVERY_URL are both set and differ; set only one"));
}

TEST(EnvSettings, WebSocketNeedsHttp) {
  EnvSettings e = parse({{"HTTP_ENABLED", "false"}, {"WS_ENABLED", "true"}});
  EXPECT_EQ(
      e.settings,
      Json::parse(
          R"({"http": {"enabled": false}, "http-api": {"enabled": false}, "ws": {"enabled": false}})"));
  EXPECT_THAT(e.warnings, ElementsAre("WS_ENABLED=true has no effect while HTTP_ENABLED is false"));
  e = parse({{"HTTP_ENABLED", "true"}, {"WS_ENABLED", "false"}});
  EXPECT_EQ(e.settings, Json::parse(R"({"http": {"enabled": true}, "ws": {"enabled": false}})"));
  EXPECT_THAT(e.warnings, IsEmpty());
}

TEST(EnvSettings, InvalidValuesWithExactMessages) {
  struct Case {
    const char* name;
    const char* value;
    const char* message;
  };
  for (const Case& c : {
           Case{"TCP_PORT", "abc",
                "environment variable TCP_PORT='abc': expected a port number 1-65535"},
           Case{"TCP_PORT", "0",
                "environment variable TCP_PORT='0': expected a port number 1-65535"},
           Case{"TCP_PORT", "65536",
                "environment variable TCP_PORT='65536': expected a port number 1-65535"},
           Case{"TCP_PORT", "-1",
                "environment variable TCP_PORT='-1': expected a port number 1-65535"},
           Case{"TCP_PORT", "99999999999999999999",
                "environment variable TCP_PORT='99999999999999999999': expected a port number "
                "1-65535"},
           Case{"TCP_PORT", " 1883",
                "environment variable TCP_PORT=' 1883': expected a port number 1-65535"},
           Case{"HTTP_PORT", "80x",
                "environment variable HTTP_PORT='80x': expected a port number 1-65535"},
           Case{"HTTP_ENABLED", "maybe",
                "environment variable HTTP_ENABLED='maybe': expected a boolean "
                "(true/false/1/0/yes/no)"},
           Case{
               "TCP_ENABLED", "on",
               "environment variable TCP_ENABLED='on': expected a boolean (true/false/1/0/yes/no)"},
           Case{"WS_ENABLED", "2",
                "environment variable WS_ENABLED='2': expected a boolean (true/false/1/0/yes/no)"},
           Case{"API_ENABLED", "y",
                "environment variable API_ENABLED='y': expected a boolean (true/false/1/0/yes/no)"},
           Case{"K8S_ENABLED", "truee",
                "environment variable K8S_ENABLED='truee': expected a boolean "
                "(true/false/1/0/yes/no)"},
           Case{"OIDC_ENABLED", "tru\x01",
                "environment variable OIDC_ENABLED='tru?': expected a boolean "
                "(true/false/1/0/yes/no)"},
       }) {
    SCOPED_TRACE(c.name);
    EnvSettings e = parse({{c.name, c.value}, {"ADMIN_TOKEN", "t"}});
    EXPECT_THAT(e.errors, ElementsAre(c.message));
    EXPECT_EQ(e.settings, Json::object());  // nothing is applied when anything is invalid
  }
  EnvSettings two = parse({{"TCP_PORT", "x"}, {"HTTP_PORT", "y"}});
  EXPECT_EQ(two.errors.size(), 2u);
}

TEST(EnvSettings, PrefixAppliesToEveryName) {
  EnvSettings e =
      parse({{"BB_TCP_PORT", "2000"}, {"TCP_PORT", "3000"}, {"BB_JWT_SECRET", "s"}}, "BB_");
  EXPECT_EQ(e.settings, Json::parse(R"({"tcp": {"port": 2000}, "jwt": {"secret": "s"}})"));
  EXPECT_THAT(e.applied, UnorderedElementsAre("BB_TCP_PORT", "BB_JWT_SECRET"));
  e = parse({{"BB_TCP_PORT", "x"}}, "BB_");
  EXPECT_THAT(e.errors, ElementsAre("environment variable BB_TCP_PORT='x': expected a port "
                                    "number 1-65535"));
}

// ---- the built module, driven through the fake host and the real environment ---

const bb_module_descriptor* descriptor() {
  return test::module_descriptor(BB_TEST_ENV_MODULE);
}

// Sets variables for one test (under a prefix no real deployment uses) and
// removes them afterwards.
class ScopedEnv {
 public:
  explicit ScopedEnv(Vars vars) : vars_(std::move(vars)) {
    for (const auto& [k, v] : vars_) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : vars_) ::unsetenv(k.c_str());
  }

 private:
  Vars vars_;
};

constexpr const char* kPrefix = "BBTEST_ENV_";

TEST(EnvModule, DescriptorAndExports) {
  const bb_module_descriptor* d = descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->name, "env");
  EXPECT_EQ(d->kinds, static_cast<uint32_t>(BB_KIND_CONFIG));
  EXPECT_THAT(test::exported_symbols(BB_TEST_ENV_MODULE), ElementsAre("bb_module_entry"));
}

TEST(EnvModule, SubmitsOneSettingsResource) {
  ScopedEnv env({{"BBTEST_ENV_ADMIN_TOKEN", "tok-value-123"},
                 {"BBTEST_ENV_TCP_PORT", "1884"},
                 {"BBTEST_ENV_HTTP_ENABLED", "no"}});
  FakeHost host(Json{{"prefix", kPrefix}}.dump());
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  auto subs = host.submissions();
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].kind, "settings");
  EXPECT_EQ(subs[0].name, "env");
  EXPECT_FALSE(subs[0].deleted);
  EXPECT_EQ(Json::parse(subs[0].json), Json::parse(R"({
    "admin": {"token": "tok-value-123"},
    "tcp": {"port": 1884},
    "http": {"enabled": false},
    "http-api": {"enabled": false},
    "ws": {"enabled": false}
  })"));
  EXPECT_TRUE(host.logged("BBTEST_ENV_ADMIN_TOKEN", BB_LOG_INFO)) << host.log_text();
  EXPECT_FALSE(host.leaked("tok-value-123"));
  EXPECT_THAT(host.violations(), IsEmpty());
}

TEST(EnvModule, NothingSetSubmitsEmptyObject) {
  FakeHost host(Json{{"prefix", "BBTEST_ENV_UNSET_"}}.dump());
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  auto subs = host.submissions();
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(Json::parse(subs[0].json), Json::object());
  EXPECT_TRUE(host.logged("no environment variables set", BB_LOG_INFO));
}

TEST(EnvModule, InvalidValueFailsConfigure) {
  ScopedEnv env(Vars{{"BBTEST_ENV_TCP_PORT", "abc"}});
  FakeHost host(Json{{"prefix", kPrefix}}.dump());
  EXPECT_EQ(host.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(
      host.logged("environment variable BBTEST_ENV_TCP_PORT='abc': expected a port number "
                  "1-65535",
                  BB_LOG_ERROR))
      << host.log_text();
  EXPECT_THAT(host.submissions(), IsEmpty());
}

TEST(EnvModule, SecretConflictFailsWithoutLeaking) {
  ScopedEnv env(
      {{"BBTEST_ENV_TOKEN_SECRET", "first-secret"}, {"BBTEST_ENV_JWT_SECRET", "second-secret"}});
  FakeHost host(Json{{"prefix", kPrefix}}.dump());
  EXPECT_EQ(host.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(
      host.logged("BBTEST_ENV_TOKEN_SECRET and BBTEST_ENV_JWT_SECRET are both set", BB_LOG_ERROR));
  EXPECT_FALSE(host.leaked("first-secret"));
  EXPECT_FALSE(host.leaked("second-secret"));
}

TEST(EnvModule, RefusedSubmissionFailsConfigure) {
  FakeHost host(Json{{"prefix", "BBTEST_ENV_UNSET_"}}.dump());
  host.set_submit_status(BB_E_INVALID);
  EXPECT_EQ(host.load(descriptor()), BB_E_INVALID);
  EXPECT_TRUE(host.logged("the kernel refused the settings from the environment", BB_LOG_ERROR));
}

TEST(EnvModule, RejectsBadSettings) {
  struct Case {
    const char* settings;
    const char* message;
  };
  for (const Case& c : {
           Case{R"({"prefx": "A_"})", "setting 'prefx': unknown key (known: prefix)"},
           Case{R"({"prefix": 1})", "setting 'prefix': expected a string, got number"},
           Case{R"("BB_")", "settings: expected a JSON object"},
       }) {
    FakeHost host(c.settings);
    EXPECT_EQ(host.load(descriptor()), BB_E_INVALID) << c.settings;
    EXPECT_TRUE(host.logged(c.message, BB_LOG_ERROR)) << host.log_text();
    EXPECT_THAT(host.submissions(), IsEmpty());
  }
}

TEST(EnvModule, DefaultPrefixReadsPlainNames) {
  // Only proves the default prefix is empty: uses a variable no CI sets.
  const char* previous = ::getenv("OIDC_READER_GROUP");
  if (previous != nullptr) GTEST_SKIP() << "OIDC_READER_GROUP is set in this environment";
  ScopedEnv env(Vars{{"OIDC_READER_GROUP", "bbtest-readers"}});
  FakeHost host;
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  ASSERT_EQ(host.submissions().size(), 1u);
  EXPECT_EQ(Json::parse(host.submissions()[0].json)["oidc"]["reader_group"], "bbtest-readers");
}

}  // namespace
}  // namespace backbone::modules::env
