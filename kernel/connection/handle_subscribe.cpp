// SPDX-License-Identifier: GPL-3.0-or-later
// SUBSCRIBE / UNSUBSCRIBE.
#include <spdlog/spdlog.h>

#include "kernel/broker/broker.hpp"
#include "kernel/connection/connection.hpp"
#include "kernel/connection/connection_table.hpp"
#include "kernel/protocol/reason_code.hpp"
#include "kernel/topic_tree/topic_tree.hpp"

namespace backbone::kernel::connection {

using protocol::PacketType;
using protocol::Version;
namespace reason = protocol::reason;

bool Connection::handle_subscribe(uint8_t flags, std::string_view body) {
  protocol::SubscribePacket sub;
  protocol::DecodeError err;
  if (!protocol::decode_subscribe(flags, body, version_, sub, err))
    return protocol_error(err.reason, err.message);
  const uint32_t sub_id = sub.props.subscription_ids.empty() ? 0 : sub.props.subscription_ids[0];
  protocol::SubackPacket ack;
  ack.packet_id = sub.packet_id;
  struct Granted {
    std::string filter;
    protocol::SubscribeOptions options;
    bool existed;
  };
  std::vector<Granted> granted;
  const auto& limits = broker_.limits();
  const uint64_t max_subscriptions =
      quotas_.max_subscriptions
          ? std::min<uint64_t>(quotas_.max_subscriptions, limits.max_subscriptions_per_session)
          : limits.max_subscriptions_per_session;
  for (auto& s : sub.subscriptions) {
    std::string_view group, filter = s.filter;
    const bool shared = topic_tree::TopicTree::split_shared(s.filter, group, filter);
    uint8_t code;
    if (!protocol::valid_topic_filter(filter) ||
        (shared && (group.empty() || group.find_first_of("+#") != std::string_view::npos)) ||
        (s.filter.starts_with("$share") && !shared) || !broker_.topic_within_limits(filter)) {
      code = version_ == Version::kV5 ? reason::kTopicFilterInvalid : reason::kUnspecifiedError;
    } else if (shared && s.options.no_local) {
      // MQTT 5 §3.8.3.1: no-local on a shared subscription is a protocol error.
      return protocol_error(reason::kProtocolError, "no-local on a shared subscription");
    } else if (!publish_cache_->allows_subscribe(filter)) {
      broker_.stats().subscribe_denied.fetch_add(1, std::memory_order_relaxed);
      broker_.metrics().count_denial("mqtt:subscribe");
      spdlog::info("client '{}': subscribe to '{}' denied", session_->client_id(), s.filter);
      code = version_ == Version::kV5 ? reason::kNotAuthorized : reason::kUnspecifiedError;
    } else if (session_->subscriptions.size() >= max_subscriptions &&
               !session_->subscriptions.contains(s.filter)) {
      if (max_subscriptions < limits.max_subscriptions_per_session)
        broker_.metrics().count_quota(quota::kMaxSubscriptions);
      code = version_ == Version::kV5 ? reason::kQuotaExceeded : reason::kUnspecifiedError;
    } else {
      const authz::Policy& policy = publish_cache_->policy();
      topic_tree::Subscriber subscriber{session_.get(), s.options, sub_id,
                                        policy.allows_read_all(filter) ? policy.id() : 0};
      const bool existed = broker_.subscribe(*session_, s.filter, subscriber);
      code = s.options.qos;
      granted.push_back(Granted{s.filter, s.options, existed});
    }
    ack.reason_codes.push_back(code);
  }
  std::string bytes;
  protocol::encode_suback(PacketType::kSuback, ack, version_, bytes);
  emit(bytes);
  // Retained messages follow the SUBACK (MQTT 5 §3.3.1.3 retain handling).
  for (const auto& g : granted) {
    std::string_view group, filter = g.filter;
    if (topic_tree::TopicTree::split_shared(g.filter, group, filter)) continue;
    if (g.options.retain_handling == 2 || (g.options.retain_handling == 1 && g.existed)) continue;
    broker_.deliver_retained(*session_, filter, g.options, sub_id);
  }
  return true;
}

bool Connection::handle_unsubscribe(uint8_t flags, std::string_view body) {
  protocol::UnsubscribePacket unsub;
  protocol::DecodeError err;
  if (!protocol::decode_unsubscribe(flags, body, version_, unsub, err))
    return protocol_error(err.reason, err.message);
  protocol::SubackPacket ack;
  ack.packet_id = unsub.packet_id;
  for (const auto& f : unsub.filters) {
    const bool removed = broker_.unsubscribe(*session_, f);
    ack.reason_codes.push_back(removed ? reason::kSuccess : reason::kNoSubscriptionExisted);
  }
  std::string bytes;
  protocol::encode_suback(PacketType::kUnsuback, ack, version_, bytes);
  emit(bytes);
  return true;
}

}  // namespace backbone::kernel::connection
