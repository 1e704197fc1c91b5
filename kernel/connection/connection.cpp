// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/connection/connection.hpp"

#include <spdlog/spdlog.h>

#include <chrono>

#include "kernel/broker/broker.hpp"
#include "kernel/connection/connection_table.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::connection {

using protocol::PacketType;
using protocol::Version;
namespace reason = protocol::reason;

Connection::Connection(broker::Broker& broker, ConnectionTable& table, net::Worker& worker,
                       ConnId id, const bb_conn_info& info, const bb_conn_ops* ops, void* user)
    : broker_(broker),
      table_(table),
      worker_(worker),
      id_(id),
      ops_(ops),
      user_(user),
      transport_(info.transport.ptr ? std::string(info.transport.ptr, info.transport.len) : ""),
      peer_(info.peer.ptr ? std::string(info.peer.ptr, info.peer.len) : ""),
      traffic_(broker.metrics().transport(transport_)) {
  last_activity_ = opened_at_ = last_progress_ = message::Clock::now();
  traffic_.connections.fetch_add(1, std::memory_order_relaxed);
  traffic_.connections_total.fetch_add(1, std::memory_order_relaxed);
}

// The gauges are released in on_transport_closed(), not here: a connection
// still queued in a worker at shutdown is destroyed after the broker.
Connection::~Connection() = default;

void Connection::emit(std::string_view bytes) {
  const size_t offset = out_.size();
  out_.append(bytes);
  chunks_.push_back(Chunk{offset, bytes.size(), nullptr});
}

bool Connection::feed(std::string_view data) {
  if (state_ == State::kClosed) return false;
  last_activity_ = message::Clock::now();
  traffic_.bytes_in.fetch_add(data.size(), std::memory_order_relaxed);
  // Parse straight from the transport's buffer when nothing is pending, so
  // the common case copies nothing.
  std::string_view buffer = data;
  if (!in_.empty()) {
    in_.append(data);
    buffer = in_;
  }
  size_t consumed = 0;
  bool ok = true;
  while (ok && state_ != State::kClosed && paused_ == 0) {
    protocol::FrameHeader header;
    const std::string_view rest = buffer.substr(consumed);
    const auto status = protocol::parse_frame_header(rest, header);
    if (status == protocol::FrameStatus::kNeedMore) break;
    if (status == protocol::FrameStatus::kMalformed) {
      ok = protocol_error(reason::kMalformedPacket, "malformed remaining length");
      break;
    }
    const uint32_t limit = state_ == State::kConnected
                               ? broker_.limits().max_packet_size
                               : broker_.limits().max_packet_size_before_auth;
    const uint64_t total = uint64_t{header.header_length} + header.remaining_length;
    if (total > limit) {
      // Refused from its header alone: the body is never buffered.
      spdlog::info("connection {} ({}): {} packet of {} bytes exceeds the limit of {}", id_, peer_,
                   protocol::packet_name(header.type()), total, limit);
      ok = protocol_error(reason::kPacketTooLarge, "packet exceeds maximum packet size");
      break;
    }
    if (rest.size() < total) break;
    const std::string_view body = rest.substr(header.header_length, header.remaining_length);
    consumed += total;
    ok = handle_packet(header, body);
  }
  if (state_ == State::kClosed) {
    in_.clear();
  } else if (buffer.data() == in_.data()) {
    in_.erase(0, consumed);
  } else {
    in_.assign(buffer.substr(consumed));
  }
  if (!chunks_.empty()) request_flush();
  return state_ != State::kClosed;
}

