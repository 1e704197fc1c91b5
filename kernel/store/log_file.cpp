// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/store/log_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace backbone::kernel::store {

std::string errno_text() {
  return std::strerror(errno);
}

std::string read_whole(int fd, const std::string& path) {
  std::string data;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) data.reserve(static_cast<size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": read failed: " + errno_text());
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  return data;
}

void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": write failed: " + errno_text());
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void sync_fd(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) throw std::runtime_error(path + ": fdatasync failed: " + errno_text());
}

int replace_file(const std::string& dir, const std::string& path, std::string_view data) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(tmp + ": cannot open: " + errno_text());
  try {
    write_all(fd, data, tmp);
    sync_fd(fd, tmp);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::close(fd);
    throw std::runtime_error(path + ": rename failed: " + errno_text());
  }
  // The rename itself is durable once the directory is synced.
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return fd;
}

}  // namespace backbone::kernel::store
