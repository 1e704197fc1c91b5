// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/module_host/module_loader.hpp"

// Boost 1.74's library_info.hpp uses std::vector without including it.
#include <vector>

#include <boost/dll/library_info.hpp>
#include <boost/dll/runtime_symbol_info.hpp>
#include <algorithm>
#include <filesystem>

namespace backbone::kernel::module_host {

namespace fs = std::filesystem;

std::vector<std::string> module_search_path(const std::vector<std::string>& configured) {
  std::vector<std::string> path = configured;
  std::error_code ec;
  const fs::path exe = boost::dll::program_location(ec);
  if (!ec) {
    path.push_back((exe.parent_path().parent_path() / "lib" / "backbone" / "modules").string());
  }
  path.push_back(BACKBONE_BUILD_MODULE_DIR);
  // Keep the first occurrence of each directory.
  std::vector<std::string> unique;
  for (auto& p : path) {
    if (std::find(unique.begin(), unique.end(), p) == unique.end()) unique.push_back(p);
  }
  return unique;
}

std::string find_module_file(const std::string& name, const std::vector<std::string>& path) {
  for (const auto& dir : path) {
    const fs::path candidate = fs::path(dir) / (name + ".so");
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return fs::absolute(candidate).string();
  }
  return {};
}

LoadedModule load_module(const std::string& path) {
  LoadedModule m;
  m.path = path;
  try {
    boost::dll::library_info info(path);
    const auto symbols = info.symbols();
    if (std::find(symbols.begin(), symbols.end(), "bb_module_entry") == symbols.end())
      throw LoadError(path + ": not a Backbone module (no bb_module_entry symbol)");
  } catch (const LoadError&) {
    throw;
  } catch (const std::exception& e) {
    throw LoadError(path + ": cannot read the file as a shared object: " + e.what());
  }
  std::error_code ec;
  m.library.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) throw LoadError(path + ": cannot load: " + ec.message());
  auto entry = m.library.get<const bb_module_descriptor*()>("bb_module_entry");
  m.descriptor = entry();
  const bb_module_descriptor* d = m.descriptor;
  if (!d || d->struct_size < offsetof(bb_module_descriptor, create) + sizeof(d->create) ||
      !d->name || !d->version || !d->create)
    throw LoadError(path + ": invalid module descriptor");
  if (d->abi_major != BB_ABI_MAJOR)
    throw LoadError(path + ": module '" + d->name + "' was built for ABI " +
                    std::to_string(d->abi_major) + "." + std::to_string(d->abi_min_minor) +
                    ", this kernel provides ABI " + std::to_string(BB_ABI_MAJOR) + "." +
                    std::to_string(BB_ABI_MINOR) + " (major versions differ)");
  if (d->abi_min_minor > BB_ABI_MINOR)
    throw LoadError(path + ": module '" + d->name + "' needs ABI " + std::to_string(d->abi_major) +
                    "." + std::to_string(d->abi_min_minor) + ", this kernel provides ABI " +
                    std::to_string(BB_ABI_MAJOR) + "." + std::to_string(BB_ABI_MINOR));
  return m;
}

std::vector<ModuleListing> list_modules(const std::vector<std::string>& path) {
  std::vector<ModuleListing> out;
  for (const auto& dir : path) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".so") files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      ModuleListing l;
      l.path = f.string();
      try {
        LoadedModule m = load_module(l.path);
        l.name = m.descriptor->name;
        l.version = m.descriptor->version;
        l.abi = std::to_string(m.descriptor->abi_major) + "." +
                std::to_string(m.descriptor->abi_min_minor);
        // Kept loaded: unloading module code is never done (see ABI.md).
        static std::vector<LoadedModule> keep;
        keep.push_back(std::move(m));
      } catch (const std::exception& e) {
        l.error = e.what();
      }
      out.push_back(std::move(l));
    }
  }
  return out;
}

}  // namespace backbone::kernel::module_host