bool Connection::handle_packet(const protocol::FrameHeader& header, std::string_view body) {
  const PacketType type = header.type();
  if (state_ == State::kAwaitConnect) {
    if (type != PacketType::kConnect)
      return protocol_error(reason::kProtocolError, "first packet is not CONNECT");
    return handle_connect(body);
  }
  if (type == PacketType::kConnect) return protocol_error(reason::kProtocolError, "second CONNECT");
  if (state_ == State::kAuthenticating) {
    // Nothing but AUTH may arrive before CONNACK; we do not support
    // enhanced authentication exchanges yet, so anything else is an error.
    return protocol_error(reason::kProtocolError, "packet before CONNACK");
  }
  protocol::DecodeError err;
  switch (type) {
    case PacketType::kPublish:
      return handle_publish(header.flags(), body);
    case PacketType::kPuback:
    case PacketType::kPubrec:
    case PacketType::kPubrel:
    case PacketType::kPubcomp: {
      protocol::AckPacket ack;
      if (!protocol::decode_ack(type, header.flags(), body, version_, ack, err))
        return protocol_error(err.reason, err.message);
      if (type == PacketType::kPuback) return handle_puback(ack);
      if (type == PacketType::kPubrec) return handle_pubrec(ack);
      if (type == PacketType::kPubrel) return handle_pubrel(ack);
      return handle_pubcomp(ack);
    }
    case PacketType::kSubscribe:
      return handle_subscribe(header.flags(), body);
    case PacketType::kUnsubscribe:
      return handle_unsubscribe(header.flags(), body);
    case PacketType::kPingreq:
      if (header.flags() != 0 || !body.empty())
        return protocol_error(reason::kMalformedPacket, "malformed PINGREQ");
      return handle_pingreq();
    case PacketType::kDisconnect:
      return handle_disconnect(header.flags(), body);
    case PacketType::kAuth:
      return handle_auth(header.flags(), body);
    default:
      return protocol_error(reason::kProtocolError, "unexpected packet type from client");
  }
}

bool Connection::handle_pingreq() {
  std::string bytes;
  protocol::encode_pingresp(bytes);
  emit(bytes);
  return true;
}

bool Connection::handle_auth(uint8_t flags, std::string_view body) {
  protocol::DisconnectPacket auth;
  protocol::DecodeError err;
  if (!protocol::decode_disconnect(PacketType::kAuth, flags, body, version_, auth, err))
    return protocol_error(err.reason, err.message);
  // No authentication method was negotiated at CONNECT, so AUTH is a
  // protocol error (MQTT 5 §4.12).
  return protocol_error(reason::kProtocolError, "AUTH without an authentication method");
}

bool Connection::protocol_error(uint8_t reason_code, const char* why) {
  spdlog::debug("connection {} ({}): {}; closing with reason 0x{:02x}", id_, peer_, why,
                reason_code);
  if (state_ == State::kAwaitConnect && reason_code == reason::kUnsupportedProtocolVersion) {
    refuse_connect(reason_code);
    return false;
  }
  disconnect(reason_code);
  return false;
}

void Connection::disconnect(uint8_t reason_code, std::string_view reason_string) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kConnected && version_ == Version::kV5) {
    protocol::DisconnectPacket d;
    d.reason_code = reason_code;
    if (!reason_string.empty()) d.props.reason_string = std::string(reason_string);
    std::string bytes;
    protocol::encode_disconnect(PacketType::kDisconnect, d, version_, bytes);
    emit(bytes);
  }
  close_transport();
}

void Connection::revoke() {
  will_.reset();  // revoked credentials publish nothing more (SPEC §6)
  disconnect(reason::kNotAuthorized, "credentials revoked");
}

void Connection::close_transport() {
  if (state_ == State::kClosed) return;
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kClosed;
  write_out();
  leave(was_connected);
  ops_->close(user_);
}

void Connection::on_transport_closed() {
  if (!gauges_released_) {
    gauges_released_ = true;
    traffic_.connections.fetch_sub(1, std::memory_order_relaxed);
    if (provider_counters_) provider_counters_->sessions.fetch_sub(1, std::memory_order_relaxed);
    provider_counters_ = nullptr;
  }
  if (state_ == State::kClosed) return;
  const bool was_connected = state_ == State::kConnected;
  state_ = State::kClosed;
  leave(was_connected);
}

void Connection::leave(bool was_connected) {
  if (was_connected && !graceful_disconnect_) publish_will_now();
  will_.reset();
  release_principal();
  if (login_ticket_ != 0) {
    // Nobody waits for this login any more: its authenticator is told (ABI).
    broker_.logins().cancel(login_ticket_);
    login_ticket_ = 0;
  }
  if (session_) broker_.detach_session(session_, id_);
}

