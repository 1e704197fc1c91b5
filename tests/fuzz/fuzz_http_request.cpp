// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: the HTTP request parser as the kernel's listener uses it
// (kernel/http/http_connection.cpp): Beast's request_parser with header and
// body limits, the header read alone first and the body only afterwards,
// bytes arriving in pieces of any size. Beast is configured as in the kernel
// (kernel/http/beast.hpp: its parser without the assertion on a legal split
// of the last chunk, boostorg/beast#2861).
#include "kernel/http/beast.hpp"  // before any other Beast header

#include <boost/beast/websocket/rfc6455.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

// Feeds `stream` in pieces of `piece` bytes until the parser needs no more
// (`header_only`: until the header is done). False on a parse error.
bool feed(bhttp::request_parser<bhttp::string_body>& parser, std::string& pending,
          std::string_view& stream, size_t piece, bool header_only) {
  for (;;) {
    if (header_only ? parser.is_header_done() : parser.is_done()) return true;
    beast::error_code ec;
    size_t used = 0;
    if (!pending.empty()) used = parser.put(boost::asio::buffer(pending), ec);
    if (ec && ec != bhttp::error::need_more) return false;
    if (used > pending.size()) abort();
    pending.erase(0, used);
    if (header_only ? parser.is_header_done() : parser.is_done()) return true;
    if (stream.empty()) return false;  // the client stopped sending
    const size_t n = std::min(piece, stream.size());
    pending.append(stream.substr(0, n));
    stream.remove_prefix(n);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // The first byte sets the size of the pieces the request arrives in.
  const size_t piece = size_t{data[0]} + 1;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string pending;
  while (!stream.empty() || !pending.empty()) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(1024);  // small, so that the limits are reached
    parser.body_limit(4096);
    if (!feed(parser, pending, stream, piece, true)) return 0;
    // What the listener reads from the header before deciding on the body.
    auto& req = parser.get();
    (void)req.target();
    (void)req.method_string();
    (void)req[bhttp::field::authorization];
    (void)req["X-Auth-Provider"];
    (void)beast::websocket::is_upgrade(req);
    (void)parser.content_length();
    if (!feed(parser, pending, stream, piece, false)) return 0;
    if (req.body().size() > 4096) abort();
    if (!req.keep_alive()) return 0;
  }
  return 0;
}
