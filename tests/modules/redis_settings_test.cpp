// SPDX-License-Identifier: GPL-3.0-or-later
// The redis module's settings (modules/cluster/redis/settings.cpp): the
// fixed address and Redis Sentinel.
#include "cluster/redis/settings.hpp"

#include <string>

#include <gtest/gtest.h>

namespace backbone::modules::redis {
namespace {

std::string error_of(const char* json) {
  Settings s;
  std::string error;
  EXPECT_FALSE(parse_settings(nlohmann::json::parse(json), s, error)) << json;
  return error;
}

TEST(RedisSettings, AddressByDefault) {
  Settings s;
  std::string error;
  ASSERT_TRUE(parse_settings(nlohmann::json::parse(R"({"address": "redis:6380"})"), s, error));
  EXPECT_EQ(s.where(), "redis:6380");
  EXPECT_TRUE(s.sentinels.empty());
}

TEST(RedisSettings, Sentinels) {
  Settings s;
  std::string error;
  ASSERT_TRUE(parse_settings(
      nlohmann::json::parse(R"({"sentinels": ["s1:26379", "s2:26380"], "master_name": "m"})"), s,
      error))
      << error;
  ASSERT_EQ(s.sentinels.size(), 2u);
  EXPECT_EQ(s.sentinels[0], (Endpoint{"s1", 26379}));
  EXPECT_EQ(s.sentinels[1].port, 26380);
  EXPECT_EQ(s.master_name, "m");
  EXPECT_EQ(s.where(), "master 'm' (via sentinel)");

  Settings d;
  ASSERT_TRUE(parse_settings(nlohmann::json::parse(R"({"sentinels": ["s:1"]})"), d, error));
  EXPECT_EQ(d.master_name, "mymaster");
}

TEST(RedisSettings, BadSentinelSettingsNameTheSetting) {
  EXPECT_EQ(error_of(R"({"address": "r:1", "sentinels": ["s:1"]})"),
            "setting 'address': not with 'sentinels' (the sentinels name the master)");
  EXPECT_EQ(error_of(R"({"sentinels": []})"), "setting 'sentinels': must not be empty");
  EXPECT_EQ(error_of(R"({"sentinels": ["s:1", "s"]})"),
            "setting 'sentinels[1]': expected \"host:port\", got \"s\"");
  EXPECT_EQ(error_of(R"({"sentinels": ["s:70000"]})"),
            "setting 'sentinels[0]': port must be 1-65535, got \"70000\"");
  EXPECT_EQ(error_of(R"({"sentinels": ["a:1","a:1","a:1","a:1","a:1","a:1","a:1","a:1","a:1",
                         "a:1","a:1","a:1","a:1","a:1","a:1","a:1","a:1"]})"),
            "setting 'sentinels': expected 1-16 entries");
  EXPECT_EQ(error_of(R"({"master_name": "m"})"), "setting 'master_name': needs 'sentinels'");
  EXPECT_EQ(error_of(R"({"sentinels": ["s:1"], "sentinel_password_file": "/nonexistent/pw"})"),
            "setting 'sentinel_password_file': /nonexistent/pw: no such file");
}

}  // namespace
}  // namespace backbone::modules::redis
