// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/config/config_file.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace backbone::kernel::config {
namespace {

// The message of the ConfigError parse_config throws for `text`.
std::string error_of(const std::string& text) {
  try {
    parse_config(text, "test.json");
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("unexpected exception type: ") + e.what();
  }
  return "(no error)";
}

TEST(ConfigParse, EmptyObjectGivesDefaults) {
  const Config cfg = parse_config("{}", "empty.json");
  const Limits defaults;
  EXPECT_EQ(cfg.source, "empty.json");
  EXPECT_TRUE(cfg.module_path.empty());
  EXPECT_TRUE(cfg.modules.empty());
  EXPECT_FALSE(cfg.anonymous);
  EXPECT_TRUE(cfg.topics.empty());
  EXPECT_EQ(cfg.log_level, "info");
  EXPECT_EQ(cfg.log_format, "text");
  EXPECT_EQ(cfg.workers, 0u);
  EXPECT_EQ(cfg.limits.max_packet_size, defaults.max_packet_size);
  EXPECT_EQ(cfg.limits.max_inflight, defaults.max_inflight);
  EXPECT_EQ(cfg.limits.max_queued_bytes, defaults.max_queued_bytes);
}

TEST(ConfigParse, AcceptsCommentsAndEveryField) {
  const Config cfg = parse_config(R"(// leading comment
{
  /* block
     comment */
  "$schema": "https://example.invalid/schema.json",
  "module_path": ["/opt/a", "/opt/b"],  // trailing comment
  "workers": 3,
  "log": {"level": "debug", "format": "json"},
  "limits": {
    "max_packet_size": 1024, "max_packet_size_before_auth": 64, "max_connections": 5,
    "max_inflight": 65535, "receive_maximum": 1, "max_queued_messages": 7,
    "max_queued_bytes": 18446744073709551615, "max_topic_length": 10, "max_topic_levels": 2,
    "max_subscriptions_per_session": 3, "max_keep_alive": 60, "connect_timeout_ms": 0,
    "auth_timeout_ms": 4294967295, "max_session_expiry_s": 9, "topic_alias_maximum": 0,
    "sys_interval_s": 0, "disconnect_on_denied_publish": true
  },
  "anonymous": {"statements": [{"effect": "allow", "actions": "mqtt:*", "resources": "public/#"}]},
  "topics": {"t": {"patterns": [{"pattern": "s/**", "maxMessageSize": 10}]}},
  "modules": ["env", {"name": "tcp", "settings": {"port": 1884}, "enabled": false}]
})",
                                  "full.json");
  EXPECT_EQ(cfg.module_path, (std::vector<std::string>{"/opt/a", "/opt/b"}));
  EXPECT_EQ(cfg.workers, 3u);
  EXPECT_EQ(cfg.log_level, "debug");
  EXPECT_EQ(cfg.log_format, "json");
  const Limits& l = cfg.limits;
  EXPECT_EQ(l.max_packet_size, 1024u);
  EXPECT_EQ(l.max_packet_size_before_auth, 64u);
  EXPECT_EQ(l.max_connections, 5u);
  EXPECT_EQ(l.max_inflight, 65535);
  EXPECT_EQ(l.receive_maximum, 1);
  EXPECT_EQ(l.max_queued_messages, 7u);
  EXPECT_EQ(l.max_queued_bytes, 18446744073709551615ull);
  EXPECT_EQ(l.max_topic_length, 10u);
  EXPECT_EQ(l.max_topic_levels, 2u);
  EXPECT_EQ(l.max_subscriptions_per_session, 3u);
  EXPECT_EQ(l.max_keep_alive, 60);
  EXPECT_EQ(l.connect_timeout_ms, 0u);
  EXPECT_EQ(l.auth_timeout_ms, 4294967295u);
  EXPECT_EQ(l.max_session_expiry_s, 9u);
  EXPECT_EQ(l.topic_alias_maximum, 0);
  EXPECT_EQ(l.sys_interval_s, 0u);
  EXPECT_TRUE(l.disconnect_on_denied_publish);
  ASSERT_TRUE(cfg.anonymous);
  ASSERT_EQ(cfg.anonymous->size(), 1u);
  EXPECT_TRUE((*cfg.anonymous)[0].allow);
  EXPECT_EQ((*cfg.anonymous)[0].actions, (std::vector<std::string>{"mqtt:*"}));
  EXPECT_EQ((*cfg.anonymous)[0].resources, (std::vector<std::string>{"public/#"}));
  ASSERT_EQ(cfg.topics.count("t"), 1u);
  EXPECT_EQ(cfg.topics.at("t")["patterns"][0]["maxMessageSize"], 10);
  ASSERT_EQ(cfg.modules.size(), 2u);
  EXPECT_EQ(cfg.modules[0].name, "env");
  EXPECT_TRUE(cfg.modules[0].enabled);
  EXPECT_EQ(cfg.modules[0].settings, nlohmann::json::object());
  EXPECT_EQ(cfg.modules[0].where, "modules[0]");
  EXPECT_EQ(cfg.modules[1].name, "tcp");
  EXPECT_FALSE(cfg.modules[1].enabled);
  EXPECT_EQ(cfg.modules[1].settings, nlohmann::json({{"port", 1884}}));
  EXPECT_EQ(cfg.modules[1].where, "modules[1]");
}

