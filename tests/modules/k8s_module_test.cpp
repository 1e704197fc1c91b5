// SPDX-License-Identifier: GPL-3.0-or-later
// The built k8s.so driven through the fake host: its settings, and its whole
// loop (list, watch, Secrets, status, authentication) against the stand-in
// API server tests/k8s/fake_apiserver.py (skipped when that is missing).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "common/base64/base64.hpp"
#include "common/kube/cluster_config.hpp"
#include "common/kube/kube_http.hpp"
#include "module_test_support.hpp"

namespace backbone::modules::k8s {
namespace {

using backbone::testing::FakeHost;
using Json = nlohmann::json;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

const bb_module_descriptor* descriptor() {
  return test::module_descriptor(BB_TEST_K8S_MODULE);
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = test::temp_path(name);
  std::ofstream(path) << text;
  return path;
}

// A kubeconfig for a server nobody listens on.
std::string unreachable_kubeconfig(bool insecure = false) {
  return write_file("unreachable.kubeconfig",
                    R"(
apiVersion: v1
kind: Config
current-context: c
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1")" +
                        std::string(insecure ? ", insecure-skip-tls-verify: true" : "") +
                        R"(}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {token: not-a-real-token}}]
)");
}

// configure() with these settings: BB_E_INVALID and exactly one error line
// containing `needle`.
void expect_refused(const Json& settings, const std::string& needle) {
  FakeHost host(settings.dump());
  ASSERT_EQ(host.create(descriptor()), BB_OK);
  EXPECT_EQ(host.configure(), BB_E_INVALID) << settings.dump();
  int errors = 0;
  for (const auto& l : host.logs()) errors += l.level == BB_LOG_ERROR;
  EXPECT_EQ(errors, 1) << host.log_text();
  EXPECT_TRUE(host.logged(needle, BB_LOG_ERROR)) << host.log_text();
  EXPECT_TRUE(host.authenticators().empty());
}

TEST(K8sModule, DescriptorAndExports) {
  const bb_module_descriptor* d = descriptor();
  ASSERT_NE(d, nullptr);
  EXPECT_STREQ(d->name, "k8s");
  EXPECT_EQ(d->kinds, static_cast<uint32_t>(BB_KIND_CONFIG | BB_KIND_AUTH));
  EXPECT_THAT(test::exported_symbols(BB_TEST_K8S_MODULE),
              ::testing::ElementsAre("bb_module_entry"));
}

TEST(K8sModule, InvalidSettingsAreOnePreciseLine) {
  const std::string kc = unreachable_kubeconfig();
  expect_refused({{"kubeconfig", kc}, {"bogus", 1}}, "setting 'bogus': unknown key");
  expect_refused({{"kubeconfig", kc}, {"namespaces", {"ok", "Not_A_Namespace"}}},
                 "setting 'namespaces[1]'");
  expect_refused({{"kubeconfig", kc}, {"namespaces", {"a", "a"}}}, "listed twice");
  expect_refused({{"kubeconfig", kc}, {"namespaces", "a"}}, "setting 'namespaces'");
  expect_refused({{"kubeconfig", kc}, {"watch_timeout_s", 0}}, "setting 'watch_timeout_s'");
  expect_refused({{"kubeconfig", 5}}, "setting 'kubeconfig': expected a non-empty string");
  expect_refused({{"kubeconfig", "/nonexistent/kubeconfig"}}, "/nonexistent/kubeconfig");
  expect_refused({{"kubeconfig", kc}, {"api_server", "ftp://x"}}, "setting 'api_server'");
  expect_refused({{"kubeconfig", kc}, {"api_server", "http://127.0.0.1:8001"}}, "allow_insecure");
  expect_refused({{"kubeconfig", unreachable_kubeconfig(true)}},
                 "insecure-skip-tls-verify is refused");
  expect_refused({{"kubeconfig", kc}, {"context", "missing"}}, "context 'missing' not found");
  expect_refused({{"kubeconfig", kc}, {"leader_election", "yes"}},
                 "setting 'leader_election': expected a boolean or an object, got string");
  expect_refused({{"kubeconfig", kc}, {"leader_election", {{"lease", "x"}}}},
                 "setting 'leader_election.lease': unknown key");
  expect_refused({{"kubeconfig", kc}, {"leader_election", {{"lease_name", "Not_A_Name"}}}},
                 "setting 'leader_election.lease_name': 'Not_A_Name' is not a valid object name");
  expect_refused({{"kubeconfig", kc}, {"leader_election", {{"namespace", "A"}}}},
                 "setting 'leader_election.namespace'");
  expect_refused({{"kubeconfig", kc}, {"leader_election", {{"lease_duration_s", 0}}}},
                 "setting 'leader_election.lease_duration_s'");
  expect_refused(
      {{"kubeconfig", kc},
       {"leader_election", {{"lease_duration_s", 5}, {"renew_deadline_ms", 5000}}}},
      "setting 'leader_election.renew_deadline_ms': must be less than 'lease_duration_s' (5 s)");
  expect_refused({{"kubeconfig", kc},
                  {"leader_election", {{"renew_deadline_ms", 1000}, {"retry_period_ms", 900}}}},
                 "setting 'leader_election.retry_period_ms'");
}

TEST(K8sModule, NoConnectionOutsideAPod) {
  ::unsetenv("KUBECONFIG");
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  expect_refused(Json::object(), "KUBERNETES_SERVICE_HOST is not set");
}

TEST(K8sModule, UnreachableServerKeepsRetryingWithoutReady) {
  FakeHost host(Json{
      {"kubeconfig", unreachable_kubeconfig()}, {"backoff_initial_ms", 20}, {"backoff_max_ms", 50}}
                    .dump());
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  ASSERT_TRUE(host.authenticator("k8s"));
  EXPECT_EQ(host.start(), BB_PENDING);
  EXPECT_EQ(host.authenticate("k8s", "anything").verdict, BB_AUTH_UNAVAILABLE);
  EXPECT_TRUE(eventually([&] { return host.logged("retrying in", BB_LOG_WARN); }))
      << host.log_text();
  EXPECT_EQ(host.ready_calls(), 0);
  const auto before = std::chrono::steady_clock::now();
  host.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, 3s);
  EXPECT_TRUE(host.violations().empty());
  EXPECT_FALSE(host.leaked("not-a-real-token"));
}

TEST(K8sModule, ReloadNeedsARestartOnlyWhenSettingsChange) {
  const Json settings = {{"kubeconfig", unreachable_kubeconfig()}};
  FakeHost host(settings.dump());
  ASSERT_EQ(host.load(descriptor()), BB_OK) << host.log_text();
  EXPECT_EQ(host.configure(true), BB_OK);
  Json changed = settings;
  changed["namespaces"] = {"other"};
  host.set_settings(changed.dump());
  EXPECT_EQ(host.configure(true), BB_E_UNSUPPORTED);
}

// ---- against the stand-in API server ----

// tests/k8s/fake_apiserver.py in a child process.
class FakeApiServer {
 public:
  bool start(const std::string& dir) {
    dir_ = dir;
    int out[2];
    if (::pipe(out) != 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::execl("/usr/bin/python3", "python3", BB_TEST_FAKE_APISERVER, "--port", "0", "--dir",
              dir.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(out[1]);
    FILE* f = ::fdopen(out[0], "r");
    char line[256] = {0};
    const bool ok = f != nullptr && std::fgets(line, sizeof line, f) != nullptr &&
                    std::string(line).rfind("READY ", 0) == 0;
    if (f != nullptr) std::fclose(f);
    return ok;
  }
  ~FakeApiServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& dir() const { return dir_; }

 private:
  pid_t pid_ = -1;
  std::string dir_;
};

class K8sModuleLive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::ifstream(BB_TEST_FAKE_APISERVER)) GTEST_SKIP() << "no " << BB_TEST_FAKE_APISERVER;
    const std::string dir = test::temp_path("apiserver");
    ASSERT_TRUE(api_.start(dir));
    kubeconfig_ = dir + "/kubeconfig";
    std::string error;
    auto text = read_file(kubeconfig_, error);
    ASSERT_TRUE(text) << error;
    auto cluster = parse_kubeconfig({{kubeconfig_, *text}}, "", &read_file, error);
    ASSERT_TRUE(cluster) << error;
    http_ = std::make_unique<KubeHttp>(*cluster, KubeHttp::Options{});
    ASSERT_EQ(call("POST", "/api/v1/namespaces",
                   {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "prod"}}}})
                  .status,
              201);
  }

  HttpResponse call(const std::string& method, const std::string& path, const Json& body = {},
                    const std::string& type = "application/json") {
    return http_->request(method, path, body.is_null() ? "" : body.dump(), type, cancel_);
  }
  Json get(const std::string& path) {
    HttpResponse r = call("GET", path);
    return r.status == 200 ? Json::parse(r.body) : Json();
  }

  static Json client(const std::string& name, const Json& statements) {
    return {{"apiVersion", "backbone.mortenolsen.pro/v1"},
            {"kind", "Client"},
            {"metadata", {{"name", name}, {"namespace", "prod"}}},
            {"spec", {{"statements", statements}}}};
  }
  static std::string clients() {
    return "/apis/backbone.mortenolsen.pro/v1/namespaces/prod/clients";
  }

  // The token of Client `name`, once its Secret exists.
  std::string token_of(const std::string& name) {
    std::string token;
    eventually([&] {
      Json s = get("/api/v1/namespaces/prod/secrets/" + name + "-secret");
      if (!s.is_object() || !s.contains("data")) return false;
      token = *base64_decode(s["data"]["token"].get<std::string>());
      return true;
    });
    return token;
  }

  Json ready_condition(const std::string& path) {
    Json obj = get(path);
    if (!obj.is_object() || !obj.contains("status")) return Json::object();
    for (const auto& c : obj["status"].value("conditions", Json::array())) {
      if (c.value("type", "") == "Ready") return c;
    }
    return Json::object();
  }

  std::unique_ptr<FakeHost> start_module(Json extra = Json::object()) {
    Json settings = {{"kubeconfig", kubeconfig_},
                     {"watch_timeout_s", 30},
                     {"backoff_initial_ms", 50},
                     {"backoff_max_ms", 200}};
    settings.update(extra);
    auto host = std::make_unique<FakeHost>(settings.dump());
    EXPECT_EQ(host->load(descriptor()), BB_OK) << host->log_text();
    EXPECT_EQ(host->start(), BB_PENDING);
    EXPECT_TRUE(eventually([&] { return host->ready_calls() == 1; })) << host->log_text();
    return host;
  }

  FakeApiServer api_;
  std::string kubeconfig_;
  std::unique_ptr<KubeHttp> http_;
  Cancel cancel_;
};

