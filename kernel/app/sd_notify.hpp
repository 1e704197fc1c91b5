// SPDX-License-Identifier: GPL-3.0-or-later
// systemd's readiness protocol (sd_notify(3)) without libsystemd: one
// datagram to the AF_UNIX socket named by $NOTIFY_SOCKET ('@' = abstract).
#pragma once

#include <string_view>

namespace backbone::kernel::app {

// Sends `state` (e.g. "READY=1", newline-separated assignments). Returns
// false when NOTIFY_SOCKET is unset (not started by systemd) or sending
// failed; both are harmless, so callers may ignore the result.
bool sd_notify(std::string_view state);

// "RELOADING=1" with the MONOTONIC_USEC= stamp systemd expects with it.
bool sd_notify_reloading();

}  // namespace backbone::kernel::app
