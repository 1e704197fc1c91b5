// SPDX-License-Identifier: GPL-3.0-or-later
#include "controller.hpp"

#include <backbone/quotas.hpp>

#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <backbone/json.hpp>

#include <stdexcept>

#include "common/base64/base64.hpp"
#include "common/kube/api_paths.hpp"
#include "controller_keys.hpp"

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

constexpr size_t kTokenBytes = 32;

// The uid of the object's controlling owner, or "".
std::string controller_uid(const Json& object) {
  const Json* refs = nullptr;
  if (auto md = object.find("metadata"); md != object.end() && md->is_object()) {
    if (auto r = md->find("ownerReferences"); r != md->end() && r->is_array()) refs = &*r;
  }
  if (refs == nullptr) return {};
  for (const auto& ref : *refs) {
    if (ref.is_object() && ref.value("controller", false) == true) {
      const Json uid = ref.value("uid", Json());
      return uid.is_string() ? uid.get<std::string>() : std::string("?");
    }
  }
  return {};
}

}  // namespace

std::string random_token() {
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  std::string token =
      base64url_encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
  OPENSSL_cleanse(bytes, sizeof bytes);
  return token;
}

std::string sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  return std::string(reinterpret_cast<char*>(digest), len);
}

Controller::Controller(BrokerSink& sink, std::function<void(const std::string& key)> dirty,
                       size_t expected_syncs, std::function<void()> all_synced,
                       TokenGenerator tokens)
    : sink_(sink),
      dirty_(std::move(dirty)),
      expected_syncs_(expected_syncs),
      all_synced_(std::move(all_synced)),
      tokens_(std::move(tokens)),
      index_(std::make_shared<AuthIndex>()) {}

// ---- reflector events ----

void Controller::replace(const ResourceType& type, const std::string& scope,
                         std::vector<Json> items) {
  std::lock_guard lock(mutex_);
  const bool secrets = type.plural == kSecrets.plural;
  std::set<std::string> seen;
  for (const auto& item : items) {
    const ObjectMeta m = meta_of(item);
    if (secrets && !ends_with(m.name, kSecretSuffix)) continue;
    seen.insert(key_of(m));
  }
  auto in_scope = [&](const std::string& key) {
    return scope.empty() || starts_with(key, scope + "/");
  };
  std::vector<std::string> gone;
  auto collect = [&](const auto& map) {
    for (const auto& [key, state] : map) {
      if (in_scope(key) && !seen.count(key)) gone.push_back(key);
    }
  };
  if (type.plural == kClients.plural) {
    collect(clients_);
    for (const auto& key : gone) remove_client(key);
    for (const auto& item : items) upsert_client(item);
  } else if (type.plural == kTopics.plural) {
    collect(topics_);
    for (const auto& key : gone) remove_topic(key);
    for (const auto& item : items) upsert_topic(item);
  } else if (secrets) {
    collect(secrets_);
    for (const auto& key : gone) remove_secret(key);
    for (const auto& item : items) upsert_secret(item);
  }
  rebuild_index();
}

void Controller::apply(const ResourceType& type, EventType event, const Json& object) {
  std::lock_guard lock(mutex_);
  const ObjectMeta m = meta_of(object);
  const bool deleted = event == EventType::kDeleted;
  if (type.plural == kClients.plural) {
    deleted ? remove_client(key_of(m)) : upsert_client(object);
  } else if (type.plural == kTopics.plural) {
    deleted ? remove_topic(key_of(m)) : upsert_topic(object);
  } else if (type.plural == kSecrets.plural) {
    if (!ends_with(m.name, kSecretSuffix)) return;
    deleted ? remove_secret(key_of(m)) : upsert_secret(object);
  }
  rebuild_index();
}

void Controller::synced(const ResourceType&, const std::string&) {
  bool all = false;
  {
    std::lock_guard lock(mutex_);
    all = ++syncs_ == expected_syncs_;
  }
  if (all) {
    synced_ = true;
    if (all_synced_) all_synced_();
  }
}

// ---- Clients ----

