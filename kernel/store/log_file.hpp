// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// File operations on the store's log. Each throws std::runtime_error naming
// the file on an I/O error. Private to kernel/store/.

#include <string>
#include <string_view>

namespace backbone::kernel::store {

std::string errno_text();
std::string read_whole(int fd, const std::string& path);
void write_all(int fd, std::string_view data, const std::string& path);
void sync_fd(int fd, const std::string& path);
// Writes `data` to <path>.tmp, syncs it and renames it over `path`, then
// syncs `dir` so the rename is durable too. Returns the new file's
// descriptor, open for writing at its end.
int replace_file(const std::string& dir, const std::string& path, std::string_view data);

}  // namespace backbone::kernel::store
