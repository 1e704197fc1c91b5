// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <backbone/module_abi.h>
#include <boost/asio/steady_timer.hpp>

#include "kernel/authz/decision_cache.hpp"
#include "kernel/broker/metrics.hpp"
#include "kernel/message/message.hpp"
#include "kernel/protocol/codec.hpp"
#include "kernel/rules/topic_rules.hpp"
#include "kernel/session/session.hpp"

namespace backbone::kernel::auth {
struct Outcome;
}
namespace backbone::kernel::broker {
class Broker;
}
namespace backbone::kernel::net {
class Worker;
}

namespace backbone::kernel::connection {

class ConnectionTable;
using session::ConnId;
using session::Delivery;
using session::Inflight;
using session::SessionPtr;

// One MQTT network connection: the protocol state machine between a
// transport's bytes and a Session. Lives on one worker thread and is only
// touched there. The handle_* methods (one file each) process one packet
// type from the client; the send_* methods queue one packet to it.
class Connection {
 public:
  Connection(broker::Broker& broker, ConnectionTable& table, net::Worker& worker, ConnId id,
             const bb_conn_info& info, const bb_conn_ops* ops, void* user);
  ~Connection();

  ConnId id() const { return id_; }
  net::Worker& worker() { return worker_; }
  const SessionPtr& session() const { return session_; }
  bool closed() const { return state_ == State::kClosed; }

  // Bytes from the transport. Returns false once the connection is closing.
  bool feed(std::string_view data);
  void on_transport_closed();
  void set_backpressure(bool above);

  // Sends what the session has queued, within the in-flight window.
  void flush();
  // Flush at the end of the current event batch (coalesces writes).
  void request_flush();
  // Server-initiated close: DISCONNECT with the reason (v5) and close.
  void disconnect(uint8_t reason, std::string_view reason_string = {});
  // The login's credentials were revoked: disconnect without the will.
  void revoke();
  void auth_done(auth::Outcome&& outcome);
  // Statements changed while connected (SPEC §6: live within a second).
  void set_policy(std::shared_ptr<const authz::Policy> policy);
  // The principal's quotas changed (SPEC §6): subscriptions, queue and
  // publish rates follow at once.
  void set_quotas(const quota::Quotas& q);
  // Why reading from the client is paused; reading resumes once no reason
  // is left.
  enum PauseReason : uint8_t { kPausedForQueue = 1, kPausedForRate = 2, kPausedForOutput = 4 };
  void pause_reading(PauseReason why);
  void resume_reading(PauseReason why);
  // Sends the acknowledgements held for the store, up to what is durable.
  void release_held_acks();
  // ABI 1.5: a module released one hold (bb_ack_hold) of the message whose
  // hold sequence is `hold_seq`; unknown sequences are ignored.
  void release_hold(uint32_t hold_seq);
  // The hold token of (connection, sequence), 0 when the id has no room
  // for one; and back.
  static constexpr unsigned kHoldSeqBits = 24;
  static uint64_t hold_token(ConnId id, uint32_t hold_seq) {
    return id >> (64 - kHoldSeqBits) ? 0 : (id << kHoldSeqBits) | hold_seq;
  }
  static ConnId conn_of_hold(uint64_t hold) { return hold >> kHoldSeqBits; }
  static uint32_t seq_of_hold(uint64_t hold) {
    return static_cast<uint32_t>(hold & ((uint64_t{1} << kHoldSeqBits) - 1));
  }
  // Keep-alive, CONNECT timeout, authentication timeout, token expiry.
  void tick(message::Clock::time_point now);

 private:
  enum class State { kAwaitConnect, kAuthenticating, kConnected, kClosed };

  bool handle_packet(const protocol::FrameHeader& header, std::string_view body);
  bool handle_connect(std::string_view body);
  bool handle_publish(uint8_t flags, std::string_view body);
  bool handle_puback(const protocol::AckPacket& ack);
  bool handle_pubrec(const protocol::AckPacket& ack);
  bool handle_pubrel(const protocol::AckPacket& ack);
  bool handle_pubcomp(const protocol::AckPacket& ack);
  bool handle_subscribe(uint8_t flags, std::string_view body);
  bool handle_unsubscribe(uint8_t flags, std::string_view body);
  bool handle_pingreq();
  bool handle_disconnect(uint8_t flags, std::string_view body);
  bool handle_auth(uint8_t flags, std::string_view body);

