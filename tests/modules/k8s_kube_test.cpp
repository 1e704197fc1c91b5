// SPDX-License-Identifier: GPL-3.0-or-later
// The Kubernetes REST client of the k8s module, without a network:
// kubeconfig and in-cluster configuration, YAML, base64, REST paths, watch
// event and list decoding, line splitting and backoff.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>

#include "common/base64/base64.hpp"
#include "common/kube/api_paths.hpp"
#include "common/kube/backoff.hpp"
#include "common/kube/cluster_config.hpp"
#include "common/kube/watch_event.hpp"
#include "common/kube/yaml_json.hpp"

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;

// ---- YAML ----

TEST(K8sYaml, MappingsSequencesAndScalars) {
  std::string error;
  auto doc = yaml_to_json(R"(
a: plain
b: "quoted true"
c: true
d: ~
e:
  - x
  - {k: v}
f: 'single'
n: 42
)",
                          error);
  ASSERT_TRUE(doc) << error;
  EXPECT_EQ((*doc)["a"], "plain");
  EXPECT_EQ((*doc)["b"], "quoted true");
  EXPECT_EQ((*doc)["c"], true);
  EXPECT_TRUE((*doc)["d"].is_null());
  EXPECT_EQ((*doc)["e"][0], "x");
  EXPECT_EQ((*doc)["e"][1]["k"], "v");
  EXPECT_EQ((*doc)["f"], "single");
  EXPECT_EQ((*doc)["n"], "42");  // kubeconfig has no numbers: strings stay strings
}

TEST(K8sYaml, JsonIsYaml) {
  std::string error;
  auto doc = yaml_to_json(R"({"a": ["b", {"c": "d"}], "e": false})", error);
  ASSERT_TRUE(doc) << error;
  EXPECT_EQ(*doc, Json::parse(R"({"a": ["b", {"c": "d"}], "e": false})"));
}

TEST(K8sYaml, SyntaxErrorsNameTheLine) {
  std::string error;
  EXPECT_FALSE(yaml_to_json("a: b\nc: [unclosed\n", error));
  EXPECT_THAT(error, HasSubstr("line"));
  EXPECT_FALSE(yaml_to_json("a: &x 1\nb: *x\n", error));
  EXPECT_THAT(error, HasSubstr("not supported"));
}

TEST(K8sYaml, EmptyDocumentIsNull) {
  std::string error;
  auto doc = yaml_to_json("", error);
  ASSERT_TRUE(doc) << error;
  EXPECT_TRUE(doc->is_null());
}

TEST(K8sYaml, DeepNestingIsRefused) {
  std::string error;
  EXPECT_FALSE(yaml_to_json(std::string(200, '[') + std::string(200, ']'), error));
  EXPECT_THAT(error, HasSubstr("nested"));
}

// ---- base64 ----

TEST(K8sBase64, RoundTripsAndRejectsGarbage) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    auto back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64_encode("token"), "dG9rZW4=");
  EXPECT_EQ(*base64_decode("dG9r\nZW4="), "token");
  EXPECT_EQ(*base64_decode("dG9rZW4"), "token");  // padding optional
  EXPECT_FALSE(base64_decode("dG9r!W4="));
  EXPECT_FALSE(base64_decode("a"));
  EXPECT_FALSE(base64_decode("dG9rZW4=x"));
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
}

// ---- kubeconfig ----

// Files of a fake file system for the FileReader.
struct Files {
  std::map<std::string, std::string> files;
  FileReader reader() {
    return [this](const std::string& path, std::string& error) -> std::optional<std::string> {
      auto it = files.find(path);
      if (it == files.end()) {
        error = "cannot read '" + path + "': No such file or directory";
        return std::nullopt;
      }
      return it->second;
    };
  }
};

constexpr const char* kTokenKubeconfig = R"(
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
contexts:
- name: dev
  context:
    cluster: dev-cluster
    user: dev-user
    namespace: team-a
- name: other
  context:
    cluster: dev-cluster
    user: cert-user
users:
- name: dev-user
  user:
    token: abc.def
- name: cert-user
  user:
    client-certificate: certs/client.crt
    client-key: /abs/client.key
)";

TEST(K8sKubeconfig, TokenAndInlineCa) {
  Files fs;
  std::string error;
  auto c = parse_kubeconfig({{"/home/u/.kube/config", kTokenKubeconfig}}, "", fs.reader(), error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->server, "https://127.0.0.1:6443");
  EXPECT_EQ(c->token, "abc.def");
  EXPECT_EQ(c->ca_pem, "-----BEGIN CERTIFICATE-----\n");
  EXPECT_EQ(c->default_namespace, "team-a");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_THAT(c->source, HasSubstr("context 'dev'"));
}

