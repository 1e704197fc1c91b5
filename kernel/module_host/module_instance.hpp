// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include <backbone/module_abi.h>

#include "kernel/config/config_file.hpp"
#include "kernel/module_host/module_host.hpp"

// The per-instance context handed to a module, opaque to it: every host
// function reaches the kernel through it.
struct bb_host_ctx {
  backbone::kernel::module_host::ModuleHost* host = nullptr;
  backbone::kernel::module_host::ModuleHost::Instance* instance = nullptr;
};

namespace backbone::kernel::module_host {

// One loaded module instance. The lifecycle fields are written by the
// control thread; `ready` also by ready() from any thread, under ModuleHost's
// ready mutex; `stopped` is read by conn_open from any thread.
struct ModuleHost::Instance {
  bb_host_ctx ctx;
  config::ModuleEntry entry;
  const bb_module_descriptor* descriptor = nullptr;
  const bb_module_ops* ops = nullptr;
  bb_module* module = nullptr;
  std::string config_scratch;  // backs bb_str results of config_get
  std::once_flag state_once;
  std::string state_path;  // "<state_dir>/<name>" once created
  bool configured = false;
  bool started = false;
  bool ready = false;
  std::atomic<bool> stopped{false};
  std::string name() const { return entry.name; }
};

}  // namespace backbone::kernel::module_host
