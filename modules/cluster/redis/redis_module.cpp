// SPDX-License-Identifier: GPL-3.0-or-later
// The `redis` cluster module (SPEC §10): brokers that name the same Redis
// server and prefix act as one broker towards their clients.
//  - Every message a broker accepts (after its authorization and topic rules)
//    reaches the subscribers of every other broker through one Redis pub/sub
//    channel; each receiving broker checks its own subscribers' read rights.
//  - Retained messages are also kept in a Redis hash, which a broker loads
//    before it takes clients.
//  - A client connecting to one broker ends its connection and session on
//    the others: one client id, one connection, cluster-wide.
// Redis is reached with hiredis from two module threads, so broker workers
// only append frames to an in-memory outbox and never wait on the network.

#include <backbone/module_abi.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "frame.hpp"
#include "outbox.hpp"
#include "resp.hpp"
#include "settings.hpp"

namespace backbone::modules::redis {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

class RedisModule final : public sdk::Module {
 public:
  using Module::Module;
  ~RedisModule() override { stop(); }

  bb_status configure(bool reloading) override {
    Settings settings;
    if (bb_status s = read_settings(settings); s != BB_OK) return s;
    if (reloading) {
      if (settings == settings_) return BB_OK;
      host().error("changing the redis settings needs a restart");
      return BB_E_UNSUPPORTED;
    }
    if (!host().has_cluster()) {
      host().error("this broker's module ABI has no message tap (needs 1.2)");
      return BB_E_UNSUPPORTED;
    }
    settings_ = std::move(settings);
    outbox_ = std::make_unique<Outbox>(settings_.retained_key());
    std::random_device random;
    for (auto& b : id_) b = static_cast<uint8_t>(random());
    return host().register_message_tap(kTap, this);
  }

  bb_status start() override {
    host().info("sharing messages through redis at " + settings_.where() + " (prefix '" +
                settings_.prefix + "')");
    sender_ = std::thread([this] { send_loop(); });
    receiver_ = std::thread([this] { receive_loop(); });
    return BB_PENDING;  // ready once the retained messages are loaded
  }

  void stop() override {
    if (stopping_.exchange(true)) return;
    if (outbox_) outbox_->interrupt();
    if (sender_.joinable()) sender_.join();
    if (receiver_.joinable()) receiver_.join();
    host().info("redis: " + std::to_string(sent_.load()) + " frame(s) sent, " +
                std::to_string(received_.load()) + " received, " + std::to_string(dropped_.load()) +
                " dropped");
  }

 private:
  bb_status read_settings(Settings& out) const {
    const std::optional<std::string> text = host().config("");
    if (!text) return BB_OK;
    std::string error;
    if (parse_settings(sdk::parse_json(*text, nullptr, true), out, error)) return BB_OK;
    host().error(error);
    return BB_E_INVALID;
  }

  // --- the tap: broker workers, per message ---

  static void on_message(void* user, const bb_message* m) noexcept {
    auto* self = static_cast<RedisModule*>(user);
    const std::string_view topic = sdk::view(m->topic);
    if (topic.starts_with("$SYS/")) return;  // each broker's own
    Frame f;
    f.qos = m->qos;
    f.retain = m->retain != 0;
    f.expires_at_ms = m->expiry_s ? unix_ms() + uint64_t{m->expiry_s} * 1000 : 0;
    f.topic = topic;
    if (BB_HAS(m, bb_message, properties)) f.properties = sdk::view(m->properties);
    f.payload = sdk::view(m->payload);
    self->enqueue(f);
  }

  static void on_session_started(void* user, bb_str client_id,
                                 uint64_t connected_at_unix_ms) noexcept {
    auto* self = static_cast<RedisModule*>(user);
    Frame f;
    f.kind = Frame::kSessionStarted;
    f.connected_at_ms = connected_at_unix_ms;
    f.client_id = sdk::view(client_id);
    self->enqueue(f);
  }

  static void on_session_started_as(void* user, const bb_session_start* s) noexcept {
    auto* self = static_cast<RedisModule*>(user);
    Frame f;
    f.kind = Frame::kSessionStartedBy;
    f.connected_at_ms = s->connected_at_unix_ms;
    f.client_id = sdk::view(s->client_id);
    f.provider = sdk::view(s->provider);
    f.principal = sdk::view(s->principal);
    f.may_take_over = s->may_take_over != 0;
    self->enqueue(f);
  }

  void enqueue(const Frame& f) noexcept {
    try {
      if (outbox_->push(f, settings_.max_pending_bytes)) return;
    } catch (...) {  // out of memory: dropped like an overflow
    }
    if (dropped_.fetch_add(1) % 10000 == 0)
      host().warn("redis: outbox full (Redis slow or unreachable): dropping messages");
  }

  // --- Redis connections (module threads) ---

  // One Redis connection's health, for one warning per outage and one line
  // when it is back.
  struct Link {
    const char* role;
    std::atomic<bool> down{false};       // warned about, not back yet
    std::atomic<bool> connected{false};  // for the metric
  };