void Connection::publish_will_now() {
  if (!will_ || !session_) return;
  auto msg = std::make_shared<message::Message>();
  msg->topic = will_->topic;
  msg->payload = will_->payload;
  msg->qos = will_->qos;
  msg->retain = will_->retain;
  msg->forward_props = will_->props.forward;
  msg->origin = session_->id();
  if (will_->props.message_expiry)
    msg->expires_at = message::Clock::now() + std::chrono::seconds(*will_->props.message_expiry);
  const uint32_t delay = will_->props.will_delay.value_or(0);
  if (delay > 0 && session_->persistent() && session_->conn() != 0 && session_->conn() != id_) {
    // Taken over: a new connection already resumed the session within the
    // will delay, so the will is never sent (MQTT 5 §3.1.3.2.2).
    will_.reset();
    return;
  }
  if (delay > 0 && session_->persistent()) {
    broker_.schedule_will(*session_, std::move(msg),
                          message::Clock::now() + std::chrono::seconds(delay), policy_);
  } else {
    broker_.publish_will(std::move(msg), policy_);
  }
  will_.reset();
}

void Connection::set_backpressure(bool above) {
  backpressured_ = above;
  // A client that does not read what it is sent is not read either: every
  // PINGREQ or QoS 1 PUBLISH it sends would only add to what waits for it.
  if (above) {
    pause_reading(kPausedForOutput);
  } else {
    resume_reading(kPausedForOutput);
    request_flush();
  }
}

void Connection::pause_reading(PauseReason why) {
  if (state_ == State::kClosed) return;
  if (paused_ == 0 && ops_->pause_read) ops_->pause_read(user_, 1);
  paused_ |= why;
}

void Connection::resume_reading(PauseReason why) {
  if (!(paused_ & why) || state_ == State::kClosed) return;
  paused_ &= ~why;
  if (paused_ != 0) return;
  if (ops_->pause_read) ops_->pause_read(user_, 0);
  // Packets already buffered were not parsed while paused.
  if (!in_.empty()) {
    std::string pending;
    pending.swap(in_);
    feed(pending);
  }
}

namespace {

// How much a connection takes from its principal's shared bucket at once: a
// sixteenth of the burst (at most `cap`), so the shared atomic and the clock
// are touched once per batch rather than per message, and a principal's
// connections together overdraw by at most a sixteenth of a burst each.
uint64_t rate_batch(uint64_t rate, uint64_t burst, uint64_t at_least, uint64_t cap) {
  if (rate == 0) return 0;
  const uint64_t b = std::min<uint64_t>((burst ? burst : rate) / 16, cap);
  return std::max<uint64_t>({b, at_least, 1});
}

}  // namespace

void Connection::spend_publish_rate(size_t payload_bytes) {
  using Duration = quota::RateLimiter::Clock::duration;
  const bool messages_due = quotas_.publish_rate && rate_messages_left_ == 0;
  const bool bytes_due = quotas_.publish_bytes_rate && rate_bytes_left_ < payload_bytes;
  if (!messages_due && !bytes_due) {
    if (rate_messages_left_) --rate_messages_left_;
    rate_bytes_left_ -= std::min<uint64_t>(rate_bytes_left_, payload_bytes);
    return;
  }
  const auto now = quota::RateLimiter::Clock::now();
  Duration messages = Duration::zero(), bytes = Duration::zero();
  if (messages_due) {
    const uint64_t n = rate_batch(quotas_.publish_rate, quotas_.publish_burst, 1, 64);
    messages = usage_->messages.spend(n, quotas_.publish_rate, quotas_.publish_burst, now);
    rate_messages_left_ += n;
  }
  if (bytes_due) {
    const uint64_t n = rate_batch(quotas_.publish_bytes_rate, quotas_.publish_bytes_burst,
                                  payload_bytes - rate_bytes_left_, 64 * 1024);
    bytes = usage_->bytes.spend(n, quotas_.publish_bytes_rate, quotas_.publish_bytes_burst, now);
    rate_bytes_left_ += n;
  }
  if (rate_messages_left_) --rate_messages_left_;
  rate_bytes_left_ -= std::min<uint64_t>(rate_bytes_left_, payload_bytes);
  const Duration wait = std::max(messages, bytes);
  if (wait == Duration::zero() || (paused_ & kPausedForRate)) return;
  // Over a rate: this message is taken, the next ones wait (TCP pushes back
  // on the client; nothing is dropped).
  broker_.metrics().count_quota(messages >= bytes ? quota::kPublishRate : quota::kPublishBytesRate);
  pause_reading(kPausedForRate);
  if (!rate_timer_) rate_timer_ = std::make_unique<boost::asio::steady_timer>(worker_.io());
  rate_timer_->expires_after(wait);
  ConnectionTable* table = &table_;
  const ConnId id = id_;
  rate_timer_->async_wait([table, id](boost::system::error_code ec) {
    if (ec) return;
    if (Connection* c = table->find(id)) c->resume_reading(kPausedForRate);
  });
}

