// SPDX-License-Identifier: GPL-3.0-or-later
// hiredis handles and the RESP encoding of the commands the sender writes.
#pragma once

#include <hiredis/hiredis.h>

#include <charconv>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::redis {

struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;
struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// A command whose arguments are binary-safe views.
class Command {
 public:
  Command& operator<<(std::string_view arg) {
    argv_.push_back(arg.data());
    lengths_.push_back(arg.size());
    return *this;
  }
  int append_to(redisContext* c) const {
    // hiredis 0.14 takes a non-const argv it never writes to.
    return redisAppendCommandArgv(c, static_cast<int>(argv_.size()),
                                  const_cast<const char**>(argv_.data()), lengths_.data());
  }
  Reply run(redisContext* c) const {
    if (append_to(c) != REDIS_OK) return nullptr;
    void* reply = nullptr;
    if (redisGetReply(c, &reply) != REDIS_OK) return nullptr;
    return Reply(static_cast<redisReply*>(reply));
  }

 private:
  std::vector<const char*> argv_;
  std::vector<size_t> lengths_;
};

// Redis commands (RESP) the sender thread writes as they are.
inline void resp_header(char type, size_t n, std::string& out) {
  char buf[24];
  buf[0] = type;
  char* end = std::to_chars(buf + 1, buf + sizeof buf - 2, n).ptr;
  *end++ = '\r';
  *end++ = '\n';
  out.append(buf, static_cast<size_t>(end - buf));
}
inline void resp_bulk(std::string_view s, std::string& out) {
  resp_header('$', s.size(), out);
  out.append(s);
  out.append("\r\n");
}

}  // namespace backbone::modules::redis
