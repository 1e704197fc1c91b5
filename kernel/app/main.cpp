// SPDX-License-Identifier: GPL-3.0-or-later
// backboned: command line, logging, start-up and signal handling.
#include <malloc.h>
#include <signal.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "kernel/app/sd_notify.hpp"
#include "kernel/broker/broker.hpp"
#include "kernel/config/config_file.hpp"
#include "kernel/connection/connection_table.hpp"
#include "kernel/http/http_server.hpp"
#include "kernel/module_host/module_host.hpp"
#include "kernel/module_host/module_loader.hpp"
#include "kernel/net/worker_pool.hpp"
#include "kernel/protocol/reason_code.hpp"
#include "kernel/state/state_dir.hpp"

namespace {

using namespace backbone::kernel;

// glibc raises its mmap threshold to the largest block freed so far (and the
// trim threshold to twice that): after one peer's multi-MiB output buffer is
// freed, worker arenas keep megabytes resident for good. Fixed thresholds
// keep blocks of 1 MiB and more mapped on their own (unmapped when freed) and
// let the arenas shrink past 128 KiB of free top, as before the first one.
void fix_malloc_thresholds() {
  mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

// %* in a pattern: the message escaped for a JSON string, so a JSON log
// line stays valid whatever a client id or topic contains.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char ch : std::string_view(msg.payload.data(), msg.payload.size())) {
      const auto c = static_cast<unsigned char>(ch);
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(static_cast<char>(c));
      } else if (c < 0x20) {
        const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        dest.append(esc, esc + sizeof(esc));
      } else {
        dest.push_back(static_cast<char>(c));
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

bool setup_logging(const std::string& level, const std::string& format) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}};
  auto lvl = spdlog::level::off;
  bool known = false;
  for (const auto& [name, value] : kLevels) {
    if (level == name) {
      lvl = value;
      known = true;
    }
  }
  if (!known) {
    std::fprintf(stderr,
                 "backboned: --log-level: unknown level '%s' (trace, debug, info, warn, "
                 "error, critical, off)\n",
                 level.c_str());
    return false;
  }
  auto logger = spdlog::stderr_logger_mt("backbone");
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","thread":%t,"msg":"%*"})");
    spdlog::set_formatter(std::move(formatter));
  } else if (format == "text") {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  } else {
    std::fprintf(stderr, "backboned: --log-format: expected text or json, got '%s'\n",
                 format.c_str());
    return false;
  }
  return true;
}

std::shared_ptr<const authz::Policy> anonymous_policy(const config::Config& cfg) {
  if (!cfg.anonymous) return nullptr;
  std::string error;
  return authz::Policy::compile(*cfg.anonymous, &error);
}

// Rules of the config file replace the file's previous rules as a whole;
// rules from other sources (API, Kubernetes) are left alone.
void apply_topic_rules(broker::Broker& broker, const config::Config& cfg,
                       std::vector<std::string>& file_rules) {
  std::string error;
  if (!broker.replace_topic_rules(file_rules, cfg.topics, &error))
    throw config::ConfigError(cfg.source + ": topics: " + error);
  file_rules.clear();
  for (const auto& [name, spec] : cfg.topics) file_rules.push_back(name);
}

}  // namespace