  Context connect(Link& link) {
    const auto ms = settings_.timeout_ms;
    const timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
    Context c(redisConnectWithTimeout(settings_.host.c_str(), settings_.port, tv));
    if (!c || c->err) {
      warn_once(link, std::string("cannot connect to ") + settings_.where() + ": " +
                          (c ? c->errstr : "out of memory"));
      return nullptr;
    }
    redisSetTimeout(c.get(), tv);
    redisEnableKeepAlive(c.get());
    if (!settings_.password.empty()) {
      Command auth;
      auth << "AUTH";
      if (!settings_.username.empty()) auth << settings_.username;
      auth << settings_.password;
      Reply r = auth.run(c.get());
      if (!r || r->type == REDIS_REPLY_ERROR) {
        warn_once(link, std::string("authentication refused by ") + settings_.where());
        return nullptr;
      }
    }
    return c;
  }

  // One warning per outage, not one per retry.
  void warn_once(Link& link, const std::string& what) {
    link.connected = false;
    if (!link.down.exchange(true))
      host().warn(std::string("redis ") + link.role + ": " + what + " (retrying)");
  }
  void up(Link& link) {
    link.connected = true;
    if (link.down.exchange(false))
      host().info(std::string("redis ") + link.role + ": connected to " + settings_.where());
  }

  // Sleeps `backoff` ms (less when stopping), then doubles it up to 2 s.
  void back_off(uint32_t& backoff) {
    const auto until = Clock::now() + std::chrono::milliseconds(backoff);
    backoff = std::min(backoff * 2, 2000u);
    while (!stopping_ && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // Writes what the outbox holds and reads the replies.
  void send_loop() {
    Context c;
    Batch batch;
    std::string commands;
    const std::string channel = settings_.channel();
    uint32_t backoff = 100;
    auto reported = Clock::now() - std::chrono::seconds(1);
    for (;;) {
      const bool last = stopping_;  // one more round after stop: wills, final messages
      if (Clock::now() - reported >= std::chrono::seconds(1)) {
        report_metrics();
        reported = Clock::now();
      }
      if (!c) {
        if (last) break;
        c = connect(sender_link_);
        if (!c) {
          back_off(backoff);
          continue;
        }
        up(sender_link_);
        backoff = 100;
      }
      outbox_->take(batch, std::chrono::milliseconds(last ? 0 : 100),
                    std::chrono::microseconds(last || batch.count == 0 ? 0 : 50));
      const size_t replies = to_commands(batch, channel, id_, commands);
      const size_t frames = batch.count;
      if (!commands.empty() &&
          redisAppendFormattedCommand(c.get(), commands.data(), commands.size()) != REDIS_OK) {
        dropped_ += frames;
        continue;
      }
      bool ok = true;
      for (size_t i = 0; i < replies && ok; ++i) {
        void* reply = nullptr;
        ok = redisGetReply(c.get(), &reply) == REDIS_OK;
        Reply r(static_cast<redisReply*>(reply));
        if (ok && r->type == REDIS_REPLY_ERROR) host().warn(std::string("redis: ") + r->str);
      }
      if (!ok) {
        warn_once(sender_link_, "lost " + settings_.where() + ": " + c->errstr);
        dropped_ += frames;
        c.reset();
        continue;
      }
      sent_ += frames;
      if (last) break;
    }
    report_metrics();
  }

  // /metrics: backbone_redis_*.
  void report_metrics() {
    auto set = [this](const char* name, const char* help, int32_t kind, double value) {
      host().metric_set(name, help, kind, value);  // a host before ABI 1.2 has no metrics
    };
    set("frames_sent_total", "Frames (messages, session starts) sent to the other brokers.",
        BB_METRIC_COUNTER, static_cast<double>(sent_.load()));
    set("frames_received_total", "Frames received from the other brokers.", BB_METRIC_COUNTER,
        static_cast<double>(received_.load()));
    set("frames_dropped_total", "Frames not sent: outbox full, or Redis lost while sending.",
        BB_METRIC_COUNTER, static_cast<double>(dropped_.load()));
    set("sender_connected", "1 while the sender's Redis connection is up.", BB_METRIC_GAUGE,
        sender_link_.connected ? 1 : 0);
    set("receiver_connected", "1 while the receiver is subscribed and delivering.", BB_METRIC_GAUGE,
        receiver_link_.connected ? 1 : 0);
  }

  // Subscribes, loads the retained messages, then delivers what the other
  // brokers send until stopped; starts over after losing Redis.
  void receive_loop() {
    uint32_t backoff = 100;
    const std::string channel = settings_.channel();
    while (!stopping_) {
      Context c = connect(receiver_link_);
      Reply r;
      if (c) r = (Command() << "SUBSCRIBE" << channel).run(c.get());
      if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (c && !r) warn_once(receiver_link_, "lost " + settings_.where() + ": " + c->errstr);
        back_off(backoff);
        continue;
      }
      // Subscribed first, loaded second: no retained update falls in between.
      // Only once: loading again after an outage would send every retained
      // message to the current subscribers a second time.
      if (!ready_ && !load_retained()) {
        back_off(backoff);
        continue;
      }
      backoff = 100;
      up(receiver_link_);
      if (!ready_.exchange(true)) host().ready();
      receive(c.get());
    }
  }

  bool load_retained() {
    Context c = connect(receiver_link_);
    if (!c) return false;
    Reply r = (Command() << "HGETALL" << settings_.retained_key()).run(c.get());
    if (!r || r->type != REDIS_REPLY_ARRAY) {
      warn_once(
          receiver_link_,
          "reading the retained messages failed" +
              std::string(r && r->type == REDIS_REPLY_ERROR ? std::string(": ") + r->str : ""));
      return false;
    }
    size_t loaded = 0;
    for (size_t i = 1; i < r->elements; i += 2) {
      const redisReply* v = r->element[i];
      if (v->type == REDIS_REPLY_STRING && deliver(std::string_view(v->str, v->len))) ++loaded;
    }
    host().info("redis: " + std::to_string(loaded) + " retained message(s) loaded");
    return true;
  }

  void receive(redisContext* c) {
    while (!stopping_) {
      void* reply = nullptr;
      if (redisGetReplyFromReader(c, &reply) != REDIS_OK) break;
      if (!reply) {
        pollfd p{c->fd, POLLIN, 0};
        const int n = ::poll(&p, 1, 100);
        if (n < 0 && errno != EINTR) break;
        if (n > 0 && redisBufferRead(c) != REDIS_OK) break;
        continue;
      }
      Reply r(static_cast<redisReply*>(reply));
      // ["message", channel, frame]
      if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
          r->element[2]->type == REDIS_REPLY_STRING) {
        BrokerId origin;
        std::string_view entries;
        if (!split_batch(std::string_view(r->element[2]->str, r->element[2]->len), origin,
                         entries) ||
            origin == id_)  // our own, already delivered here
          continue;
        if (!for_each_batch_entry(entries, [this](std::string_view frame) { deliver(frame); }))
          host().debug("redis: a message batch was cut short");
      }
    }
    if (!stopping_) warn_once(receiver_link_, "lost " + settings_.where() + ": " + c->errstr);
  }

