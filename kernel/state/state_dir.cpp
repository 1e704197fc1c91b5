// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/state/state_dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "kernel/config/config_file.hpp"

namespace backbone::kernel::state {
namespace {

// mkdir -p: every missing component is created with `mode`.
int make_directories(const std::string& dir, mode_t mode) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    const std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), mode) != 0 && errno != EEXIST) return errno;
  }
  return 0;
}

}  // namespace

void prepare_state_dir(const std::string& dir) {
  auto fail = [&](const std::string& why) {
    throw config::ConfigError("state_dir '" + dir + "': " + why);
  };
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) fail(std::strerror(errno));
    if (const int err = make_directories(dir, 0750); err != 0)
      fail(std::string("cannot create it: ") + std::strerror(err));
    if (::stat(dir.c_str(), &st) != 0) fail(std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) fail("not a directory");
  // access(W_OK) answers yes for root on a read-only mount: create a file.
  const std::string probe = dir + "/.backboned-write-probe";
  // O_NOFOLLOW: a symlink planted under that name never makes us write
  // through it to another file.
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) fail(std::string("not writable: ") + std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

std::string ensure_subdirectory(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name;
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error(path + ": " + std::strerror(errno));
  return path;
}

}  // namespace backbone::kernel::state