TEST(ConfigParse, ModulePathAsOneString) {
  EXPECT_EQ(parse_config(R"({"module_path": "/x"})", "s").module_path,
            (std::vector<std::string>{"/x"}));
}

TEST(ConfigParse, ShippedExampleParses) {
  const Config cfg = load_config_file(std::string(BACKBONE_SOURCE_DIR) + "/config/backbone.json");
  ASSERT_EQ(cfg.modules.size(), 7u);
  EXPECT_EQ(cfg.modules[0].name, "env");
  EXPECT_EQ(cfg.modules[4].name, "tcp");
  EXPECT_EQ(cfg.modules[4].settings["port"], 1883);
  EXPECT_EQ(cfg.modules[5].name, "ws");
  EXPECT_EQ(cfg.modules[6].name, "http-api");
  EXPECT_EQ(cfg.http.port, 8883);
  EXPECT_EQ(cfg.state_dir, "/var/lib/backbone");
  EXPECT_EQ(cfg.limits.max_packet_size, 262144u);
  EXPECT_EQ(cfg.topics.count("sensor-topics"), 1u);
}

TEST(ConfigErrors, StateDir) {
  EXPECT_EQ(error_of(R"({"state_dir": "relative/dir"})"),
            "test.json: setting 'state_dir': expected an absolute directory path");
  EXPECT_EQ(error_of(R"({"state_dir": ""})"),
            "test.json: setting 'state_dir': expected an absolute directory path");
  EXPECT_EQ(error_of(R"({"state_dir": 5})"),
            "test.json: setting 'state_dir': expected a string, got number");
  EXPECT_EQ(parse_config(R"({"state_dir": "/srv/bb"})", "t.json").state_dir, "/srv/bb");
}

TEST(ConfigErrors, InvalidJsonGivesLineAndColumn) {
  EXPECT_EQ(error_of("{\n  \"workers\": ,\n}"), "test.json:2:14: invalid JSON");
  EXPECT_EQ(error_of("{,}"), "test.json:1:2: invalid JSON");
  EXPECT_EQ(error_of("{\n,}"), "test.json:2:1: invalid JSON");
  EXPECT_EQ(error_of("// only a comment\n\n   x"), "test.json:3:4: invalid JSON");
  EXPECT_EQ(error_of("{\"a\": 1} }"), "test.json:1:10: invalid JSON");
}

TEST(ConfigErrors, DeepNestingIsRefusedBeforeAnythingWalksIt) {
  const std::string deep = std::string(20000, '[') + std::string(20000, ']');
  EXPECT_EQ(error_of(R"({"modules": )" + deep + "}"), "test.json: nested deeper than 64 levels");
}

// parse_json refuses the depth before any reader recurses into it, so a
// hostile file is one clear error, not a stack overflow.
TEST(ConfigErrors, ObjectsNested100kDeepAreRefused) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += R"({"a": )";
  deep += "1" + std::string(100000, '}');
  EXPECT_EQ(error_of(R"({"limits": )" + deep + "}"), "test.json: nested deeper than 64 levels");
  EXPECT_EQ(error_of(deep), "test.json: nested deeper than 64 levels");
}

