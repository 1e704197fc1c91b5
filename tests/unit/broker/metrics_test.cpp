// SPDX-License-Identifier: GPL-3.0-or-later
// Metrics a module sets through bb_host_api.metric_set.
#include "kernel/broker/metrics.hpp"

#include <cmath>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace backbone::kernel::broker {
namespace {

TEST(ModuleMetrics, ShownInPrometheusAndJsonUnderTheModulesName) {
  Metrics m;
  EXPECT_EQ(m.set_module_metric("http-api", "requests_total", "Requests.", true, 3), "");
  EXPECT_EQ(m.set_module_metric("redis", "connected", "Up.", false, 1), "");
  EXPECT_EQ(m.set_module_metric("redis", "connected", "Up.", false, 0), "");  // updated
  std::string text;
  m.write_prometheus(text);
  EXPECT_NE(text.find("# HELP backbone_http_api_requests_total Requests.\n"
                      "# TYPE backbone_http_api_requests_total counter\n"
                      "backbone_http_api_requests_total 3\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE backbone_redis_connected gauge\nbackbone_redis_connected 0\n"),
            std::string::npos)
      << text;
  nlohmann::json json;
  m.write_json(json);
  EXPECT_EQ(json["modules"]["backbone_redis_connected"], 0);
  EXPECT_EQ(json["modules"]["backbone_http_api_requests_total"], 3);
}

TEST(ModuleMetrics, BadNamesHelpValuesKindsAndTooManyAreRefused) {
  Metrics m;
  for (const char* name : {"", "Upper", "dash-ed", "sp ace", "new\nline"})
    EXPECT_NE(m.set_module_metric("redis", name, "", true, 1), "") << name;
  EXPECT_NE(m.set_module_metric("redis", std::string(65, 'a'), "", true, 1), "");
  EXPECT_NE(m.set_module_metric("redis", "x", "two\nlines", true, 1), "");
  EXPECT_NE(m.set_module_metric("redis", "x", std::string(257, 'h'), true, 1), "");
  EXPECT_NE(m.set_module_metric("redis", "x", "", true, NAN), "");
  EXPECT_NE(m.set_module_metric("redis", "x", "", true, INFINITY), "");
  EXPECT_EQ(m.set_module_metric("redis", "x", "", true, 1), "");
  EXPECT_NE(m.set_module_metric("redis", "x", "", false, 1), "");  // a counter stays one
  for (size_t i = 1; i < Metrics::kMaxModuleMetrics; ++i)
    EXPECT_EQ(m.set_module_metric("redis", "m" + std::to_string(i), "", false, 1), "") << i;
  EXPECT_NE(m.set_module_metric("redis", "one_too_many", "", false, 1), "");
  EXPECT_EQ(m.set_module_metric("other", "m1", "", false, 1), "");  // per module
  std::string text;
  m.write_prometheus(text);
  EXPECT_EQ(text.find("one_too_many"), std::string::npos);
}

}  // namespace
}  // namespace backbone::kernel::broker
