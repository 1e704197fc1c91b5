// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <string>

namespace backbone::kernel::state {

// Makes sure `dir` exists (created 0750 with its parents when missing), is a
// directory and is writable by this process. Throws config::ConfigError with
// one line naming the directory and the reason.
void prepare_state_dir(const std::string& dir);

// "<dir>/<name>", created 0700 when missing. Throws std::runtime_error.
std::string ensure_subdirectory(const std::string& dir, const std::string& name);

}  // namespace backbone::kernel::state