const Json kPublishA =
    Json::parse(R"([{"effect":"allow","actions":["mqtt:publish"],"resources":["a/#"]}])");
const Json kPublishB =
    Json::parse(R"([{"effect":"allow","actions":["mqtt:publish"],"resources":["b/#"]}])");

TEST_F(K8sModuleLive, ClientLifecycle) {
  ASSERT_EQ(call("POST", clients(), client("sensor", kPublishA)).status, 201);
  auto host = start_module();

  const std::string token = token_of("sensor");
  ASSERT_GE(token.size(), 32u);
  ASSERT_TRUE(eventually([&] { return host->authenticate("k8s", token).verdict == BB_AUTH_ALLOW; }))
      << host->log_text();
  auto r = host->authenticate("k8s", token);
  EXPECT_EQ(r.principal, "prod/sensor");
  ASSERT_EQ(r.statements.size(), 1u);
  EXPECT_EQ(r.statements[0].resource, "a/#");
  EXPECT_EQ(host->authenticate("k8s", "wrong").verdict, BB_AUTH_DENY);

  // The Secret is owned by the Client.
  Json secret = get("/api/v1/namespaces/prod/secrets/sensor-secret");
  Json owner = secret["metadata"]["ownerReferences"][0];
  EXPECT_EQ(owner["kind"], "Client");
  EXPECT_EQ(owner["controller"], true);
  EXPECT_EQ(owner["uid"], get(clients() + "/sensor")["metadata"]["uid"]);
  EXPECT_TRUE(eventually(
      [&] { return ready_condition(clients() + "/sensor").value("status", "") == "True"; }));

  // New statements reach live sessions.
  ASSERT_EQ(call("PATCH", clients() + "/sensor", {{"spec", {{"statements", kPublishB}}}},
                 "application/merge-patch+json")
                .status,
            200);
  EXPECT_TRUE(eventually([&] {
    auto updates = host->principal_updates();
    return !updates.empty() && !updates.back().revoked && !updates.back().statements.empty() &&
           updates.back().statements[0].resource == "b/#";
  })) << host->log_text();

  // Invalid statements: Ready=False, the token logs in nobody.
  ASSERT_EQ(call("PATCH", clients() + "/sensor",
                 {{"spec",
                   {{"statements",
                     Json::parse(R"([{"effect":"allow","actions":[],"resources":["x"]}])")}}}},
                 "application/merge-patch+json")
                .status,
            200);
  EXPECT_TRUE(eventually([&] {
    Json c = ready_condition(clients() + "/sensor");
    return c.value("status", "") == "False" && c.value("reason", "") == "InvalidSpec";
  }));
  EXPECT_EQ(host->authenticate("k8s", token).verdict, BB_AUTH_FORBIDDEN);

  // Deleted: sessions revoked, the token no longer logs in.
  ASSERT_EQ(call("DELETE", clients() + "/sensor").status, 200);
  EXPECT_TRUE(eventually([&] {
    auto updates = host->principal_updates();
    return !updates.empty() && updates.back().revoked && updates.back().principal == "prod/sensor";
  }));
  EXPECT_EQ(host->authenticate("k8s", token).verdict, BB_AUTH_DENY);
  EXPECT_FALSE(host->leaked(token));
  host->stop();
  EXPECT_TRUE(host->violations().empty());
}

TEST_F(K8sModuleLive, TopicsAndRefusedTopics) {
  const std::string topics = "/apis/backbone.mortenolsen.pro/v1/namespaces/prod/topics";
  Json topic = {{"apiVersion", "backbone.mortenolsen.pro/v1"},
                {"kind", "Topic"},
                {"metadata", {{"name", "t"}, {"namespace", "prod"}}},
                {"spec", {{"patterns", {{{"pattern", "s/#"}, {"maxMessageSize", 10}}}}}}};
  ASSERT_EQ(call("POST", topics, topic).status, 201);
  auto host = start_module();
  auto submitted = [&](const std::string& name) {
    for (const auto& s : host->submissions()) {
      if (s.kind == "topic" && s.name == name && !s.deleted) return true;
    }
    return false;
  };
  EXPECT_TRUE(submitted("prod/t"));  // before ready: policies first
  EXPECT_TRUE(
      eventually([&] { return ready_condition(topics + "/t").value("reason", "") == "Applied"; }));

  host->set_submit_status(BB_E_INVALID);
  host->set_last_error("patterns[0]: expected exactly one of 'pattern' or 'matches'");
  topic["metadata"]["name"] = "bad";
  ASSERT_EQ(call("POST", topics, topic).status, 201);
  EXPECT_TRUE(eventually([&] {
    Json c = ready_condition(topics + "/bad");
    return c.value("status", "") == "False" &&
           c.value("message", "").find("exactly one of") != std::string::npos;
  })) << host->log_text();

  host->set_submit_status(BB_OK);
  ASSERT_EQ(call("DELETE", topics + "/t").status, 200);
  EXPECT_TRUE(eventually([&] {
    auto subs = host->submissions();
    return !subs.empty() && subs.back().name == "prod/t" && subs.back().deleted;
  }));
}

TEST_F(K8sModuleLive, RelistAfterGoneAndReconnectAfterDrop) {
  auto host = start_module();
  // History compacted: the next watch gets 410 and the module lists again.
  ASSERT_EQ(call("POST", "/_test/compact").status, 200);
  ASSERT_EQ(call("POST", "/_test/drop-watches", {{"graceful", true}}).status, 200);
  EXPECT_TRUE(eventually([&] { return host->logged("410 Gone"); })) << host->log_text();
  ASSERT_EQ(call("POST", clients(), client("after-gone", kPublishA)).status, 201);
  const std::string token = token_of("after-gone");
  EXPECT_TRUE(eventually([&] { return host->authenticate("k8s", token).verdict == BB_AUTH_ALLOW; }))
      << host->log_text();

  // Watches cut mid-stream: reconnect and carry on.
  ASSERT_EQ(call("POST", "/_test/drop-watches", {{"graceful", false}}).status, 200);
  ASSERT_EQ(call("POST", clients(), client("after-drop", kPublishA)).status, 201);
  const std::string token2 = token_of("after-drop");
  EXPECT_TRUE(eventually([&] {
    return host->authenticate("k8s", token2).verdict == BB_AUTH_ALLOW;
  })) << host->log_text();
  EXPECT_EQ(host->ready_calls(), 1);
}

TEST_F(K8sModuleLive, OperatorEditedTokenAppliesLive) {
  ASSERT_EQ(call("POST", clients(), client("c", kPublishA)).status, 201);
  auto host = start_module();
  const std::string old_token = token_of("c");
  ASSERT_TRUE(
      eventually([&] { return host->authenticate("k8s", old_token).verdict == BB_AUTH_ALLOW; }));
  const std::string new_token = "an-operator-chosen-token-0123456789";
  ASSERT_EQ(call("PATCH", "/api/v1/namespaces/prod/secrets/c-secret",
                 {{"data", {{"token", base64_encode(new_token)}}}}, "application/merge-patch+json")
                .status,
            200);
  EXPECT_TRUE(
      eventually([&] { return host->authenticate("k8s", new_token).verdict == BB_AUTH_ALLOW; }));
  EXPECT_EQ(host->authenticate("k8s", old_token).verdict, BB_AUTH_DENY);
  // Sessions of the old token were cut.
  bool revoked = false;
  for (const auto& u : host->principal_updates())
    revoked = revoked || (u.revoked && u.principal == "prod/c");
  EXPECT_TRUE(revoked);
  // Deleting the Secret makes a new one with a new token.
  ASSERT_EQ(call("DELETE", "/api/v1/namespaces/prod/secrets/c-secret").status, 200);
  std::string regenerated;
  EXPECT_TRUE(eventually([&] {
    regenerated = token_of("c");
    return !regenerated.empty() && regenerated != new_token;
  }));
}

TEST_F(K8sModuleLive, ClientCertificateAndCaFiles) {
  // kubeconfig-cert: certificate-authority and client-certificate/-key files.
  auto host = start_module({{"kubeconfig", api_.dir() + "/kubeconfig-cert"}});
  ASSERT_EQ(host->ready_calls(), 1) << host->log_text();
  ASSERT_EQ(call("POST", clients(), client("by-cert", kPublishA)).status, 201);
  EXPECT_FALSE(token_of("by-cert").empty()) << host->log_text();
}

TEST_F(K8sModuleLive, OnlyTheConfiguredNamespaces) {
  ASSERT_EQ(call("POST", "/api/v1/namespaces",
                 {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "other"}}}})
                .status,
            201);
  Json elsewhere = client("x", kPublishA);
  elsewhere["metadata"]["namespace"] = "other";
  ASSERT_EQ(
      call("POST", "/apis/backbone.mortenolsen.pro/v1/namespaces/other/clients", elsewhere).status,
      201);
  ASSERT_EQ(call("POST", clients(), client("y", kPublishA)).status, 201);
  auto host = start_module({{"namespaces", {"prod"}}});
  EXPECT_FALSE(token_of("y").empty());
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(get("/api/v1/namespaces/other/secrets/x-secret"), Json());
}

}  // namespace
}  // namespace backbone::modules::k8s
