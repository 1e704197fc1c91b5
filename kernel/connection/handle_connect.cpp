// SPDX-License-Identifier: GPL-3.0-or-later
// CONNECT → authentication → CONNACK.
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "kernel/broker/broker.hpp"
#include "kernel/connection/connection.hpp"
#include "kernel/connection/connection_table.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::connection {

using protocol::PacketType;
using protocol::Version;
namespace reason = protocol::reason;

namespace {

std::string generated_client_id() {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof(bytes));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "bb-";
  for (unsigned char b : bytes) {
    id.push_back(kHex[b >> 4]);
    id.push_back(kHex[b & 0x0F]);
  }
  return id;
}

}  // namespace

bool Connection::handle_connect(std::string_view body) {
  protocol::ConnectPacket connect;
  protocol::DecodeError err;
  if (!protocol::decode_connect(body, connect, err)) {
    // The version is known only once the fixed part decoded; answer v5
    // clients with a CONNACK reason where the spec asks for one.
    spdlog::info("connection {} ({}): malformed CONNECT: {}", id_, peer_, err.message);
    if (err.reason == reason::kUnsupportedProtocolVersion) {
      version_ = Version::kV311;
      refuse_connect(err.reason);
      return false;
    }
    // A v5 client learns why (MQTT 5 §4.13.1); a v3 one just sees the close.
    if (connect.version == Version::kV5) {
      version_ = Version::kV5;
      refuse_connect(err.reason);
      return false;
    }
    return protocol_error(err.reason, err.message);
  }
  version_ = connect.version;
  const auto& limits = broker_.limits();
  if (connect.client_id.empty()) {
    if (version_ != Version::kV5 && !connect.clean_start) {
      refuse_connect(reason::kClientIdNotValid);
      return false;
    }
    connect.client_id = generated_client_id();
    connect.props.assigned_client_id = connect.client_id;
  }
  if (connect.will && !broker_.topic_within_limits(connect.will->topic)) {
    refuse_connect(reason::kTopicNameInvalid);
    return false;
  }
  keep_alive_s_ = connect.keep_alive;
  if (version_ == Version::kV5) {
    send_window_ =
        std::min<uint16_t>(connect.props.receive_maximum.value_or(65535), limits.max_inflight);
    client_max_packet_ = connect.props.maximum_packet_size.value_or(0);
    client_alias_max_ = connect.props.topic_alias_maximum.value_or(0);
    problem_info_ = connect.props.request_problem_info.value_or(1) != 0;
  } else {
    send_window_ = limits.max_inflight;
  }

  // An address that keeps failing to log in waits before it is heard again.
  const std::string_view address = quota::LoginThrottle::address_of(peer_);
  if (const auto wait = broker_.login_throttle().wait(address, std::chrono::steady_clock::now());
      wait != std::chrono::steady_clock::duration::zero()) {
    spdlog::info("connection {} ({}): login refused for {} ms after repeated failed logins", id_,
                 peer_, std::chrono::duration_cast<std::chrono::milliseconds>(wait).count());
    broker_.metrics().count_quota("limits.login_failures_before_backoff");
    refuse_connect(reason::kServerBusy);
    return false;
  }
  // Authentication: the user name names the provider, the password is the
  // token. No user name means anonymous, allowed only when configured.
  if (!connect.username || connect.username->empty()) {
    auto anonymous = broker_.anonymous_policy();
    provider_ = "anonymous";
    connect_ = std::make_unique<protocol::ConnectPacket>(std::move(connect));
    if (!anonymous) {
      spdlog::info("connection {} ({}): refused anonymous login (no anonymous statements)", id_,
                   peer_);
      login_failed();
      refuse_connect(reason::kNotAuthorized);
      return false;
    }
    finish_connect(std::move(anonymous), "anonymous", 0, nullptr);
    return state_ != State::kClosed;
  }
  provider_ = *connect.username;
  const auth::Authenticator* auth = broker_.logins().find(provider_);
  connect_ = std::make_unique<protocol::ConnectPacket>(std::move(connect));
  if (!auth) {
    spdlog::info("connection {} ({}): refused login: no authentication provider '{}'", id_, peer_,
                 provider_);
    login_failed();
    refuse_connect(reason::kBadUserNameOrPassword);
    return false;
  }
  state_ = State::kAuthenticating;
  const std::string& password = connect_->password ? *connect_->password : std::string();
  bb_auth_request req{};
  req.struct_size = sizeof(req);
  req.conn = id_;
  req.client_id = bb_str{connect_->client_id.data(), connect_->client_id.size()};
  req.username = bb_str{provider_.data(), provider_.size()};
  req.transport = bb_str{transport_.data(), transport_.size()};
  req.peer_address = bb_str{peer_.data(), peer_.size()};
  req.password = bb_bytes{reinterpret_cast<const uint8_t*>(password.data()), password.size()};
  auth_started_ = std::chrono::steady_clock::now();
  auto started = broker_.logins().start(*auth, req, worker_,
                                        [table = &table_, id = id_](auth::Outcome&& outcome) {
                                          if (Connection* c = table->find(id))
                                            c->auth_done(std::move(outcome));
                                        });
  if (started.status == BB_PENDING) {
    login_ticket_ = started.ticket;  // auth_done() follows
    return true;
  }
  if (started.status != BB_OK) {
    spdlog::warn("connection {} ({}): provider '{}' failed with status {}", id_, peer_, provider_,
                 started.status);
    refuse_connect(reason::kServerUnavailable);
    return false;
  }
  auth_done(std::move(started.outcome));
  return state_ != State::kClosed;
}

