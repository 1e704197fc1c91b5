// SPDX-License-Identifier: GPL-3.0-or-later
// bb_loadgen: a single-threaded epoll MQTT 3.1.1 / 5.0 load generator for benchmarking brokers.
//
// It speaks raw MQTT over TCP (CONNECT, SUBSCRIBE, PUBLISH QoS 0/1, PUBACK, DISCONNECT). Every
// payload carries (magic, publisher id, sequence number, CLOCK_MONOTONIC send time in ns), so
// latency, loss and duplicates are exact. With --json-payload the payload is instead the JSON
// object {"v":"<48 hex digits of those 24 bytes>"} padded with spaces before the closing brace
// (for brokers that validate payloads against a JSON Schema); it is decoded on receipt, so the
// accounting stays exact. One invocation runs one scenario and prints one JSON
// line on stdout; it exits 2 on a protocol error (the JSON line then carries "error").
//
// Scenarios:
//   fan-in    N publishers (default 8) -> M subscribers (default 1) on the filter bench/in/+
//   fan-out   1 publisher -> N subscribers (default 50) on bench/out
//   pairs     N publisher/subscriber pairs (default 50) on bench/pair/<i>
//   latency   pairs (default 50) paced at a fixed total --rate (default 10000 msgs/s)
//   overload  open loop: publishers write as fast as TCP accepts (fan-in topology by default)
//   idle      --connections idle clients (CONNECT, CONNACK, then nothing); reports the RSS of
//             --broker-pid before and after
// fan-in, fan-out and pairs are closed loop: a publisher keeps at most --window messages that have
// not yet reached all of their subscribers.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

class BenchError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what) {
  throw BenchError(what);
}

[[noreturn]] void fail_errno(const std::string& what) {
  throw BenchError(what + ": " + std::strerror(errno));
}

uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t seconds_to_ns(double s) {
  return static_cast<uint64_t>(s * 1e9);
}

constexpr uint32_t kMagic = 0x474c4242;  // "BBLG" little-endian
constexpr size_t kHeaderBytes = 24;      // magic(4) publisher(4) seq(8) send_ns(8)
// --json-payload: {"v":"<hex>"<spaces>}
constexpr std::string_view kJsonOpen = "{\"v\":\"";
constexpr size_t kJsonMin = kJsonOpen.size() + 2 * kHeaderBytes + 2;  // + "}
constexpr size_t kOutHigh = 64 * 1024;  // stop generating when this much is unsent
constexpr size_t kReadChunk = 256 * 1024;
constexpr size_t kMaxPacket = 64 * 1024 * 1024;
constexpr uint32_t kMaxPacketIds = 65535;

enum class Scenario { kFanIn, kFanOut, kPairs, kLatency, kOverload, kIdle };
enum class Mode { kClosed, kPaced, kOpen };

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  uint16_t sub_port = 0;  // > 0: subscribers connect here (another broker of a cluster)
  Scenario scenario = Scenario::kPairs;
  std::string scenario_name = "pairs";
  std::string topology = "fan-in";  // overload only: fan-in | fan-out | pairs
  int protocol = 4;                 // 4 = MQTT 3.1.1, 5 = MQTT 5.0
  int qos = 0;
  double duration_s = 5.0;
  double warmup_s = 1.0;
  double drain_s = -1.0;  // < 0: scenario default
  double stall_s = 3.0;
  double connect_timeout_s = 30.0;
  double settle_s = 1.0;
  size_t payload = 64;
  bool json_payload = false;
  uint32_t window = 64;
  double rate = 10000.0;
  int publishers = -1;  // < 0: scenario default
  int subscribers = -1;
  int connections = 10000;
  int connect_concurrency = 256;
  int broker_pid = 0;
  int keepalive = 600;
  std::string username;
  std::string password;
  bool has_username = false;
  bool has_password = false;
  std::string label = "broker";
  std::string client_prefix;
  std::string ws_path;  // non-empty: MQTT over WebSocket at this path (subprotocol mqtt)
  // > 0 (MQTT 5 only): every session is persistent for this many seconds, so a
  // broker keeps its QoS 1 messages durably; ended by the final DISCONNECT.
  uint32_t session_expiry = 0;
};

// ---------------------------------------------------------------------------------------------
// MQTT encoding helpers

void put_u16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xff));
}

void put_varint(std::vector<uint8_t>& out, size_t v) {
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    out.push_back(b);
  } while (v);
}

void put_str(std::vector<uint8_t>& out, std::string_view s) {
  put_u16(out, static_cast<uint16_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

// Appends a packet: fixed header byte, remaining length, body.
void put_packet(std::vector<uint8_t>& out, uint8_t first, const std::vector<uint8_t>& body) {
  out.push_back(first);
  put_varint(out, body.size());
  out.insert(out.end(), body.begin(), body.end());
}

uint16_t get_u16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

uint32_t get_u32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | p[3];
}

// Decodes a variable byte integer. Returns bytes used, 0 if incomplete; fails if malformed.
size_t get_varint(const uint8_t* p, size_t avail, size_t& value) {
  value = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i >= avail) return 0;
    value |= static_cast<size_t>(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) return i + 1;
  }
  fail("malformed variable byte integer");
}

// --json-payload: writes {"v":"<hex of header>"} padded with spaces to `size` bytes at `out`.
void encode_json_payload(const uint8_t* header, uint8_t* out, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::memcpy(out, kJsonOpen.data(), kJsonOpen.size());
  uint8_t* w = out + kJsonOpen.size();
  for (size_t i = 0; i < kHeaderBytes; ++i) {
    *w++ = static_cast<uint8_t>(kHex[header[i] >> 4]);
    *w++ = static_cast<uint8_t>(kHex[header[i] & 0xf]);
  }
  *w++ = '"';
  std::memset(w, ' ', size - kJsonMin);
  out[size - 1] = '}';
}

