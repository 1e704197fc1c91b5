// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: the config file. Bad configuration is a ConfigError with
// a message, never a crash and never any other exception.
#include <cstddef>
#include <cstdint>
#include <string>

#include "kernel/config/config_file.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    backbone::kernel::config::parse_config(text, "fuzz.json");
  } catch (const backbone::kernel::config::ConfigError&) {
  }
  return 0;
}
