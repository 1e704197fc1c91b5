// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: a batch read from the Redis cluster stream, as the redis
// module takes it apart, and what the kernel checks of each message frame
// before it publishes it (topic name, property block). A frame that decodes
// must encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/redis/frame.hpp"
#include "kernel/protocol/codec.hpp"

using namespace backbone::modules::redis;
namespace protocol = backbone::kernel::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view batch(reinterpret_cast<const char*>(data), size);
  BrokerId origin;
  std::string_view entries;
  if (!split_batch(batch, origin, entries)) return 0;
  for_each_batch_entry(entries, [](std::string_view bytes) {
    Frame f;
    if (!decode_frame(bytes, f)) return;
    std::string again;
    encode_frame(f, again);
    if (again != bytes || frame_size(f) != bytes.size()) std::abort();
    if (f.kind != Frame::kMessage && f.kind != Frame::kMessageShared) return;
    if (protocol::valid_topic_name(f.topic)) protocol::valid_utf8(f.topic);
    std::string forward;
    protocol::DecodeError err;
    protocol::forwardable_properties(f.properties, forward, err);
  });
  return 0;
}
