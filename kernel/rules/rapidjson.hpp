// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// Every translation unit must see RapidJSON configured the same way:
// valijson's adapter defines RAPIDJSON_ASSERT (throwing instead of aborting)
// and must come before any RapidJSON header.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#endif
#include <valijson/adapters/rapidjson_adapter.hpp>

#include <rapidjson/document.h>