// An unknown key is quoted back cut short and with control bytes replaced, so
// a hostile key cannot flood or forge the log line.
TEST(ConfigErrors, HostileUnknownKeyIsQuotedSafely) {
  const std::string e = error_of("{\"" + std::string(100000, 'k') + "\\n\\u0007x\": 1}");
  EXPECT_EQ(e.rfind("test.json: setting '" + std::string(64, 'k') + "...': unknown key", 0), 0u)
      << e.substr(0, 200);
  EXPECT_LT(e.size(), 400u);
  EXPECT_EQ(error_of("{\"log\": {\"a\\nb\": 1}}"),
            "test.json: setting 'log.a?b': unknown key (known: level, format)");
}

TEST(ConfigErrors, TopLevel) {
  EXPECT_EQ(error_of("[]"), "test.json: settings: expected a JSON object, got array");
  EXPECT_EQ(error_of("5"), "test.json: settings: expected a JSON object, got number");
  const std::string known =
      " (known: $schema, module_path, workers, log, limits, http, state_dir, store, anonymous, "
      "topics, modules)";
  EXPECT_EQ(error_of(R"({"bogus": 1})"), "test.json: setting 'bogus': unknown key" + known);
  EXPECT_EQ(error_of(R"({"Workers": 1})"), "test.json: setting 'Workers': unknown key" + known);
  EXPECT_EQ(
      error_of(R"({"module_path": 5})"),
      "test.json: setting 'module_path': expected a string or an array of strings, got number");
  EXPECT_EQ(error_of(R"({"module_path": ["a", 1]})"),
            "test.json: setting 'module_path[1]': expected a non-empty string, got number");
}

// "workers" is a top-level key; its location should read like the others
// ("limits.max_inflight", "log.level"), not "settings.workers".
TEST(ConfigErrors, WorkersLocation) {
  EXPECT_EQ(error_of(R"({"workers": -1})"),
            "test.json: setting 'workers': expected an integer from 0 to 4294967295, got -1");
  EXPECT_EQ(error_of(R"({"workers": "4"})"),
            "test.json: setting 'workers': expected an integer from 0 to 4294967295, got \"4\"");
}

TEST(ConfigErrors, Log) {
  EXPECT_EQ(error_of(R"({"log": 1})"), "test.json: setting 'log': expected an object, got number");
  EXPECT_EQ(error_of(R"({"log": {"colour": "x"}})"),
            "test.json: setting 'log.colour': unknown key (known: level, format)");
  EXPECT_EQ(error_of(R"({"log": {"level": 3}})"),
            "test.json: setting 'log.level': expected a string, got number");
  EXPECT_EQ(error_of(R"({"log": {"format": null}})"),
            "test.json: setting 'log.format': expected a string, got null");
}

TEST(ConfigErrors, LimitsTypes) {
  EXPECT_EQ(error_of(R"({"limits": []})"),
            "test.json: setting 'limits': expected an object, got array");
  EXPECT_EQ(
      error_of(R"({"limits": {"max_packets": 1}})"),
      "test.json: setting 'limits.max_packets': unknown key "
      "(known: max_packet_size, max_packet_size_before_auth, max_connections, max_inflight, "
      "receive_maximum, max_queued_messages, max_queued_bytes, max_topic_length, max_topic_levels, "
      "max_subscriptions_per_session, max_keep_alive, connect_timeout_ms, auth_timeout_ms, "
      "slow_consumer_timeout_ms, max_session_expiry_s, topic_alias_maximum, sys_interval_s, "
      "shutdown_grace_ms, disconnect_on_denied_publish, max_retained_messages, max_retained_bytes, "
      "max_offline_sessions, login_failures_before_backoff, login_backoff_max_ms, principal)");
  EXPECT_EQ(
      error_of(R"({"limits": {"max_inflight": 65536}})"),
      "test.json: setting 'limits.max_inflight': expected an integer from 0 to 65535, got 65536");
  EXPECT_EQ(
      error_of(R"({"limits": {"max_connections": -5}})"),
      "test.json: setting 'limits.max_connections': expected an integer from 0 to 4294967295, "
      "got -5");
  EXPECT_EQ(
      error_of(R"({"limits": {"max_connections": 1.5}})"),
      "test.json: setting 'limits.max_connections': expected an integer from 0 to 4294967295, "
      "got 1.5");
  EXPECT_EQ(
      error_of(R"({"limits": {"max_packet_size": "1k"}})"),
      "test.json: setting 'limits.max_packet_size': expected an integer from 0 to 4294967295, "
      "got \"1k\"");
  EXPECT_EQ(
      error_of(R"({"limits": {"max_packet_size": 4294967296}})"),
      "test.json: setting 'limits.max_packet_size': expected an integer from 0 to 4294967295, "
      "got 4294967296");
  EXPECT_EQ(error_of(R"({"limits": {"max_queued_bytes": -1}})"),
            "test.json: setting 'limits.max_queued_bytes': expected an integer from 0 to "
            "18446744073709551615, got -1");
  EXPECT_EQ(error_of(R"({"limits": {"disconnect_on_denied_publish": 1}})"),
            "test.json: setting 'limits.disconnect_on_denied_publish': expected true or false, got "
            "number");
}

