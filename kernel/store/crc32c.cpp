// SPDX-License-Identifier: GPL-3.0-or-later
// CRC-32C (Castagnoli), the checksum of every store record.
#include <array>
#include <cstring>

#include "kernel/store/store.hpp"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace backbone::kernel::store {
namespace {

// CRC-32C (Castagnoli): the SSE4.2 instruction where the CPU has it (an
// order of magnitude faster than a table, and records are checksummed on the
// publishing thread), the same function from a table elsewhere.
uint32_t crc32c_table(uint32_t crc, const unsigned char* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const unsigned char* p,
                                                        size_t n) {
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = _mm_crc32_u8(c32, *p);
  return c32;
}
#endif

}  // namespace

namespace detail {

uint32_t crc32c_portable(const char* data, size_t n) {
  return ~crc32c_table(~0u, reinterpret_cast<const unsigned char*>(data), n);
}

uint32_t crc32c(const char* data, size_t n) {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
#if defined(__x86_64__)
  static const bool hardware = __builtin_cpu_supports("sse4.2");
  if (hardware) return ~crc32c_sse42(~0u, p, n);
#endif
  return ~crc32c_table(~0u, p, n);
}

}  // namespace detail

}  // namespace backbone::kernel::store
