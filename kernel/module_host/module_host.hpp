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
  static const bb_host_api* api();

 private:
  friend struct HostApiImpl;
  Instance& create_instance(const config::ModuleEntry& entry);
  void apply_settings(const nlohmann::json& settings, const std::string& from);

  http::HttpServer& http_;
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