TEST(ConfigErrors, LimitsBounds) {
  EXPECT_EQ(error_of(R"({"limits": {"max_packet_size": 63}})"),
            "test.json: setting 'limits.max_packet_size': must be at least 64");
  EXPECT_EQ(error_of(R"({"limits": {"max_packet_size_before_auth": 0}})"),
            "test.json: setting 'limits.max_packet_size_before_auth': must be at least 64");
  EXPECT_EQ(error_of(R"({"limits": {"max_inflight": 0}})"),
            "test.json: setting 'limits.max_inflight': must be at least 1");
  EXPECT_EQ(error_of(R"({"limits": {"receive_maximum": 0}})"),
            "test.json: setting 'limits.receive_maximum': must be at least 1");
  EXPECT_EQ(error_of(R"({"limits": {"max_queued_messages": 0}})"),
            "test.json: setting 'limits.max_queued_messages': must be at least 1");
  // The smallest accepted values.
  const Config cfg = parse_config(
      R"({"limits": {"max_packet_size": 64, "max_packet_size_before_auth": 64,
          "max_inflight": 1, "receive_maximum": 1, "max_queued_messages": 1}})",
      "min");
  EXPECT_EQ(cfg.limits.max_packet_size, 64u);
  EXPECT_EQ(cfg.limits.max_inflight, 1);
}

TEST(ConfigParse, PrincipalQuotasAndBrokerWideCaps) {
  const Config cfg = parse_config(
      R"({"limits": {"max_retained_messages": 5, "max_retained_bytes": 6,
          "max_offline_sessions": 7, "login_failures_before_backoff": 8,
          "login_backoff_max_ms": 9,
          "principal": {"maxConnections": 10, "publishRate": 11, "maxRetained": 0}}})",
      "q");
  EXPECT_EQ(cfg.limits.max_retained_messages, 5u);
  EXPECT_EQ(cfg.limits.max_retained_bytes, 6u);
  EXPECT_EQ(cfg.limits.max_offline_sessions, 7u);
  EXPECT_EQ(cfg.limits.login_failures_before_backoff, 8u);
  EXPECT_EQ(cfg.limits.login_backoff_max_ms, 9u);
  EXPECT_EQ(cfg.limits.principal.max_connections, 10u);
  EXPECT_EQ(cfg.limits.principal.publish_rate, 11u);
  EXPECT_EQ(cfg.limits.principal.max_retained, 0u);
  EXPECT_EQ(error_of(R"({"limits": {"principal": {"maxConnection": 1}}})"),
            "test.json: setting 'limits.principal.maxConnection': unknown quota");
  EXPECT_EQ(error_of(R"({"limits": {"principal": {"publishRate": -1}}})"),
            "test.json: setting 'limits.principal.publishRate': expected an unsigned integer");
  EXPECT_EQ(error_of(R"({"limits": {"principal": []}})"),
            "test.json: setting 'limits.principal': expected an object");
}