void Controller::upsert_client(const Json& object) {
  const ObjectMeta meta = meta_of(object);
  const std::string key = key_of(meta);
  auto it = clients_.find(key);
  if (it != clients_.end() && it->second.meta.uid != meta.uid) {
    // Deleted and created again under the same name: nothing carries over.
    revoke(key, "Client recreated");
    clients_.erase(it);
    it = clients_.end();
  }
  const bool fresh = it == clients_.end();
  ClientState& c = clients_[key];
  const bool was_valid = c.valid;
  const std::string old_error = c.error;
  if (c.meta.resource_version != meta.resource_version) c.secret_blocked = false;
  c.meta = meta;
  c.status = object.value("status", Json());

  std::vector<Statement> parsed;
  std::string error;
  bool ok = false;
  auto spec = object.find("spec");
  if (spec == object.end() || !spec->is_object()) {
    error = "spec: missing or not an object";
  } else if (!spec->contains("statements")) {
    error = "spec.statements: missing";
  } else {
    ok = sdk::parse_statements((*spec)["statements"], "spec.statements", parsed, error);
  }
  std::optional<bb_quotas> quotas;
  Json quotas_json;
  if (ok && spec->contains("quotas")) {
    bb_quotas q{};
    quotas_json = (*spec)["quotas"];
    ok = sdk::parse_quotas(quotas_json, "spec.quotas", q, error);
    quotas = q;
  }

  bool changed = false;
  if (!ok) {
    c.valid = false;
    c.error = error;
    c.statements.reset();
  } else if (c.refused && *c.refused == parsed) {
    c.valid = false;  // the broker refused exactly these before
  } else if (!c.applied || *c.applied != parsed) {
    std::string why;
    const int32_t rc = sink_.update_principal(key, &parsed, why);
    if (rc == BB_E_INVALID) {
      c.refused = parsed;
      c.valid = false;
      c.error = "statements refused by the broker" + (why.empty() ? "" : ": " + why);
      c.statements.reset();
    } else {
      if (rc != BB_OK) {
        sink_.log(BB_LOG_WARN, "Client " + key + ": updating live sessions failed (status " +
                                   std::to_string(rc) + ")");
      }
      c.refused.reset();
      c.applied = parsed;
      c.valid = true;
      c.error.clear();
      c.statements = std::make_shared<const std::vector<Statement>>(std::move(parsed));
      changed = true;
    }
  } else {
    c.valid = true;
    c.error.clear();
    if (!c.statements) {
      c.statements = std::make_shared<const std::vector<Statement>>(std::move(parsed));
      changed = true;
    }
  }
  if (c.valid && c.quotas_json != quotas_json) {
    c.quotas = quotas;
    c.quotas_json = quotas_json;
    sink_.update_quotas(key, quotas ? &*quotas : nullptr);
    changed = true;
  }
  if (c.valid && (fresh || changed || !was_valid)) {
    sink_.log(BB_LOG_INFO, "Client " + key + ": " + std::to_string(c.statements->size()) +
                               " statement(s) in force");
  } else if (!c.valid && (fresh || was_valid || c.error != old_error)) {
    sink_.log(BB_LOG_WARN, "Client " + key + ": invalid spec, it authenticates nobody: " + c.error);
  }
  mark(std::string(kClientsPrefix), key);
}

void Controller::remove_client(const std::string& key) {
  auto it = clients_.find(key);
  if (it == clients_.end()) return;
  revoke(key, "Client deleted");
  clients_.erase(it);
  written_.erase(std::string(kClientsPrefix) + key);
  sink_.log(BB_LOG_INFO, "Client " + key + " deleted: its token no longer logs in");
}

// Sessions are cut by rebuild_index(), after the token is out of the index:
// cut first, a client reconnecting at once could still log in with it.
void Controller::revoke(const std::string& key, const std::string& why) {
  revocations_.emplace_back(key, why);
}

std::optional<std::string> Controller::client_token(const std::string& key,
                                                    const ClientState& c) const {
  auto s = secrets_.find(key + std::string(kSecretSuffix));
  if (s == secrets_.end() || !s->second.token_hash) return std::nullopt;
  if (!s->second.owner_uid.empty() && s->second.owner_uid != c.meta.uid) return std::nullopt;
  return s->second.token_hash;
}

// ---- Secrets ----

void Controller::upsert_secret(const Json& object) {
  const ObjectMeta meta = meta_of(object);
  const std::string key = key_of(meta);
  const std::string client_key = key.substr(0, key.size() - kSecretSuffix.size());
  SecretState next;
  next.uid = meta.uid;
  next.owner_uid = controller_uid(object);
  if (auto data = object.find("data"); data != object.end() && data->is_object()) {
    if (auto t = data->find("token"); t != data->end() && t->is_string()) {
      std::optional<std::string> token = base64_decode(t->get_ref<const std::string&>());
      if (token && !token->empty()) next.token_hash = sha256(*token);
      if (token) OPENSSL_cleanse(token->data(), token->size());
    }
  }
  auto c = clients_.find(client_key);
  std::optional<std::string> before;
  if (c != clients_.end()) before = client_token(client_key, c->second);
  secrets_[key] = std::move(next);
  if (c == clients_.end()) return;
  c->second.secret_blocked = false;
  std::optional<std::string> after = client_token(client_key, c->second);
  if (before && before != after) {
    revoke(client_key, after ? "token changed" : "token removed");
    sink_.log(BB_LOG_INFO, "Client " + client_key + ": token in Secret " + key +
                               (after ? " changed" : " removed") + ", sessions cut");
  }
  mark(std::string(kClientsPrefix), client_key);
}

void Controller::remove_secret(const std::string& key) {
  auto s = secrets_.find(key);
  if (s == secrets_.end()) return;
  const std::string client_key = key.substr(0, key.size() - kSecretSuffix.size());
  auto c = clients_.find(client_key);
  std::optional<std::string> before;
  if (c != clients_.end()) before = client_token(client_key, c->second);
  secrets_.erase(s);
  if (c == clients_.end()) return;
  c->second.secret_blocked = false;
  if (before) {
    revoke(client_key, "Secret deleted");
    sink_.log(BB_LOG_INFO, "Client " + client_key + ": Secret " + key + " deleted, sessions cut");
  }
  mark(std::string(kClientsPrefix), client_key);
}

