// SPDX-License-Identifier: GPL-3.0-or-later
#include "sentinel.hpp"

#include <charconv>

namespace backbone::modules::redis {
namespace {

// One sentinel's answer; nullopt with `why` set.
std::optional<Endpoint> ask(const Settings& s, const Endpoint& sentinel, std::string& why) {
  const timeval tv = to_timeval(s.timeout_ms);
  Context c(redisConnectWithTimeout(sentinel.host.c_str(), sentinel.port, tv));
  if (!c || c->err) {
    why = c ? c->errstr : "out of memory";
    return std::nullopt;
  }
  redisSetTimeout(c.get(), tv);
  if (!s.sentinel_password.empty()) {
    Reply r = (Command() << "AUTH" << s.sentinel_password).run(c.get());
    if (!r || r->type == REDIS_REPLY_ERROR) {
      why = "authentication refused";
      return std::nullopt;
    }
  }
  Reply r = (Command() << "SENTINEL"
                       << "get-master-addr-by-name" << s.master_name)
                .run(c.get());
  if (!r) {
    why = c->errstr;
    return std::nullopt;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    why = r->str;
    return std::nullopt;
  }
  if (r->type == REDIS_REPLY_NIL) {
    why = "does not monitor a master named '" + s.master_name + "'";
    return std::nullopt;
  }
  int port = 0;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
      r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
      std::from_chars(r->element[1]->str, r->element[1]->str + r->element[1]->len, port).ec !=
          std::errc() ||
      port < 1 || port > 65535) {
    why = "unexpected reply";
    return std::nullopt;
  }
  return Endpoint{std::string(r->element[0]->str, r->element[0]->len), port};
}

}  // namespace

std::optional<Endpoint> ask_sentinels(const Settings& settings, size_t& first, std::string& error) {
  const size_t n = settings.sentinels.size();
  error.clear();
  for (size_t i = 0; i < n; ++i) {
    const size_t k = (first + i) % n;
    std::string why;
    if (std::optional<Endpoint> master = ask(settings, settings.sentinels[k], why)) {
      first = k;
      return master;
    }
    error += (error.empty() ? "" : "; ") + settings.sentinels[k].where() + ": " + why;
  }
  error = "no sentinel named master '" + settings.master_name + "' (" + error + ")";
  return std::nullopt;
}

bool is_master(redisContext* c, std::string& error) {
  Reply r = (Command() << "ROLE").run(c);
  if (!r) {
    error = c->errstr;
    return false;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    error = std::string("ROLE: ") + r->str;
    return false;
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
      r->element[0]->type != REDIS_REPLY_STRING) {
    error = "ROLE: unexpected reply";
    return false;
  }
  const std::string_view role(r->element[0]->str, r->element[0]->len);
  if (role == "master") return true;
  error = "a " + std::string(role == "slave" ? "replica" : role) + ", not the master";
  return false;
}

}  // namespace backbone::modules::redis
