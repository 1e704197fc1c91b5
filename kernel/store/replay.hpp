// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// How records change the State: when the log is replayed at start-up, and
// on every live append (the Store keeps its State current to rewrite the log
// from it). Private to kernel/store/.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kernel/message/message.hpp"
#include "kernel/store/store.hpp"

namespace backbone::kernel::store {

void apply_session_end(State& s, uint64_t key);
// A queue entry holds a reference to its message.
void apply_enqueue(SessionRecord& session, State::StoredMessage& message, QueuedRef&& ref);
void apply_done(State& s, uint64_t key, uint64_t id);
void apply_retained(State& s, const message::MessagePtr& m);

struct ReplayResult {
  size_t valid_bytes = 0;  // the records read; what follows is a torn or corrupt tail
  size_t records = 0;
};
// Applies the records of `log` to `s` up to the first one that is cut short,
// fails its checksum or does not decode, then drops the messages no queue
// names.
ReplayResult replay_log(std::string_view log, State& s);

}  // namespace backbone::kernel::store