TEST(ConfigErrors, Anonymous) {
  EXPECT_EQ(error_of(R"({"anonymous": []})"),
            "test.json: setting 'anonymous': expected an object, got array");
  EXPECT_EQ(error_of(R"({"anonymous": {}})"),
            "test.json: setting 'anonymous.statements': required (an array of statements)");
  EXPECT_EQ(error_of(R"({"anonymous": {"rules": []}})"),
            "test.json: setting 'anonymous.rules': unknown key (known: statements)");
  EXPECT_EQ(error_of(R"({"anonymous": {"statements": 5}})"),
            "test.json: setting 'anonymous.statements': expected an array, got number");
  EXPECT_EQ(
      error_of(R"({"anonymous": {"statements": [{"effect": "maybe", "actions": "*",
             "resources": "#"}]}})"),
      "test.json: setting 'anonymous.statements[0].effect': expected allow, deny or disallow");
  EXPECT_EQ(error_of(R"({"anonymous": {"statements": [{"effect": "allow", "resources": "#"}]}})"),
            "test.json: setting 'anonymous.statements[0].actions': missing");
  // An empty statement list is valid (deny everything).
  const Config cfg = parse_config(R"({"anonymous": {"statements": []}})", "s");
  ASSERT_TRUE(cfg.anonymous);
  EXPECT_TRUE(cfg.anonymous->empty());
}

TEST(ConfigErrors, Topics) {
  EXPECT_EQ(error_of(R"({"topics": []})"),
            "test.json: setting 'topics': expected an object, got array");
  const std::string e = error_of(R"({"topics": {"bad-rule": 5}})");
  EXPECT_EQ(e.rfind("test.json: setting 'topics.bad-rule': ", 0), 0u) << e;
  EXPECT_GT(e.size(), std::string("test.json: setting 'topics.bad-rule': ").size()) << e;
}

TEST(ConfigParse, Http) {
  const Config cfg = parse_config(
      R"({"http": {"enabled": false, "address": "127.0.0.1", "port": 9000, "api_enabled": false,
          "tls_cert": "c.pem", "tls_key": "k.pem", "max_body_bytes": 4096,
          "max_header_bytes": 2048, "request_timeout_ms": 100, "idle_timeout_ms": 200,
          "max_connections": 3, "max_unauthenticated_bytes": 1000000}})",
      "t.json");
  EXPECT_FALSE(cfg.http.enabled);
  EXPECT_FALSE(cfg.http.api_enabled);
  EXPECT_EQ(cfg.http.address, "127.0.0.1");
  EXPECT_EQ(cfg.http.port, 9000);
  EXPECT_EQ(cfg.http.tls_cert, "c.pem");
  EXPECT_EQ(cfg.http.max_body_bytes, 4096u);
  EXPECT_EQ(cfg.http.max_header_bytes, 2048u);
  EXPECT_EQ(cfg.http.request_timeout_ms, 100u);
  EXPECT_EQ(cfg.http.idle_timeout_ms, 200u);
  EXPECT_EQ(cfg.http.max_connections, 3u);
  EXPECT_EQ(cfg.http.max_unauthenticated_bytes, 1000000u);
  EXPECT_EQ(parse_config("{}", "t.json").http.max_unauthenticated_bytes, 16u * 1024 * 1024);
}

TEST(ConfigErrors, Http) {
  EXPECT_EQ(error_of(R"({"http": {"port": "80"}})"),
            "test.json: setting 'http.port': expected an integer from 0 to 65535, got \"80\"");
  EXPECT_EQ(error_of(R"({"http": {"port": 70000}})"),
            "test.json: setting 'http.port': expected an integer from 0 to 65535, got 70000");
  EXPECT_EQ(error_of(R"({"http": {"enabled": "yes"}})"),
            "test.json: setting 'http.enabled': expected true or false, got string");
  EXPECT_EQ(error_of(R"({"http": {"tls_cert": "c.pem"}})"),
            "test.json: setting 'http.tls_key': required with tls_cert (set both or neither)");
  EXPECT_EQ(error_of(R"({"http": {"max_header_bytes": 10}})"),
            "test.json: setting 'http.max_header_bytes': must be at least 1024");
  EXPECT_EQ(
      error_of(R"({"http": {"max_header_bytes": 4096, "max_unauthenticated_bytes": 69631}})"),
      "test.json: setting 'http.max_unauthenticated_bytes': must be at least max_header_bytes + "
      "65536");
  EXPECT_EQ(error_of(R"({"http": {"bogus": 1}})"),
            "test.json: setting 'http.bogus': unknown key (known: enabled, address, port, "
            "api_enabled, tls_cert, tls_key, max_body_bytes, max_header_bytes, request_timeout_ms, "
            "idle_timeout_ms, max_connections, max_unauthenticated_bytes)");
  EXPECT_EQ(error_of(R"({"http": []})"),
            "test.json: setting 'http': expected an object, got array");
}

