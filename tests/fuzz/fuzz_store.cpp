// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: the store's log replayed at start-up. The input is a
// sequence of record bodies, each after its length (u16, little-endian);
// they are framed with a correct length and CRC, so that the fuzzer reaches
// the record decoder instead of the checksum, and written as store.log.
// Opening replays them, drops what does not hold, and rewrites the log.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "kernel/store/store.hpp"

using namespace backbone::kernel::store;

namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// One per process, removed at exit (never destroyed before that handler).
const std::string& directory() {
  static const std::string* dir = [] {
    auto* d = new std::string((std::filesystem::temp_directory_path() /
                               ("backbone-fuzz-store-" + std::to_string(::getpid())))
                                  .string());
    std::filesystem::create_directories(*d);
    std::atexit([] { std::filesystem::remove_all(directory()); });
    return d;
  }();
  return *dir;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Only warnings about the fuzzer's own torn tails: keep the output short.
  spdlog::set_level(spdlog::level::err);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string log;
  while (in.size() >= 2) {
    const size_t n = static_cast<uint8_t>(in[0]) | static_cast<size_t>(in[1]) << 8;
    in.remove_prefix(2);
    const std::string_view body = in.substr(0, n);
    in.remove_prefix(body.size());
    put_u32(log, static_cast<uint32_t>(body.size()));
    put_u32(log, detail::crc32c(body.data(), body.size()));
    log.append(body);
  }
  log.append(in);  // a torn tail
  const std::string path = directory() + "/store.log";
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(log.data(), log.size());
  StoreSettings settings;
  settings.durability = Durability::kPeriodic;
  State state;
  Store::open(directory(), settings, state);  // and closed: the log is rewritten
  // What was replayed survives the rewrite.
  State again;
  Store::open(directory(), settings, again);
  if (again.sessions.size() != state.sessions.size() ||
      again.retained.size() != state.retained.size() ||
      again.messages.size() != state.messages.size())
    std::abort();
  return 0;
}
