// SPDX-License-Identifier: GPL-3.0-or-later
// The module lifecycle: load, configure, start, reload, stop, destroy. The
// functions modules call are in host_api/.
#include "kernel/module_host/module_host.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "kernel/http/http_server.hpp"
#include "kernel/module_host/host_api/io_watch.hpp"
#include "kernel/module_host/module_instance.hpp"

namespace backbone::kernel::module_host {

using nlohmann::json;

namespace {

int lowest_kind(uint32_t kinds) {
  for (int bit = 0; bit < 32; ++bit) {
    if (kinds & (1u << bit)) return bit;
  }
  return 32;
}

}  // namespace

ModuleHost::ModuleHost(broker::Broker& broker, connection::ConnectionTable& connections,
                       net::WorkerPool& workers, http::HttpServer& http)
    : broker_(broker),
      connections_(connections),
      workers_(workers),
      http_(http),
      io_watches_(std::make_unique<IoWatches>(workers)) {}

ModuleHost::~ModuleHost() {
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    if ((*it)->module) (*it)->ops->destroy((*it)->module);
    (*it)->module = nullptr;
  }
}

ModuleHost::Instance& ModuleHost::create_instance(const config::ModuleEntry& entry) {
  const std::string file = find_module_file(entry.name, search_path_);
  if (file.empty()) {
    std::string dirs;
    for (const auto& d : search_path_) dirs += (dirs.empty() ? "" : ", ") + d;
    throw config::ConfigError(entry.where + ": module '" + entry.name + "' not found (looked for " +
                              entry.name + ".so in " + dirs + ")");
  }
  LoadedModule loaded = load_module(file);
  auto inst = std::make_unique<Instance>();
  inst->entry = entry;
  inst->descriptor = loaded.descriptor;
  inst->ctx.host = this;
  inst->ctx.instance = inst.get();
  if (std::string(loaded.descriptor->name) != entry.name) {
    spdlog::debug("module file {} declares name '{}'", file, loaded.descriptor->name);
  }
  const bb_status status = loaded.descriptor->create(api(), &inst->ctx, &inst->ops, &inst->module);
  if (status != BB_OK || !inst->ops || !inst->module)
    throw LoadError(file + ": module '" + entry.name + "' failed to create an instance (status " +
                    std::to_string(status) + ")");
  spdlog::info("loaded module '{}' {} (ABI {}.{}) from {}", entry.name, loaded.descriptor->version,
               loaded.descriptor->abi_major, loaded.descriptor->abi_min_minor, file);
  libraries_.push_back(std::move(loaded));
  instances_.push_back(std::move(inst));
  return *instances_.back();
}

void ModuleHost::apply_settings(const json& settings, const std::string& from) {
  for (const auto& [name, values] : settings.items()) {
    if (!values.is_object()) continue;
    if (name == "http") {  // the kernel's listener, not a module
      config::read_http_settings(from, values, http_settings_);
      http_.configure(http_settings_);
      continue;
    }
    Instance* target = nullptr;
    for (auto& i : instances_) {
      if (i->entry.name == name) target = i.get();
    }
    if (!target) {
      // A module switched on by a config source (e.g. K8S_ENABLED=true).
      if (values.contains("enabled") && values["enabled"] == true) {
        config::ModuleEntry entry;
        entry.name = name;
        entry.where = "module '" + name + "' enabled by " + from;
        json rest = values;
        rest.erase("enabled");
        entry.settings = rest;
        create_instance(entry);
      }
      continue;
    }
    for (const auto& [key, value] : values.items()) {
      if (key == "enabled") {
        target->entry.enabled = value == true;
      } else {
        target->entry.settings[key] = value;  // environment overrides the file
      }
    }
  }
}

void ModuleHost::load_and_configure(const config::Config& cfg) {
  search_path_ = module_search_path(cfg.module_path);
  http_settings_ = cfg.http;
  http_.configure(http_settings_);
  state_dir_ = cfg.state_dir;
  for (const auto& entry : cfg.modules) {
    if (entry.enabled) create_instance(entry);
  }
  auto configure = [&](Instance& i) {
    if (i.configured || !i.entry.enabled) return;
    const bb_status status = i.ops->configure(i.module, 0);
    i.configured = true;
    if (status != BB_OK)
      throw config::ConfigError(i.entry.where + ": module '" + i.entry.name +
                                "' refused its settings (see the error above)");
  };
  // Config sources first: what they submit shapes the others' settings.
  for (size_t k = 0; k < instances_.size(); ++k) {
    if (instances_[k]->descriptor->kinds & BB_KIND_CONFIG) configure(*instances_[k]);
  }
  for (size_t k = 0; k < instances_.size(); ++k) configure(*instances_[k]);
}

