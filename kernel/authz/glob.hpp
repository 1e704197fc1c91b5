// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <string_view>

namespace backbone::kernel::authz {

// True when `s` matches `glob`, where '*' matches any run of characters
// (possibly empty) and every other character matches itself. Used for action
// patterns ("mqtt:*") and for '*' inside one level of a resource pattern.
// Never allocates; O(|glob| * |s|) at worst.
bool glob_match(std::string_view glob, std::string_view s);

// True when every string `pattern` matches is matched by `glob` (both globs
// as above). Decided by matching `pattern` as text in which each '*' is a
// symbol that only a '*' of `glob` can take: sound (never true when some
// string escapes), and exact for the shapes statements use ("mqtt:*",
// "mgmt:get-*", "*").
bool glob_covers(std::string_view glob, std::string_view pattern);

// False only when no string matches both globs; true when they might share
// one (a deny statement that might cut into a grant counts against it).
bool glob_may_overlap(std::string_view a, std::string_view b);

}  // namespace backbone::kernel::authz
