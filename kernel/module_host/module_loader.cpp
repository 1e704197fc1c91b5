// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/module_host/module_loader.hpp"

#include <elf.h>
#include <sys/stat.h>
#include <boost/dll/runtime_symbol_info.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>

namespace backbone::kernel::module_host {

namespace fs = std::filesystem;

namespace {

// Does the ELF file export `name` in its dynamic symbol table? Read without
// loading it, so a foreign file never gets to run static constructors.
// (boost::dll::library_info reads only .symtab, which strip removes.)
bool exports_symbol(const std::string& path, std::string_view name, std::string& error) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    error = "cannot read the file";
    return false;
  }
  // One read of the whole file (modules with debug info are megabytes; a
  // character-by-character read takes seconds under sanitizers).
  std::string data(static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0)), '\0');
  in.seekg(0);
  if (!in.read(data.data(), static_cast<std::streamsize>(data.size()))) {
    error = "cannot read the file";
    return false;
  }
  auto read = [&](size_t off, auto& out) {
    if (off > data.size() || data.size() - off < sizeof(out)) return false;
    std::memcpy(&out, data.data() + off, sizeof(out));
    return true;
  };
  Elf64_Ehdr eh;
  if (!read(0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
    error = "not an ELF file";
    return false;
  }
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
    error = "not a 64-bit little-endian ELF file";
    return false;
  }
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) {
    error = "unexpected ELF section header size";
    return false;
  }
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    if (!read(eh.e_shoff + i * sizeof(Elf64_Shdr), sh)) break;
    if (sh.sh_type != SHT_DYNSYM || sh.sh_entsize != sizeof(Elf64_Sym)) continue;
    Elf64_Shdr strtab;
    if (!read(eh.e_shoff + sh.sh_link * sizeof(Elf64_Shdr), strtab)) break;
    for (size_t k = 0; k < sh.sh_size / sizeof(Elf64_Sym); ++k) {
      Elf64_Sym sym;
      if (!read(sh.sh_offset + k * sizeof(Elf64_Sym), sym)) break;
      if (sym.st_shndx == SHN_UNDEF || ELF64_ST_BIND(sym.st_info) == STB_LOCAL) continue;
      const size_t off = strtab.sh_offset + sym.st_name;
      if (off >= data.size() || strtab.sh_offset > data.size()) continue;
      const size_t end = data.find('\0', off);
      if (end == std::string::npos) continue;
      if (std::string_view(data.data() + off, end - off) == name) return true;
    }
  }
  error = "no exported bb_module_entry symbol";
  return false;
}

}  // namespace

std::vector<std::string> module_search_path(const std::vector<std::string>& configured) {
  std::vector<std::string> path = configured;
  std::error_code ec;
  const fs::path exe = boost::dll::program_location(ec);
  if (!ec) {
    path.push_back((exe.parent_path().parent_path() / "lib" / "backbone" / "modules").string());
  }
  // The build tree's modules serve only a binary that runs from the build
  // tree: an installed backboned never loads code from where it was built.
  const fs::path build_root =
      fs::path(BACKBONE_BUILD_MODULE_DIR).parent_path().parent_path().parent_path();
  if (!ec && exe.string().starts_with(build_root.string() + "/"))
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
  // Whoever may write the file or its directory could run code in the
  // broker: refuse modules others than the owner can replace.
  for (const fs::path& p : {fs::path(path).parent_path(), fs::path(path)}) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)))
      throw LoadError(path + ": not loaded: " + p.string() +
                      " is writable by its group or by others (chmod go-w)");
  }
  std::string why;
  if (!exports_symbol(path, "bb_module_entry", why))
    throw LoadError(path + ": not a Backbone module (" + why + ")");
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
