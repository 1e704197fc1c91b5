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

#define RAPIDJSON_ASSERT(x) \
  ((x) ? static_cast<void>(0) : ::backbone::kernel::rules::rapidjson_assertion_failed(__FILE__, __LINE__))

#include <rapidjson/document.h>
