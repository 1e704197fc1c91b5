// SPDX-License-Identifier: GPL-3.0-or-later
// The `k8s` module: a config source (Client and Topic custom resources) and
// an authenticator (username=k8s, password=<token of a Client's Secret>).
//
// Threads: one reflector per resource type and watched namespace lists and
// watches the API server; one worker writes Secrets and status conditions.
// All network I/O happens there, never on a kernel worker. start() returns
// BB_PENDING and host->ready() follows the first full sync of Clients, Topics
// and Secrets, so transports open only once the policies are in force.

#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <backbone/authenticator.hpp>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/kube/api_paths.hpp"
#include "common/kube/cluster_config.hpp"
#include "common/kube/kube_http.hpp"
#include "common/kube/reflector.hpp"
#include "common/kube/watch_event.hpp"
#include "controller.hpp"
#include "work_queue.hpp"

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kProvider = "k8s";
constexpr size_t kMaxNamespaces = 64;
// Steps one reconcile of a key may take (Secret, then status) before the
// key goes back to the queue: a bound against a planning bug looping.
constexpr int kMaxStepsPerKey = 8;

struct Settings {
  std::string kubeconfig;
  std::string context;
  std::vector<std::string> namespaces;  // empty: all namespaces
  std::string api_server;
  bool allow_insecure = false;
  std::string service_account_dir = std::string(kServiceAccountDir);
  int64_t watch_timeout_s = 300;
  int64_t request_timeout_ms = 10000;
  int64_t backoff_initial_ms = 500;
  int64_t backoff_max_ms = 30000;
};

// The host API as the controller needs it.
class HostSink final : public BrokerSink {
 public:
  explicit HostSink(sdk::Host host) : host_(host) {}

  int32_t submit_topic(const std::string& name, const std::string* json,
                       std::string& error) override {
    const bb_status s = json != nullptr ? host_.submit("topic", name, *json)
                                        : host_.submit("topic", name, "", true);
    if (s != BB_OK) error = host_.last_error();
    return s;
  }

  int32_t update_principal(const std::string& principal, const std::vector<Statement>* statements,
                           std::string& error) override {
    const std::vector<bb_statement> list =
        statements != nullptr ? sdk::abi_statements(*statements) : std::vector<bb_statement>{};
    const bb_status s = statements == nullptr ? host_.revoke_principal(kProvider, principal)
                                              : host_.update_principal(kProvider, principal, list);
    if (s != BB_OK) error = host_.last_error();
    return s;
  }

  void update_quotas(const std::string& principal, const bb_quotas* quotas) override {
    host_.update_quotas(kProvider, principal, quotas);  // a host before ABI 1.3 has none
  }

  void log(int level, const std::string& message) override { host_.log(level, message); }

 private:
  sdk::Host host_;
};

std::optional<std::string> getenv_string(const std::string& name) {
  const char* v = std::getenv(name.c_str());  // control thread; nothing calls setenv
  return v == nullptr ? std::nullopt : std::optional<std::string>(v);
}

bool file_exists(const std::string& path) {
  std::string error;
  return read_file(path, error).has_value();
}

class K8sModule final : public sdk::Module, sdk::Authenticator {
 public:
  using Module::Module;
  ~K8sModule() override { shutdown(); }

  bb_status configure(bool reloading) override {
    std::optional<std::string> text = host().config("");
    const std::string settings_text = text.value_or("{}");
    if (reloading) {
      if (settings_text == settings_text_) return BB_OK;
      host().error("changed settings of the k8s module apply only after a restart");
      return BB_E_UNSUPPORTED;
    }
    Settings settings;
    if (!read_settings(settings_text, settings)) return BB_E_INVALID;
    std::optional<ClusterConfig> cluster = resolve_cluster(settings);
    if (!cluster) return BB_E_INVALID;
    try {
      KubeHttp::Options options;
      options.request_timeout_ms = static_cast<int>(settings.request_timeout_ms);
      http_ = std::make_unique<KubeHttp>(*cluster, options);
    } catch (const std::exception& e) {
      host().error(cluster->source + ": unusable TLS material: " + e.what());
      return BB_E_INVALID;
    }
    if (register_with(host(), kProvider) != BB_OK) {
      host().error("registering the authenticator 'k8s' failed");
      return BB_E_INVALID;
    }
    settings_ = settings;
    settings_text_ = settings_text;
    std::string scope = "all namespaces";
    if (!settings.namespaces.empty()) {
      scope = "namespace(s) ";
      for (size_t i = 0; i < settings.namespaces.size(); ++i) {
        scope += (i ? ", " : "") + settings.namespaces[i];
      }
    }
    host().info("Kubernetes API " + cluster->server + " from " + cluster->source + "; watching " +
                scope + "; authenticator 'k8s' registered");
    return BB_OK;
  }

