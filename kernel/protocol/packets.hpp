// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::kernel::protocol {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
  kAuth = 15,
};

// Protocol level byte of CONNECT.
enum class Version : uint8_t { kV31 = 3, kV311 = 4, kV5 = 5 };

const char* packet_name(PacketType type);

namespace property {
inline constexpr uint8_t kPayloadFormat = 0x01;
inline constexpr uint8_t kMessageExpiry = 0x02;
inline constexpr uint8_t kContentType = 0x03;
inline constexpr uint8_t kResponseTopic = 0x08;
inline constexpr uint8_t kCorrelationData = 0x09;
inline constexpr uint8_t kSubscriptionId = 0x0B;
inline constexpr uint8_t kSessionExpiry = 0x11;
inline constexpr uint8_t kAssignedClientId = 0x12;
inline constexpr uint8_t kServerKeepAlive = 0x13;
inline constexpr uint8_t kAuthMethod = 0x15;
inline constexpr uint8_t kAuthData = 0x16;
inline constexpr uint8_t kRequestProblemInfo = 0x17;
inline constexpr uint8_t kWillDelay = 0x18;
inline constexpr uint8_t kRequestResponseInfo = 0x19;
inline constexpr uint8_t kResponseInfo = 0x1A;
inline constexpr uint8_t kServerReference = 0x1C;
inline constexpr uint8_t kReasonString = 0x1F;
inline constexpr uint8_t kReceiveMaximum = 0x21;
inline constexpr uint8_t kTopicAliasMaximum = 0x22;
inline constexpr uint8_t kTopicAlias = 0x23;
inline constexpr uint8_t kMaximumQos = 0x24;
inline constexpr uint8_t kRetainAvailable = 0x25;
inline constexpr uint8_t kUserProperty = 0x26;
inline constexpr uint8_t kMaximumPacketSize = 0x27;
inline constexpr uint8_t kWildcardSubAvailable = 0x28;
inline constexpr uint8_t kSubIdAvailable = 0x29;
inline constexpr uint8_t kSharedSubAvailable = 0x2A;
}  // namespace property

struct UserProperty {
  std::string key;
  std::string value;
  bool operator==(const UserProperty&) const = default;
};

// The decoded v5 properties of one packet. Which ones may appear is checked
// per packet type by the decoder.
struct Properties {
  std::optional<uint8_t> payload_format;
  std::optional<uint32_t> message_expiry;
  std::optional<std::string> content_type;
  std::optional<std::string> response_topic;
  std::optional<std::string> correlation_data;
  std::vector<uint32_t> subscription_ids;
  std::optional<uint32_t> session_expiry;
  std::optional<std::string> assigned_client_id;
  std::optional<uint16_t> server_keep_alive;
  std::optional<std::string> auth_method;
  std::optional<std::string> auth_data;
  std::optional<uint8_t> request_problem_info;
  std::optional<uint32_t> will_delay;
  std::optional<uint8_t> request_response_info;
  std::optional<std::string> response_info;
  std::optional<std::string> server_reference;
  std::optional<std::string> reason_string;
  std::optional<uint16_t> receive_maximum;
  std::optional<uint16_t> topic_alias_maximum;
  std::optional<uint16_t> topic_alias;
  std::optional<uint8_t> maximum_qos;
  std::optional<uint8_t> retain_available;
  std::optional<uint32_t> maximum_packet_size;
  std::optional<uint8_t> wildcard_sub_available;
  std::optional<uint8_t> sub_id_available;
  std::optional<uint8_t> shared_sub_available;
  std::vector<UserProperty> user;
  // Encoded bytes of the properties a broker forwards unchanged with an
  // application message (payload format, content type, response topic,
  // correlation data, user properties). Filled for PUBLISH and will.
  std::string forward;

  bool operator==(const Properties&) const = default;
};

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  Properties props;
};

struct ConnectPacket {
  Version version = Version::kV311;
  bool clean_start = true;
  uint16_t keep_alive = 0;
  std::string client_id;
  std::optional<std::string> username;
  std::optional<std::string> password;
  std::optional<Will> will;
  Properties props;
};

struct ConnackPacket {
  bool session_present = false;
  uint8_t reason_code = 0;  // v5 reason code; mapped for v3
  Properties props;
};

// A PUBLISH as decoded: views into the receive buffer, valid until the
// decoder's input moves on. The hot path copies only what it keeps.
struct PublishView {
  std::string_view topic;
  std::string_view payload;
  uint16_t packet_id = 0;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  Properties props;
};

struct AckPacket {  // PUBACK, PUBREC, PUBREL, PUBCOMP
  PacketType type = PacketType::kPuback;
  uint16_t packet_id = 0;
  uint8_t reason_code = 0;
  Properties props;
};

struct SubscribeOptions {
  uint8_t qos = 0;
  bool no_local = false;
  bool retain_as_published = false;
  uint8_t retain_handling = 0;
  bool operator==(const SubscribeOptions&) const = default;
};

struct Subscription {
  std::string filter;
  SubscribeOptions options;
};

struct SubscribePacket {
  uint16_t packet_id = 0;
  std::vector<Subscription> subscriptions;
  Properties props;
};

struct SubackPacket {  // SUBACK and UNSUBACK
  uint16_t packet_id = 0;
  std::vector<uint8_t> reason_codes;
  Properties props;
};

struct UnsubscribePacket {
  uint16_t packet_id = 0;
  std::vector<std::string> filters;
  Properties props;
};

struct DisconnectPacket {  // DISCONNECT and AUTH
  uint8_t reason_code = 0;
  Properties props;
};

}  // namespace backbone::kernel::protocol