  void refuse_connect(uint8_t reason);
  void login_failed();  // counted, and towards its address's back-off
  void finish_connect(std::shared_ptr<const authz::Policy> policy, const std::string& principal,
                      int64_t expires_at_unix_s, const bb_quotas* quotas);
  // The principal's publish rates: pauses reading while over them.
  void spend_publish_rate(size_t payload_bytes);
  void release_principal();
  void send_connack(bool session_present, uint8_t reason, protocol::Properties props);
  // `durable_seq` > 0: held until the store has made it durable (SPEC §10);
  // acknowledgements leave in the order of their PUBLISH packets.
  // `hold_seq` > 0: fills the HeldAck queued for that message before
  // ingress, which also waits for `holds` releases (ABI 1.5 ack_release).
  void send_ack(protocol::PacketType type, uint16_t packet_id, uint8_t reason,
                std::string_view reason_string = {}, uint64_t durable_seq = 0,
                uint32_t hold_seq = 0, uint32_t holds = 0);
  // False when the message was discarded as too large for the client.
  bool send_publish(const Delivery& d, uint16_t packet_id, bool dup,
                    message::Clock::time_point now);
  bool protocol_error(uint8_t reason, const char* why);
  void close_transport();
  // The connection ended (closed by either side): will, principal, pending
  // login and session are let go.
  void leave(bool was_connected);
  void write_out();
  void publish_will_now();

  void emit(std::string_view bytes);  // control packet bytes, in order

  broker::Broker& broker_;
  ConnectionTable& table_;  // its peers: publishers to resume, itself after a wait
  net::Worker& worker_;
  const ConnId id_;
  const bb_conn_ops* ops_;
  void* user_;
  std::string transport_;
  std::string peer_;
  broker::TransportCounters& traffic_;
  broker::ProviderCounters* provider_counters_ = nullptr;  // set while logged in
  bool gauges_released_ = false;
  std::chrono::steady_clock::time_point auth_started_{};

  State state_ = State::kAwaitConnect;
  protocol::Version version_ = protocol::Version::kV311;
  std::string in_;  // unparsed input
  SessionPtr session_;
  // Heap-held: both are large and most connections need them briefly or never.
  std::unique_ptr<protocol::ConnectPacket> connect_;  // kept while authenticating
  std::unique_ptr<protocol::Will> will_;
  std::shared_ptr<const authz::Policy> policy_;
  std::optional<authz::DecisionCache> publish_cache_;
  rules::RuleMemo rule_memo_;  // topic rules matching the last published topic
  std::string provider_;

  uint16_t keep_alive_s_ = 0;
  message::Clock::time_point last_activity_;
  message::Clock::time_point last_progress_;  // last delivery written or acknowledged
  message::Clock::time_point opened_at_;
  bb_auth_ticket login_ticket_ = 0;  // while authenticating: cancelled if the connection ends
  int64_t credentials_expire_unix_s_ = 0;

  // Client-side limits (v5 CONNECT properties).
  uint16_t send_window_ = 0;
  uint32_t client_max_packet_ = 0;  // 0 = no limit
  uint16_t client_alias_max_ = 0;
  bool problem_info_ = true;  // v5 Request Problem Information
  std::unique_ptr<std::unordered_map<std::string, uint16_t>> out_aliases_;  // lazily
  std::vector<std::string> in_aliases_;

  bool backpressured_ = false;
  uint8_t paused_ = 0;  // PauseReason set
  // The principal's usage (connection counted while set) and quotas.
  quota::PrincipalPtr usage_;
  quota::Quotas quotas_;
  // Taken from the principal's rate buckets in batches, spent per message.
  uint64_t rate_messages_left_ = 0;
  uint64_t rate_bytes_left_ = 0;
  std::unique_ptr<boost::asio::steady_timer> rate_timer_;  // while paused for a rate
  struct HeldAck {
    uint64_t durable_seq;  // 0: waits only for those before it
    std::string bytes;
    // ABI 1.5 holds: the message's hold sequence (0: none) and the holds
    // still to be released. Queued before the taps see the message (so a
    // release can never come too early) and `filled` by send_ack; a release
    // before that counts below zero until the taps' count is added.
    uint32_t hold_seq = 0;
    int64_t holds = 0;
    bool filled = true;
  };
  std::deque<HeldAck> held_acks_;
  uint64_t held_max_seq_ = 0;
  uint32_t next_hold_seq_ = 0;  // the last hold sequence given out
  bool store_wait_armed_ = false;
  void wait_for_store();
  // Emits the held acknowledgements that are ready, in order; true when
  // something was emitted.
  bool drain_held_acks();
  // The HeldAck of a hold sequence, or end().
  std::deque<HeldAck>::iterator find_hold(uint32_t hold_seq);
  bool flush_pending_ = false;
  bool graceful_disconnect_ = false;

  // Output assembled per flush: control/header bytes in out_, payloads
  // referenced from the shared messages (never copied per subscriber here).
  struct Chunk {
    size_t offset;
    size_t length;
    const std::string* payload;  // null: bytes are out_[offset, offset+length)
  };
  std::string out_;
  std::vector<Chunk> chunks_;
  std::vector<message::MessagePtr> pinned_;
};

}  // namespace backbone::kernel::connection