  bb_status start() override {
    if (!http_) return BB_E_STATE;
    std::vector<std::string> scopes = settings_.namespaces;
    if (scopes.empty()) scopes.push_back("");  // all namespaces
    const ResourceType types[] = {kClients, kTopics, kSecrets};
    const size_t reflector_count = scopes.size() * std::size(types);

    queue_ = std::make_unique<WorkQueue>(Backoff::Ms(settings_.backoff_initial_ms),
                                         Backoff::Ms(settings_.backoff_max_ms));
    sink_ = std::make_unique<HostSink>(host());
    WorkQueue* queue = queue_.get();
    controller_ = std::make_unique<Controller>(
        *sink_, [queue](const std::string& key) { queue->add(key); }, reflector_count,
        [this] { on_synced(); });
    controller_ptr_.store(controller_.get());

    ReflectorOptions options;
    options.watch_timeout_s = static_cast<int>(settings_.watch_timeout_s);
    options.backoff_initial = Backoff::Ms(settings_.backoff_initial_ms);
    options.backoff_max = Backoff::Ms(settings_.backoff_max_ms);
    const sdk::Host h = host();
    LogFn log = [h](int level, const std::string& message) { h.log(level, message); };
    for (const auto& type : types) {
      for (const auto& scope : scopes) {
        ReflectorOptions for_type = options;
        if (type.plural == kSecrets.plural) {
          // Token Secrets are Opaque; the selector keeps the large ones of
          // other types (Helm releases, service-account tokens, TLS) off the
          // wire and out of memory.
          for_type.selector = "fieldSelector=" + percent_encode("type=Opaque");
          for_type.page_limit = 100;
        }
        auto runner = std::make_unique<Runner>();
        runner->reflector =
            std::make_unique<Reflector>(*http_, type, scope, *controller_, log, for_type);
        runners_.push_back(std::move(runner));
      }
    }
    for (auto& r : runners_) {
      Runner* runner = r.get();
      runner->thread = std::thread([runner] { runner->reflector->run(runner->cancel); });
    }
    worker_ = std::thread([this] { reconcile_loop(); });
    return BB_PENDING;
  }

  void stop() override { shutdown(); }

 private:
  struct Runner {
    Cancel cancel;
    std::unique_ptr<Reflector> reflector;
    std::thread thread;
  };

  // Reflector thread: the last reflector finished its first list.
  void on_synced() {
    host().info("synced " + std::to_string(controller_->client_count()) + " Client(s) and " +
                std::to_string(controller_->topic_count()) + " Topic(s); ready");
    queue_->set_paused(false);
    host().ready();
  }

  void shutdown() {
    if (queue_) queue_->stop();
    worker_cancel_.cancel();
    for (auto& r : runners_) r->cancel.cancel();
    for (auto& r : runners_) {
      if (r->thread.joinable()) r->thread.join();
    }
    if (worker_.joinable()) worker_.join();
    // The controller stays: a kernel worker may still be in authenticate().
  }

