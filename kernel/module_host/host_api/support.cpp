// SPDX-License-Identifier: GPL-3.0-or-later
#include <chrono>
#include <memory>

#include "kernel/broker/broker.hpp"
#include "kernel/module_host/host_api/host_api.hpp"
#include "kernel/protocol/codec.hpp"

namespace backbone::kernel::module_host::host_api {

namespace {

// Per thread by contract: last_error and the bb_str results of inspect and
// http_publish belong to the calling thread until its next host call.
std::string& last_error_buffer() {
  thread_local std::string buffer;
  return buffer;
}

std::string& result_buffer() {
  thread_local std::string buffer;
  return buffer;
}

}  // namespace

std::string text(bb_str s) {
  return s.ptr ? std::string(s.ptr, s.len) : std::string();
}

bb_status failed(bb_status status, std::string why) {
  last_error_buffer() = std::move(why);
  return status;
}

const std::string& thread_last_error() {
  return last_error_buffer();
}

bb_str thread_result(std::string value) {
  std::string& buffer = result_buffer();
  buffer = std::move(value);
  return bb_str{buffer.c_str(), buffer.size()};
}

bool routed_origin(const bb_message* m, broker::SharedGroups& groups, broker::Origin& origin) {
  origin.routed = true;
  origin.shared_only = nullptr;
  if (!m || !BB_HAS(m, bb_message, shared_groups) || !m->shared_listed) return true;
  if (m->shared_group_count > 0 && !m->shared_groups) {
    failed(BB_E_INVALID, "shared_groups is null with a shared_group_count");
    return false;
  }
  groups.groups = m->shared_groups;
  groups.count = m->shared_group_count;
  origin.shared_only = &groups;
  return true;
}

message::MessagePtr message_of(ModuleHost& host, const bb_message* m) {
  auto refuse = [](std::string why) -> message::MessagePtr {
    failed(BB_E_INVALID, std::move(why));
    return nullptr;
  };
  if (!m || m->qos > 2) return refuse("invalid message");
  auto msg = std::make_shared<message::Message>();
  msg->topic = text(m->topic);
  if (!protocol::valid_topic_name(msg->topic) || !protocol::valid_utf8(msg->topic))
    return refuse("invalid topic name");
  if (!host.broker().topic_within_limits(msg->topic))
    return refuse("topic exceeds the length or level limits");
  if (m->payload.ptr)
    msg->payload.assign(reinterpret_cast<const char*>(m->payload.ptr), m->payload.len);
  msg->qos = m->qos;
  msg->retain = m->retain != 0;
  if (m->expiry_s) msg->expires_at = message::Clock::now() + std::chrono::seconds(m->expiry_s);
  // The content type field and the property block become the properties a
  // subscriber receives, checked as a PUBLISH's would be.
  std::string props;
  if (m->content_type.len) {
    if (m->content_type.len > 0xFFFF || !protocol::valid_utf8(text(m->content_type)))
      return refuse("invalid content type");
    props.push_back(static_cast<char>(protocol::property::kContentType));
    props.push_back(static_cast<char>(m->content_type.len >> 8));
    props.push_back(static_cast<char>(m->content_type.len & 0xFF));
    props.append(m->content_type.ptr, m->content_type.len);
  }
  if (BB_HAS(m, bb_message, properties) && m->properties.len) {
    if (!m->properties.ptr) return refuse("invalid properties");
    props.append(reinterpret_cast<const char*>(m->properties.ptr), m->properties.len);
  }
  if (!props.empty()) {
    protocol::DecodeError err;
    if (!protocol::forwardable_properties(props, msg->forward_props, err))
      return refuse(std::string("invalid properties: ") + err.message);
  }
  return msg;
}

}  // namespace backbone::kernel::module_host::host_api
