// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include <backbone/module_abi.h>

namespace backbone::kernel::module_host {

class LoadError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A module file mapped into the process. Never unloaded while running: the
// library handle lives as long as the kernel does.
struct LoadedModule {
  std::string path;
  boost::dll::shared_library library;
  const bb_module_descriptor* descriptor = nullptr;
};

// Directories searched for modules, in order: the config file's
// module_path, ../lib/backbone/modules next to the executable, the build tree.
std::vector<std::string> module_search_path(const std::vector<std::string>& configured);

// The file for module `name` ("<dir>/<name>.so"), or "" if none.
std::string find_module_file(const std::string& name, const std::vector<std::string>& path);

// Checks the file exports bb_module_entry before running any of its code,
// loads it and validates its descriptor against this kernel's ABI version.
LoadedModule load_module(const std::string& path);

struct ModuleListing {
  std::string path;
  std::string name;
  std::string version;
  std::string abi;  // "1.0"
  std::string error;
};
std::vector<ModuleListing> list_modules(const std::vector<std::string>& path);

}  // namespace backbone::kernel::module_host
