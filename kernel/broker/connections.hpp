// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "kernel/message/message.hpp"
#include "kernel/session/session.hpp"

namespace backbone::kernel::authz {
class Policy;
}
namespace backbone::kernel::quota {
struct Quotas;
}

namespace backbone::kernel::broker {

// What the broker asks of the connections its sessions are bound to
// (kernel/connection/ implements it). The broker knows a connection only by
// its id; every call may come from any thread and acts on the connection's
// own worker, later if need be. A connection that is gone is ignored.
class Connections {
 public:
  virtual ~Connections() = default;
  // Sends what the session has queued (coalesced per event batch).
  virtual void wake(session::ConnId id) = 0;
  // A session's queue drained: its publisher paused for it reads again.
  virtual void resume_publisher(session::ConnId id) = 0;
  // Ends the connection with a reason (v5 DISCONNECT); its will follows the
  // normal rules.
  virtual void disconnect(session::ConnId id, uint8_t reason, std::string_view reason_string) = 0;
  // The login's credentials were revoked: disconnect without the will.
  virtual void revoke(session::ConnId id) = 0;
  // The principal's statements or quotas changed (SPEC §6).
  virtual void set_policy(session::ConnId id, std::shared_ptr<const authz::Policy> policy) = 0;
  virtual void set_quotas(session::ConnId id, const quota::Quotas& quotas) = 0;
  // Keep-alive, CONNECT and authentication timeouts of the worker's
  // connections; called on that worker once a second.
  virtual void tick(uint32_t worker, message::Clock::time_point now) = 0;
};

}  // namespace backbone::kernel::broker
