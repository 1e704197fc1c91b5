// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/authz/glob.hpp"

#include <algorithm>
#include <cstddef>

namespace backbone::kernel::authz {

namespace {

// The single backtrack point is enough because a later star can absorb
// anything an earlier one would have had to give up. glob_match() where a '*' in `s` is matched
// only by a '*' of the glob when `star_is_symbol` is set.
bool match(std::string_view glob, std::string_view s, bool star_is_symbol) {
  size_t gi = 0;
  size_t si = 0;
  size_t star = std::string_view::npos;
  size_t mark = 0;
  while (si < s.size()) {
    if (gi < glob.size() && glob[gi] == '*') {
      star = gi++;
      mark = si;
    } else if (gi < glob.size() && glob[gi] == s[si] && !(star_is_symbol && s[si] == '*')) {
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

}  // namespace

bool glob_match(std::string_view glob, std::string_view s) {
  return match(glob, s, false);
}

bool glob_covers(std::string_view glob, std::string_view pattern) {
  return match(glob, pattern, true);
}

bool glob_may_overlap(std::string_view a, std::string_view b) {
  const size_t a_star = a.find('*');
  const size_t b_star = b.find('*');
  if (a_star == std::string_view::npos)
    return b_star == std::string_view::npos ? a == b : glob_match(b, a);
  if (b_star == std::string_view::npos) return glob_match(a, b);
  // Both open: a common string exists when their fixed heads agree and their
  // fixed tails agree (the stars in between can take the rest).
  const std::string_view a_head = a.substr(0, a_star), b_head = b.substr(0, b_star);
  const std::string_view a_tail = a.substr(a.rfind('*') + 1), b_tail = b.substr(b.rfind('*') + 1);
  const size_t head = std::min(a_head.size(), b_head.size());
  const size_t tail = std::min(a_tail.size(), b_tail.size());
  return a_head.substr(0, head) == b_head.substr(0, head) &&
         a_tail.substr(a_tail.size() - tail) == b_tail.substr(b_tail.size() - tail);
}

}  // namespace backbone::kernel::authz