void ModuleHost::reload(const config::Config& cfg) {
  for (auto& i : instances_) {
    for (const auto& entry : cfg.modules) {
      if (entry.name == i->entry.name) i->entry.settings = entry.settings;
    }
  }
  auto reconfigure = [](Instance& i) {
    if (!i.entry.enabled || !i.started) return;
    const bb_status status = i.ops->configure(i.module, 1);
    if (status == BB_E_UNSUPPORTED) {
      spdlog::info("SIGHUP: module '{}' applies setting changes only on restart", i.entry.name);
    } else if (status != BB_OK) {
      spdlog::error("SIGHUP: module '{}' refused its new settings and keeps the old ones",
                    i.entry.name);
    }
  };
  for (auto& i : instances_) {
    if (i->descriptor->kinds & BB_KIND_CONFIG) reconfigure(*i);
  }
  for (auto& i : instances_) {
    if (!(i->descriptor->kinds & BB_KIND_CONFIG)) reconfigure(*i);
  }
}

void ModuleHost::start(int ready_timeout_ms) {
  std::vector<Instance*> order;
  for (auto& i : instances_) {
    if (i->entry.enabled) order.push_back(i.get());
  }
  // Transports last, whatever else they are: every other module must be
  // ready before the first client can connect.
  auto rank = [](const Instance* i) {
    const uint32_t kinds = i->descriptor->kinds;
    return (kinds & BB_KIND_TRANSPORT) ? 64 : lowest_kind(kinds);
  };
  std::stable_sort(order.begin(), order.end(),
                   [&rank](Instance* a, Instance* b) { return rank(a) < rank(b); });
  for (Instance* i : order) {
    if (i->descriptor->kinds & BB_KIND_TRANSPORT) {
      // No client may slip in before the policies of config sources and
      // authenticators are in force.
      std::unique_lock lock(ready_mutex_);
      const bool ok = ready_cv_.wait_for(lock, std::chrono::milliseconds(ready_timeout_ms), [&] {
        for (Instance* other : order) {
          if (!(other->descriptor->kinds & BB_KIND_TRANSPORT) && !other->ready) return false;
        }
        return true;
      });
      if (!ok) {
        std::string waiting;
        for (Instance* other : order) {
          if (!(other->descriptor->kinds & BB_KIND_TRANSPORT) && !other->ready)
            waiting += (waiting.empty() ? "" : ", ") + other->entry.name;
        }
        throw config::ConfigError("modules not ready after " + std::to_string(ready_timeout_ms) +
                                  " ms: " + waiting);
      }
    }
    const bb_status status = i->ops->start(i->module);
    i->started = true;
    if (status == BB_OK) {
      std::lock_guard lock(ready_mutex_);
      i->ready = true;
    } else if (status != BB_PENDING) {
      throw config::ConfigError(i->entry.where + ": module '" + i->entry.name +
                                "' failed to start (see the error above)");
    }
  }
}

void ModuleHost::set_ready(Instance& instance) {
  {
    std::lock_guard lock(ready_mutex_);
    instance.ready = true;
  }
  ready_cv_.notify_all();
}

void ModuleHost::mark_started() {
  std::lock_guard lock(ready_mutex_);
  started_ = true;
}

void ModuleHost::stop() {
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) {
    Instance& i = **it;
    if (i.started && !i.stopped) {
      i.ops->stop(i.module);
      i.stopped = true;
    }
  }
}

json ModuleHost::readiness() const {
  std::lock_guard lock(ready_mutex_);
  json waiting = json::array();
  for (const auto& i : instances_) {
    if (i->entry.enabled && !i->ready) waiting.push_back(i->entry.name);
  }
  const bool ready = started_ && waiting.empty();
  json out = {{"ready", ready}, {"waiting", waiting}};
  if (!started_)
    out["reason"] = "starting";
  else if (!ready)
    out["reason"] = "waiting for modules";
  return out;
}

std::vector<std::string> ModuleHost::module_names() const {
  std::vector<std::string> names;
  for (const auto& i : instances_) {
    if (i->entry.enabled) names.push_back(i->entry.name);
  }
  return names;
}

}  // namespace backbone::kernel::module_host
