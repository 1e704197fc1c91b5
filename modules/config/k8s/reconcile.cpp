// SPDX-License-Identifier: GPL-3.0-or-later
// The reconcile half of the controller: which write the cluster needs next
// (a Client's token Secret, a status condition) and what its answer means.
#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <backbone/json.hpp>

#include "common/base64/base64.hpp"
#include "common/kube/api_paths.hpp"
#include "controller.hpp"
#include "controller_keys.hpp"

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

bool transient(int status) {
  return status == 0 || status == 429 || status >= 500;
}

}  // namespace

// ---- reconcile ----

void Controller::mark(const std::string& prefix, const std::string& key) {
  if (dirty_) dirty_(prefix + key);
}

ReadyCondition Controller::client_condition(const std::string& key, const ClientState& c) const {
  const std::string secret = c.meta.name + std::string(kSecretSuffix);
  ReadyCondition r;
  r.generation = c.meta.generation;
  r.extra = Json{{"secretName", secret}};
  auto s = secrets_.find(key + std::string(kSecretSuffix));
  if (!c.valid) {
    r.reason = "InvalidSpec";
    r.message = c.error;
  } else if (!c.duplicate_of.empty()) {
    r.reason = "DuplicateToken";
    r.message = "Secret '" + secret + "' holds the same token as Client " + c.duplicate_of +
                "; neither logs in";
  } else if (client_token(key, c)) {
    r.ready = true;
    r.reason = "Ready";
    r.message = std::to_string(c.statements->size()) + " statement(s) in force; token in Secret '" +
                secret + "'";
  } else if (s != secrets_.end() && !s->second.owner_uid.empty() &&
             s->second.owner_uid != c.meta.uid) {
    r.reason = "SecretConflict";
    r.message = "Secret '" + secret + "' is controlled by another owner; waiting for it to go away";
  } else if (!c.secret_error.empty()) {
    r.reason = "SecretError";
    r.message = c.secret_error;
  } else {
    r.reason = "SecretPending";
    r.message = "waiting for Secret '" + secret + "'";
  }
  return r;
}

ReadyCondition Controller::topic_condition(const TopicState& t) const {
  ReadyCondition r;
  r.generation = t.meta.generation;
  r.ready = t.ok;
  r.reason = t.ok ? "Applied" : "InvalidSpec";
  r.message = t.ok ? std::to_string(t.patterns) + " pattern(s) in force" : t.error;
  return r;
}

std::optional<Action> Controller::status_action(const std::string& queue_key,
                                                const ResourceType& type, const ObjectMeta& meta,
                                                const Json& status, const ReadyCondition& want) {
  std::optional<Json> patch = status_patch(status, want, rfc3339(std::chrono::system_clock::now()));
  if (!patch) return std::nullopt;
  const std::string fingerprint = want.fingerprint();
  auto w = written_.find(queue_key);
  if (w != written_.end() && w->second.fingerprint == fingerprint &&
      w->second.resource_version == meta.resource_version) {
    return std::nullopt;  // written; the echo of the write has not arrived yet
  }
  Action a;
  a.kind = Action::Kind::kPatchStatus;
  a.method = "PATCH";
  a.path = object_path(type, meta.ns, meta.name, "status");
  a.body = patch->dump();
  a.content_type = "application/merge-patch+json";
  a.description = "writing the status of " + std::string(type.kind) + " " + key_of(meta);
  a.fingerprint = fingerprint;
  a.resource_version = meta.resource_version;
  return a;
}

Action Controller::next_action(const std::string& queue_key) {
  std::lock_guard lock(mutex_);
  if (starts_with(queue_key, kTopicsPrefix)) {
    auto t = topics_.find(queue_key.substr(kTopicsPrefix.size()));
    if (t == topics_.end()) return {};
    return status_action(queue_key, kTopics, t->second.meta, t->second.status,
                         topic_condition(t->second))
        .value_or(Action{});
  }
  if (!starts_with(queue_key, kClientsPrefix)) return {};
  const std::string key = queue_key.substr(kClientsPrefix.size());
  auto it = clients_.find(key);
  if (it == clients_.end()) return {};
  const ClientState& c = it->second;
  const std::string secret_name = c.meta.name + std::string(kSecretSuffix);
  auto s = secrets_.find(key + std::string(kSecretSuffix));
  const bool ours =
      s != secrets_.end() && (s->second.owner_uid.empty() || s->second.owner_uid == c.meta.uid);
  if (!c.secret_blocked && (s == secrets_.end() || (ours && !s->second.token_hash))) {
    std::string token = tokens_();
    std::string encoded = base64_encode(token);
    OPENSSL_cleanse(token.data(), token.size());
    Action a;
    a.content_type = "application/json";
    if (s == secrets_.end()) {
      a.kind = Action::Kind::kCreateSecret;
      a.method = "POST";
      a.path = collection_path(kSecrets, c.meta.ns);
      a.description = "creating Secret " + c.meta.ns + "/" + secret_name;
      a.verify_path = collection_path(kClients, c.meta.ns) +
                      "?fieldSelector=" + percent_encode("metadata.name=" + c.meta.name);
      a.verify_uid = c.meta.uid;
      Json owner = {{"apiVersion", kClients.api_version()},
                    {"kind", kClients.kind},
                    {"name", c.meta.name},
                    {"uid", c.meta.uid},
                    {"controller", true},
                    {"blockOwnerDeletion", true}};
      Json secret = {{"apiVersion", "v1"},
                     {"kind", "Secret"},
                     {"metadata",
                      {{"name", secret_name},
                       {"namespace", c.meta.ns},
                       {"labels", {{"app.kubernetes.io/managed-by", "backbone"}}},
                       {"ownerReferences", Json::array({owner})}}},
                     {"type", "Opaque"},
                     {"data", {{"token", encoded}}}};
      a.body = secret.dump();
    } else {
      a.kind = Action::Kind::kSetSecretToken;
      a.method = "PATCH";
      a.path = object_path(kSecrets, c.meta.ns, secret_name);
      a.content_type = "application/merge-patch+json";
      a.description = "adding a token to Secret " + c.meta.ns + "/" + secret_name;
      a.body = Json{{"data", {{"token", encoded}}}}.dump();
    }
    OPENSSL_cleanse(encoded.data(), encoded.size());
    return a;
  }
  return status_action(queue_key, kClients, c.meta, c.status, client_condition(key, c))
      .value_or(Action{});
}