int hex_digit(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Inverse of encode_json_payload; false if `p` is not exactly such a payload.
bool decode_json_payload(const uint8_t* p, size_t len, uint8_t* header) {
  if (len < kJsonMin || std::memcmp(p, kJsonOpen.data(), kJsonOpen.size()) != 0) return false;
  const uint8_t* h = p + kJsonOpen.size();
  for (size_t i = 0; i < kHeaderBytes; ++i) {
    int hi = hex_digit(h[2 * i]);
    int lo = hex_digit(h[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    header[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (h[2 * kHeaderBytes] != '"' || p[len - 1] != '}') return false;
  for (size_t i = kJsonMin - 1; i < len - 1; ++i) {
    if (p[i] != ' ') return false;
  }
  return true;
}

// MQTT 5 properties of interest in CONNACK.
struct ConnackProps {
  uint32_t receive_max = 65535;
  uint32_t max_packet = 0;
  int max_qos = 2;
  int wildcard_available = 1;
};

// Walks an MQTT 5 property block [p, p+len), reporting the ones in ConnackProps.
void parse_props(const uint8_t* p, size_t len, ConnackProps* props) {
  size_t i = 0;
  auto need = [&](size_t n) {
    if (i + n > len) fail("truncated MQTT 5 property");
  };
  while (i < len) {
    size_t id = 0;
    size_t used = get_varint(p + i, len - i, id);
    if (!used) fail("truncated property identifier");
    i += used;
    switch (id) {
      case 0x01:
      case 0x17:
      case 0x19:
      case 0x24:
      case 0x25:
      case 0x28:
      case 0x29:
      case 0x2a:
        need(1);
        if (props && id == 0x24) props->max_qos = p[i];
        if (props && id == 0x28) props->wildcard_available = p[i];
        i += 1;
        break;
      case 0x13:
      case 0x21:
      case 0x22:
      case 0x23:
        need(2);
        if (props && id == 0x21) props->receive_max = get_u16(p + i);
        i += 2;
        break;
      case 0x02:
      case 0x11:
      case 0x18:
      case 0x27:
        need(4);
        if (props && id == 0x27) props->max_packet = get_u32(p + i);
        i += 4;
        break;
      case 0x0b: {
        size_t v = 0;
        size_t n = get_varint(p + i, len - i, v);
        if (!n) fail("truncated subscription identifier");
        i += n;
        break;
      }
      case 0x03:
      case 0x08:
      case 0x09:
      case 0x12:
      case 0x15:
      case 0x16:
      case 0x1a:
      case 0x1c:
      case 0x1f:
        need(2);
        i += 2 + get_u16(p + i);
        need(0);
        break;
      case 0x26:
        for (int k = 0; k < 2; ++k) {
          need(2);
          i += 2 + get_u16(p + i);
          need(0);
        }
        break;
      default:
        fail("unknown MQTT 5 property 0x" + std::to_string(id));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Connections and roles

enum class Role : uint8_t { kPublisher, kSubscriber, kIdle };
enum class State : uint8_t {
  kConnecting,
  kWsUpgrade,  // --ws: HTTP upgrade sent, awaiting 101
  kAwaitConnack,
  kAwaitSuback,
  kReady,
  kClosed
};

struct Conn {
  int fd = -1;
  Role role = Role::kIdle;
  State state = State::kConnecting;
  uint32_t index = 0;
  bool epollout = false;
  bool dirty = false;
  uint32_t receive_max = 65535;
  std::vector<uint8_t> in;
  size_t in_len = 0;
  std::vector<uint8_t> out;
  size_t out_off = 0;
  // --ws: WebSocket bytes. MQTT bytes queued in `out` are framed into `wire`
  // when flushed; received frames are unwrapped from `raw` into `in`.
  std::vector<uint8_t> wire;
  size_t wire_off = 0;
  std::vector<uint8_t> raw;

  size_t pending() const { return out.size() - out_off; }
};

// One client-to-server WebSocket binary frame around `len` bytes. The mask
// key is zero (legal, RFC 6455 §5.3 only asks for unpredictability), so the
// generator spends no time masking while the broker still runs its unmasking
// pass.
void put_ws_frame(std::vector<uint8_t>& wire, const uint8_t* data, size_t len) {
  wire.push_back(0x82);  // FIN, binary
  if (len < 126) {
    wire.push_back(static_cast<uint8_t>(0x80 | len));
  } else if (len < 65536) {
    wire.push_back(0x80 | 126);
    wire.push_back(static_cast<uint8_t>(len >> 8));
    wire.push_back(static_cast<uint8_t>(len));
  } else {
    wire.push_back(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) wire.push_back(static_cast<uint8_t>(len >> shift));
  }
  wire.insert(wire.end(), 4, 0);  // mask key
  wire.insert(wire.end(), data, data + len);
}

struct Publisher {
  Conn* conn = nullptr;
  uint32_t id = 0;
  std::string topic;
  std::vector<uint8_t> prefix;  // PUBLISH fixed header + remaining length + topic
  uint32_t receivers = 0;
  uint64_t sent = 0;
  uint64_t delivered_full = 0;  // messages that reached every receiver
  uint64_t acked = 0;
  uint32_t inflight = 0;
  uint32_t inflight_cap = kMaxPacketIds;
  uint16_t next_id = 1;
  std::vector<uint16_t> recv_count;  // by seq: distinct receivers that got it
  std::vector<uint8_t> acked_seq;    // by seq (QoS 1)
  std::vector<uint32_t> id_seq;      // packet id -> seq (QoS 1)
  std::vector<uint8_t> id_used;
  uint64_t next_send_ns = 0;
  uint64_t interval_ns = 0;
};

struct Subscriber {
  Conn* conn = nullptr;
  std::string filter;
  std::vector<uint8_t> expects;            // by publisher id
  std::vector<std::vector<uint8_t>> seen;  // by publisher id, by seq
};

template <typename T>
void grow_to(std::vector<T>& v, uint64_t index) {
  if (index < v.size()) return;
  size_t n = std::max<size_t>(v.size() * 2, 4096);
  while (n <= index) n *= 2;
  v.resize(n);
}

std::string json_escape(std::string_view s) {
  std::string r;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      r += '\\';
      r += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      r += buf;
    } else {
      r += ch;
    }
  }
  return r;
}

// utime + stime of a process, in seconds.
double read_cpu_s(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  // Fields after the command: state(3) ... utime(14) stime(15).
  const char* p = stat.c_str() + paren + 2;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  if (std::sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
      2) {
    return 0;
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

long read_rss_kb(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  fail("cannot read VmRSS of pid " + std::to_string(pid));
}

// ---------------------------------------------------------------------------------------------

class Bench {
 public:
  explicit Bench(const Options& opt) : opt_(opt) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) fail_errno("epoll_create1");
    if (inet_pton(AF_INET, opt_.host.c_str(), &addr_.sin_addr) != 1) fail("bad --host");
    addr_.sin_family = AF_INET;
    addr_.sin_port = htons(opt_.port);
    sub_addr_ = addr_;
    if (opt_.sub_port) sub_addr_.sin_port = htons(opt_.sub_port);
  }

  ~Bench() {
    for (auto& c : conns_) {
      if (c->fd >= 0) close(c->fd);
    }
    if (ep_ >= 0) close(ep_);
  }

  Bench(const Bench&) = delete;
  Bench& operator=(const Bench&) = delete;

  std::string run() {
    if (opt_.scenario == Scenario::kIdle) return run_idle();
    return run_traffic();
  }

 private:
  // -- topology ---------------------------------------------------------------------------------

  void build_topology() {
    std::string kind = opt_.scenario_name;
    if (opt_.scenario == Scenario::kOverload) kind = opt_.topology;
    if (opt_.scenario == Scenario::kLatency) kind = "pairs";
    int npub = 0;
    int nsub = 0;
    if (kind == "fan-in") {
      npub = opt_.publishers > 0 ? opt_.publishers : 8;
      nsub = opt_.subscribers > 0 ? opt_.subscribers : 1;
    } else if (kind == "fan-out") {
      npub = opt_.publishers > 0 ? opt_.publishers : 1;
      nsub = opt_.subscribers > 0 ? opt_.subscribers : 50;
    } else if (kind == "pairs") {
      npub = opt_.publishers > 0 ? opt_.publishers : 50;
      nsub = npub;
    } else {
      fail("unknown topology " + kind);
    }
    std::string base = opt_.scenario == Scenario::kFanIn     ? "bench/in/"
                       : opt_.scenario == Scenario::kFanOut  ? "bench/out"
                       : opt_.scenario == Scenario::kPairs   ? "bench/pair/"
                       : opt_.scenario == Scenario::kLatency ? "bench/lat/"
                                                             : "bench/over/" + kind + "/";
    if (opt_.scenario == Scenario::kOverload && kind == "fan-out") base = "bench/over/out";
    pubs_.resize(npub);
    subs_.resize(nsub);
    for (int i = 0; i < npub; ++i) {
      pubs_[i].id = static_cast<uint32_t>(i);
      pubs_[i].topic = kind == "fan-out" ? base : base + std::to_string(i);
    }
    for (int s = 0; s < nsub; ++s) {
      Subscriber& sub = subs_[s];
      sub.expects.assign(npub, 0);
      sub.seen.resize(npub);
      if (kind == "fan-in") {
        sub.filter = base + "+";
        sub.expects.assign(npub, 1);
      } else if (kind == "fan-out") {
        sub.filter = pubs_[0].topic;
        for (int i = 0; i < npub; ++i) {
          if (pubs_[i].topic == sub.filter) sub.expects[i] = 1;
        }
      } else {
        sub.filter = pubs_[s].topic;
        sub.expects[s] = 1;
      }
      for (int i = 0; i < npub; ++i) pubs_[i].receivers += sub.expects[i];
    }
    for (Publisher& p : pubs_) {
      if (p.receivers == 0) fail("publisher without receivers");
      if (p.receivers > 65535) fail("too many receivers");
      size_t rl =
          2 + p.topic.size() + (opt_.qos ? 2 : 0) + (opt_.protocol == 5 ? 1 : 0) + opt_.payload;
      p.prefix.push_back(static_cast<uint8_t>(0x30 | (opt_.qos << 1)));
      put_varint(p.prefix, rl);
      put_str(p.prefix, p.topic);
      if (opt_.qos) {
        p.id_seq.assign(65536, 0);
        p.id_used.assign(65536, 0);
      }
    }
  }

  // -- connection management --------------------------------------------------------------------

  // At most 17 characters, inside MQTT 3.1.1's guaranteed 23: prefix(8) '-' scenario(2) role(1)
  // index(<= 5).
  std::string client_id(std::string_view kind, size_t index) const {
    return opt_.client_prefix + "-" + opt_.scenario_name.substr(0, 1) +
           opt_.scenario_name.substr(opt_.scenario_name.size() - 1) + std::string(kind) +
           std::to_string(index);
  }

  Conn* open_conn(Role role, uint32_t index, const std::string& cid, size_t read_buffer) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) fail_errno("socket");
    auto conn = std::make_unique<Conn>();
    Conn* c = conn.get();
    c->fd = fd;
    conns_.push_back(std::move(conn));
    c->role = role;
    c->index = index;
    c->in.resize(read_buffer);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const sockaddr_in& to = role == Role::kSubscriber ? sub_addr_ : addr_;
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) < 0 &&
        errno != EINPROGRESS) {
      fail_errno("connect");
    }
    c->state = State::kConnecting;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    c->epollout = true;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) < 0) fail_errno("epoll_ctl add");
    queue_connect(c, cid);
    return c;
  }

  void queue_connect(Conn* c, const std::string& cid) {
    std::vector<uint8_t> body;
    put_str(body, "MQTT");
    body.push_back(static_cast<uint8_t>(opt_.protocol));
    uint8_t flags = 0x02;  // clean session / clean start
    if (opt_.has_username) flags |= 0x80;
    if (opt_.has_password) flags |= 0x40;
    body.push_back(flags);
    put_u16(body, static_cast<uint16_t>(opt_.keepalive));
    if (opt_.protocol == 5 && opt_.session_expiry > 0) {
      body.push_back(5);  // properties: Session Expiry Interval
      body.push_back(0x11);
      for (int shift = 24; shift >= 0; shift -= 8)
        body.push_back(static_cast<uint8_t>(opt_.session_expiry >> shift));
    } else if (opt_.protocol == 5) {
      body.push_back(0);  // no properties
    }
    put_str(body, cid);
    if (opt_.has_username) put_str(body, opt_.username);
    if (opt_.has_password) put_str(body, opt_.password);
    put_packet(c->out, 0x10, body);
  }

  void queue_subscribe(Conn* c, const std::string& filter) {
    std::vector<uint8_t> body;
    put_u16(body, 1);
    if (opt_.protocol == 5) body.push_back(0);
    put_str(body, filter);
    body.push_back(static_cast<uint8_t>(opt_.qos));
    put_packet(c->out, 0x82, body);
    mark_dirty(c);
  }

  void set_epollout(Conn* c, bool on) {
    if (c->epollout == on) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0u);
    ev.data.ptr = c;
    if (epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev) < 0) fail_errno("epoll_ctl mod");
    c->epollout = on;
  }

  void mark_dirty(Conn* c) {
    if (c->dirty) return;
    c->dirty = true;
    dirty_.push_back(c);
  }

  void flush(Conn* c) {
    if (c->state == State::kConnecting || c->state == State::kClosed) return;
    if (!opt_.ws_path.empty()) return flush_ws(c);
    while (c->pending()) {
      ssize_t n = send(c->fd, c->out.data() + c->out_off, c->pending(), MSG_NOSIGNAL);
      if (n > 0) {
        c->out_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_epollout(c, true);
        return;
      }
      fail_errno(conn_name(c) + ": send");
    }
    c->out.clear();
    c->out_off = 0;
    set_epollout(c, false);
  }

  void flush_ws(Conn* c) {
    if (c->state != State::kWsUpgrade && c->pending()) {
      put_ws_frame(c->wire, c->out.data() + c->out_off, c->pending());
      c->out.clear();
      c->out_off = 0;
    }
    while (c->wire.size() > c->wire_off) {
      ssize_t n =
          send(c->fd, c->wire.data() + c->wire_off, c->wire.size() - c->wire_off, MSG_NOSIGNAL);
      if (n > 0) {
        c->wire_off += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        set_epollout(c, true);
        return;
      }
      fail_errno(conn_name(c) + ": send");
    }
    c->wire.clear();
    c->wire_off = 0;
    set_epollout(c, false);
  }

  void queue_ws_upgrade(Conn* c) {
    const std::string req = "GET " + opt_.ws_path + " HTTP/1.1\r\nHost: " + opt_.host + ":" +
                            std::to_string(opt_.port) +
                            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    c->wire.insert(c->wire.end(), req.begin(), req.end());
  }

  // Unwraps complete frames of `raw` into `in`; handles the 101 first.
  void unwrap_ws(Conn* c) {
    size_t off = 0;
    const uint8_t* b = c->raw.data();
    const size_t n = c->raw.size();
    if (c->state == State::kWsUpgrade) {
      static const char kEnd[] = "\r\n\r\n";
      auto it = std::search(c->raw.begin(), c->raw.end(), kEnd, kEnd + 4);
      if (it == c->raw.end()) return;
      const std::string head(c->raw.begin(), it);
      if (head.rfind("HTTP/1.1 101", 0) != 0)
        fail(conn_name(c) + ": WebSocket upgrade refused: " + head.substr(0, head.find('\r')));
      off = static_cast<size_t>(it - c->raw.begin()) + 4;
      c->state = State::kAwaitConnack;
      flush(c);  // the CONNECT queued meanwhile
    }
    while (n - off >= 2) {
      const uint8_t opcode = b[off] & 0x0f;
      size_t len = b[off + 1] & 0x7f;
      size_t header = 2;
      if (len == 126) {
        if (n - off < 4) break;
        len = (size_t{b[off + 2]} << 8) | b[off + 3];
        header = 4;
      } else if (len == 127) {
        if (n - off < 10) break;
        len = 0;
        for (int i = 0; i < 8; ++i) len = (len << 8) | b[off + 2 + i];
        header = 10;
      }
      if (b[off + 1] & 0x80) fail(conn_name(c) + ": masked frame from the server");
      if (n - off < header + len) break;
      const uint8_t* payload = b + off + header;
      if (opcode == 0x2 || opcode == 0x0) {
        if (c->in_len + len > c->in.size()) {
          if (c->in_len + len > kMaxPacket) fail(conn_name(c) + ": packet too large");
          c->in.resize(std::max(c->in.size() * 2, c->in_len + len));
        }
        std::memcpy(c->in.data() + c->in_len, payload, len);
        c->in_len += len;
      } else if (opcode == 0x8) {
        const int code = len >= 2 ? (payload[0] << 8) | payload[1] : 0;
        fail(conn_name(c) + ": WebSocket closed by the broker, code " + std::to_string(code));
      } else if (opcode == 0x9) {  // ping: answer with a pong of the same payload
        c->wire.push_back(0x8A);
        c->wire.push_back(static_cast<uint8_t>(0x80 | std::min<size_t>(len, 125)));
        c->wire.insert(c->wire.end(), 4, 0);
        c->wire.insert(c->wire.end(), payload, payload + std::min<size_t>(len, 125));
        mark_dirty(c);
      }
      off += header + len;
    }
    c->raw.erase(c->raw.begin(), c->raw.begin() + static_cast<std::ptrdiff_t>(off));
  }

  void flush_dirty() {
    for (Conn* c : dirty_) {
      c->dirty = false;
      flush(c);
    }
    dirty_.clear();
  }

  std::string conn_name(const Conn* c) const {
    const char* kind = c->role == Role::kPublisher    ? "publisher "
                       : c->role == Role::kSubscriber ? "subscriber "
                                                      : "client ";
    return kind + std::to_string(c->index);
  }

  void on_event(Conn* c, uint32_t events) {
    if (c->state == State::kClosed) return;
    if (c->state == State::kConnecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) fail(conn_name(c) + ": connect: " + std::strerror(err));
      if (!opt_.ws_path.empty()) {
        c->state = State::kWsUpgrade;
        queue_ws_upgrade(c);
      } else {
        c->state = State::kAwaitConnack;
      }
      flush(c);
      return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) do_read(c);
    if ((events & EPOLLOUT) && c->state != State::kClosed) flush(c);
  }

  void do_read(Conn* c) {
    if (!opt_.ws_path.empty()) return do_read_ws(c);
    for (int round = 0; round < 16; ++round) {
      if (c->in_len == c->in.size()) {
        if (c->in.size() >= kMaxPacket) fail(conn_name(c) + ": packet too large");
        c->in.resize(std::max<size_t>(c->in.size() * 2, 256));
      }
      size_t space = c->in.size() - c->in_len;
      ssize_t n = read(c->fd, c->in.data() + c->in_len, space);
      if (n > 0) {
        c->in_len += static_cast<size_t>(n);
        parse(c, now_ns());
        if (static_cast<size_t>(n) < space) return;
        continue;
      }
      if (n == 0) fail(conn_name(c) + ": broker closed the connection");
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      fail_errno(conn_name(c) + ": read");
    }
  }

  void do_read_ws(Conn* c) {
    uint8_t buf[65536];
    for (int round = 0; round < 16; ++round) {
      ssize_t n = read(c->fd, buf, sizeof buf);
      if (n > 0) {
        c->raw.insert(c->raw.end(), buf, buf + n);
        unwrap_ws(c);
        if (c->in_len) parse(c, now_ns());
        if (static_cast<size_t>(n) < sizeof buf) return;
        continue;
      }
      if (n == 0) fail(conn_name(c) + ": broker closed the connection");
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      fail_errno(conn_name(c) + ": read");
    }
  }

  void parse(Conn* c, uint64_t now) {
    size_t off = 0;
    const uint8_t* buf = c->in.data();
    while (c->in_len - off >= 2) {
      size_t rl = 0;
      size_t used = get_varint(buf + off + 1, c->in_len - off - 1, rl);
      if (!used) break;
      size_t total = 1 + used + rl;
      if (total > kMaxPacket) fail(conn_name(c) + ": packet too large");
      if (c->in_len - off < total) break;  // do_read grows the buffer when it is full
      handle_packet(c, buf[off], buf + off + 1 + used, rl, now);
      off += total;
    }
    if (off) {
      std::memmove(c->in.data(), c->in.data() + off, c->in_len - off);
      c->in_len -= off;
    }
  }

  void handle_packet(Conn* c, uint8_t first, const uint8_t* body, size_t len, uint64_t now) {
    int type = first >> 4;
    switch (type) {
      case 2:
        on_connack(c, body, len);
        break;
      case 9:
        on_suback(c, body, len);
        break;
      case 3:
        if (c->role != Role::kSubscriber || c->state != State::kReady) {
          fail(conn_name(c) + ": unexpected PUBLISH");
        }
        on_publish(subs_[c->index], first & 0x0f, body, len, now);
        break;
      case 4:
        if (c->role != Role::kPublisher) fail(conn_name(c) + ": unexpected PUBACK");
        on_puback(pubs_[c->index], body, len, now);
        break;
      case 13:  // PINGRESP
        break;
      case 14: {
        int reason = len >= 1 ? body[0] : 0;
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", reason);
        fail(conn_name(c) + ": broker sent DISCONNECT, reason " + hex);
      }
      default:
        fail(conn_name(c) + ": unexpected packet type " + std::to_string(type));
    }
  }

  void on_connack(Conn* c, const uint8_t* body, size_t len) {
    if (c->state != State::kAwaitConnack) fail(conn_name(c) + ": unexpected CONNACK");
    if (len < 2) fail(conn_name(c) + ": short CONNACK");
    if (body[1] != 0) {
      fail(conn_name(c) + ": CONNACK refused, code " + std::to_string(body[1]));
    }
    if (opt_.protocol == 5) {
      size_t plen = 0;
      size_t used = get_varint(body + 2, len - 2, plen);
      if (!used || 2 + used + plen > len) fail(conn_name(c) + ": malformed CONNACK properties");
      ConnackProps props;
      parse_props(body + 2 + used, plen, &props);
      if (props.receive_max == 0) fail("CONNACK Receive Maximum 0");
      if (props.max_qos < opt_.qos) fail("broker Maximum QoS below the requested QoS");
      if (!props.wildcard_available && c->role == Role::kSubscriber &&
          subs_[c->index].filter.find('+') != std::string::npos) {
        fail("broker does not support wildcard subscriptions");
      }
      if (props.max_packet && props.max_packet < opt_.payload + 256) {
        fail("broker Maximum Packet Size too small for the payload");
      }
      c->receive_max = props.receive_max;
      receive_max_seen_ = std::min(receive_max_seen_, props.receive_max);
    }
    if (c->role == Role::kSubscriber) {
      c->state = State::kAwaitSuback;
      queue_subscribe(c, subs_[c->index].filter);
      return;
    }
    if (c->role == Role::kPublisher) {
      Publisher& p = pubs_[c->index];
      p.inflight_cap = std::min<uint32_t>(kMaxPacketIds, c->receive_max);
    }
    c->state = State::kReady;
    ++ready_;
    --handshaking_;
  }

  void on_suback(Conn* c, const uint8_t* body, size_t len) {
    if (c->role != Role::kSubscriber || c->state != State::kAwaitSuback) {
      fail(conn_name(c) + ": unexpected SUBACK");
    }
    if (len < 3 || get_u16(body) != 1) fail(conn_name(c) + ": malformed SUBACK");
    size_t i = 2;
    if (opt_.protocol == 5) {
      size_t plen = 0;
      size_t used = get_varint(body + 2, len - 2, plen);
      if (!used) fail(conn_name(c) + ": malformed SUBACK");
      i += used + plen;
    }
    if (i + 1 != len) fail(conn_name(c) + ": SUBACK with " + std::to_string(len - i) + " codes");
    if (body[i] != opt_.qos) {
      fail(conn_name(c) + ": SUBACK code " + std::to_string(body[i]) + ", wanted granted QoS " +
           std::to_string(opt_.qos));
    }
    c->state = State::kReady;
    ++ready_;
    --handshaking_;
  }

  void on_publish(Subscriber& sub, int flags, const uint8_t* body, size_t len, uint64_t now) {
    int qos = (flags >> 1) & 3;
    if (qos != opt_.qos) fail("delivery with QoS " + std::to_string(qos));
    if (len < 2) fail("short PUBLISH");
    size_t tlen = get_u16(body);
    size_t i = 2 + tlen;
    if (i > len) fail("PUBLISH topic overruns packet");
    std::string_view topic(reinterpret_cast<const char*>(body + 2), tlen);
    uint16_t packet_id = 0;
    if (qos) {
      if (i + 2 > len) fail("PUBLISH without packet id");
      packet_id = get_u16(body + i);
      if (packet_id == 0) fail("PUBLISH with packet id 0");
      i += 2;
    }
    if (opt_.protocol == 5) {
      size_t plen = 0;
      size_t used = get_varint(body + i, len - i, plen);
      if (!used || i + used + plen > len) fail("malformed PUBLISH properties");
      parse_props(body + i + used, plen, nullptr);
      i += used + plen;
    }
    const uint8_t* payload = body + i;
    size_t plen = len - i;
    if (plen != opt_.payload) fail("payload of " + std::to_string(plen) + " bytes");
    uint8_t header[kHeaderBytes];
    if (opt_.json_payload) {
      if (!decode_json_payload(payload, plen, header)) {
        fail("payload on " + std::string(topic) + " is not the generator's JSON");
      }
      payload = header;
    }
    uint32_t magic = 0;
    uint32_t pub_id = 0;
    uint64_t seq = 0;
    uint64_t sent_ns = 0;
    std::memcpy(&magic, payload, 4);
    std::memcpy(&pub_id, payload + 4, 4);
    std::memcpy(&seq, payload + 8, 8);
    std::memcpy(&sent_ns, payload + 16, 8);
    if (magic != kMagic) fail("foreign payload on " + std::string(topic));
    if (pub_id >= pubs_.size() || !sub.expects[pub_id]) {
      fail("message from publisher " + std::to_string(pub_id) + " on unexpected subscription");
    }
    Publisher& p = pubs_[pub_id];
    if (topic != p.topic) fail("message delivered with topic " + std::string(topic));
    if (seq >= p.sent) fail("message with a sequence number never sent");
    if (qos) {
      Conn* c = sub.conn;
      c->out.push_back(0x40);
      c->out.push_back(0x02);
      c->out.push_back(static_cast<uint8_t>(packet_id >> 8));
      c->out.push_back(static_cast<uint8_t>(packet_id & 0xff));
      mark_dirty(c);
    }
    last_progress_ = now;
    std::vector<uint8_t>& seen = sub.seen[pub_id];
    grow_to(seen, seq);
    if (seen[seq]) {
      ++duplicates_;
      return;
    }
    seen[seq] = 1;
    ++received_;
    if (++p.recv_count[seq] == p.receivers) ++p.delivered_full;
    if (now >= t_warm_ && now < t_end_) {
      ++delivered_window_;
      uint64_t us = now > sent_ns ? (now - sent_ns) / 1000 : 0;
      latency_us_.push_back(static_cast<uint32_t>(std::min<uint64_t>(us, UINT32_MAX)));
    }
  }

  void on_puback(Publisher& p, const uint8_t* body, size_t len, uint64_t now) {
    if (len < 2) fail("short PUBACK");
    if (opt_.qos != 1) fail("PUBACK for a QoS 0 publisher");
    if (opt_.protocol == 5 && len >= 3 && body[2] >= 0x80) {
      fail("PUBACK reason code " + std::to_string(body[2]));
    }
    uint16_t id = get_u16(body);
    if (!p.id_used[id]) fail("PUBACK for unknown packet id " + std::to_string(id));
    p.id_used[id] = 0;
    --p.inflight;
    p.acked_seq[p.id_seq[id]] = 1;
    ++p.acked;
    last_progress_ = now;
  }

  // -- publishing --------------------------------------------------------------------------------

  bool ids_available(const Publisher& p) const { return !opt_.qos || p.inflight < p.inflight_cap; }

  void emit(Publisher& p, uint64_t ts) {
    uint64_t seq = p.sent++;
    grow_to(p.recv_count, seq);
    Conn* c = p.conn;
    size_t pos = c->out.size();
    size_t extra = (opt_.qos ? 2 : 0) + (opt_.protocol == 5 ? 1 : 0);
    c->out.resize(pos + p.prefix.size() + extra + opt_.payload);
    uint8_t* w = c->out.data() + pos;
    std::memcpy(w, p.prefix.data(), p.prefix.size());
    w += p.prefix.size();
    if (opt_.qos) {
      while (p.id_used[p.next_id]) p.next_id = p.next_id == 65535 ? 1 : p.next_id + 1;
      uint16_t id = p.next_id;
      p.next_id = p.next_id == 65535 ? 1 : p.next_id + 1;
      p.id_used[id] = 1;
      p.id_seq[id] = static_cast<uint32_t>(seq);
      ++p.inflight;
      grow_to(p.acked_seq, seq);
      *w++ = static_cast<uint8_t>(id >> 8);
      *w++ = static_cast<uint8_t>(id & 0xff);
    }
    if (opt_.protocol == 5) *w++ = 0;
    uint8_t header[kHeaderBytes];
    uint8_t* h = opt_.json_payload ? header : w;
    std::memcpy(h, &kMagic, 4);
    std::memcpy(h + 4, &p.id, 4);
    std::memcpy(h + 8, &seq, 8);
    std::memcpy(h + 16, &ts, 8);
    if (opt_.json_payload) {
      encode_json_payload(header, w, opt_.payload);
    } else {
      std::memset(w + kHeaderBytes, 0, opt_.payload - kHeaderBytes);
    }
    if (ts >= t_warm_ && ts < t_end_) ++published_window_;
    mark_dirty(c);
  }

  // Returns true if the publisher could send more right away (open loop only).
  bool pump(Publisher& p, uint64_t now) {
    Conn* c = p.conn;
    if (c->pending() >= kOutHigh) return false;
    switch (mode_) {
      case Mode::kClosed:
        while (p.sent - p.delivered_full < opt_.window && ids_available(p) &&
               c->pending() < kOutHigh) {
          emit(p, now_ns());
        }
        return false;
      case Mode::kPaced:
        while (now >= p.next_send_ns && ids_available(p) && c->pending() < kOutHigh) {
          emit(p, now_ns());
          p.next_send_ns += p.interval_ns;
        }
        return false;
      case Mode::kOpen:
        for (int round = 0; round < 4; ++round) {
          uint64_t ts = now_ns();
          while (ids_available(p) && c->pending() < kOutHigh) emit(p, ts);
          flush(c);
          if (c->pending() || !ids_available(p)) return false;
        }
        return true;
    }
    return false;
  }

  bool all_delivered() const {
    for (const Publisher& p : pubs_) {
      if (p.delivered_full != p.sent || p.inflight) return false;
    }
    return true;
  }

  // -- event loop ---------------------------------------------------------------------------------

  void poll_once(uint64_t timeout_ns) {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1000000000ULL);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1000000000ULL);
    epoll_event events[512];
    int n = epoll_pwait2(ep_, events, 512, &ts, nullptr);
    if (n < 0) {
      if (errno == EINTR) return;
      fail_errno("epoll_pwait2");
    }
    for (int i = 0; i < n; ++i) on_event(static_cast<Conn*>(events[i].data.ptr), events[i].events);
    flush_dirty();
  }

  void wait_ready(size_t want, uint64_t deadline, const char* what) {
    while (ready_ < want) {
      uint64_t now = now_ns();
      if (now >= deadline) {
        fail(std::string("timed out waiting for ") + what + " (" + std::to_string(ready_) + "/" +
             std::to_string(want) + " ready)");
      }
      poll_once(std::min<uint64_t>(deadline - now, 50000000ULL));
    }
  }

  void send_disconnects() {
    for (auto& c : conns_) {
      if (c->state != State::kReady) continue;
      if (opt_.session_expiry > 0) {
        // Reason 0, Session Expiry Interval 0: the persistent session ends.
        const uint8_t end[] = {0xe0, 0x07, 0x00, 0x05, 0x11, 0, 0, 0, 0};
        c->out.insert(c->out.end(), std::begin(end), std::end(end));
      } else {
        c->out.push_back(0xe0);
        c->out.push_back(0x00);
      }
      flush(c.get());
    }
  }

  std::string run_traffic() {
    if (opt_.payload < kHeaderBytes) fail("--payload must be at least 24 bytes");
    if (opt_.json_payload && opt_.payload < kJsonMin) {
      fail("--payload must be at least " + std::to_string(kJsonMin) + " bytes with --json-payload");
    }
    if (opt_.qos < 0 || opt_.qos > 1) fail("--qos must be 0 or 1");
    if (opt_.session_expiry > 0 && opt_.protocol != 5)
      fail("--session-expiry needs --protocol 5.0");
    mode_ = opt_.scenario == Scenario::kLatency    ? Mode::kPaced
            : opt_.scenario == Scenario::kOverload ? Mode::kOpen
                                                   : Mode::kClosed;
    build_topology();
    // Nothing counts as inside the measurement window until publishing starts.
    t_warm_ = UINT64_MAX;
    t_end_ = UINT64_MAX;
    for (size_t s = 0; s < subs_.size(); ++s) {
      subs_[s].conn =
          open_conn(Role::kSubscriber, static_cast<uint32_t>(s), client_id("s", s), kReadChunk);
    }
    for (size_t i = 0; i < pubs_.size(); ++i) {
      pubs_[i].conn =
          open_conn(Role::kPublisher, static_cast<uint32_t>(i), client_id("p", i), 16 * 1024);
    }
    handshaking_ = conns_.size();
    wait_ready(conns_.size(), now_ns() + seconds_to_ns(opt_.connect_timeout_s), "CONNACK/SUBACK");

    uint64_t t0 = now_ns();
    t_warm_ = t0 + seconds_to_ns(opt_.warmup_s);
    t_end_ = t_warm_ + seconds_to_ns(opt_.duration_s);
    last_progress_ = t0;
    if (mode_ == Mode::kPaced) {
      uint64_t interval =
          static_cast<uint64_t>(1e9 * static_cast<double>(pubs_.size()) / opt_.rate);
      for (size_t i = 0; i < pubs_.size(); ++i) {
        pubs_[i].interval_ns = interval;
        pubs_[i].next_send_ns = t0 + interval * i / pubs_.size();
      }
    }
    double drain_s = opt_.drain_s >= 0 ? opt_.drain_s : (mode_ == Mode::kOpen ? 60.0 : 10.0);
    double drain_idle_s = mode_ == Mode::kOpen ? 5.0 : 2.0;
    bool stalled = false;
    uint64_t publish_stop = 0;
    // CPU use of the broker and of this generator inside the measurement window.
    double broker_cpu0 = 0, broker_cpu1 = 0, self_cpu0 = 0, self_cpu1 = 0;
    uint64_t cpu_t0 = 0, cpu_t1 = 0;
    while (true) {
      uint64_t now = now_ns();
      if (!cpu_t0 && now >= t_warm_) {
        cpu_t0 = now;
        self_cpu0 = self_cpu_s();
        if (opt_.broker_pid > 0) broker_cpu0 = read_cpu_s(opt_.broker_pid);
      }
      if (!publish_stop && now >= t_end_) {
        publish_stop = now;
        cpu_t1 = now;
        self_cpu1 = self_cpu_s();
        if (opt_.broker_pid > 0) broker_cpu1 = read_cpu_s(opt_.broker_pid);
      }
      if (!publish_stop && mode_ != Mode::kOpen &&
          now - last_progress_ > seconds_to_ns(opt_.stall_s)) {
        stalled = true;
        publish_stop = now;
      }
      if (publish_stop) {
        if (all_delivered()) break;
        if (now - publish_stop > seconds_to_ns(drain_s)) break;
        if (now > last_progress_ && now - last_progress_ > seconds_to_ns(drain_idle_s)) break;
      }
      uint64_t timeout = 50000000ULL;
      if (!publish_stop) {
        bool more = false;
        for (Publisher& p : pubs_) more |= pump(p, now);
        flush_dirty();
        if (more) timeout = 0;
        if (mode_ == Mode::kPaced) {
          uint64_t next = UINT64_MAX;
          for (const Publisher& p : pubs_) next = std::min(next, p.next_send_ns);
          uint64_t after = now_ns();
          timeout = std::min(timeout, next > after ? next - after : 0);
        }
        uint64_t after = now_ns();
        timeout = std::min(timeout, t_end_ > after ? t_end_ - after : 0);
      }
      poll_once(timeout);
    }
    uint64_t drained = now_ns();
    send_disconnects();

    // Exact accounting over every (receiver, publisher, seq) triple.
    uint64_t sent = 0, acked = 0, missing = 0, lost_acked = 0;
    for (const Publisher& p : pubs_) {
      sent += p.sent;
      acked += p.acked;
    }
    for (const Subscriber& sub : subs_) {
      for (size_t pi = 0; pi < pubs_.size(); ++pi) {
        if (!sub.expects[pi]) continue;
        const Publisher& p = pubs_[pi];
        const std::vector<uint8_t>& seen = sub.seen[pi];
        for (uint64_t seq = 0; seq < p.sent; ++seq) {
          if (seq < seen.size() && seen[seq]) continue;
          ++missing;
          if (opt_.qos && p.acked_seq[seq]) ++lost_acked;
        }
      }
    }
    uint64_t expected = 0;
    for (const Publisher& p : pubs_) expected += p.sent * p.receivers;

    std::sort(latency_us_.begin(), latency_us_.end());
    auto pct = [&](double q) -> double {
      if (latency_us_.empty()) return -1;
      size_t idx = static_cast<size_t>(q * static_cast<double>(latency_us_.size() - 1) + 0.5);
      return latency_us_[idx] / 1000.0;
    };
    double dur = opt_.duration_s;
    char buf[2048];
    std::snprintf(
        buf, sizeof buf,
        "\"publishers\":%zu,\"subscribers\":%zu,\"payload\":%zu,\"window\":%u,"
        "\"duration_s\":%.3f,\"warmup_s\":%.3f,\"published\":%" PRIu64 ",\"acked\":%" PRIu64
        ",\"expected_deliveries\":%" PRIu64 ",\"received\":%" PRIu64
        ",\"published_per_s\":%.1f,"
        "\"delivered_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
        "\"missing\":%" PRIu64 ",\"lost_acked\":%" PRIu64 ",\"unacked\":%" PRIu64
        ",\"loss\":%" PRIu64 ",\"duplicates\":%" PRIu64
        ",\"receive_max\":%u,\"drain_s\":%.3f,\"stalled\":%s,\"rate\":%.1f,"
        "\"broker_cpu_pct\":%.1f,\"loadgen_cpu_pct\":%.1f",
        pubs_.size(), subs_.size(), opt_.payload, opt_.window, dur, opt_.warmup_s, sent, acked,
        expected, received_, static_cast<double>(published_window_) / dur,
        static_cast<double>(delivered_window_) / dur, pct(0.50), pct(0.99), pct(0.999), pct(1.0),
        missing, lost_acked, opt_.qos ? sent - acked : 0, opt_.qos ? lost_acked : missing,
        duplicates_, receive_max_seen_,
        static_cast<double>(drained - std::max(publish_stop, t0)) / 1e9, stalled ? "true" : "false",
        mode_ == Mode::kPaced ? opt_.rate : 0.0,
        cpu_t1 > cpu_t0 && opt_.broker_pid > 0
            ? 100.0 * (broker_cpu1 - broker_cpu0) * 1e9 / static_cast<double>(cpu_t1 - cpu_t0)
            : -1.0,
        cpu_t1 > cpu_t0
            ? 100.0 * (self_cpu1 - self_cpu0) * 1e9 / static_cast<double>(cpu_t1 - cpu_t0)
            : -1.0);
    return buf;
  }

  std::string run_idle() {
    if (opt_.broker_pid <= 0) fail("idle needs --broker-pid");
    long rss_before = read_rss_kb(opt_.broker_pid);
    uint64_t start = now_ns();
    uint64_t deadline = start + seconds_to_ns(opt_.connect_timeout_s);
    size_t want = static_cast<size_t>(opt_.connections);
    size_t opened = 0;
    while (ready_ < want) {
      while (opened < want && handshaking_ < static_cast<size_t>(opt_.connect_concurrency)) {
        open_conn(Role::kIdle, static_cast<uint32_t>(opened), client_id("i", opened), 64);
        ++opened;
        ++handshaking_;
      }
      flush_dirty();
      uint64_t now = now_ns();
      if (now >= deadline) {
        fail("timed out connecting idle clients (" + std::to_string(ready_) + "/" +
             std::to_string(want) + ")");
      }
      poll_once(std::min<uint64_t>(deadline - now, 50000000ULL));
    }
    uint64_t connected = now_ns();
    uint64_t settle_end = connected + seconds_to_ns(opt_.settle_s);
    for (uint64_t now = connected; now < settle_end; now = now_ns()) poll_once(settle_end - now);
    long rss_after = read_rss_kb(opt_.broker_pid);
    send_disconnects();
    double per_conn =
        static_cast<double>(rss_after - rss_before) * 1024.0 / static_cast<double>(want);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "\"connections\":%zu,\"connect_s\":%.3f,\"connects_per_s\":%.1f,"
                  "\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"rss_per_conn_bytes\":%.0f",
                  want, static_cast<double>(connected - start) / 1e9,
                  static_cast<double>(want) * 1e9 / static_cast<double>(connected - start),
                  rss_before, rss_after, per_conn);
    return buf;
  }

  const Options& opt_;
  int ep_ = -1;
  sockaddr_in addr_{};
  sockaddr_in sub_addr_{};
  Mode mode_ = Mode::kClosed;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<Conn*> dirty_;
  std::vector<Publisher> pubs_;
  std::vector<Subscriber> subs_;
  size_t ready_ = 0;
  size_t handshaking_ = 0;
  uint32_t receive_max_seen_ = 65535;
  uint64_t t_warm_ = 0;
  uint64_t t_end_ = 0;
  uint64_t last_progress_ = 0;
  uint64_t published_window_ = 0;
  uint64_t delivered_window_ = 0;
  uint64_t received_ = 0;
  uint64_t duplicates_ = 0;
  std::vector<uint32_t> latency_us_;
};