void Connection::auth_done(auth::Outcome&& outcome) {
  if (state_ != State::kAuthenticating) return;  // closed meanwhile
  login_ticket_ = 0;
  if (outcome.timed_out) {
    spdlog::warn("connection {} ({}): authentication by '{}' timed out", id_, peer_, provider_);
    refuse_connect(reason::kServerUnavailable);
    return;
  }
  broker_.metrics().observe_login(provider_, outcome.verdict,
                                  std::chrono::steady_clock::now() - auth_started_);
  switch (outcome.verdict) {
    case BB_AUTH_ALLOW:
      broker_.login_throttle().succeeded(quota::LoginThrottle::address_of(peer_));
      break;
    case BB_AUTH_FORBIDDEN:
      spdlog::info("connection {} ({}): '{}' login not authorized: {}", id_, peer_, provider_,
                   outcome.log_reason);
      login_failed();
      refuse_connect(reason::kNotAuthorized);
      return;
    case BB_AUTH_UNAVAILABLE:
      spdlog::warn("connection {} ({}): provider '{}' unavailable: {}", id_, peer_, provider_,
                   outcome.log_reason);
      refuse_connect(reason::kServerUnavailable);
      return;
    default:
      spdlog::info("connection {} ({}): '{}' login refused: {}", id_, peer_, provider_,
                   outcome.log_reason.empty() ? "invalid credentials" : outcome.log_reason);
      login_failed();
      refuse_connect(reason::kBadUserNameOrPassword);
      return;
  }
  std::string error;
  auto policy = authz::Policy::compile(outcome.statements, &error);
  if (!policy) {
    spdlog::warn("connection {} ({}): '{}' returned invalid statements: {}", id_, peer_, provider_,
                 error);
    refuse_connect(reason::kNotAuthorized);
    return;
  }
  finish_connect(std::move(policy), outcome.principal, outcome.expires_at_unix_s,
                 outcome.quotas ? &*outcome.quotas : nullptr);
}

void Connection::login_failed() {
  broker_.stats().auth_failures.fetch_add(1, std::memory_order_relaxed);
  broker_.login_throttle().failed(quota::LoginThrottle::address_of(peer_),
                                  std::chrono::steady_clock::now());
}

void Connection::set_policy(std::shared_ptr<const authz::Policy> policy) {
  if (state_ != State::kConnected) return;
  policy_ = policy;
  publish_cache_->set_policy(std::move(policy));
}

void Connection::refuse_connect(uint8_t reason_code) {
  protocol::ConnackPacket ack;
  ack.reason_code = reason_code;
  std::string bytes;
  protocol::encode_connack(ack, version_, bytes);
  emit(bytes);
  connect_.reset();
  close_transport();
}

