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

#include <unistd.h>

#include <atomic>
#include <chrono>
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
#include "leader_election.hpp"
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
  // leader_election: true, false or an object (then enabled unless it says
  // "enabled": false). Empty strings: resolved in configure().
  bool leader_election = true;
  std::string lease_name = "backbone";
  std::string lease_namespace;  // else POD_NAMESPACE, the context's/pod's, "default"
  std::string identity;         // else POD_NAME, HOSTNAME, gethostname()
  int64_t lease_duration_s = 15;
  int64_t renew_deadline_ms = 10000;
  int64_t retry_period_ms = 2000;
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

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
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
    if (settings.leader_election) {
      if (settings.lease_namespace.empty()) {
        settings.lease_namespace = getenv_string("POD_NAMESPACE").value_or("");
      }
      if (settings.lease_namespace.empty()) settings.lease_namespace = cluster->default_namespace;
      if (settings.lease_namespace.empty()) settings.lease_namespace = "default";
      if (!valid_label(settings.lease_namespace)) {
        host().error("leader election: '" + settings.lease_namespace.substr(0, 80) +
                     "' is not a valid namespace name (set 'leader_election.namespace')");
        return BB_E_INVALID;
      }
      for (const char* var : {"POD_NAME", "HOSTNAME"}) {
        if (settings.identity.empty()) settings.identity = getenv_string(var).value_or("");
      }
      if (settings.identity.empty()) settings.identity = host_name();
      if (settings.identity.empty()) {
        host().error("leader election: no identity (set POD_NAME or 'leader_election.identity')");
        return BB_E_INVALID;
      }
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
    if (settings.leader_election) {
      host().info("leader election on Lease " + settings.lease_namespace + "/" +
                  settings.lease_name + " as '" + settings.identity + "': only the leader writes");
    }
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
    if (settings_.leader_election) {
      LeaderElectionConfig le;
      le.ns = settings_.lease_namespace;
      le.name = settings_.lease_name;
      le.identity = settings_.identity;
      le.lease_duration = std::chrono::seconds(settings_.lease_duration_s);
      le.renew_deadline = std::chrono::milliseconds(settings_.renew_deadline_ms);
      le.retry_period = std::chrono::milliseconds(settings_.retry_period_ms);
      elector_ = std::make_unique<LeaderElector>(
          le,
          [this](std::string_view method, const std::string& path, std::string_view body,
                 std::string_view content_type) {
            return http_->request(method, path, body, content_type, *elector_request_cancel_);
          },
          [this](bool leading, const std::string& why) { on_leader(leading, why); }, log);
      set_leader_metric(false);
      elector_thread_ = std::thread([this] {
        while (!elector_cancel_.cancelled()) {
          const std::chrono::milliseconds delay = elector_->step();
          if (!elector_cancel_.sleep_for(delay)) break;
        }
      });
    } else {
      {
        std::lock_guard lock(gate_mutex_);
        leading_ = true;
      }
      set_leader_metric(true);
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
    {
      std::lock_guard lock(gate_mutex_);
      synced_ = true;
      update_gate();
    }
    host().ready();
  }

  // Elector thread: leadership gained or lost.
  void on_leader(bool leading, const std::string& why) {
    if (leading) {
      host().info("became the leader: " + why + "; writing Secrets and statuses");
    } else {
      // Losing the Lease is worth a warning; giving it up on stop is not.
      host().log(why == "stopping" ? BB_LOG_INFO : BB_LOG_WARN,
                 "not the leader any more: " + why + "; writes stop (watching goes on)");
    }
    set_leader_metric(leading);
    if (leading && controller_) {
      // Nothing was written while following: look at everything once.
      for (const auto& key : controller_->queue_keys()) queue_->add(key);
    }
    std::lock_guard lock(gate_mutex_);
    leading_ = leading;
    update_gate();
  }

  // Writes happen only once synced and while leading. Caller holds gate_mutex_.
  void update_gate() {
    if (queue_) queue_->set_paused(!(synced_ && leading_));
  }

  void set_leader_metric(bool leading) {
    host().metric_set("leader", "1 while this replica holds the Lease and writes to Kubernetes.",
                      BB_METRIC_GAUGE, leading ? 1 : 0);  // a host before ABI 1.2 has none
  }

  // The worker may write now (the elector's view, checked per request: it
  // turns false as soon as the renew deadline passes).
  bool may_write() const { return !elector_ || elector_->is_leading(); }

  void shutdown() {
    if (queue_) queue_->stop();
    worker_cancel_.cancel();
    for (auto& r : runners_) r->cancel.cancel();
    if (worker_.joinable()) worker_.join();
    // The last write is done: give the Lease up so a successor need not wait
    // for it to expire.
    elector_cancel_.cancel();
    if (elector_thread_.joinable()) elector_thread_.join();
    if (elector_) {
      elector_request_cancel_ = &release_cancel_;
      elector_->release();
    }
    for (auto& r : runners_) {
      if (r->thread.joinable()) r->thread.join();
    }
    // The controller stays: a kernel worker may still be in authenticate().
  }

  // Worker thread: writes Secrets and status conditions.
  void reconcile_loop() {
    while (std::optional<std::string> key = queue_->take()) {
      if (!may_write()) {
        // Leadership lapsed (the elector will pause the queue, or renew).
        queue_->add(*key);
        if (!worker_cancel_.sleep_for(std::chrono::milliseconds(100))) return;
        continue;
      }
      bool retry = false;
      bool requeue = false;
      try {
        for (int step = 0; step < kMaxStepsPerKey; ++step) {
          Action action = controller_->next_action(*key);
          if (action.kind == Action::Kind::kNone) break;
          if (!may_write()) {
            requeue = true;
            break;
          }
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
      if (requeue) {
        queue_->add(*key);
      } else if (retry) {
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
                    "request_timeout_ms", "backoff_initial_ms", "backoff_max_ms",
                    "leader_election"});
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
    read_leader_election(settings, s);
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

  // "leader_election": a boolean, or an object of the election's settings.
  static void read_leader_election(sdk::Settings& settings, Settings& s) {
    const Json* v = settings.find("leader_election");
    if (v == nullptr) return;
    if (v->is_boolean()) {
      s.leader_election = v->get<bool>();
      return;
    }
    if (!v->is_object()) {
      settings.fail("leader_election",
                    std::string("expected a boolean or an object, got ") + v->type_name());
      return;
    }
    sdk::Settings le = settings.object("leader_election");
    le.known({"enabled", "lease_name", "namespace", "identity", "lease_duration_s",
              "renew_deadline_ms", "retry_period_ms"});
    le.get_bool("enabled", s.leader_election);
    le.get_string("lease_name", s.lease_name);
    le.get_string("namespace", s.lease_namespace);
    le.get_string("identity", s.identity);
    le.get_int("lease_duration_s", s.lease_duration_s, int64_t{1}, int64_t{3600});
    le.get_int("renew_deadline_ms", s.renew_deadline_ms, int64_t{100}, int64_t{3600000});
    le.get_int("retry_period_ms", s.retry_period_ms, int64_t{50}, int64_t{600000});
    if (le.ok() && !valid_subdomain(s.lease_name)) {
      le.fail("lease_name", "'" + s.lease_name.substr(0, 80) + "' is not a valid object name");
    }
    if (le.ok() && !s.lease_namespace.empty() && !valid_label(s.lease_namespace)) {
      le.fail("namespace",
              "'" + s.lease_namespace.substr(0, 80) + "' is not a valid namespace name");
    }
    if (le.ok() && s.identity.size() > 253) le.fail("identity", "longer than 253 characters");
    if (le.ok() && s.renew_deadline_ms >= s.lease_duration_s * 1000) {
      le.fail("renew_deadline_ms", "must be less than 'lease_duration_s' (" +
                                       std::to_string(s.lease_duration_s) + " s)");
    }
    if (le.ok() && s.retry_period_ms * 6 >= s.renew_deadline_ms * 5) {
      le.fail("retry_period_ms", "must be less than 'renew_deadline_ms' / 1.2 (" +
                                     std::to_string(s.renew_deadline_ms) + " ms)");
    }
    settings.merge(le);
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
  std::unique_ptr<LeaderElector> elector_;  // null: leader election off
  std::thread elector_thread_;
  Cancel elector_cancel_;
  Cancel release_cancel_;
  Cancel* elector_request_cancel_ = &elector_cancel_;

  std::mutex gate_mutex_;  // the queue runs while synced_ && leading_
  bool synced_ = false;
  bool leading_ = false;

  std::atomic<Controller*> controller_ptr_{nullptr};  // read by authenticate()
};

}  // namespace
}  // namespace backbone::modules::k8s

BACKBONE_MODULE(backbone::modules::k8s::K8sModule, "k8s", "1.0.0", BB_KIND_CONFIG | BB_KIND_AUTH, 0)
