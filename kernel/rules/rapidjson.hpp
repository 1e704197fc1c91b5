// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Every translation unit must see RapidJSON configured the same way, so it is
// included only through this header. Its assertions throw instead of
// aborting: bad input must never take the broker down. (valijson's RapidJSON
// adapter is not used: its assertion macro builds a std::string for every
// assertion evaluated, which made parsing several times slower.)

namespace backbone::kernel::rules {
[[noreturn]] void rapidjson_assertion_failed(const char* file, int line);
}  // namespace backbone::kernel::rules

// SSE2 is part of every x86-64 CPU: lets the parser skip whitespace and scan
// strings sixteen bytes at a time.
#if defined(__x86_64__) && !defined(RAPIDJSON_SSE2)
#define RAPIDJSON_SSE2
#endif

#define RAPIDJSON_ASSERT(x)   \
  ((x) ? static_cast<void>(0) \
       : ::backbone::kernel::rules::rapidjson_assertion_failed(__FILE__, __LINE__))

#include <rapidjson/document.h>