TEST(K8sKubeconfig, ClientCertificateFilesRelativeToTheKubeconfig) {
  Files fs;
  fs.files["/home/u/.kube/certs/client.crt"] = "CERT";
  fs.files["/abs/client.key"] = "KEY";
  std::string error;
  auto c =
      parse_kubeconfig({{"/home/u/.kube/config", kTokenKubeconfig}}, "other", fs.reader(), error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->client_cert_pem, "CERT");
  EXPECT_EQ(c->client_key_pem, "KEY");
  EXPECT_TRUE(c->token.empty());
}

TEST(K8sKubeconfig, MissingReferencedFileIsAPreciseError) {
  Files fs;
  std::string error;
  EXPECT_FALSE(
      parse_kubeconfig({{"/home/u/.kube/config", kTokenKubeconfig}}, "other", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("user 'cert-user'.client-certificate"));
  EXPECT_THAT(error, HasSubstr("/home/u/.kube/certs/client.crt"));
}

TEST(K8sKubeconfig, UnknownContext) {
  Files fs;
  std::string error;
  EXPECT_FALSE(parse_kubeconfig({{"/k", kTokenKubeconfig}}, "nope", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("context 'nope' not found"));
}

TEST(K8sKubeconfig, NoCurrentContext) {
  Files fs;
  std::string error;
  EXPECT_FALSE(parse_kubeconfig({{"/k", "clusters: []\n"}}, "", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("no current-context"));
}

TEST(K8sKubeconfig, ExecPluginsAreRefused) {
  Files fs;
  std::string error;
  const std::string text = R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h:1"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {exec: {command: aws}}}]
)";
  EXPECT_FALSE(parse_kubeconfig({{"/k", text}}, "", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("user 'u'.exec: not supported"));
}

TEST(K8sKubeconfig, InsecureFlagAndTlsServerName) {
  Files fs;
  std::string error;
  const std::string text = R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h:1", insecure-skip-tls-verify: true,
            tls-server-name: api.internal}}]
contexts: [{name: c, context: {cluster: k}}]
)";
  auto c = parse_kubeconfig({{"/k", text}}, "", fs.reader(), error);
  ASSERT_TRUE(c) << error;
  EXPECT_TRUE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->tls_server_name, "api.internal");
}

TEST(K8sKubeconfig, BadInlineDataAndHalfACertificate) {
  Files fs;
  std::string error;
  const std::string bad_ca = R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h:1", certificate-authority-data: "!!"}}]
contexts: [{name: c, context: {cluster: k}}]
)";
  EXPECT_FALSE(parse_kubeconfig({{"/k", bad_ca}}, "", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("certificate-authority-data: not valid base64"));
  const std::string half = R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://h:1"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
users: [{name: u, user: {client-certificate-data: Q0VSVA==}}]
)";
  EXPECT_FALSE(parse_kubeconfig({{"/k", half}}, "", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("must be given together"));
}

TEST(K8sKubeconfig, ListMergesFirstDefinitionWins) {
  Files fs;
  fs.files["/b/token"] = "from-file\n";
  std::string error;
  const std::string first = R"(
clusters: [{name: k, cluster: {server: "https://first:1"}}]
users: [{name: u, user: {tokenFile: token}}]
)";
  const std::string second = R"(
current-context: c
clusters: [{name: k, cluster: {server: "https://second:1"}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
)";
  auto c = parse_kubeconfig({{"/b/one", first}, {"/b/two", second}}, "", fs.reader(), error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->server, "https://first:1");
  EXPECT_EQ(c->token_file, "/b/token");
  EXPECT_EQ(split_kubeconfig_list("/a::/b:"), (std::vector<std::string>{"/a", "/b"}));
}

TEST(K8sKubeconfig, ServerUrlChecks) {
  EXPECT_EQ(check_server_url("https://10.0.0.1:443", false), "");
  EXPECT_THAT(check_server_url("http://127.0.0.1:8001", false), HasSubstr("allow_insecure"));
  EXPECT_EQ(check_server_url("http://127.0.0.1:8001", true), "");
  EXPECT_THAT(check_server_url("ftp://h", true), HasSubstr("not an http(s) URL"));
  EXPECT_THAT(check_server_url("https://user:pw@h", false), HasSubstr("user info"));
}

