// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Shared helpers of the module tests: loading a built module once per test
// binary, and reading which symbols a module exports.

#include <elf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "testing/fake_host.hpp"

namespace backbone::modules::test {

// The module at `path`, loaded once (modules are never unloaded).
inline const bb_module_descriptor* module_descriptor(const std::string& path) {
  static std::map<std::string, std::unique_ptr<testing::ModuleLibrary>> libraries;
  auto& lib = libraries[path];
  if (!lib) lib = std::make_unique<testing::ModuleLibrary>(path);
  EXPECT_TRUE(lib->loaded()) << lib->error();
  return lib->descriptor();
}

// A path in the test temp dir unique to this process (ctest runs tests of
// one binary in parallel processes).
inline std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "bb_" + std::to_string(::getpid()) + "_" + name;
}

// Defined (exported) symbols of the ELF64 shared object's dynamic symbol table.
inline std::vector<std::string> exported_symbols(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::string file(static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0)), '\0');
  in.seekg(0);
  in.read(file.data(), static_cast<std::streamsize>(file.size()));
  std::vector<std::string> names;
  if (file.size() < sizeof(Elf64_Ehdr)) return names;
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) {
    return names;
  }
  auto section = [&](size_t i) {
    Elf64_Shdr sh{};
    size_t off = eh.e_shoff + i * eh.e_shentsize;
    if (off + sizeof sh <= file.size()) std::memcpy(&sh, file.data() + off, sizeof sh);
    return sh;
  };
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh = section(i);
    if (sh.sh_type != SHT_DYNSYM) continue;
    Elf64_Shdr strtab = section(sh.sh_link);
    for (size_t off = sh.sh_offset; off + sizeof(Elf64_Sym) <= sh.sh_offset + sh.sh_size;
         off += sizeof(Elf64_Sym)) {
      Elf64_Sym sym;
      std::memcpy(&sym, file.data() + off, sizeof sym);
      const int bind = ELF64_ST_BIND(sym.st_info);
      if (sym.st_shndx == SHN_UNDEF || sym.st_name == 0 || bind == STB_LOCAL) {
        continue;
      }
      names.emplace_back(file.data() + strtab.sh_offset + sym.st_name);
    }
  }
  return names;
}

}  // namespace backbone::modules::test
