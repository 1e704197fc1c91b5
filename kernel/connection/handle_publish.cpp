// SPDX-License-Identifier: GPL-3.0-or-later
// PUBLISH from the client and the QoS 1/2 acknowledgement flows both ways.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "kernel/broker/broker.hpp"
#include "kernel/connection/connection.hpp"
#include "kernel/connection/connection_table.hpp"
#include "kernel/protocol/reason_code.hpp"

namespace backbone::kernel::connection {

using protocol::PacketType;
using protocol::Version;
namespace reason = protocol::reason;

bool Connection::handle_publish(uint8_t flags, std::string_view body) {
  protocol::PublishView pub;
  protocol::DecodeError err;
  if (!protocol::decode_publish(flags, body, version_, pub, err))
    return protocol_error(err.reason, err.message);
  traffic_.messages_in.fetch_add(1, std::memory_order_relaxed);

  if (pub.props.topic_alias) {
    const uint16_t alias = *pub.props.topic_alias;
    if (alias == 0 || alias > broker_.limits().topic_alias_maximum)
      return protocol_error(reason::kTopicAliasInvalid, "topic alias out of range");
    // Allocated on first use: most clients never use aliases.
    if (in_aliases_.size() < alias) in_aliases_.resize(alias);
    std::string& slot = in_aliases_[alias - 1];
    if (pub.topic.empty()) {
      if (slot.empty()) return protocol_error(reason::kProtocolError, "unknown topic alias");
      pub.topic = slot;
    } else {
      slot.assign(pub.topic);
    }
  }
  if (!broker_.topic_within_limits(pub.topic))
    return protocol_error(reason::kTopicNameInvalid, "topic exceeds length or level limits");

  if (!pub.props.subscription_ids.empty())
    return protocol_error(reason::kProtocolError, "subscription identifier from a client");

  if (pub.qos == 2) {
    bool duplicate, over;
    {
      // Not held across protocol_error(): closing takes this lock again.
      std::lock_guard lock(session_->mutex());
      duplicate = session_->incoming_qos2.contains(pub.packet_id);
      over = session_->incoming_qos2.size() >= broker_.limits().receive_maximum;
    }
    if (duplicate) {
      // Retransmission of a message we already own: acknowledge only.
      send_ack(PacketType::kPubrec, pub.packet_id, 0);
      return true;
    }
    if (over) return protocol_error(reason::kReceiveMaximumExceeded, "receive maximum exceeded");
  }

  auto msg = std::make_shared<message::Message>();
  msg->topic.assign(pub.topic);
  msg->payload.assign(pub.payload);
  msg->forward_props = std::move(pub.props.forward);
  msg->qos = pub.qos;
  msg->retain = pub.retain;
  msg->origin = session_->id();
  if (pub.props.message_expiry)
    msg->expires_at = message::Clock::now() + std::chrono::seconds(*pub.props.message_expiry);

  broker::Origin origin{session_.get(), publish_cache_ ? &*publish_cache_ : nullptr, &rule_memo_,
                        usage_.get()};
  // ABI 1.5: a tap holds the acknowledgement. Its HeldAck is queued before
  // the taps see the message, so a release (from any thread, even from
  // within the tap) always finds it; send_ack fills it in.
  uint32_t hold_seq = 0;
  if (pub.qos > 0 && broker_.holds_acks()) {
    uint32_t seq = seq_of_hold(next_hold_seq_ + 1);
    if (seq == 0) seq = 1;  // 24 bits, never 0
    if (const uint64_t hold = hold_token(id_, seq)) {
      hold_seq = next_hold_seq_ = seq;
      origin.ack_hold = hold;
      held_acks_.push_back(HeldAck{0, {}, hold_seq, 0, false});
    }
  }
  broker::IngressResult result;
  try {
    result = broker_.ingress(origin, std::move(msg), id_);
  } catch (...) {
    if (auto it = find_hold(hold_seq); it != held_acks_.end()) held_acks_.erase(it);
    throw;
  }
  const bool refused = result.reason >= 0x80;
  if (refused && version_ != Version::kV5 && broker_.limits().disconnect_on_denied_publish &&
      result.reason == reason::kNotAuthorized) {
    // Refused before the taps: nothing holds it.
    if (auto it = find_hold(hold_seq); it != held_acks_.end()) held_acks_.erase(it);
    close_transport();
    return false;
  }
  // MQTT 3.1.1 has no negative acknowledgement: acknowledge and drop.
  const uint8_t ack_reason = version_ == Version::kV5 ? result.reason : 0;
  if (pub.qos == 1) {
    send_ack(PacketType::kPuback, pub.packet_id, ack_reason, result.reason_string,
             result.durable_seq, hold_seq, result.holds);
  } else if (pub.qos == 2) {
    if (!refused) {
      std::lock_guard lock(session_->mutex());
      session_->incoming_qos2.insert(pub.packet_id);
    }
    send_ack(PacketType::kPubrec, pub.packet_id, ack_reason, result.reason_string,
             result.durable_seq, hold_seq, result.holds);
  }
  // A subscriber cannot keep up: stop reading from this publisher until it
  // drains, instead of dropping or buffering without bound.
  if (result.paused) pause_reading(kPausedForQueue);
  if (quotas_.publish_rate || quotas_.publish_bytes_rate) spend_publish_rate(pub.payload.size());
  return true;
}

void Connection::send_ack(PacketType type, uint16_t packet_id, uint8_t reason_code,
                          std::string_view reason_string, uint64_t durable_seq, uint32_t hold_seq,
                          uint32_t holds) {
  protocol::AckPacket ack;
  ack.type = type;
  ack.packet_id = packet_id;
  ack.reason_code = reason_code;
  // MQTT 5 §3.1.2.11.7: no reason string unless the client wants problem info.
  if (!reason_string.empty() && version_ == Version::kV5 && problem_info_)
    ack.props.reason_string = std::string(reason_string);
  std::string bytes;
  protocol::encode_ack(ack, version_, bytes);
  store::Store* store = broker_.store();
  const bool wait_store = durable_seq != 0 && store && !store->durable(durable_seq);
  if (hold_seq != 0) {
    // The HeldAck queued before ingress (nothing was queued after it since).
    HeldAck& held = *find_hold(hold_seq);
    held.durable_seq = wait_store ? durable_seq : 0;
    held.bytes = std::move(bytes);
    held.holds += holds;  // releases that came first counted below zero
    held.filled = true;
    if (wait_store) held_max_seq_ = std::max(held_max_seq_, durable_seq);
    // Ready when nothing holds it and the store needs nothing (or is asked).
    drain_held_acks();
    return;
  }
  if (wait_store) {
    held_acks_.push_back(HeldAck{durable_seq, std::move(bytes)});
    held_max_seq_ = std::max(held_max_seq_, durable_seq);
    wait_for_store();
    return;
  }
  if (!held_acks_.empty()) {
    held_acks_.push_back(HeldAck{0, std::move(bytes)});
    return;
  }
  emit(bytes);
}

// One completion per connection and group commit, not one per message: the
// whole batch becomes durable at once.
void Connection::wait_for_store() {
  if (store_wait_armed_) return;
  store_wait_armed_ = true;
  // Completed on the store's thread, after its group commit.
  broker_.store()->when_durable(held_max_seq_, [&table = table_, id = id_] {
    table.with_connection(id, [](Connection& c) {
      c.store_wait_armed_ = false;
      c.release_held_acks();
    });
  });
}

bool Connection::drain_held_acks() {
  store::Store* store = broker_.store();
  bool sent = false;
  while (!held_acks_.empty()) {
    HeldAck& front = held_acks_.front();
    // Waits for its holds: their ack_release drains again.
    if (!front.filled || front.holds > 0) break;
    if (front.durable_seq != 0 && store && !store->durable(front.durable_seq)) {
      wait_for_store();
      break;
    }
    if (state_ != State::kClosed) emit(front.bytes);
    held_acks_.pop_front();
    sent = true;
  }
  return sent;
}

void Connection::release_held_acks() {
  if (drain_held_acks()) write_out();
}

void Connection::release_hold(uint32_t hold_seq) {
  auto it = find_hold(hold_seq);
  if (it == held_acks_.end()) return;
  if (--it->holds <= 0 && it->filled) release_held_acks();
}

std::deque<Connection::HeldAck>::iterator Connection::find_hold(uint32_t hold_seq) {
  if (hold_seq == 0) return held_acks_.end();
  // Few are held at once (about the client's Receive Maximum), the newest last.
  for (auto it = held_acks_.end(); it != held_acks_.begin();) {
    --it;
    if (it->hold_seq == hold_seq) return it;
  }
  return held_acks_.end();
}

bool Connection::handle_puback(const protocol::AckPacket& ack) {
  {
    std::lock_guard lock(session_->mutex());
    auto it = session_->inflight.find(ack.packet_id);
    // Unknown ids are ignored: a resent message may be acknowledged twice.
    if (it == session_->inflight.end() || it->second.delivery.qos != 1) return true;
    broker_.stored_done(*session_, it->second.delivery);
    session_->inflight.erase(it);
  }
  last_progress_ = message::Clock::now();
  request_flush();
  return true;
}

bool Connection::handle_pubrec(const protocol::AckPacket& ack) {
  bool known = false;
  {
    std::lock_guard lock(session_->mutex());
    auto it = session_->inflight.find(ack.packet_id);
    if (it != session_->inflight.end() && it->second.delivery.qos == 2) {
      known = true;
      // The receiver owns the message now (or refused it): nothing left to resend.
      broker_.stored_done(*session_, it->second.delivery);
      if (ack.reason_code >= 0x80) {
        session_->inflight.erase(it);  // the client refused the message
      } else {
        it->second.released = true;
        it->second.delivery.msg.reset();  // the payload is no longer needed
      }
    }
  }
  if (known && ack.reason_code >= 0x80) {
    request_flush();
    return true;
  }
  send_ack(PacketType::kPubrel, ack.packet_id, known ? 0 : reason::kPacketIdNotFound);
  return true;
}

bool Connection::handle_pubrel(const protocol::AckPacket& ack) {
  bool known;
  {
    std::lock_guard lock(session_->mutex());
    known = session_->incoming_qos2.erase(ack.packet_id) > 0;
  }
  send_ack(PacketType::kPubcomp, ack.packet_id, known ? 0 : reason::kPacketIdNotFound);
  return true;
}

bool Connection::handle_pubcomp(const protocol::AckPacket& ack) {
  {
    std::lock_guard lock(session_->mutex());
    auto it = session_->inflight.find(ack.packet_id);
    if (it == session_->inflight.end() || !it->second.released) return true;
    session_->inflight.erase(it);
  }
  last_progress_ = message::Clock::now();
  request_flush();
  return true;
}

}  // namespace backbone::kernel::connection