TEST(ConfigErrors, Modules) {
  EXPECT_EQ(error_of(R"({"modules": {}})"),
            "test.json: setting 'modules': expected an array, got object");
  EXPECT_EQ(error_of(R"({"modules": ["env", "jwt", "env"]})"),
            "test.json: setting 'modules[2]': module 'env' is listed twice");
  EXPECT_EQ(error_of(R"({"modules": ["env", {"name": "env", "enabled": false}]})"),
            "test.json: setting 'modules[1]': module 'env' is listed twice");
  EXPECT_EQ(error_of(R"({"modules": [5]})"),
            "test.json: setting 'modules[0]': expected an object, got number");
  EXPECT_EQ(error_of(R"({"modules": [{"settings": {}}]})"),
            "test.json: setting 'modules[0].name': required (the module's name)");
  EXPECT_EQ(error_of(R"({"modules": [{"name": 1}]})"),
            "test.json: setting 'modules[0].name': expected a string, got number");
  EXPECT_EQ(error_of(R"({"modules": ["a", {"name": "x", "extra": 1}]})"),
            "test.json: setting 'modules[1].extra': unknown key (known: name, settings, enabled)");
  EXPECT_EQ(error_of(R"({"modules": [{"name": "x", "settings": []}]})"),
            "test.json: setting 'modules[0].settings': expected an object, got array");
  EXPECT_EQ(error_of(R"({"modules": [{"name": "x", "enabled": "yes"}]})"),
            "test.json: setting 'modules[0].enabled': expected true or false, got string");
  EXPECT_EQ(error_of(R"({"modules": ["../evil"]})"),
            "test.json: setting 'modules[0].name': invalid module name '../evil'");
  EXPECT_EQ(error_of(R"({"modules": [""]})"),
            "test.json: setting 'modules[0].name': invalid module name ''");
}

TEST(ConfigFile, LoadsFromDiskAndNamesMissingFiles) {
  char path[] = "/tmp/bb-config-test-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "// on disk\n{\"workers\": 2, \"modules\": [\"env\"]}\n";
  }
  const Config cfg = load_config_file(path);
  EXPECT_EQ(cfg.source, path);
  EXPECT_EQ(cfg.workers, 2u);
  ASSERT_EQ(cfg.modules.size(), 1u);
  {
    std::ofstream out(path);
    out << "{\n\"workers\": 2,,\n}\n";
  }
  try {
    load_config_file(path);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), std::string(path) + ":2:14: invalid JSON");
  }
  std::remove(path);
  try {
    load_config_file(path);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), std::string(path) + ": cannot read the config file");
  }
}

TEST(ConfigDefault, ListsTheSpecModulesPlusClient) {
  const Config cfg = default_config();
  EXPECT_EQ(cfg.source, "built-in defaults");
  EXPECT_TRUE(cfg.http.enabled);
  EXPECT_EQ(cfg.http.port, 8883);
  ASSERT_EQ(cfg.modules.size(), 7u);
  const std::vector<std::string> names = {"env", "admin", "jwt", "client", "tcp", "ws", "http-api"};
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(cfg.modules[i].name, names[i]);
    EXPECT_TRUE(cfg.modules[i].enabled);
    EXPECT_EQ(cfg.modules[i].settings, nlohmann::json::object());
    EXPECT_EQ(cfg.modules[i].where, "built-in default module '" + names[i] + "'");
  }
  EXPECT_FALSE(cfg.anonymous);
  EXPECT_TRUE(cfg.module_path.empty());
  EXPECT_EQ(cfg.workers, 0u);
}

}  // namespace
}  // namespace backbone::kernel::config
