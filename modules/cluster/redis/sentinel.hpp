// SPDX-License-Identifier: GPL-3.0-or-later
// Redis Sentinel: which server is the master now. Before each (re)connect
// the module asks the sentinels of its settings in turn for the master's
// address, connects there and checks with ROLE that the server is a master
// (after a failover a demoted master may still be up, as a replica).
#pragma once

#include <hiredis/hiredis.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "resp.hpp"
#include "settings.hpp"

namespace backbone::modules::redis {

// Asks `settings.sentinels` for the address of `settings.master_name`
// (`SENTINEL get-master-addr-by-name`), starting with sentinel `first` and
// moving on while one is unreachable or does not know the master; `first`
// becomes the one that answered, so the next call asks it first. nullopt
// with `error` set (one line, about every sentinel) when none answers.
std::optional<Endpoint> ask_sentinels(const Settings& settings, size_t& first, std::string& error);

// True when the server on `c` reports itself a master (`ROLE`); false with
// `error` set ("a replica", or why it did not answer).
bool is_master(redisContext* c, std::string& error);

// True for an error reply that means this server no longer takes the
// cluster's writes (READONLY: a demoted master; MASTERDOWN: a replica cut
// from its master): the connection is as good as lost.
inline bool master_lost(std::string_view error_reply) {
  return error_reply.starts_with("READONLY") || error_reply.starts_with("MASTERDOWN");
}

// hiredis' timeout from milliseconds.
inline timeval to_timeval(uint32_t ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

}  // namespace backbone::modules::redis
