// SPDX-License-Identifier: GPL-3.0-or-later
// The `redis` cluster module (SPEC §10): brokers that name the same Redis
// server and prefix act as one broker towards their clients.
//  - Every message a broker accepts (after its authorization and topic rules)
//    is appended to one Redis stream; every broker reads it through its own
//    consumer group, delivers what the others wrote to its subscribers (each
//    checked for mqtt:read) and acknowledges (XACK) an entry only once what
//    it delivered is durable here: QoS 1/2 at least once across brokers.
//  - A publisher's acknowledgement waits for the stream to take the message.
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

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "frame.hpp"
#include "outbox.hpp"
#include "resp.hpp"
#include "sentinel.hpp"
#include "settings.hpp"
#include "shared_groups.hpp"

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
    if (settings_.node.empty() && !node_from_state_dir(settings_.node)) return BB_E_INTERNAL;
    names_ = StreamNames{settings_.stream(), settings_.node, settings_.stream_max_entries,
                         // Redis answers WAIT before the connection's own
                         // timeout gives up on the reply.
                         settings_.wait_replicas, std::max(settings_.timeout_ms / 2, 1u)};
    outbox_ =
        std::make_unique<Outbox>(settings_.retained_key(), settings_.shared_key(settings_.node));
    shared_ = std::make_unique<SharedGroups>(settings_.node, settings_.shared_strategy);
    std::random_device random;
    for (auto& b : id_) b = static_cast<uint8_t>(random());
    return host().register_message_tap(kTap, this);
  }

  bb_status start() override {
    host().info("sharing messages through redis at " + settings_.where() + " (prefix '" +
                settings_.prefix + "', node '" + settings_.node + "')");
    if (!host().has_durable_routing())
      host().warn(
          "redis: this broker's module ABI has no held acknowledgements (needs 1.5): "
          "messages cross brokers at most once");
    sender_ = std::thread([this] { send_loop(); });
    receiver_ = std::thread([this] { read_loop(); });
    return BB_PENDING;  // ready once the retained messages are loaded
  }

  void stop() override {
    if (stopping_.exchange(true)) return;
    if (outbox_) outbox_->interrupt();
    if (receiver_.joinable()) receiver_.join();
    if (sender_.joinable()) sender_.join();
    host().info("redis: " + std::to_string(sent_.load()) + " frame(s) sent, " +
                std::to_string(received_.load()) + " received, " + std::to_string(dropped_.load()) +
                " dropped, " + std::to_string(redelivered_.load()) + " entries read again");
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

  // This broker's name in the cluster (its consumer group), kept in the state
  // directory so that a restarted broker reads on where it stopped; random
  // per start without one.
  bool node_from_state_dir(std::string& node) const {
    if (const std::optional<std::string> dir = host().state_path()) {
      const std::string path = *dir + "/node";
      std::ifstream in(path);
      if (in && std::getline(in, node) && !node.empty() && node.size() <= 128) return true;
      node = "node-" + random_hex(8);
      std::ofstream out(path, std::ios::trunc);
      if (!(out << node << "\n") || !out.flush()) {
        host().error("redis: cannot write " + path);
        return false;
      }
      return true;
    }
    node = "node-" + random_hex(8);
    host().info("redis: no state directory: node '" + node +
                "' reads the stream from now on after each restart (set 'node' to keep it)");
    return true;
  }

  static std::string random_hex(size_t bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::random_device random;
    std::string out;
    for (size_t i = 0; i < bytes; ++i) {
      const auto b = static_cast<uint8_t>(random());
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
    return out;
  }

  // --- the tap: broker workers, per message ---

  static void on_message(void* user, const bb_message* m) noexcept { on_held(user, m, 0); }

  // QoS 1/2 from a client: its acknowledgement waits until the stream took
  // the message (released by the sender), or Redis is found away.
  static void on_held(void* user, const bb_message* m, bb_ack_hold hold) noexcept {
    auto* self = static_cast<RedisModule*>(user);
    const std::string_view topic = sdk::view(m->topic);
    if (topic.starts_with("$SYS/")) {  // each broker's own
      self->release(hold);
      return;
    }
    Frame f;
    f.qos = m->qos;
    f.retain = m->retain != 0;
    f.expires_at_ms = m->expiry_s ? unix_ms() + uint64_t{m->expiry_s} * 1000 : 0;
    f.topic = topic;
    if (BB_HAS(m, bb_message, properties)) f.properties = sdk::view(m->properties);
    f.payload = sdk::view(m->payload);
    // Shared groups: one broker serves each; the kernel asks shared_here next.
    thread_local std::string assignments;
    assignments.clear();
    if (self->shared_->empty()) {
      SharedGroups::no_choice();
    } else {
      self->shared_->choose(topic, assignments);
      if (!assignments.empty()) {
        f.kind = Frame::kMessageShared;
        f.assignments = assignments;
        self->shared_chosen_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    // While Redis is away the message waits in the outbox, its publisher does not.
    if (hold != 0 && !self->sender_link_.connected) {
      self->release(hold);
      hold = 0;
    }
    self->enqueue(f, hold);
  }

  static int32_t on_shared_here(void*, const bb_message*, bb_str group, bb_str filter) noexcept {
    return SharedGroups::served_here(sdk::view(group), sdk::view(filter)) ? 1 : 0;
  }

  // This broker's online members of a shared group changed: the others hear
  // of it through the stream, and its hash in Redis keeps it for brokers
  // joining later.
  static void on_shared_members(void* user, bb_str group, bb_str filter, uint32_t online) noexcept {
    auto* self = static_cast<RedisModule*>(user);
    try {
      const std::string group_filter =
          std::string(sdk::view(group)) + "/" + std::string(sdk::view(filter));
      self->shared_->set(self->settings_.node, group_filter, online);
      Frame f;
      f.kind = Frame::kSharedMembers;
      f.node = self->settings_.node;
      f.group_filter = group_filter;
      f.online = online;
      self->enqueue(f);
    } catch (...) {  // out of memory: the others learn of it on their next join
    }
  }

  void release(bb_ack_hold hold) noexcept {
    if (hold != 0) host().ack_release(hold);
  }
  void release(std::vector<bb_ack_hold>& holds) noexcept {
    for (bb_ack_hold h : holds) host().ack_release(h);
    holds.clear();
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

  void enqueue(const Frame& f, bb_ack_hold hold = 0) noexcept {
    try {
      if (outbox_->push(f, settings_.max_pending_bytes, hold)) return;
    } catch (...) {  // out of memory: dropped like an overflow
    }
    release(hold);
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
    // With sentinels (this link's thread only): the master connected to,
    // the sentinel that answered last, and when the master was last checked.
    Endpoint master{};
    size_t sentinel = 0;
    Clock::time_point checked{};
  };

  Context connect(Link& link) {
    const timeval tv = to_timeval(settings_.timeout_ms);
    Endpoint at{settings_.host, settings_.port};
    if (!settings_.sentinels.empty()) {  // the master now, by the sentinels
      std::string error;
      std::optional<Endpoint> master = ask_sentinels(settings_, link.sentinel, error);
      if (!master) {
        warn_once(link, error);
        return nullptr;
      }
      at = link.master = std::move(*master);
      link.checked = Clock::now();
    }
    Context c(redisConnectWithTimeout(at.host.c_str(), at.port, tv));
    if (!c || c->err) {
      warn_once(link, std::string("cannot connect to ") + at.where() + ": " +
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
        warn_once(link, std::string("authentication refused by ") + at.where());
        return nullptr;
      }
    }
    // A demoted master still up after a failover: ask the sentinels again
    // after the back-off (they may not have switched yet, or it came back).
    if (std::string error; !settings_.sentinels.empty() && !is_master(c.get(), error)) {
      warn_once(link, at.where() + " (named by a sentinel): " + error);
      return nullptr;
    }
    return c;
  }

  // With sentinels, at most once a second: true (after a warning) when the
  // sentinel that answered last names another master than the one `link`
  // is connected to. Between a failover and the old master's demotion (or
  // for as long as it is cut off) the old master still takes writes that no
  // other broker reads. A sentinel that does not answer changes nothing.
  bool master_moved(Link& link) {
    if (settings_.sentinels.empty() || Clock::now() - link.checked < std::chrono::seconds(1))
      return false;
    link.checked = Clock::now();
    Settings one = settings_;
    one.sentinels = {settings_.sentinels[link.sentinel]};
    size_t first = 0;
    std::string error;
    const std::optional<Endpoint> master = ask_sentinels(one, first, error);
    if (!master) {
      link.sentinel = (link.sentinel + 1) % settings_.sentinels.size();
      return false;
    }
    if (*master == link.master) return false;
    warn_once(link, "master '" + settings_.master_name + "' moved from " + link.master.where() +
                        " to " + master->where());
    return true;
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
      host().info(std::string("redis ") + link.role + ": connected to " +
                  (settings_.sentinels.empty() ? settings_.where()
                                               : link.master.where() + " (master '" +
                                                     settings_.master_name + "' via sentinel)"));
  }

  // Sleeps `backoff` ms (less when stopping), then doubles it up to 2 s.
  void back_off(uint32_t& backoff) {
    const auto until = Clock::now() + std::chrono::milliseconds(backoff);
    backoff = std::min(backoff * 2, 2000u);
    while (!stopping_ && Clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // Writes what the outbox holds and reads the replies; releases the holds
  // of what Redis took. What it did not take (Redis lost meanwhile) is
  // written again once reconnected.
  void send_loop() {
    Context c;
    Batch batch, retry;
    std::string commands;
    std::vector<bb_ack_hold> waiting;
    uint32_t backoff = 100;
    auto reported = Clock::now() - std::chrono::seconds(1);
    for (;;) {
      const bool last = stopping_;  // one more round after stop: wills, final messages
      if (Clock::now() - reported >= std::chrono::seconds(1)) {
        report_metrics();
        reported = Clock::now();
      }
      if (c && master_moved(sender_link_)) c.reset();
      if (!c) {
        // Publishers do not wait for a Redis that is away.
        outbox_->take_holds(waiting);
        release(waiting);
        release(retry.holds);
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
                    std::chrono::microseconds(last || batch.empty() ? 0 : 50));
      if (!retry.empty()) {
        retry.append(batch);
        std::swap(batch, retry);
        retry.clear();
      }
      if (batch.empty()) {
        if (last) break;
        continue;
      }
      const size_t replies = to_commands(batch, names_, id_, commands);
      bool ok = redisAppendFormattedCommand(c.get(), commands.data(), commands.size()) == REDIS_OK;
      std::string lost;  // an error reply that means the master is gone (failover)
      for (size_t i = 0; i < replies && ok; ++i) {
        void* reply = nullptr;
        ok = redisGetReply(c.get(), &reply) == REDIS_OK;
        Reply r(static_cast<redisReply*>(reply));
        if (ok && r->type == REDIS_REPLY_ERROR && master_lost(std::string_view(r->str, r->len))) {
          ok = false;
          lost.assign(r->str, r->len);
        } else if (ok) {
          check_reply(r.get());
          if (names_.wait_replicas > 0 && i + 1 == replies) check_replicated(r.get());
        }
      }
      if (!ok) {
        warn_once(sender_link_,
                  "lost " + settings_.where() + ": " + (lost.empty() ? c->errstr : lost));
        c.reset();
        release(batch.holds);
        if (batch.frames.size() + batch.hash_commands.size() <= settings_.max_pending_bytes) {
          std::swap(retry, batch);  // Redis may have taken some: QoS 1 allows the duplicates
        } else {
          dropped_ += batch.count;
        }
        continue;
      }
      release(batch.holds);
      sent_ += batch.count;
      if (last) break;
    }
    report_metrics();
  }

  // An error reply (a command, or one inside EXEC): the frames it names are
  // lost (a key of the wrong type, Redis out of memory); said once a minute.
  void check_reply(const redisReply* r) {
    bool failed = r->type == REDIS_REPLY_ERROR;
    std::string why = failed ? std::string(r->str, r->len) : "";
    if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) {
        if (r->element[i]->type == REDIS_REPLY_ERROR) {
          failed = true;
          why.assign(r->element[i]->str, r->element[i]->len);
        }
      }
    }
    if (!failed) return;
    ++command_errors_;
    const auto now = Clock::now();
    if (now - last_command_warning_ >= std::chrono::minutes(1)) {
      last_command_warning_ = now;
      host().warn("redis: a command failed: " + sdk::printable_key(why));
    }
  }

  // WAIT's reply: how many replicas have the batch. Fewer than asked (a
  // replica down or slow): acknowledged anyway, counted, said once a minute.
  void check_replicated(const redisReply* r) {
    if (r->type == REDIS_REPLY_INTEGER && r->integer >= int64_t{names_.wait_replicas}) return;
    ++unreplicated_;
    const auto now = Clock::now();
    if (now - last_replica_warning_ >= std::chrono::minutes(1)) {
      last_replica_warning_ = now;
      host().warn("redis: a batch reached " +
                  (r->type == REDIS_REPLY_INTEGER ? std::to_string(r->integer) : "no") +
                  " replica(s) within " + std::to_string(names_.wait_timeout_ms) + " ms (" +
                  std::to_string(names_.wait_replicas) + " wanted): a failover now could lose it");
    }
  }

  // /metrics: backbone_redis_*.
  void report_metrics() {
    auto set = [this](const char* name, const char* help, int32_t kind, double value) {
      host().metric_set(name, help, kind, value);  // a host before ABI 1.2 has no metrics
    };
    set("frames_sent_total", "Frames (messages, session starts) written to the stream.",
        BB_METRIC_COUNTER, static_cast<double>(sent_.load()));
    set("frames_received_total", "Frames read from the other brokers.", BB_METRIC_COUNTER,
        static_cast<double>(received_.load()));
    set("frames_dropped_total", "Frames not sent: outbox full, or Redis lost too long.",
        BB_METRIC_COUNTER, static_cast<double>(dropped_.load()));
    set("unreplicated_batches_total",
        "Batches acknowledged before wait_replicas replicas had them.", BB_METRIC_COUNTER,
        static_cast<double>(unreplicated_.load()));
    set("command_errors_total", "Redis commands that failed (their frames are lost).",
        BB_METRIC_COUNTER, static_cast<double>(command_errors_.load()));
    set("entries_redelivered_total",
        "Stream entries read again after a restart or reconnection (possible duplicates).",
        BB_METRIC_COUNTER, static_cast<double>(redelivered_.load()));
    set("entries_skipped_total", "Stream entries this broker cannot read (skipped, acknowledged).",
        BB_METRIC_COUNTER, static_cast<double>(skipped_.load()));
    set("shared_chosen_total",
        "Messages accepted here that matched shared groups of the cluster (a broker chosen for "
        "each group).",
        BB_METRIC_COUNTER, static_cast<double>(shared_chosen_.load()));
    set("shared_served_total",
        "Shared group deliveries this broker made for messages from other brokers.",
        BB_METRIC_COUNTER, static_cast<double>(shared_served_.load()));
    set("sender_connected", "1 while the sender's Redis connection is up.", BB_METRIC_GAUGE,
        sender_link_.connected ? 1 : 0);
    set("receiver_connected", "1 while the reader is in its consumer group and delivering.",
        BB_METRIC_GAUGE, receiver_link_.connected ? 1 : 0);
    set("members", "Brokers of the cluster seen in the last 10 s (this one included).",
        BB_METRIC_GAUGE, static_cast<double>(members_.load()));
    set("stream_pending", "Entries read by this broker and not yet acknowledged.", BB_METRIC_GAUGE,
        static_cast<double>(stream_pending_.load()));
    set("stream_lag", "Entries of the stream this broker has not read yet.", BB_METRIC_GAUGE,
        static_cast<double>(stream_lag_.load()));
  }

  // --- the stream (the reader thread) ---

  enum class Read { kEntries, kNone, kNoGroup, kLost };

  // Joins the consumer group, loads the retained messages (once), reads the
  // entries left unacknowledged by an earlier run or connection, catches up
  // and then reads what the others write until stopped; starts over after
  // losing Redis.
  void read_loop() {
    uint32_t backoff = 100;
    bool joined_before = false;
    while (!stopping_) {
      Context c = connect(receiver_link_);
      if (!c) {
        back_off(backoff);
        continue;
      }
      // A new broker starts at the stream's end (no history); one whose group
      // Redis lost (a restart without persistence, a failover to a replica
      // that had not seen it) reads all the stream holds: it is all newer.
      if (!heartbeat(c.get()) || !join(c.get(), joined_before ? "0" : "$") ||
          !sync_shared_groups(c.get()) || (!ready_ && !load_retained(c.get()))) {
        back_off(backoff);
        continue;
      }
      joined_before = true;
      Read r = read_pending(c.get());
      if (r == Read::kLost) {
        back_off(backoff);
        continue;
      }
      backoff = 100;
      up(receiver_link_);
      auto maintained = Clock::now();
      while (!stopping_ && r != Read::kLost && r != Read::kNoGroup) {
        if (Clock::now() - maintained >= std::chrono::seconds(1)) {
          if (!maintain(c.get())) break;
          maintained = Clock::now();
        }
        if (master_moved(receiver_link_)) break;
        // Not blocking until caught up: ready once nothing is left.
        r = read_new(c.get(), ready_ ? 100 : -1);
        if (r == Read::kNone && !ready_.exchange(true)) host().ready();
      }
      if (r == Read::kNoGroup) {
        host().warn("redis: this broker's consumer group is gone from " + settings_.where() +
                    " (Redis restarted empty or failed over): joining again");
        delivered_.clear();
        delivered_order_.clear();
      } else if (!stopping_) {
        warn_once(receiver_link_, "lost " + settings_.where() + ": " + c->errstr);
      }
    }
  }

  bool join(redisContext* c, const char* from) {
    Reply r = (Command() << "XGROUP"
                         << "CREATE" << names_.stream << names_.group << from << "MKSTREAM")
                  .run(c);
    if (!r) {
      warn_once(receiver_link_, "lost " + settings_.where() + ": " + c->errstr);
      return false;
    }
    if (r->type == REDIS_REPLY_ERROR &&
        !std::string_view(r->str, r->len).starts_with("BUSYGROUP")) {
      warn_once(receiver_link_, "cannot join the stream " + names_.stream + ": " +
                                    sdk::printable_key(std::string_view(r->str, r->len)));
      return false;
    }
    return true;
  }

  // Entries delivered to this broker before (it restarted, or lost its
  // connection) and not acknowledged: read again from the start of its list.
  Read read_pending(redisContext* c) {
    std::string after = "0";
    for (;;) {
      Reply r = (Command() << "XREADGROUP"
                           << "GROUP" << names_.group << names_.group << "COUNT"
                           << "256"
                           << "STREAMS" << names_.stream << after)
                    .run(c);
      const Read got = handle_read(c, r.get(), true, &after);
      if (got != Read::kEntries) return got == Read::kNone ? Read::kEntries : got;
    }
  }

  // New entries; `block_ms` < 0 does not wait.
  Read read_new(redisContext* c, int block_ms) {
    Command read;
    read << "XREADGROUP"
         << "GROUP" << names_.group << names_.group << "COUNT"
         << "256";
    const std::string block = std::to_string(block_ms);
    if (block_ms >= 0) read << "BLOCK" << block;
    read << "STREAMS" << names_.stream << ">";
    Reply r = read.run(c);
    return handle_read(c, r.get(), false, nullptr);
  }

  // [[stream, [[id, [field, value, ...]], ...]]] or nil (nothing new).
  Read handle_read(redisContext* c, const redisReply* r, bool pending, std::string* last_id) {
    if (!r) return Read::kLost;
    if (r->type == REDIS_REPLY_NIL) return Read::kNone;
    if (r->type == REDIS_REPLY_ERROR) {
      const std::string_view error(r->str, r->len);
      if (error.starts_with("NOGROUP")) return Read::kNoGroup;
      warn_once(receiver_link_, "reading the stream failed: " + sdk::printable_key(error));
      (void)c;
      return Read::kLost;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
        r->element[0]->type != REDIS_REPLY_ARRAY || r->element[0]->elements != 2 ||
        r->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
      return Read::kNone;
    const redisReply* entries = r->element[0]->element[1];
    if (entries->elements == 0) return Read::kNone;
    for (size_t i = 0; i < entries->elements; ++i) {
      const redisReply* e = entries->element[i];
      if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
          e->element[0]->type != REDIS_REPLY_STRING)
        continue;
      const std::string_view id(e->element[0]->str, e->element[0]->len);
      if (last_id) last_id->assign(id);
      handle_entry(id, e->element[1], pending);
    }
    return Read::kEntries;
  }

  // One stream entry: the frames of another broker's batch.
  void handle_entry(std::string_view id, const redisReply* fields, bool pending) {
    std::string_view batch;
    if (fields->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply* k = fields->element[i];
        const redisReply* v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && std::string_view(k->str, k->len) == kBatchField &&
            v->type == REDIS_REPLY_STRING)
          batch = std::string_view(v->str, v->len);
      }
    }
    // A pending entry the stream no longer holds (trimmed) has no fields.
    BrokerId origin;
    std::string_view frames;
    if (!split_batch(batch, origin, frames)) {
      if (fields->type == REDIS_REPLY_ARRAY) ++skipped_;
      outbox_->push_ack(id);
      return;
    }
    if (origin == id_) {  // our own, already delivered here
      outbox_->push_ack(id);
      return;
    }
    if (pending) {
      // Delivered before this connection was lost: only its XACK is missing.
      if (delivered_.contains(std::string(id))) {
        outbox_->push_ack(id);
        return;
      }
      ++redelivered_;
    }
    remember_delivered(id);
    // Acknowledged once every message of the batch is durable here: the
    // reader holds one reference until it has handed them all over.
    auto* entry = new Entry{this, std::string(id), 1};
    if (!for_each_batch_entry(frames, [&](std::string_view frame) { deliver(frame, entry); })) {
      ++skipped_;
      host().debug("redis: a message batch was cut short");
    }
    entry_done(entry);
  }

  struct Entry {
    RedisModule* self;
    std::string id;
    std::atomic<uint32_t> left;
  };
  static void entry_done(void* user) noexcept {
    auto* entry = static_cast<Entry*>(user);
    if (entry->left.fetch_sub(1) != 1) return;
    try {
      entry->self->outbox_->push_ack(entry->id);
    } catch (...) {  // out of memory: read again after the next restart
    }
    delete entry;
  }

  // Ids of entries delivered since start, so that reading the pending ones
  // again after a lost connection delivers none twice. Bounded.
  void remember_delivered(std::string_view id) {
    static constexpr size_t kRemembered = 65536;
    if (!delivered_.emplace(id).second) return;
    delivered_order_.emplace_back(id);
    if (delivered_order_.size() > kRemembered) {
      delivered_.erase(delivered_order_.front());
      delivered_order_.pop_front();
    }
  }

  // Every second: this broker's heartbeat, the members seen, its group's
  // pending entries and lag; false when Redis is lost.
  bool maintain(redisContext* c) {
    if (!heartbeat(c)) return false;
    Reply r = (Command() << "XINFO"
                         << "GROUPS" << names_.stream)
                  .run(c);
    if (!r) return false;
    if (r->type != REDIS_REPLY_ARRAY) return true;
    std::vector<std::string> others;
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* g = r->element[i];
      if (g->type != REDIS_REPLY_ARRAY) continue;
      bool ours = false;
      int64_t pending = 0, lag = 0;
      for (size_t j = 0; j + 1 < g->elements; j += 2) {
        const redisReply* k = g->element[j];
        const redisReply* v = g->element[j + 1];
        if (k->type != REDIS_REPLY_STRING) continue;
        const std::string_view key(k->str, k->len);
        if (key == "name" && v->type == REDIS_REPLY_STRING) {
          ours = std::string_view(v->str, v->len) == names_.group;
          if (!ours) others.emplace_back(v->str, v->len);
        } else if (key == "pending" && v->type == REDIS_REPLY_INTEGER)
          pending = v->integer;
        else if (key == "lag" && v->type == REDIS_REPLY_INTEGER)
          lag = v->integer;
      }
      if (ours) {
        stream_pending_ = static_cast<uint64_t>(std::max<int64_t>(pending, 0));
        stream_lag_ = static_cast<uint64_t>(std::max<int64_t>(lag, 0));
      }
    }
    if (Clock::now() - last_sweep_ >= std::chrono::minutes(1)) {
      last_sweep_ = Clock::now();
      return forget_gone_brokers(c, others);
    }
    return true;
  }

  // The consumer groups and shared-group hashes of brokers gone from the
  // members set (not seen for forget_after_s): a broker started without a
  // state directory gets a new name each time, and what its earlier runs
  // left would stay in Redis for ever.
  bool forget_gone_brokers(redisContext* c, const std::vector<std::string>& groups) {
    for (const std::string& node : groups) {
      Reply seen = (Command() << "ZSCORE" << settings_.members_key() << node).run(c);
      if (!seen) return false;
      if (seen->type != REDIS_REPLY_NIL) continue;
      (Command() << "XGROUP"
                 << "DESTROY" << names_.stream << node)
          .append_to(c);
      (Command() << "DEL" << settings_.shared_key(node)).append_to(c);
      for (int i = 0; i < 2; ++i) {
        void* reply = nullptr;
        if (redisGetReply(c, &reply) != REDIS_OK) return false;
        freeReplyObject(reply);
      }
      host().info("redis: forgot broker '" + sdk::printable_key(node) + "' (not seen for " +
                  std::to_string(settings_.forget_after_s) + " s)");
    }
    return true;
  }

  // Members are a sorted set scored by their last heartbeat: seen within
  // 10 s counts as alive; forgotten after forget_after_s.
  bool heartbeat(redisContext* c) {
    const std::string now = std::to_string(unix_ms());
    const std::string seen = std::to_string(unix_ms() - 10000);
    const std::string forgotten =
        std::to_string(unix_ms() - uint64_t{settings_.forget_after_s} * 1000);
    const std::string& key = settings_.members_key();
    (Command() << "ZADD" << key << now << names_.group).append_to(c);
    (Command() << "ZREMRANGEBYSCORE" << key << "-inf" << forgotten).append_to(c);
    (Command() << "ZRANGEBYSCORE" << key << seen << "+inf").append_to(c);
    for (int i = 0; i < 3; ++i) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK) return false;
      Reply r(static_cast<redisReply*>(reply));
      if (i == 2 && r->type == REDIS_REPLY_ARRAY) {
        std::vector<std::string> alive;
        for (size_t j = 0; j < r->elements; ++j) {
          if (r->element[j]->type == REDIS_REPLY_STRING)
            alive.emplace_back(r->element[j]->str, r->element[j]->len);
        }
        members_ = alive.size();
        shared_->set_alive(std::move(alive));
      }
    }
    return true;
  }

  // On joining: this broker's shared groups written again (Redis may have
  // lost them, or hold a dead run's), the other brokers' loaded.
  bool sync_shared_groups(redisContext* c) {
    const std::string own = settings_.shared_key(names_.group);
    Command write;
    const auto local = shared_->local();
    std::vector<std::string> counts;
    counts.reserve(local.size());
    (Command() << "DEL" << own).append_to(c);
    size_t replies = 1;
    if (!local.empty()) {
      write << "HSET" << own;
      for (const auto& [gf, online] : local) {
        counts.push_back(std::to_string(online));
        write << gf << counts.back();
      }
      write.append_to(c);
      ++replies;
    }
    for (size_t i = 0; i < replies; ++i) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK) return false;
      freeReplyObject(reply);
    }
    Reply nodes = (Command() << "ZRANGE" << settings_.members_key() << "0"
                             << "-1")
                      .run(c);
    if (!nodes) return false;
    if (nodes->type != REDIS_REPLY_ARRAY) return true;
    for (size_t i = 0; i < nodes->elements; ++i) {
      const redisReply* n = nodes->element[i];
      if (n->type != REDIS_REPLY_STRING) continue;
      const std::string_view node(n->str, n->len);
      if (node == names_.group) continue;
      Reply groups = (Command() << "HGETALL" << settings_.shared_key(node)).run(c);
      if (!groups) return false;
      if (groups->type != REDIS_REPLY_ARRAY) continue;  // garbage: skipped
      std::vector<std::pair<std::string, uint32_t>> entries;
      for (size_t j = 0; j + 1 < groups->elements; j += 2) {
        const redisReply* k = groups->element[j];
        const redisReply* v = groups->element[j + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) continue;
        uint32_t online = 0;
        const std::string_view text(v->str, v->len);
        if (std::from_chars(text.data(), text.data() + text.size(), online).ec != std::errc())
          continue;
        entries.emplace_back(std::string(k->str, k->len), online);
      }
      shared_->replace_node(node, entries);
    }
    return true;
  }

  bool load_retained(redisContext* c) {
    Reply r = (Command() << "HGETALL" << settings_.retained_key()).run(c);
    if (!r) {
      warn_once(receiver_link_, "lost " + settings_.where() + ": " + c->errstr);
      return false;
    }
    if (r->type != REDIS_REPLY_ARRAY) {
      // Garbage in the key: this broker starts with its own retained messages.
      host().warn("redis: cannot read the retained messages in " + settings_.retained_key() +
                  (r->type == REDIS_REPLY_ERROR
                       ? ": " + sdk::printable_key(std::string_view(r->str, r->len))
                       : std::string()));
      return true;
    }
    size_t loaded = 0;
    for (size_t i = 1; i < r->elements; i += 2) {
      const redisReply* v = r->element[i];
      if (v->type == REDIS_REPLY_STRING && deliver(std::string_view(v->str, v->len), nullptr))
        ++loaded;
    }
    host().info("redis: " + std::to_string(loaded) + " retained message(s) loaded");
    return true;
  }

  // A frame from Redis; true when a message was handed to the broker. With
  // an `entry`, it is acknowledged once the message is durable here.
  bool deliver(std::string_view bytes, Entry* entry) {
    Frame f;
    if (!decode_frame(bytes, f)) {
      ++skipped_;
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
    if (f.kind == Frame::kSharedMembers) {
      if (f.node != settings_.node) shared_->set(f.node, f.group_filter, f.online);
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
    // The publishing broker chose who serves each matching shared group: this
    // one serves those it was given, and none else.
    thread_local std::vector<bb_str> served;
    thread_local std::vector<std::string_view> served_views;
    thread_local std::vector<std::string> served_storage;
    served.clear();
    if (f.kind == Frame::kMessageShared && entry) {
      shared_->served_of(f.topic, f.assignments, served_views, served_storage);
      for (std::string_view gf : served_views) served.push_back(sdk::str(gf));
      shared_served_ += served.size();
      m.shared_listed = 1;
      m.shared_group_count = static_cast<uint32_t>(served.size());
      m.shared_groups = served.data();
    }
    bb_status status;
    if (entry) {
      entry->left.fetch_add(1);
      status = host().publish_routed_durable(m, &RedisModule::entry_done, entry);
      if (status == BB_E_UNSUPPORTED) status = host().publish_routed(m);
      if (status != BB_OK) entry->left.fetch_sub(1);  // `done` never comes
    } else {
      status = host().publish_routed(m);
    }
    if (status != BB_OK) {
      host().warn("redis: a message for '" + sdk::printable_key(f.topic) +
                  "' was refused: " + host().last_error());
      return false;
    }
    return true;
  }

  static const bb_message_tap kTap;

  Settings settings_;
  StreamNames names_;
  BrokerId id_{};  // random per start: a restarted broker reads what it wrote before

  std::unique_ptr<Outbox> outbox_;  // made in configure(), from the settings
  std::unique_ptr<SharedGroups> shared_;
  std::thread sender_, receiver_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> ready_{false};
  Link sender_link_{"sender"}, receiver_link_{"receiver"};
  std::atomic<uint64_t> sent_{0}, received_{0}, dropped_{0}, command_errors_{0};
  std::atomic<uint64_t> redelivered_{0}, skipped_{0}, shared_chosen_{0}, shared_served_{0};
  std::atomic<uint64_t> members_{0}, stream_pending_{0}, stream_lag_{0};
  Clock::time_point last_command_warning_{};
  Clock::time_point last_replica_warning_{};  // the sender's
  std::atomic<uint64_t> unreplicated_{0};
  Clock::time_point last_sweep_{};             // the reader's
  std::unordered_set<std::string> delivered_;  // the reader's
  std::deque<std::string> delivered_order_;
};

const bb_message_tap RedisModule::kTap{sizeof(bb_message_tap),
                                       0,
                                       &RedisModule::on_message,
                                       &RedisModule::on_session_started,
                                       &RedisModule::on_session_started_as,
                                       &RedisModule::on_held,
                                       &RedisModule::on_shared_members,
                                       &RedisModule::on_shared_here};

}  // namespace
}  // namespace backbone::modules::redis

BACKBONE_MODULE(backbone::modules::redis::RedisModule, "redis", "1.0.0", BB_KIND_CLUSTER, 0)