  // Worker thread: writes Secrets and status conditions.
  void reconcile_loop() {
    while (std::optional<std::string> key = queue_->take()) {
      bool retry = false;
      try {
        for (int step = 0; step < kMaxStepsPerKey; ++step) {
          Action action = controller_->next_action(*key);
          if (action.kind == Action::Kind::kNone) break;
          if (!action.verify_path.empty()) {
            const HttpResponse check =
                http_->request("GET", action.verify_path, {}, {}, worker_cancel_);
            if (worker_cancel_.cancelled()) return;
            std::string error;
            std::optional<ListPage> page =
                check.status == 200 ? parse_list(check.body, error) : std::nullopt;
            if (!page) {
              host().warn(action.description + ": checking its Client failed: " +
                          (check.status == 0     ? check.error
                           : check.status != 200 ? "HTTP " + std::to_string(check.status)
                                                 : error));
              retry = true;
              break;
            }
            bool exists = false;
            for (const auto& item : page->items) {
              exists = exists || meta_of(item).uid == action.verify_uid;
            }
            if (!exists) {
              // Gone or replaced: the Client watch will say so; no orphan Secret.
              host().debug("not " + action.description + ": its Client is gone");
              break;
            }
          }
          HttpResponse response = http_->request(action.method, action.path, action.body,
                                                 action.content_type, worker_cancel_);
          OPENSSL_cleanse(action.body.data(), action.body.size());  // may hold a token
          if (worker_cancel_.cancelled()) return;
          const Next next = controller_->action_done(*key, action, response);
          if (next == Next::kRetryLater) retry = true;
          if (next != Next::kContinue) break;
        }
      } catch (const std::exception& e) {
        host().error("reconciling " + *key + ": " + e.what());
        retry = true;
      }
      if (retry) {
        queue_->retry(*key);
      } else {
        queue_->forget(*key);
      }
    }
  }

  // --- settings ---

  bool read_settings(const std::string& text, Settings& s) const {
    Json doc = sdk::parse_json(text, nullptr, true);
    if (doc.is_null()) doc = Json::object();
    // A null value reads as absent (what a Helm values file leaves unset).
    if (doc.is_object()) {
      for (auto it = doc.begin(); it != doc.end();) it = it->is_null() ? doc.erase(it) : ++it;
    }
    sdk::Settings settings(doc);
    bool enabled = true;  // the host's switch: only its type is checked here
    settings.known({"enabled", "kubeconfig", "context", "namespaces", "api_server",
                    "allow_insecure", "service_account_dir", "watch_timeout_s",
                    "request_timeout_ms", "backoff_initial_ms", "backoff_max_ms"});
    settings.get_bool("enabled", enabled);
    settings.get_bool("allow_insecure", s.allow_insecure);
    settings.get_string("kubeconfig", s.kubeconfig);
    settings.get_string("context", s.context);
    settings.get_string("api_server", s.api_server);
    settings.get_string("service_account_dir", s.service_account_dir);
    settings.get_int("watch_timeout_s", s.watch_timeout_s, int64_t{1}, int64_t{3600});
    settings.get_int("request_timeout_ms", s.request_timeout_ms, int64_t{100}, int64_t{120000});
    settings.get_int("backoff_initial_ms", s.backoff_initial_ms, int64_t{10}, int64_t{60000});
    settings.get_int("backoff_max_ms", s.backoff_max_ms, int64_t{10}, int64_t{600000});
    settings.get_strings("namespaces", s.namespaces);
    check_namespaces(s.namespaces, settings);
    if (!settings.ok()) {
      host().error(settings.error());
      return false;
    }
    if (s.backoff_max_ms < s.backoff_initial_ms) {
      host().error("setting 'backoff_max_ms': must not be less than 'backoff_initial_ms' (" +
                   std::to_string(s.backoff_initial_ms) + ")");
      return false;
    }
    return true;
  }

  // After get_strings(): at most kMaxNamespaces DNS labels, none twice.
  static void check_namespaces(const std::vector<std::string>& list, sdk::Settings& settings) {
    if (list.size() > kMaxNamespaces) {
      settings.fail("namespaces", "more than " + std::to_string(kMaxNamespaces) +
                                      " namespaces (leave it empty to watch all namespaces)");
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < list.size() && settings.ok(); ++i) {
      const std::string at = "namespaces[" + std::to_string(i) + "]";
      const std::string& ns = list[i];
      if (!valid_label(ns)) {
        settings.fail(
            at, "'" + ns.substr(0, 80) + "' is not a valid namespace name (lower-case DNS label)");
      } else if (!seen.insert(ns).second) {
        settings.fail(at, "namespace '" + ns + "' listed twice");
      }
    }
  }