  // A frame from Redis; true when a message was handed to the broker.
  bool deliver(std::string_view bytes) {
    Frame f;
    if (!decode_frame(bytes, f)) {
      host().debug("redis: skipped a frame this broker cannot read");
      return false;
    }
    ++received_;
    if (f.kind == Frame::kSessionStarted) {
      host().session_takeover(f.client_id, f.connected_at_ms);
      return false;
    }
    if (f.kind == Frame::kSessionStartedBy) {
      bb_session_start s{};
      s.struct_size = sizeof(s);
      s.may_take_over = f.may_take_over ? 1 : 0;
      s.client_id = sdk::str(f.client_id);
      s.connected_at_unix_ms = f.connected_at_ms;
      s.provider = sdk::str(f.provider);
      s.principal = sdk::str(f.principal);
      // Only a host that knows principals hears of them (ABI 1.3).
      if (host().session_takeover_as(s) == BB_E_UNSUPPORTED)
        host().session_takeover(f.client_id, f.connected_at_ms);
      return false;
    }
    bb_message m{};
    m.struct_size = sizeof(m);
    m.qos = f.qos;
    m.retain = f.retain;
    if (f.expires_at_ms) {
      const uint64_t now = unix_ms();
      if (f.expires_at_ms <= now) return false;
      m.expiry_s = static_cast<uint32_t>((f.expires_at_ms - now + 999) / 1000);
    }
    m.topic = sdk::str(f.topic);
    m.payload = sdk::bytes(f.payload);
    m.properties = sdk::bytes(f.properties);
    if (host().publish_routed(m) != BB_OK) {
      host().warn("redis: a message for '" + std::string(f.topic) +
                  "' was refused: " + host().last_error());
      return false;
    }
    return true;
  }

  static const bb_message_tap kTap;

  Settings settings_;
  BrokerId id_{};
  std::unique_ptr<Outbox> outbox_;  // made in configure(), from the settings
  std::thread sender_, receiver_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> ready_{false};
  Link sender_link_{"sender"}, receiver_link_{"receiver"};
  std::atomic<uint64_t> sent_{0}, received_{0}, dropped_{0};
};

const bb_message_tap RedisModule::kTap{sizeof(bb_message_tap), 0, &RedisModule::on_message,
                                       &RedisModule::on_session_started,
                                       &RedisModule::on_session_started_as};

}  // namespace
}  // namespace backbone::modules::redis

BACKBONE_MODULE(backbone::modules::redis::RedisModule, "redis", "1.0.0", BB_KIND_CLUSTER, 0)