int main(int argc, char** argv) {
  fix_malloc_thresholds();
  CLI::App app{
      "Backbone: a Kubernetes-native MQTT 3.1.1/5.0 broker with fine-grained access "
      "control and topic validation"};
  std::string config_path, log_level, log_format;
  bool check_config = false, list = false, version = false;
  uint32_t workers_flag = 0;
  app.add_option("-c,--config", config_path, "Config file (JSON, comments allowed)");
  app.add_flag("--check-config", check_config, "Validate the configuration and exit");
  app.add_flag("--list-modules", list, "List the modules found on the module path and exit");
  app.add_flag("-V,--version", version, "Print the version and exit");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
  app.add_option("--log-format", log_format, "text or json");
  app.add_option("--workers", workers_flag, "Worker threads (default: one per available CPU)");
  CLI11_PARSE(app, argc, argv);

  if (version) {
    std::printf("backboned %s (module ABI %u.%u)\n", BACKBONE_VERSION, BB_ABI_MAJOR, BB_ABI_MINOR);
    return 0;
  }

  config::Config cfg;
  try {
    cfg = config_path.empty() ? config::default_config() : config::load_config_file(config_path);
  } catch (const config::ConfigError& e) {
    std::fprintf(stderr, "backboned: %s\n", e.what());
    return 2;
  }
  // Command line over config file.
  if (!log_level.empty()) cfg.log_level = log_level;
  if (!log_format.empty()) cfg.log_format = log_format;
  if (workers_flag) cfg.workers = workers_flag;
  if (!setup_logging(cfg.log_level, cfg.log_format)) return 2;

  if (list) {
    for (const auto& m :
         module_host::list_modules(module_host::module_search_path(cfg.module_path))) {
      if (m.error.empty()) {
        std::printf("%-12s %-8s ABI %-5s %s\n", m.name.c_str(), m.version.c_str(), m.abi.c_str(),
                    m.path.c_str());
      } else {
        std::printf("%-12s %s\n", "(invalid)", m.error.c_str());
      }
    }
    return 0;
  }

  // Signals are taken synchronously by the control thread; block them
  // before any worker thread starts so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const uint32_t worker_count = cfg.workers ? cfg.workers : net::WorkerPool::available_cpus();
  net::WorkerPool workers(std::min<uint32_t>(worker_count, 64));
  broker::Broker broker(cfg.limits, workers);
  connection::ConnectionTable connections(broker, workers);
  http::HttpServer http_server(broker, workers);
  module_host::ModuleHost host(broker, connections, workers, http_server);
  std::vector<std::string> file_rules;
  try {
    // --check-config only reads: it neither creates nor writes the state.
    if (check_config) {
      cfg.state_dir.clear();
    } else if (!cfg.state_dir.empty()) {
      state::prepare_state_dir(cfg.state_dir);
      if (cfg.store.enabled) {
        store::State recovered;
        auto st = store::Store::open(state::ensure_subdirectory(cfg.state_dir, "kernel"), cfg.store,
                                     recovered);
        broker.attach_store(std::move(st), recovered);
      }
    }
    broker.set_anonymous_policy(anonymous_policy(cfg));
    apply_topic_rules(broker, cfg, file_rules);
    host.load_and_configure(cfg);
    if (check_config) {
      std::printf("%s: configuration OK (modules: ", cfg.source.c_str());
      const auto names = host.module_names();
      for (size_t i = 0; i < names.size(); ++i)
        std::printf("%s%s", i ? ", " : "", names[i].c_str());
      std::printf(")\n");
      return 0;
    }
    workers.start();
    broker.start_timers();
    // Listening before the modules start: /health and /ready answer while
    // config sources sync; /ws and the API routes come with their modules.
    http_server.start();
    host.start(60000);
    host.mark_started();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    std::fprintf(stderr, "backboned: %s\n", e.what());
    http_server.stop();
    host.stop();
    workers.stop();
    return 1;
  }
  spdlog::info("backboned {} running: {} worker(s), modules: {}", BACKBONE_VERSION, workers.size(),
               fmt::join(host.module_names(), ", "));
  if (broker.logins().names().empty() && !broker.anonymous_policy())
    spdlog::warn(
        "no authentication provider is configured and anonymous access is off: no "
        "client can log in (set ADMIN_TOKEN or TOKEN_SECRET)");
  // Type=notify: systemd considers the service started only now, with every
  // module started and the transports accepting clients.
  app::sd_notify("READY=1\nSTATUS=running");

  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      if (config_path.empty()) {
        spdlog::info("SIGHUP: no config file to reload");
        continue;
      }
      app::sd_notify_reloading();
      try {
        config::Config fresh = config::load_config_file(config_path);
        broker.set_anonymous_policy(anonymous_policy(fresh));
        apply_topic_rules(broker, fresh, file_rules);
        host.reload(fresh);
        spdlog::info("SIGHUP: reloaded statements, topic rules and module settings from {}",
                     config_path);
      } catch (const std::exception& e) {
        spdlog::error("SIGHUP: reload failed, keeping the running configuration: {}", e.what());
      }
      app::sd_notify("READY=1\nSTATUS=running");
      continue;
    }
    spdlog::info("{}: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }
  app::sd_notify("STOPPING=1");
  connections.close_all(protocol::reason::kServerShuttingDown);
  // Drain: DISCONNECTs and queued bytes go out until every connection is
  // closed, or the grace period ends.
  const auto drain_deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg.limits.shutdown_grace_ms);
  while (broker.stats().connections.load() > 0 &&
         std::chrono::steady_clock::now() < drain_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (const auto left = broker.stats().connections.load(); left > 0)
    spdlog::warn("shutdown: {} connection(s) still open after {} ms; closing them", left,
                 cfg.limits.shutdown_grace_ms);
  // Everything acknowledged is durable before the process ends.
  broker.close_store();
  http_server.stop();
  // Logins still waiting are abandoned: their authenticators hear of it
  // before the modules stop.
  broker.logins().cancel_all();
  host.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  workers.stop();
  spdlog::info("stopped");
  return 0;
}
