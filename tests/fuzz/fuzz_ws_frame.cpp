// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: the ws:// frame reader (kernel/http/ws_frame.hpp) on
// arbitrary bytes, driven as the plain WebSocket drives it: every frame it
// accepts lies within the bytes read, control frames are short and whole,
// and a fragmented message never exceeds its limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "kernel/http/ws_frame.hpp"

using namespace backbone::kernel::http;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte sets the message limit; the rest arrives as one read, in
  // a buffer of exactly its size so that ASan sees any read past it.
  const uint64_t max_message = uint64_t{data[0]} * 64;
  std::vector<uint8_t> in(data + 1, data + size);
  size_t off = 0;
  bool in_message = false;
  uint64_t message_len = 0;
  for (;;) {
    WsFrame f;
    const WsParse status =
        parse_ws_frame(in.data() + off, in.size() - off, in_message, message_len, max_message, f);
    if (status != WsParse::kFrame) {
      if (status == WsParse::kNeedMore && f.header != 0 && f.header + f.length <= in.size() - off)
        abort();  // a whole frame reported as incomplete
      break;
    }
    if (f.header > in.size() - off || f.length > in.size() - off - f.header) abort();
    if (f.opcode & 0x08) {
      if (!f.fin || f.length > 125) abort();
    } else {
      if (message_len + f.length > max_message) abort();
      message_len = f.fin ? 0 : message_len + f.length;
      in_message = !f.fin;
    }
    unmask_ws_frame(in.data() + off, f);
    off += f.header + f.length;
  }
  return 0;
}