Next Controller::action_done(const std::string& queue_key, const Action& action,
                             const HttpResponse& r) {
  std::lock_guard lock(mutex_);
  if (action.kind == Action::Kind::kPatchStatus) {
    if (r.status == 200 || r.status == 201) {
      written_[queue_key] = Written{action.fingerprint, action.resource_version};
      return Next::kContinue;
    }
    if (transient(r.status) || r.status == 409) {
      sink_.log(BB_LOG_WARN, action.description + " failed: " + describe(r));
      return Next::kRetryLater;
    }
    // Not retried until the object changes: a 404 here usually means the
    // CRD has no status subresource.
    written_[queue_key] = Written{action.fingerprint, action.resource_version};
    const std::string once = "status " + std::to_string(r.status) + " " + queue_key;
    if (warned_.insert(once).second) {
      sink_.log(BB_LOG_WARN,
                action.description + " failed: " + describe(r) +
                    (r.status == 404 ? " (does the CRD have the status subresource?)" : ""));
    }
    return Next::kDone;
  }
  if (action.kind != Action::Kind::kCreateSecret && action.kind != Action::Kind::kSetSecretToken) {
    return Next::kDone;
  }
  const std::string key = queue_key.substr(kClientsPrefix.size());
  auto c = clients_.find(key);
  if (c == clients_.end()) return Next::kDone;
  if (r.status == 200 || r.status == 201) {
    c->second.secret_error.clear();
    c->second.secret_blocked = false;
    Json object = sdk::parse_json(r.body);
    const ObjectMeta m = meta_of(object);
    if (object.is_object() && key_of(m) == key + std::string(kSecretSuffix)) {
      // Known now rather than when the watch delivers it: the status can say
      // Ready in one write.
      upsert_secret(object);
      rebuild_index();
    }
    sink_.log(BB_LOG_INFO,
              "Client " + key + ": token stored in Secret " + key + std::string(kSecretSuffix));
    return Next::kContinue;
  }
  if (r.status == 409) {
    // It exists after all. Usually our watch just has not delivered it yet
    // (another replica made it): look again later. Twice in a row: it is
    // one we cannot see (not Opaque), which the status must say.
    const std::string why = "Secret " + key + std::string(kSecretSuffix) +
                            " exists but the broker does not see it (is its type Opaque?)";
    if (c->second.secret_error != why) {
      c->second.secret_error = why;
      return Next::kRetryLater;
    }
    sink_.log(BB_LOG_WARN, "Client " + key + ": " + why);
    c->second.secret_blocked = true;
    return Next::kContinue;
  }
  c->second.secret_error = action.description + " failed: " + describe(r);
  sink_.log(BB_LOG_WARN, "Client " + key + ": " + c->second.secret_error);
  // Transient errors come back with backoff; others wait for the next change
  // of the Client or its Secret (the status says why meanwhile).
  if (transient(r.status)) return Next::kRetryLater;
  c->second.secret_blocked = true;
  return Next::kContinue;
}

std::vector<std::string> Controller::queue_keys() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> keys;
  keys.reserve(clients_.size() + topics_.size());
  for (const auto& [key, c] : clients_) keys.push_back(std::string(kClientsPrefix) + key);
  for (const auto& [key, t] : topics_) keys.push_back(std::string(kTopicsPrefix) + key);
  return keys;
}

size_t Controller::client_count() const {
  std::lock_guard lock(mutex_);
  return clients_.size();
}

size_t Controller::topic_count() const {
  std::lock_guard lock(mutex_);
  return topics_.size();
}

}  // namespace backbone::modules::k8s
