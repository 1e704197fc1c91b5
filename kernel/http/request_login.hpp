// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <backbone/module_abi.h>

#include "kernel/authz/policy.hpp"
#include "kernel/http/response.hpp"

#include "kernel/auth/logins.hpp"

namespace backbone::kernel::broker {
class Broker;
}

namespace backbone::kernel::http {

struct Exchange;
struct Route;

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

// Do the requester's statements allow `action` on `resource`? The
// evaluation of http_authorize; a denial is counted in the metrics.
bool allows(broker::Broker& broker, const authz::Policy& policy, std::string_view action,
            std::string_view resource);

// The action `route` declares for a `method` request to `path` (ABI 1.4),
// checked before the module sees the request. Null when allowed or when the
// route leaves the request to its module; otherwise the 403 to send, the
// refusal audited as the module would.
std::optional<Response> permit(broker::Broker& broker, const Exchange& ex, const Route& route,
                               std::string_view method, std::string_view path,
                               const std::string& peer);

}  // namespace backbone::kernel::http