// ---------------------------------------------------------------------------------------------

void usage() {
  std::fprintf(
      stderr,
      "usage: bb_loadgen --scenario fan-in|fan-out|pairs|latency|overload|idle [options]\n"
      "  --host ADDR (127.0.0.1)  --port N (1883)  --sub-port N (subscribers' broker; --port)\n"
      "  --protocol 3.1.1|5.0|4|5 (3.1.1)  --qos 0|1\n"
      "  --duration S (5)  --warmup S (1)  --drain S  --stall S (3)  --payload BYTES (64, >= 24)\n"
      "  --window W (64)  --rate MSGS_PER_S (10000, latency)  --publishers N  --subscribers N\n"
      "  --topology fan-in|fan-out|pairs (overload; fan-in)  --connections N (10000, idle)\n"
      "  --broker-pid PID (idle)  --settle S (1)  --connect-timeout S (30)  --keepalive S (600)\n"
      "  --username U  --password P  --label NAME  --client-prefix PREFIX\n"
      "  --ws PATH (MQTT over WebSocket at PATH, subprotocol mqtt)\n"
      "  --session-expiry S (MQTT 5: persistent sessions for S seconds, ended at the end)\n"
      "  --json-payload (payload {\"v\":\"<hex header>\"} padded with spaces; --payload >= 56)\n");
}