void Connection::release_principal() {
  if (usage_) usage_->connections.fetch_sub(1, std::memory_order_relaxed);
  usage_.reset();
  if (rate_timer_) rate_timer_->cancel();
}

void Connection::set_quotas(const quota::Quotas& q) {
  if (state_ != State::kConnected) return;
  quotas_ = q;
  rate_messages_left_ = rate_bytes_left_ = 0;
  const uint64_t limit = broker_.limits().max_queued_messages;
  std::lock_guard lock(session_->mutex());
  session_->queue_limit = q.max_queued_messages ? std::min(q.max_queued_messages, limit) : limit;
}

void Connection::request_flush() {
  if (flush_pending_ || state_ == State::kClosed) return;
  flush_pending_ = true;
  ConnectionTable* table = &table_;
  const ConnId id = id_;
  worker_.defer([table, id] {
    if (Connection* c = table->find(id)) {
      c->flush_pending_ = false;
      c->flush();
    }
  });
}

void Connection::flush() {
  if (state_ == State::kClosed) return;
  if (state_ == State::kConnected && session_ && !backpressured_) {
    std::unordered_set<ConnId> resume;
    {
      std::lock_guard lock(session_->mutex());
      session_->flush_scheduled = false;
      const auto now = message::Clock::now();
      const auto& limits = broker_.limits();
      // Payload bytes of this turn: they are written from the messages, not
      // copied to out_, but a transport that cannot send them at once (a
      // WebSocket with its send budget) must buffer them.
      size_t payloads = 0;
      while (!session_->queue.empty()) {
        Delivery& d = session_->queue.front();
        if (d.qos > 0 && session_->inflight.size() >= send_window_) break;
        if (out_.size() + payloads > 256 * 1024) {
          // Enough for one write; continue on the next turn.
          request_flush();
          break;
        }
        Delivery delivery = std::move(d);
        payloads += delivery.msg->payload.size();
        session_->queue.pop_front();
        session_->queued_bytes -= delivery.msg->payload.size();
        if (delivery.msg->expired(now)) {
          broker_.stored_done(*session_, delivery);
          continue;
        }
        uint16_t packet_id = 0;
        if (delivery.qos > 0) {
          packet_id = session_->allocate_packet_id();
          if (send_publish(delivery, packet_id, false, now)) {
            session_->inflight.emplace(packet_id, Inflight{std::move(delivery), false});
          } else {
            broker_.stored_done(*session_, delivery);
          }
        } else {
          send_publish(delivery, 0, false, now);
        }
        last_progress_ = now;
      }
      session_->queue.shrink_if_idle();
      if (!session_->paused_publishers.empty() &&
          session_->queue.size() < session_->queue_limit / 2 &&
          session_->queued_bytes < limits.max_queued_bytes / 2) {
        resume.swap(session_->paused_publishers);
      }
    }
    for (ConnId publisher : resume) table_.resume_publisher(publisher);
  }
  write_out();
}

