// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/glob.hpp"

#include <cstddef>

namespace backbone::kernel::authz {

// The single backtrack point is enough because a later star can absorb
// anything an earlier one would have had to give up.
bool glob_match(std::string_view glob, std::string_view s) {
  size_t gi = 0;
  size_t si = 0;
  size_t star = std::string_view::npos;
  size_t mark = 0;
  while (si < s.size()) {
    if (gi < glob.size() && glob[gi] == '*') {
      star = gi++;
      mark = si;
    } else if (gi < glob.size() && glob[gi] == s[si]) {
      ++gi;
      ++si;
    } else if (star != std::string_view::npos) {
      gi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (gi < glob.size() && glob[gi] == '*') ++gi;
  return gi == glob.size();
}

}  // namespace backbone::kernel::authz