TEST(K8sInCluster, ServiceAccountFiles) {
  Files fs;
  fs.files["/sa/token"] = "t0";
  fs.files["/sa/ca.crt"] = "CA";
  fs.files["/sa/namespace"] = "backbone\n";
  std::map<std::string, std::string> env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                         {"KUBERNETES_SERVICE_PORT", "443"}};
  auto lookup = [&](const std::string& n) -> std::optional<std::string> {
    auto it = env.find(n);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  std::string error;
  auto c = in_cluster_config(lookup, "/sa", fs.reader(), error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token_file, "/sa/token");
  EXPECT_TRUE(c->token.empty());  // re-read from the file on rotation
  EXPECT_EQ(c->ca_pem, "CA");
  EXPECT_EQ(c->default_namespace, "backbone");

  env["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  c = in_cluster_config(lookup, "/sa", fs.reader(), error);
  ASSERT_TRUE(c) << error;
  EXPECT_EQ(c->server, "https://[fd00::1]:443");

  fs.files.erase("/sa/ca.crt");
  EXPECT_FALSE(in_cluster_config(lookup, "/sa", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("/sa/ca.crt"));

  env.clear();
  EXPECT_FALSE(in_cluster_config(lookup, "/sa", fs.reader(), error));
  EXPECT_THAT(error, HasSubstr("KUBERNETES_SERVICE_HOST"));
}

// ---- paths ----

TEST(K8sPaths, CollectionsObjectsAndQueries) {
  EXPECT_EQ(collection_path(kClients, ""), "/apis/backbone.mortenolsen.pro/v1/clients");
  EXPECT_EQ(collection_path(kTopics, "prod"),
            "/apis/backbone.mortenolsen.pro/v1/namespaces/prod/topics");
  EXPECT_EQ(collection_path(kSecrets, "prod"), "/api/v1/namespaces/prod/secrets");
  EXPECT_EQ(object_path(kClients, "prod", "sensor", "status"),
            "/apis/backbone.mortenolsen.pro/v1/namespaces/prod/clients/sensor/status");
  EXPECT_EQ(list_query(500, ""), "?limit=500");
  EXPECT_EQ(list_query(10, "a b/="), "?limit=10&continue=a%20b%2F%3D");
  EXPECT_EQ(watch_query("123", 300),
            "?watch=1&allowWatchBookmarks=true&resourceVersion=123&timeoutSeconds=300");
  EXPECT_EQ(kClients.api_version(), "backbone.mortenolsen.pro/v1");
  EXPECT_EQ(kSecrets.api_version(), "v1");
}

TEST(K8sPaths, Names) {
  EXPECT_TRUE(valid_label("team-a"));
  EXPECT_FALSE(valid_label("Team"));
  EXPECT_FALSE(valid_label("-a"));
  EXPECT_FALSE(valid_label(std::string(64, 'a')));
  EXPECT_TRUE(valid_subdomain("a.b-c.d"));
  EXPECT_FALSE(valid_subdomain("a..b"));
  EXPECT_FALSE(valid_subdomain("../x"));
}

// ---- watch events and lists ----

TEST(K8sWatch, ParsesEventTypes) {
  std::string error;
  auto e = parse_watch_event(
      R"({"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n","uid":"u1",)"
      R"("resourceVersion":"7","generation":3},"spec":{}}})",
      error);
  ASSERT_TRUE(e) << error;
  EXPECT_EQ(e->type, EventType::kAdded);
  const ObjectMeta m = meta_of(e->object);
  EXPECT_EQ(m.ns, "n");
  EXPECT_EQ(m.name, "a");
  EXPECT_EQ(m.uid, "u1");
  EXPECT_EQ(m.resource_version, "7");
  EXPECT_EQ(m.generation, 3);

  e = parse_watch_event(
      R"({"type":"BOOKMARK","object":{"kind":"Client","metadata":{"resourceVersion":"99"}}})",
      error);
  ASSERT_TRUE(e) << error;
  EXPECT_EQ(e->type, EventType::kBookmark);
  EXPECT_EQ(meta_of(e->object).resource_version, "99");

  e = parse_watch_event(
      R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired",)"
      R"("message":"too old resource version"}})",
      error);
  ASSERT_TRUE(e) << error;
  EXPECT_EQ(e->type, EventType::kError);
  const ApiStatus s = parse_status(e->object);
  EXPECT_EQ(s.code, 410);
  EXPECT_EQ(s.reason, "Expired");
}

TEST(K8sWatch, RejectsMalformedEvents) {
  std::string error;
  EXPECT_FALSE(parse_watch_event("not json", error));
  EXPECT_FALSE(parse_watch_event(R"({"type":"WHAT","object":{}})", error));
  EXPECT_THAT(error, HasSubstr("unknown type"));
  EXPECT_FALSE(parse_watch_event(R"({"type":"ADDED"})", error));
  EXPECT_FALSE(parse_watch_event(R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})", error));
  EXPECT_THAT(error, HasSubstr("resourceVersion"));
  EXPECT_FALSE(parse_watch_event(
      R"({"type":"MODIFIED","object":{"metadata":{"resourceVersion":"1"}}})", error));
  EXPECT_THAT(error, HasSubstr("metadata.name"));
  EXPECT_FALSE(parse_watch_event("[1,2]", error));
}

TEST(K8sWatch, StatusBodies) {
  ApiStatus s =
      parse_status_body(R"({"kind":"Status","code":403,"reason":"Forbidden","message":"no"})", 403);
  EXPECT_EQ(s.code, 403);
  EXPECT_EQ(s.reason, "Forbidden");
  EXPECT_EQ(s.message, "no");
  s = parse_status_body("<html>\x01 bad gateway</html>", 502);
  EXPECT_EQ(s.code, 502);
  EXPECT_EQ(s.message, "<html>  bad gateway</html>");
}

TEST(K8sWatch, ListPages) {
  std::string error;
  auto page =
      parse_list(R"({"kind":"ClientList","metadata":{"resourceVersion":"12","continue":"abc"},)"
                 R"("items":[{"metadata":{"name":"a","namespace":"n","resourceVersion":"5"}}]})",
                 error);
  ASSERT_TRUE(page) << error;
  EXPECT_EQ(page->resource_version, "12");
  EXPECT_EQ(page->continue_token, "abc");
  ASSERT_EQ(page->items.size(), 1u);
  page = parse_list(R"({"metadata":{"resourceVersion":"1"},"items":null})", error);
  ASSERT_TRUE(page) << error;
  EXPECT_TRUE(page->items.empty());
  EXPECT_FALSE(parse_list(R"({"items":[]})", error));
  EXPECT_FALSE(parse_list(R"({"metadata":{"resourceVersion":"1"},"items":[{}]})", error));
  EXPECT_FALSE(parse_list(R"({"metadata":{"resourceVersion":"1"},"items":{}})", error));
}

TEST(K8sWatch, LineReaderSplitsAndBounds) {
  std::stringbuf buf("one\r\n\ntwo\nthree");
  LineReader reader(buf, 16);
  std::string line;
  ASSERT_EQ(reader.next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "one");
  ASSERT_EQ(reader.next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "two");
  ASSERT_EQ(reader.next(line), LineReader::Result::kLine);
  EXPECT_EQ(line, "three");
  EXPECT_EQ(reader.next(line), LineReader::Result::kEnd);
  EXPECT_EQ(reader.next(line), LineReader::Result::kEnd);

  std::stringbuf big(std::string(100, 'x') + "\n");
  LineReader bounded(big, 16);
  EXPECT_EQ(bounded.next(line), LineReader::Result::kTooLong);
}

// ---- backoff ----

TEST(K8sBackoff, GrowsJittersAndCaps) {
  Backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(1000), 42);
  int64_t ceilings[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int64_t ceiling : ceilings) {
    EXPECT_EQ(b.ceiling().count(), ceiling);
    const int64_t d = b.next().count();
    EXPECT_GE(d, ceiling / 2);
    EXPECT_LE(d, ceiling);
  }
  b.reset();
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_LE(b.next().count(), 100);
}

TEST(K8sBackoff, JitterSpreadsDelays) {
  std::set<int64_t> seen;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Backoff b(std::chrono::milliseconds(30000), std::chrono::milliseconds(30000), seed);
    seen.insert(b.next().count());
  }
  EXPECT_GT(seen.size(), 40u);
  for (int64_t d : seen) {
    EXPECT_GE(d, 15000);
    EXPECT_LE(d, 30000);
  }
}

TEST(K8sBackoff, ManyAttemptsDoNotOverflow) {
  Backoff b(std::chrono::milliseconds(500), std::chrono::milliseconds(30000), 1);
  for (int i = 0; i < 1000; ++i) b.next();
  EXPECT_EQ(b.ceiling().count(), 30000);
}

}  // namespace
}  // namespace backbone::modules::k8s