void Connection::finish_connect(std::shared_ptr<const authz::Policy> policy,
                                const std::string& principal, int64_t expires_at_unix_s,
                                const bb_quotas* quotas) {
  protocol::ConnectPacket& connect = *connect_;
  const auto& limits = broker_.limits();
  // The principal's quotas: this login's, over the broker's defaults; they
  // apply to its other live sessions as well.
  quota::PrincipalPtr usage = broker_.principals().get(provider_, principal);
  quotas_ = quota::Quotas::resolve(quotas, limits.principal);
  if (usage->replace_quotas(quotas_)) broker_.update_quotas(provider_, principal, quotas);
  const uint64_t connected = usage->connections.fetch_add(1, std::memory_order_relaxed);
  usage_ = usage;  // counted from here on
  if (quotas_.max_connections && connected >= quotas_.max_connections &&
      !broker_.connected_as(connect.client_id, provider_, principal)) {
    spdlog::info("connection {} ({}): '{}' ({}) is at maxConnections ({})", id_, peer_, principal,
                 provider_, quotas_.max_connections);
    broker_.metrics().count_quota(quota::kMaxConnections);
    release_principal();
    refuse_connect(reason::kQuotaExceeded);
    return;
  }
  if (connect.will && !policy->allows("mqtt:publish", connect.will->topic)) {
    spdlog::info("connection {} ({}): will topic '{}' not authorized for '{}'", id_, peer_,
                 connect.will->topic, principal);
    broker_.stats().publish_denied.fetch_add(1, std::memory_order_relaxed);
    broker_.metrics().count_denial("mqtt:publish");
    release_principal();
    refuse_connect(reason::kNotAuthorized);
    return;
  }
  policy_ = policy;
  publish_cache_.emplace(policy);
  credentials_expire_unix_s_ = expires_at_unix_s;

  uint32_t expiry = 0;
  const uint32_t max_expiry = quotas_.max_session_expiry_s
                                  ? static_cast<uint32_t>(std::min<uint64_t>(
                                        quotas_.max_session_expiry_s, limits.max_session_expiry_s))
                                  : limits.max_session_expiry_s;
  if (version_ == Version::kV5) {
    expiry = std::min(connect.props.session_expiry.value_or(0), max_expiry);
  } else if (!connect.clean_start) {
    expiry = max_expiry;  // v3.1.1 persistent sessions never expire on their own
  }
  bool session_present = false;
  const auto connected_at =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  broker::Broker::Attached attached = broker_.attach_session(
      connect.client_id, connect.clean_start, id_, {provider_, principal, policy.get()});
  if (!attached.session) {
    // Another principal's client id (SPEC §6): its session stays untouched.
    broker_.stats().auth_failures.fetch_add(1, std::memory_order_relaxed);
    broker_.metrics().count_denial("mqtt:connect");
    release_principal();
    refuse_connect(reason::kNotAuthorized);
    return;
  }
  session_ = std::move(attached.session);
  session_present = attached.present;
  broker_.cancel_will(connect.client_id);
  {
    std::lock_guard lock(session_->mutex());
    session_->version = version_;
    session_->expiry_interval_s = expiry;
    session_->connected_at_unix_ms = connected_at;
    session_->usage = usage_;
    session_->queue_limit =
        quotas_.max_queued_messages
            ? std::min<uint64_t>(quotas_.max_queued_messages, limits.max_queued_messages)
            : limits.max_queued_messages;
    if (!session_present) session_->read_cache.emplace(policy);
    // QoS 2 packet ids the previous principal left half-received must not
    // swallow the new principal's messages as duplicates.
    if (attached.owner_changed) session_->incoming_qos2.clear();
  }
  // A resumed session (possibly restored from the store, or last used with
  // other credentials) keeps only what this login's statements allow.
  if (session_present) broker_.apply_policy(session_, policy);
  broker_.persist_session(*session_);
  if (connect.will) will_ = std::make_unique<protocol::Will>(std::move(*connect.will));
  state_ = State::kConnected;
  broker_.stats().connections_total.fetch_add(1, std::memory_order_relaxed);
  if (!gauges_released_) {
    provider_counters_ = &broker_.metrics().provider(provider_.empty() ? "anonymous" : provider_);
    provider_counters_->sessions.fetch_add(1, std::memory_order_relaxed);
  }

  protocol::Properties props;
  if (version_ == Version::kV5) {
    props.assigned_client_id = connect.props.assigned_client_id;
    props.receive_maximum = limits.receive_maximum;
    props.maximum_packet_size = limits.max_packet_size;
    props.topic_alias_maximum = limits.topic_alias_maximum;
    if (connect.props.session_expiry && *connect.props.session_expiry != expiry)
      props.session_expiry = expiry;
    if (keep_alive_s_ > limits.max_keep_alive || keep_alive_s_ == 0) {
      // A zero keep-alive would let dead connections linger forever.
      keep_alive_s_ = limits.max_keep_alive;
      props.server_keep_alive = keep_alive_s_;
    }
  }
  spdlog::debug("connection {} ({}): '{}' connected as {} via {} (v{}, session present {})", id_,
                peer_, connect.client_id, principal, provider_, static_cast<int>(version_),
                session_present);
  send_connack(session_present, reason::kSuccess, std::move(props));
  broker_.session_started(connect.client_id, connected_at, {provider_, principal, policy.get()});
  connect_.reset();

  // Resume the in-flight flows of a persistent session, in order: only what
  // this login may read (apply_policy() filtered the queue the same way).
  {
    std::lock_guard lock(session_->mutex());
    const auto now = message::Clock::now();
    for (auto it = session_->inflight.begin(); it != session_->inflight.end();) {
      Inflight& f = it->second;
      if (f.released) {
        send_ack(PacketType::kPubrel, it->first, 0);
      } else if (!session_->read_cache->allows(authz::Action::read, f.delivery.msg->topic)) {
        broker_.metrics().count_denial("mqtt:read");
        broker_.stored_done(*session_, f.delivery);
        it = session_->inflight.erase(it);
        continue;
      } else if (!send_publish(f.delivery, it->first, true, now)) {
        broker_.stored_done(*session_, f.delivery);
        it = session_->inflight.erase(it);  // too large for the client now
        continue;
      }
      ++it;
    }
  }
  flush();
}