Options parse_args(int argc, char** argv) {
  Options o;
  char tag[16];
  std::snprintf(
      tag, sizeof tag, "bb%06x",
      static_cast<unsigned>((static_cast<uint64_t>(getpid()) * 1000003ULL ^ now_ns()) & 0xffffff));
  o.client_prefix = tag;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage();
      std::exit(0);
    }
    if (a == "--json-payload") {
      o.json_payload = true;
      continue;
    }
    if (i + 1 >= argc) fail("missing value for " + a);
    std::string v = argv[++i];
    if (a == "--host") {
      o.host = v;
    } else if (a == "--port") {
      o.port = static_cast<uint16_t>(std::stoi(v));
    } else if (a == "--sub-port") {
      o.sub_port = static_cast<uint16_t>(std::stoi(v));
    } else if (a == "--scenario") {
      o.scenario_name = v;
      if (v == "fan-in")
        o.scenario = Scenario::kFanIn;
      else if (v == "fan-out")
        o.scenario = Scenario::kFanOut;
      else if (v == "pairs")
        o.scenario = Scenario::kPairs;
      else if (v == "latency")
        o.scenario = Scenario::kLatency;
      else if (v == "overload")
        o.scenario = Scenario::kOverload;
      else if (v == "idle")
        o.scenario = Scenario::kIdle;
      else
        fail("unknown scenario " + v);
    } else if (a == "--protocol") {
      if (v == "3.1.1" || v == "4")
        o.protocol = 4;
      else if (v == "5.0" || v == "5")
        o.protocol = 5;
      else
        fail("unknown protocol " + v);
    } else if (a == "--qos") {
      o.qos = std::stoi(v);
    } else if (a == "--duration") {
      o.duration_s = std::stod(v);
    } else if (a == "--warmup") {
      o.warmup_s = std::stod(v);
    } else if (a == "--drain") {
      o.drain_s = std::stod(v);
    } else if (a == "--stall") {
      o.stall_s = std::stod(v);
    } else if (a == "--settle") {
      o.settle_s = std::stod(v);
    } else if (a == "--connect-timeout") {
      o.connect_timeout_s = std::stod(v);
    } else if (a == "--payload") {
      o.payload = std::stoul(v);
    } else if (a == "--window") {
      o.window = static_cast<uint32_t>(std::stoul(v));
    } else if (a == "--rate") {
      o.rate = std::stod(v);
    } else if (a == "--publishers") {
      o.publishers = std::stoi(v);
    } else if (a == "--subscribers") {
      o.subscribers = std::stoi(v);
    } else if (a == "--topology") {
      o.topology = v;
    } else if (a == "--connections") {
      o.connections = std::stoi(v);
    } else if (a == "--broker-pid") {
      o.broker_pid = std::stoi(v);
    } else if (a == "--keepalive") {
      o.keepalive = std::stoi(v);
    } else if (a == "--username") {
      o.username = v;
      o.has_username = true;
    } else if (a == "--password") {
      o.password = v;
      o.has_password = true;
    } else if (a == "--label") {
      o.label = v;
    } else if (a == "--client-prefix") {
      o.client_prefix = v;
    } else if (a == "--session-expiry") {
      o.session_expiry = static_cast<uint32_t>(std::stoul(v));
    } else if (a == "--ws") {
      if (v.empty() || v[0] != '/') fail("--ws needs a path such as /ws");
      o.ws_path = v;
    } else {
      fail("unknown option " + a);
    }
  }
  if (o.has_password && !o.has_username && o.protocol == 4) {
    fail("MQTT 3.1.1 needs --username with --password");
  }
  if (o.duration_s <= 0 || o.warmup_s < 0 || o.rate <= 0 || o.window == 0)
    fail("bad timing options");
  if (o.keepalive < 0 || o.keepalive > 65535) fail("bad --keepalive");
  return o;
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  Options opt;
  try {
    opt = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bb_loadgen: %s\n", e.what());
    usage();
    return 64;
  }
  char head[512];
  std::snprintf(head, sizeof head,
                "{\"broker\":\"%s\",\"scenario\":\"%s\",\"protocol\":\"%s\",\"qos\":%d,"
                "\"json_payload\":%s,",
                json_escape(opt.label).c_str(), json_escape(opt.scenario_name).c_str(),
                opt.protocol == 5 ? "5.0" : "3.1.1", opt.qos, opt.json_payload ? "true" : "false");
  try {
    Bench bench(opt);
    std::string body = bench.run();
    std::printf("%s%s}\n", head, body.c_str());
    std::fflush(stdout);
    return 0;
  } catch (const std::exception& e) {
    std::printf("%s\"error\":\"%s\"}\n", head, json_escape(e.what()).c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "bb_loadgen: %s\n", e.what());
    return 2;
  }
}