// ---- Topics ----

void Controller::upsert_topic(const Json& object) {
  const ObjectMeta meta = meta_of(object);
  const std::string key = key_of(meta);
  const bool fresh = !topics_.count(key);
  TopicState& t = topics_[key];
  t.meta = meta;
  t.status = object.value("status", Json());
  Json body = Json::object();
  if (auto spec = object.find("spec"); spec != object.end() && spec->is_object()) {
    if (auto p = spec->find("patterns"); p != spec->end()) body["patterns"] = *p;
  }
  std::string text = body.dump();
  if (fresh || text != t.submitted) {
    std::string why;
    const int32_t rc = sink_.submit_topic(key, &text, why);
    t.submitted = std::move(text);
    t.ok = rc == BB_OK;
    t.patterns =
        body.contains("patterns") && body["patterns"].is_array() ? body["patterns"].size() : 0;
    if (t.ok) {
      t.error.clear();
      sink_.log(BB_LOG_INFO,
                "Topic " + key + ": " + std::to_string(t.patterns) + " pattern(s) in force");
    } else {
      t.error = !why.empty() ? why
                : rc == BB_E_INVALID
                    ? std::string("refused by the broker (see its log)")
                    : "the broker could not apply it (status " + std::to_string(rc) + ")";
      sink_.log(BB_LOG_WARN, "Topic " + key + ": refused, its previous rules stay: " + t.error);
    }
  }
  mark(std::string(kTopicsPrefix), key);
}

void Controller::remove_topic(const std::string& key) {
  auto it = topics_.find(key);
  if (it == topics_.end()) return;
  std::string why;
  const int32_t rc = sink_.submit_topic(key, nullptr, why);
  if (rc != BB_OK) {
    sink_.log(BB_LOG_WARN, "Topic " + key + ": removing its rules failed: " + why);
  } else {
    sink_.log(BB_LOG_INFO, "Topic " + key + " deleted: its rules are removed");
  }
  topics_.erase(it);
  written_.erase(std::string(kTopicsPrefix) + key);
}

// ---- authentication ----

void Controller::rebuild_index() {
  std::unordered_map<std::string, std::vector<std::string>> by_hash;
  for (const auto& [key, c] : clients_) {
    if (auto h = client_token(key, c)) by_hash[*h].push_back(key);
  }
  auto index = std::make_shared<AuthIndex>();
  std::map<std::string, std::string> duplicates;
  for (auto& [hash, keys] : by_hash) {
    if (keys.size() > 1) {
      for (size_t i = 0; i < keys.size(); ++i) duplicates[keys[i]] = keys[(i + 1) % keys.size()];
      continue;
    }
    const ClientState& c = clients_.at(keys.front());
    AuthEntry e;
    e.principal = keys.front();
    e.valid = c.valid;
    e.statements = c.statements;
    e.quotas = c.quotas;
    e.reason = c.error;
    index->emplace(hash, std::move(e));
  }
  for (auto& [key, c] : clients_) {
    auto d = duplicates.find(key);
    const std::string dup = d == duplicates.end() ? std::string() : d->second;
    if (dup != c.duplicate_of) {
      c.duplicate_of = dup;
      if (!dup.empty()) {
        sink_.log(BB_LOG_WARN, "Client " + key + " has the same token as Client " + dup +
                                   ": neither logs in until one token changes");
      }
      mark(std::string(kClientsPrefix), key);
    }
  }
  {
    std::lock_guard lock(index_mutex_);
    index_ = std::move(index);
  }
  std::vector<std::pair<std::string, std::string>> revocations;
  revocations.swap(revocations_);
  for (const auto& [key, why] : revocations) {
    std::string error;
    const int32_t rc = sink_.update_principal(key, nullptr, error);
    if (rc != BB_OK) {
      sink_.log(BB_LOG_WARN, "Client " + key + ": cutting sessions (" + why + ") failed (status " +
                                 std::to_string(rc) + ")");
    }
  }
}

AuthDecision Controller::authenticate(std::string_view password) const {
  std::shared_ptr<const AuthIndex> index;
  {
    std::lock_guard lock(index_mutex_);
    index = index_;
  }
  AuthDecision d;
  auto it = password.empty() ? index->end() : index->find(sha256(password));
  if (it == index->end()) {
    d.verdict = BB_AUTH_DENY;
    d.reason = "no Client has this token";
    return d;
  }
  d.principal = it->second.principal;
  if (!it->second.valid || !it->second.statements) {
    d.verdict = BB_AUTH_FORBIDDEN;
    d.reason = "Client " + d.principal + " has an invalid spec: " + it->second.reason;
    return d;
  }
  d.verdict = BB_AUTH_ALLOW;
  d.statements = it->second.statements;
  d.quotas = it->second.quotas;
  return d;
}

}  // namespace backbone::modules::k8s
