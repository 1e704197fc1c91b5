// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <backbone/module_abi.h>

#include "kernel/http/response.hpp"

#include "kernel/auth/logins.hpp"

namespace backbone::kernel::broker {
class Broker;
}

namespace backbone::kernel::http {

struct Exchange;

// The authentication of a request to a BB_HTTP_AUTH route: the token of
// "Authorization: Bearer <token>" checked by the provider named in
// "X-Auth-Provider", then the outcome turned into the exchange's requester
// (policy, identity, quotas) or an error answer. The HTTP connection drives
// it on its worker.

// The token of an "Authorization: Bearer <token>" value (scheme in any case,
// blanks before the token skipped); empty for any other value.
std::string_view bearer_token(std::string_view authorization);

// Asks `auth` (the provider named `provider`) about `token` from `peer`
// (see auth::Logins::start: a pending answer comes on `worker`).
auth::Logins::Started start_login(auth::Logins& logins, const auth::Authenticator& auth,
                                  const std::string& provider, const std::string& peer,
                                  std::string_view token, net::Worker& worker,
                                  auth::Logins::Answer answer);

// Applies the provider's `outcome` for the request `what` ("GET /api/x") in
// `ex`. Null when the requester may go on, `ex` then carrying its policy,
// identity and quotas; otherwise the answer to send (401, 403 or 503).
std::optional<Response> admit(broker::Broker& broker, Exchange& ex, auth::Outcome&& outcome,
                              const std::string& provider, const std::string& peer,
                              const std::string& what);

}  // namespace backbone::kernel::http
