// SPDX-License-Identifier: GPL-3.0-or-later
#pragma once

// The resource logic of the k8s module, apart from any I/O: what the
// reflectors report (Clients, Topics, Secrets) becomes topic rules and
// principal updates in the broker (through BrokerSink), an index of token
// hashes for the `k8s` authenticator, and the writes the cluster needs
// (Secrets with tokens, status conditions), planned one step at a time for
// the reconcile worker.
//
// Threads: replace()/apply() run on the reflector threads, authenticate() on
// kernel workers, next_action()/action_done() on the reconcile worker; all
// may run concurrently. Host calls are made with the state lock held, which
// the ABI allows (the host never calls back synchronously).

#include <backbone/module_abi.h>
#include <backbone/statements.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/kube/kube_http.hpp"
#include "common/kube/reflector.hpp"
#include "conditions.hpp"

namespace backbone::modules::k8s {

// Client.spec.statements, flattened (SPEC §6).
using Statement = sdk::Statement;

// What the controller asks of the broker (the host API in the module).
class BrokerSink {
 public:
  virtual ~BrokerSink() = default;
  // Applies (`json` set) or removes (null) topic rule `name`. BB_E_INVALID
  // with `error` set when the broker refuses the rule.
  virtual int32_t submit_topic(const std::string& name, const std::string* json,
                               std::string& error) = 0;
  // New statements for the live sessions of `principal`; null revokes
  // (disconnects) them. BB_E_INVALID with `error` when refused.
  virtual int32_t update_principal(const std::string& principal,
                                   const std::vector<Statement>* statements,
                                   std::string& error) = 0;
  // New quotas for the live sessions of `principal` (null: the broker's
  // defaults). Hosts before ABI 1.3 have none: then nothing happens.
  virtual void update_quotas(const std::string& principal, const bb_quotas* quotas) {
    (void)principal;
    (void)quotas;
  }
  virtual void log(int level, const std::string& message) = 0;
};

// A fresh Client token: the text the MQTT client sends as its password.
using TokenGenerator = std::function<std::string()>;
// 32 random bytes (OpenSSL) as base64url text: 43 characters.
std::string random_token();

std::string sha256(std::string_view data);

struct AuthDecision {
  int32_t verdict = 0;  // BB_AUTH_ALLOW, BB_AUTH_DENY, BB_AUTH_FORBIDDEN
  std::string principal;
  std::shared_ptr<const std::vector<Statement>> statements;
  std::optional<bb_quotas> quotas;  // spec.quotas
  std::string reason;               // for the log only
};

// One write to the cluster. `body` may hold a token: never log it.
struct Action {
  enum class Kind { kNone, kCreateSecret, kSetSecretToken, kPatchStatus };
  Kind kind = Kind::kNone;
  std::string method;
  std::string path;
  std::string body;
  std::string content_type;
  std::string description;  // for the log: what and which object
  // kPatchStatus: what was written and to which version of the object.
  std::string fingerprint;
  std::string resource_version;
  // kCreateSecret: the Client must still exist with this uid: a list of
  // `verify_path` (a field selector on the name; list is a right the module
  // has anyway) must hold it. Our view of Clients may lag (a watch being
  // re-established): a Secret owned by a deleted Client would be
  // garbage-collected at once, and made again, in a loop.
  std::string verify_path;
  std::string verify_uid;
};

// What the worker does with a key after an action.
enum class Next { kContinue, kRetryLater, kDone };

class Controller final : public ReflectorHandler {
 public:
  // `dirty` queues a key ("clients/ns/name", "topics/ns/name") for the
  // worker; `all_synced` runs once, when `expected_syncs` reflectors have
  // synced.
  Controller(BrokerSink& sink, std::function<void(const std::string& key)> dirty,
             size_t expected_syncs, std::function<void()> all_synced,
             TokenGenerator tokens = random_token);

  // ReflectorHandler
  void replace(const ResourceType& type, const std::string& scope,
               std::vector<nlohmann::json> items) override;
  void apply(const ResourceType& type, EventType event, const nlohmann::json& object) override;
  void synced(const ResourceType& type, const std::string& scope) override;

