// SPDX-License-Identifier: GPL-3.0-or-later
#include <gtest/gtest.h>
#include <backbone/json.hpp>
#include <backbone/settings.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace backbone::sdk {
namespace {

using nlohmann::json;

TEST(SdkSettings, ReadsKnownKeysOfEachType) {
  const json doc = json::parse(R"({"file": "/x", "on": true, "n": 42, "list": ["a", "b"],
                                   "tls": {"cert": "c"}, "empty": ""})");
  Settings s(doc);
  std::string file, cert, empty = "unset";
  std::string absent = "default";
  bool on = false;
  int64_t n = 0;
  uint32_t small = 7;
  std::vector<std::string> list;
  EXPECT_TRUE(s.known({"file", "on", "n", "list", "tls", "empty"}));
  EXPECT_TRUE(s.get_string("file", file));
  EXPECT_TRUE(s.get_string("absent", absent));
  EXPECT_TRUE(s.get_string("empty", empty, true));
  EXPECT_TRUE(s.get_bool("on", on));
  EXPECT_TRUE(s.get_int<int64_t>("n", n, 0, 100));
  EXPECT_TRUE(s.get_int<uint32_t>("missing", small, 0, 10));
  EXPECT_TRUE(s.get_strings("list", list));
  Settings tls = s.object("tls");
  EXPECT_TRUE(tls.known({"cert"}));
  EXPECT_TRUE(tls.get_string("cert", cert));
  EXPECT_TRUE(s.merge(tls));
  EXPECT_TRUE(s.require("file"));
  EXPECT_TRUE(s.ok()) << s.error();
  EXPECT_EQ(file, "/x");
  EXPECT_EQ(absent, "default");
  EXPECT_EQ(empty, "");
  EXPECT_TRUE(on);
  EXPECT_EQ(n, 42);
  EXPECT_EQ(small, 7u);
  EXPECT_EQ(list, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(cert, "c");
  EXPECT_TRUE(s.has("tls"));
  EXPECT_FALSE(s.has("nope"));
  ASSERT_NE(s.find("n"), nullptr);
  EXPECT_EQ(s.find("nope"), nullptr);
  // An absent object reads as empty.
  Settings none = s.object("nope");
  EXPECT_TRUE(none.ok());
  EXPECT_FALSE(none.has("x"));
}

std::string first_error(const std::string& text, void (*read)(Settings&)) {
  const json doc = json::parse(text);
  Settings s(doc);
  read(s);
  EXPECT_FALSE(s.ok()) << text;
  return s.error();
}

TEST(SdkSettings, EveryErrorNamesTheKeyPath) {
  EXPECT_EQ(first_error(R"([])", [](Settings&) {}), "settings: expected a JSON object, got array");
  EXPECT_EQ(first_error(R"({"file": "a", "fiel": 1})", [](Settings& s) { s.known({"file"}); }),
            "setting 'fiel': unknown key (known: file)");
  EXPECT_EQ(first_error(R"({"a": 1})", [](Settings& s) { s.known({}); }),
            "setting 'a': unknown key");
  EXPECT_EQ(first_error(R"({"file": 5})",
                        [](Settings& s) {
                          std::string v;
                          s.get_string("file", v);
                        }),
            "setting 'file': expected a non-empty string, got number");
  EXPECT_EQ(first_error(R"({"file": ""})",
                        [](Settings& s) {
                          std::string v;
                          s.get_string("file", v);
                        }),
            "setting 'file': expected a non-empty string, got string");
  EXPECT_EQ(first_error(R"({"on": "yes"})",
                        [](Settings& s) {
                          bool v;
                          s.get_bool("on", v);
                        }),
            "setting 'on': expected true or false, got string");
  EXPECT_EQ(first_error(R"({"n": 101})",
                        [](Settings& s) {
                          int v;
                          s.get_int("n", v, 0, 100);
                        }),
            "setting 'n': expected an integer from 0 to 100, got 101");
  EXPECT_EQ(first_error(R"({"n": -1})",
                        [](Settings& s) {
                          uint64_t v;
                          s.get_int<uint64_t>("n", v, 0, UINT64_MAX);
                        }),
            "setting 'n': expected an integer from 0 to 18446744073709551615, got -1");
  EXPECT_EQ(first_error(R"({"n": 1.5})",
                        [](Settings& s) {
                          int v;
                          s.get_int("n", v, 0, 100);
                        }),
            "setting 'n': expected an integer from 0 to 100, got 1.5");
  EXPECT_EQ(first_error(R"({"n": 18446744073709551615})",
                        [](Settings& s) {
                          int64_t v;
                          s.get_int<int64_t>("n", v, -5, INT64_MAX);
                        }),
            "setting 'n': expected an integer from -5 to 9223372036854775807, got "
            "18446744073709551615");
  EXPECT_EQ(first_error(R"({"l": "a"})",
                        [](Settings& s) {
                          std::vector<std::string> v;
                          s.get_strings("l", v);
                        }),
            "setting 'l': expected an array of strings, got string");
  EXPECT_EQ(first_error(R"({"l": ["a", 2]})",
                        [](Settings& s) {
                          std::vector<std::string> v;
                          s.get_strings("l", v);
                        }),
            "setting 'l[1]': expected a non-empty string, got number");
  EXPECT_EQ(first_error(R"({"l": []})",
                        [](Settings& s) {
                          std::vector<std::string> v;
                          s.get_strings("l", v, true);
                        }),
            "setting 'l': must not be empty");
  EXPECT_EQ(first_error(R"({})", [](Settings& s) { s.require("file", "path of the file"); }),
            "setting 'file': required (path of the file)");
  EXPECT_EQ(first_error(R"({"tls": 1})", [](Settings& s) { s.object("tls"); }),
            "setting 'tls': expected an object, got number");
  EXPECT_EQ(first_error(R"({"tls": {"x": {"y": 1}}})",
                        [](Settings& s) {
                          Settings tls = s.object("tls");
                          Settings x = tls.object("x");
                          x.known({"z"});
                          s.merge(x);
                        }),
            "setting 'tls.x.y': unknown key (known: z)");
  EXPECT_EQ(first_error(R"({"a": 1})", [](Settings& s) { s.fail("a", "too odd"); }),
            "setting 'a': too odd");
}

TEST(SdkSettings, FirstErrorSticks) {
  const json doc = json::parse(R"({"a": 1, "b": "x"})");
  Settings s(doc);
  std::string a, b;
  EXPECT_FALSE(s.get_string("a", a));
  EXPECT_FALSE(s.get_string("b", b));  // valid, but the reader has failed
  EXPECT_FALSE(s.known({"c"}));
  EXPECT_EQ(b, "");
  EXPECT_EQ(s.error(), "setting 'a': expected a non-empty string, got number");
  Settings child = s.object("b");
  EXPECT_FALSE(child.ok());
}

TEST(SdkSettings, HostileInputs) {
  // Unknown keys are quoted printable and bounded.
  json doc = json::object();
  doc[std::string(100, 'k') + "\n"] = 1;
  Settings s(doc);
  EXPECT_FALSE(s.known({"a"}));
  EXPECT_EQ(s.error(), "setting '" + std::string(64, 'k') + "...': unknown key (known: a)");
  // A document nested 100k deep never reaches the reader.
  JsonError error;
  const std::string deep = "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_TRUE(parse_json(deep, &error).is_discarded());
  const json broken = parse_json("{\"a\": ");
  EXPECT_EQ(Settings(broken).error(), "settings: expected a JSON object (not valid JSON)");
  // A huge list is read element by element without trouble.
  json big = json::object();
  big["l"] = json::array();
  for (int i = 0; i < 100000; ++i) big["l"].push_back("x");
  big["l"].push_back(json::array());
  Settings b(big);
  std::vector<std::string> list;
  EXPECT_FALSE(b.get_strings("l", list));
  EXPECT_EQ(b.error(), "setting 'l[100000]': expected a non-empty string, got array");
  EXPECT_TRUE(list.empty());
}

}  // namespace
}  // namespace backbone::sdk