  std::optional<ClusterConfig> resolve_cluster(const Settings& s) const {
    std::string error;
    std::optional<ClusterConfig> cluster;
    std::vector<std::string> paths;
    if (!s.kubeconfig.empty()) {
      paths.push_back(s.kubeconfig);
    } else if (std::optional<std::string> env = getenv_string("KUBECONFIG"); env && !env->empty()) {
      // kubectl skips files of the list that do not exist.
      for (auto& p : split_kubeconfig_list(*env)) {
        if (file_exists(p)) paths.push_back(p);
      }
      if (paths.empty()) {
        host().error("KUBECONFIG='" + env->substr(0, 200) + "': none of its files is readable");
        return std::nullopt;
      }
    }
    if (!paths.empty()) {
      std::vector<KubeconfigFile> files;
      for (const auto& p : paths) {
        std::optional<std::string> text = read_file(p, error);
        if (!text) {
          host().error("setting 'kubeconfig': " + error);
          return std::nullopt;
        }
        files.push_back(KubeconfigFile{p, std::move(*text)});
      }
      cluster = parse_kubeconfig(files, s.context, &read_file, error);
    } else {
      if (!s.context.empty()) {
        host().error("setting 'context': only meaningful with a kubeconfig");
        return std::nullopt;
      }
      cluster = in_cluster_config(&getenv_string, s.service_account_dir, &read_file, error);
    }
    if (!cluster) {
      host().error(error);
      return std::nullopt;
    }
    if (!s.api_server.empty()) {
      cluster->server = s.api_server;
      while (cluster->server.size() > 1 && cluster->server.back() == '/')
        cluster->server.pop_back();
      cluster->source += ", server overridden by the setting 'api_server'";
    }
    if (std::string why = check_server_url(cluster->server, s.allow_insecure); !why.empty()) {
      host().error((s.api_server.empty() ? cluster->source : "setting 'api_server'") + ": server " +
                   why);
      return std::nullopt;
    }
    if (cluster->insecure_skip_tls_verify && !s.allow_insecure) {
      host().error(cluster->source +
                   ": insecure-skip-tls-verify is refused unless the setting 'allow_insecure' is "
                   "true");
      return std::nullopt;
    }
    return cluster;
  }

  // --- authentication ---

  // Thread: any kernel worker, concurrently. Never blocks on the network.
  std::optional<sdk::AuthReply> authenticate(const sdk::LoginRequest& request) override {
    Controller* controller = controller_ptr_.load();
    if (controller == nullptr || !controller->is_synced())
      return sdk::AuthReply::unavailable("Kubernetes resources not synced yet");
    AuthDecision decision = controller->authenticate(request.password);
    sdk::AuthReply reply;
    reply.verdict = decision.verdict;
    reply.principal = std::move(decision.principal);
    reply.log_reason = std::move(decision.reason);
    if (decision.verdict == BB_AUTH_ALLOW && decision.statements) {
      for (const auto& s : *decision.statements)
        reply.statements.add(s.effect, s.action, s.resource);
      reply.quotas = decision.quotas;
    }
    return reply;
  }

  // Control thread only.
  Settings settings_;
  std::string settings_text_;
  std::unique_ptr<KubeHttp> http_;
  std::unique_ptr<HostSink> sink_;
  std::unique_ptr<WorkQueue> queue_;
  std::unique_ptr<Controller> controller_;
  std::vector<std::unique_ptr<Runner>> runners_;
  std::thread worker_;
  Cancel worker_cancel_;

  std::atomic<Controller*> controller_ptr_{nullptr};  // read by authenticate()
};

}  // namespace
}  // namespace backbone::modules::k8s

BACKBONE_MODULE(backbone::modules::k8s::K8sModule, "k8s", "1.0.0", BB_KIND_CONFIG | BB_KIND_AUTH, 0)