  bool is_synced() const { return synced_.load(); }

  // The Client a password belongs to. Thread: any.
  AuthDecision authenticate(std::string_view password) const;

  // The next write `key` needs (kind kNone: nothing). Thread: the worker.
  Action next_action(const std::string& key);
  // Feeds the outcome of `action` back into the state.
  Next action_done(const std::string& key, const Action& action, const HttpResponse& response);

  // The queue keys of every Client and Topic: a replica that becomes the
  // leader reconciles them all once (it wrote nothing as a follower).
  std::vector<std::string> queue_keys() const;

  // For tests and logs.
  size_t client_count() const;
  size_t topic_count() const;

 private:
  struct ClientState {
    ObjectMeta meta;
    nlohmann::json status;
    bool valid = false;
    std::string error;                                         // why the spec is invalid
    std::shared_ptr<const std::vector<Statement>> statements;  // valid only
    std::optional<std::vector<Statement>> applied;             // accepted by the broker last
    std::optional<std::vector<Statement>> refused;             // refused by the broker last
    std::string secret_error;                                  // the last failed Secret write
    bool secret_blocked = false;      // that failure was permanent: wait for a change
    std::string duplicate_of;         // a Client with the same token
    std::optional<bb_quotas> quotas;  // spec.quotas (valid only)
    nlohmann::json quotas_json;       // as given: changes reach live sessions
  };
  struct SecretState {
    std::string uid;
    std::string owner_uid;  // the controlling Client's uid; empty = unowned
    std::optional<std::string> token_hash;
  };
  struct TopicState {
    ObjectMeta meta;
    nlohmann::json status;
    std::string submitted;  // the JSON last handed to the broker
    bool ok = false;
    std::string error;
    size_t patterns = 0;
  };
  struct Written {
    std::string fingerprint;
    std::string resource_version;
  };
  struct AuthEntry {
    std::string principal;
    bool valid = false;
    std::shared_ptr<const std::vector<Statement>> statements;
    std::optional<bb_quotas> quotas;
    std::string reason;
  };
  using AuthIndex = std::unordered_map<std::string, AuthEntry>;

  // All below: caller holds mutex_.
  void upsert_client(const nlohmann::json& object);
  void remove_client(const std::string& key);
  void upsert_secret(const nlohmann::json& object);
  void remove_secret(const std::string& key);
  void upsert_topic(const nlohmann::json& object);
  void remove_topic(const std::string& key);
  // The token hash that logs in as Client `key`, if any.
  std::optional<std::string> client_token(const std::string& key, const ClientState& c) const;
  void revoke(const std::string& key, const std::string& why);
  void rebuild_index();
  void mark(const std::string& prefix, const std::string& key);
  ReadyCondition client_condition(const std::string& key, const ClientState& c) const;
  ReadyCondition topic_condition(const TopicState& t) const;
  std::optional<Action> status_action(const std::string& queue_key, const ResourceType& type,
                                      const ObjectMeta& meta, const nlohmann::json& status,
                                      const ReadyCondition& want);

  BrokerSink& sink_;
  std::function<void(const std::string&)> dirty_;
  size_t expected_syncs_;
  std::function<void()> all_synced_;
  TokenGenerator tokens_;

  mutable std::mutex mutex_;
  std::map<std::string, ClientState> clients_;                    // "ns/name"
  std::map<std::string, SecretState> secrets_;                    // "ns/<client>-secret"
  std::map<std::string, TopicState> topics_;                      // "ns/name"
  std::map<std::string, Written> written_;                        // queue key → last status write
  std::vector<std::pair<std::string, std::string>> revocations_;  // (client, why), see revoke()
  std::set<std::string> warned_;                                  // one-time warnings
  size_t syncs_ = 0;
  std::atomic<bool> synced_{false};

  mutable std::mutex index_mutex_;  // guards the pointer only
  std::shared_ptr<const AuthIndex> index_;
};

}  // namespace backbone::modules::k8s
