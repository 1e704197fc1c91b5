// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <backbone/module_abi.h>

#include "kernel/config/config_file.hpp"
#include "kernel/module_host/module_loader.hpp"

namespace backbone::kernel::broker {
class Broker;
}
namespace backbone::kernel::connection {
class ConnectionTable;
}
namespace backbone::kernel::net {
class WorkerPool;
}
namespace backbone::kernel::http {
class HttpServer;
}

namespace backbone::kernel::module_host {

class IoWatches;

// Owns the module instances and implements the host side of the ABI.
// Lifecycle calls run on the control thread (the one calling these methods).
class ModuleHost {
 public:
  ModuleHost(broker::Broker& broker, connection::ConnectionTable& connections,
             net::WorkerPool& workers, http::HttpServer& http);
  ~ModuleHost();

  // Loads and creates every enabled module of the config, then configures
  // them: config sources first (their settings are merged into the others'),
  // then the rest in the listed order. Throws config::ConfigError or
  // LoadError with a one-line reason.
  void load_and_configure(const config::Config& cfg);
  // Starts modules by kind: config sources, authenticators, http,
  // transports; transports start only once everything before is ready.
  void start(int ready_timeout_ms);
  // SIGHUP: hands each module its settings from the re-read file and calls
  // configure(reloading=1); config sources first. A module that refuses
  // keeps what it had (it logs why).
  void reload(const config::Config& cfg);
  // Start-up finished (listeners open): /ready may answer 200.
  void mark_started();
  void stop();
  std::vector<std::string> module_names() const;
  // The HTTP listener settings: the file's, with config sources' changes.
  const config::HttpSettings& http_settings() const { return http_settings_; }
  // {"ready": bool, "waiting": [modules not ready yet]} for GET /ready.
  nlohmann::json readiness() const;

  struct Instance;
  // The host function table handed to every module (host_api/table.cpp).
  static const bb_host_api* api();

  // What the host functions (host_api/) reach through their bb_host_ctx.
  broker::Broker& broker() { return broker_; }
  connection::ConnectionTable& connections() { return connections_; }
  net::WorkerPool& workers() { return workers_; }
  http::HttpServer& http() { return http_; }
  IoWatches& io_watches() { return *io_watches_; }
  const std::string& state_dir() const { return state_dir_; }
  // Merges a config source's {"module": {settings}} into the modules' (and
  // the kernel's "http" listener's); creates modules it switches on.
  void apply_settings(const nlohmann::json& settings, const std::string& from);
  // The module called ready() after a BB_PENDING start(): wakes start()
  // waiting to start the transports.
  void set_ready(Instance& instance);

 private:
  Instance& create_instance(const config::ModuleEntry& entry);

  broker::Broker& broker_;
  connection::ConnectionTable& connections_;
  net::WorkerPool& workers_;
  http::HttpServer& http_;
  std::unique_ptr<IoWatches> io_watches_;
  config::HttpSettings http_settings_;
  std::string state_dir_;
  bool started_ = false;
  std::vector<std::string> search_path_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::vector<LoadedModule> libraries_;  // never unloaded
  mutable std::mutex ready_mutex_;
  std::condition_variable ready_cv_;
};

}  // namespace backbone::kernel::module_host