bool Connection::send_publish(const Delivery& d, uint16_t packet_id, bool dup,
                              message::Clock::time_point now) {
  const message::Message& m = *d.msg;
  protocol::PublishHeader h;
  h.topic = m.topic;
  h.packet_id = packet_id;
  h.qos = d.qos;
  h.retain = d.retain;
  h.dup = dup;
  std::unordered_map<std::string, uint16_t>* aliases = nullptr;
  bool new_alias = false;
  if (version_ == Version::kV5) {
    h.forward_props = m.forward_props;
    h.message_expiry = m.remaining_expiry(now);
    h.subscription_ids = d.sub_ids.ids.data();
    h.subscription_id_count = d.sub_ids.count;
    if (client_alias_max_ > 0) {
      if (!out_aliases_)
        out_aliases_ = std::make_unique<std::unordered_map<std::string, uint16_t>>();
      aliases = out_aliases_.get();
      auto it = aliases->find(m.topic);
      if (it != aliases->end()) {
        h.topic = {};
        h.topic_alias = it->second;
      } else if (aliases->size() < client_alias_max_) {
        h.topic_alias = static_cast<uint16_t>(aliases->size() + 1);
        new_alias = true;
      }
    }
  }
  if (client_max_packet_ != 0 &&
      protocol::publish_packet_size(h, version_, m.payload.size()) > client_max_packet_) {
    // MQTT 5 §3.1.2.25: too large for the client; discard as if delivered
    // (and without spending a topic alias on it).
    broker_.stats().messages_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (new_alias) aliases->emplace(m.topic, h.topic_alias);
  const size_t offset = out_.size();
  protocol::encode_publish_header(h, version_, m.payload.size(), out_);
  chunks_.push_back(Chunk{offset, out_.size() - offset, nullptr});
  if (!m.payload.empty()) chunks_.push_back(Chunk{0, m.payload.size(), &m.payload});
  pinned_.push_back(d.msg);
  traffic_.messages_out.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Connection::write_out() {
  if (chunks_.empty()) return;
  thread_local std::vector<bb_bytes> iov_;  // per worker, reused by every connection
  iov_.clear();
  size_t total = 0;
  for (const Chunk& c : chunks_) {
    const char* base = c.payload ? c.payload->data() : out_.data() + c.offset;
    iov_.push_back(bb_bytes{reinterpret_cast<const uint8_t*>(base), c.length});
    total += c.length;
  }
  ops_->write(user_, iov_.data(), iov_.size());
  traffic_.bytes_out.fetch_add(total, std::memory_order_relaxed);
  chunks_.clear();
  out_.clear();
  pinned_.clear();
  // Keep small buffers for the next flush; give back what a burst grew.
  if (out_.capacity() > 64 * 1024) {
    std::string().swap(out_);
    std::vector<Chunk>().swap(chunks_);
    std::vector<message::MessagePtr>().swap(pinned_);
  }
}

void Connection::tick(message::Clock::time_point now) {
  if (state_ == State::kClosed) return;
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  const auto& limits = broker_.limits();
  if (state_ == State::kAwaitConnect &&
      now - opened_at_ > milliseconds(limits.connect_timeout_ms)) {
    spdlog::debug("connection {} ({}): no CONNECT in time", id_, peer_);
    close_transport();
    return;
  }
  if (state_ != State::kConnected) return;
  if (keep_alive_s_ > 0 && now - last_activity_ > milliseconds(keep_alive_s_ * 1500u)) {
    spdlog::debug("connection {} ({}): keep-alive timeout", id_, peer_);
    disconnect(reason::kKeepAliveTimeout);
    return;
  }
  if (session_ && now - last_progress_ > milliseconds(limits.slow_consumer_timeout_ms)) {
    bool stalled;
    {
      std::lock_guard lock(session_->mutex());
      stalled = backpressured_ || session_->queue.size() >= session_->queue_limit ||
                session_->queued_bytes >= limits.max_queued_bytes;
    }
    if (stalled) {
      spdlog::info("connection {} ({}): client '{}' does not keep up; disconnecting", id_, peer_,
                   session_->client_id());
      disconnect(reason::kQuotaExceeded, "client does not keep up with its messages");
      return;
    }
  }
  if (credentials_expire_unix_s_ > 0) {
    const auto wall =
        std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    if (wall >= credentials_expire_unix_s_) {
      spdlog::info("connection {} ({}): credentials of '{}' expired", id_, peer_,
                   session_ ? session_->client_id() : "");
      disconnect(reason::kMaximumConnectTime, "credentials expired");
      return;
    }
  }
}

}  // namespace backbone::kernel::connection