void Connection::send_connack(bool session_present, uint8_t reason_code,
                              protocol::Properties props) {
  protocol::ConnackPacket ack;
  ack.session_present = session_present;
  ack.reason_code = reason_code;
  ack.props = std::move(props);
  std::string bytes;
  protocol::encode_connack(ack, version_, bytes);
  emit(bytes);
}

bool Connection::handle_disconnect(uint8_t flags, std::string_view body) {
  protocol::DisconnectPacket d;
  protocol::DecodeError err;
  if (!protocol::decode_disconnect(PacketType::kDisconnect, flags, body, version_, d, err))
    return protocol_error(err.reason, err.message);
  if (version_ == Version::kV5 && d.props.session_expiry) {
    bool refused;
    {
      // Not held across protocol_error(): closing takes this lock again.
      std::lock_guard lock(session_->mutex());
      // MQTT 5 §3.14.2.2.2: a session that had expiry 0 may not be given one now.
      refused = session_->expiry_interval_s == 0 && *d.props.session_expiry != 0;
      if (!refused) {
        session_->expiry_interval_s = std::min<uint64_t>(
            {*d.props.session_expiry, broker_.limits().max_session_expiry_s,
             quotas_.max_session_expiry_s ? quotas_.max_session_expiry_s : UINT32_MAX});
      }
    }
    if (refused) return protocol_error(reason::kProtocolError, "session expiry set on DISCONNECT");
    broker_.persist_session(*session_);
  }
  // Reason 0x04 asks for the will to be published despite a clean close.
  graceful_disconnect_ = d.reason_code != reason::kDisconnectWithWill;
  if (graceful_disconnect_) will_.reset();
  close_transport();
  return false;
}

}  // namespace backbone::kernel::connection
