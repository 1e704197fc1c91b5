// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <string_view>

namespace backbone::kernel::authz {

// True when `s` matches `glob`, where '*' matches any run of characters
// (possibly empty) and every other character matches itself. Used for action
// patterns ("mqtt:*") and for '*' inside one level of a resource pattern.
// Never allocates; O(|glob| * |s|) at worst.
bool glob_match(std::string_view glob, std::string_view s);

}  // namespace backbone::kernel::authz
