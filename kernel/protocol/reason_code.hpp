// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

#include <cstdint>

namespace backbone::kernel::protocol {

// MQTT 5.0 reason codes (spec §2.4). MQTT 3.1.1 return codes are mapped from
// these where a packet needs one (see connack_v311_code / suback codes).
namespace reason {
inline constexpr uint8_t kSuccess = 0x00;
inline constexpr uint8_t kGrantedQos1 = 0x01;
inline constexpr uint8_t kGrantedQos2 = 0x02;
inline constexpr uint8_t kDisconnectWithWill = 0x04;
inline constexpr uint8_t kNoMatchingSubscribers = 0x10;
inline constexpr uint8_t kNoSubscriptionExisted = 0x11;
inline constexpr uint8_t kUnspecifiedError = 0x80;
inline constexpr uint8_t kMalformedPacket = 0x81;
inline constexpr uint8_t kProtocolError = 0x82;
inline constexpr uint8_t kImplementationSpecific = 0x83;
inline constexpr uint8_t kUnsupportedProtocolVersion = 0x84;
inline constexpr uint8_t kClientIdNotValid = 0x85;
inline constexpr uint8_t kBadUserNameOrPassword = 0x86;
inline constexpr uint8_t kNotAuthorized = 0x87;
inline constexpr uint8_t kServerUnavailable = 0x88;
inline constexpr uint8_t kServerBusy = 0x89;
inline constexpr uint8_t kBanned = 0x8A;
inline constexpr uint8_t kServerShuttingDown = 0x8B;
inline constexpr uint8_t kBadAuthenticationMethod = 0x8C;
inline constexpr uint8_t kKeepAliveTimeout = 0x8D;
inline constexpr uint8_t kSessionTakenOver = 0x8E;
inline constexpr uint8_t kTopicFilterInvalid = 0x8F;
inline constexpr uint8_t kTopicNameInvalid = 0x90;
inline constexpr uint8_t kPacketIdInUse = 0x91;
inline constexpr uint8_t kPacketIdNotFound = 0x92;
inline constexpr uint8_t kReceiveMaximumExceeded = 0x93;
inline constexpr uint8_t kTopicAliasInvalid = 0x94;
inline constexpr uint8_t kPacketTooLarge = 0x95;
inline constexpr uint8_t kMessageRateTooHigh = 0x96;
inline constexpr uint8_t kQuotaExceeded = 0x97;
inline constexpr uint8_t kAdministrativeAction = 0x98;
inline constexpr uint8_t kPayloadFormatInvalid = 0x99;
inline constexpr uint8_t kRetainNotSupported = 0x9A;
inline constexpr uint8_t kQosNotSupported = 0x9B;
inline constexpr uint8_t kUseAnotherServer = 0x9C;
inline constexpr uint8_t kServerMoved = 0x9D;
inline constexpr uint8_t kSharedSubsNotSupported = 0x9E;
inline constexpr uint8_t kConnectionRateExceeded = 0x9F;
inline constexpr uint8_t kMaximumConnectTime = 0xA0;
inline constexpr uint8_t kSubIdsNotSupported = 0xA1;
inline constexpr uint8_t kWildcardSubsNotSupported = 0xA2;
}  // namespace reason

// MQTT 3.1.1 CONNACK return code for a v5 reason code.
constexpr uint8_t connack_v311_code(uint8_t v5_reason) {
  switch (v5_reason) {
    case reason::kSuccess:
      return 0;
    case reason::kUnsupportedProtocolVersion:
      return 1;
    case reason::kClientIdNotValid:
      return 2;
    case reason::kServerUnavailable:
    case reason::kServerBusy:
    case reason::kServerShuttingDown:
      return 3;
    case reason::kBadUserNameOrPassword:
      return 4;
    default:
      return 5;
  }
}

}  // namespace backbone::kernel::protocol
