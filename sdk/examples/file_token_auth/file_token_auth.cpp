// SPDX-License-Identifier: GPL-3.0-or-later
// file_token_auth: an example third-party Backbone authenticator.
//
// Clients log in with username=<name> (default "filetoken") and a token
// listed in a text file. Each line of the file grants one statement:
//
//   # <token> <effect> <action> <resource>
//   s3cr3t-sensor allow mqtt:publish sensors/+/temp
//   s3cr3t-sensor allow mqtt:subscribe commands/#
//   s3cr3t-viewer allow mqtt:subscribe sensors/#
//
// It uses only the public SDK: <backbone/module_abi.h> (the C ABI) and
// <backbone/sdk.hpp> (the header-only C++ layer).

#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace example::file_token_auth {
namespace {

namespace sdk = backbone::sdk;
using Digest = std::array<unsigned char, 32>;

// Tokens are kept as SHA-256 digests only, so a lookup reveals nothing
// through timing and the clear token never stays in memory.
Digest sha256(const std::string& s) {
  Digest d{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &len, EVP_sha256(), nullptr);
  return d;
}

struct Entry {
  std::string principal;             // "<name>:line<N>": never the token
  std::vector<std::string> strings;  // action, resource, action, resource...
  std::vector<int32_t> effects;
  std::vector<bb_statement> statements;  // points into `strings`
};

// Immutable once built; replaced as a whole on reload.
struct Table {
  std::map<Digest, Entry> entries;
};

// Parses the token file. On error returns null and sets `error` (which names
// the line, never the token).
std::shared_ptr<const Table> load_table(const std::string& path, const std::string& name,
                                        std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "setting 'file': cannot read '" + path + "'";
    return nullptr;
  }
  auto table = std::make_shared<Table>();
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream fields(line);
    std::string token, effect, action, resource, extra;
    if (!(fields >> token) || token[0] == '#') continue;  // blank line or comment
    if (!(fields >> effect >> action >> resource) || (fields >> extra && extra[0] != '#')) {
      error = "'" + path + "' line " + std::to_string(number) +
              ": expected '<token> <effect> <action> <resource>'";
      return nullptr;
    }
    int32_t e;
    if (effect == "allow") {
      e = BB_EFFECT_ALLOW;
    } else if (effect == "deny" || effect == "disallow") {
      e = BB_EFFECT_DENY;
    } else {
      error = "'" + path + "' line " + std::to_string(number) +
              ": effect must be allow, deny or disallow";
      return nullptr;
    }
    Entry& entry = table->entries[sha256(token)];
    OPENSSL_cleanse(token.data(), token.size());
    if (entry.principal.empty()) entry.principal = name + ":line" + std::to_string(number);
    entry.strings.push_back(std::move(action));
    entry.strings.push_back(std::move(resource));
    entry.effects.push_back(e);
  }
  // Only now that no string moves any more, point the statements at them.
  for (auto& [digest, entry] : table->entries) {
    for (size_t i = 0; i < entry.effects.size(); ++i) {
      entry.statements.push_back(bb_statement{entry.effects[i], 0, sdk::str(entry.strings[2 * i]),
                                              sdk::str(entry.strings[2 * i + 1])});
    }
  }
  return table;
}

// The table the last authenticate() on this thread answered from: the host
// reads a synchronous result right after authenticate() returns, so the
// statements it points at must outlive the call even if a reload swaps the
// table meanwhile.
thread_local std::shared_ptr<const Table> t_answered_from;

class FileTokenAuth final : public sdk::Module {
 public:
  using Module::Module;

  bb_status configure(bool reloading) override {
    std::string file;
    std::string name = "filetoken";
    if (bb_status s = read_settings(file, name); s != BB_OK) return s;
    if (reloading && name != name_) {
      host().error("changing 'name' needs a restart");
      return BB_E_UNSUPPORTED;
    }
    std::string error;
    std::shared_ptr<const Table> table = load_table(file, name, error);
    if (!table) {
      host().error(error);
      return BB_E_INVALID;
    }
    const size_t count = table->entries.size();
    {
      std::lock_guard lock(mutex_);
      table_ = std::move(table);
    }
    if (!reloading) {
      name_ = name;
      authenticator_.struct_size = sizeof(bb_authenticator);
      authenticator_.name = sdk::str(name_);
      authenticator_.authenticate = &FileTokenAuth::authenticate;
      authenticator_.cancel = nullptr;
      bb_status s = host().api()->register_authenticator(host().ctx(), &authenticator_, this);
      if (s != BB_OK) {
        host().error("registering authenticator '" + name_ + "' failed");
        return s;
      }
    }
    host().info("authenticator '" + name_ + "': " + std::to_string(count) + " tokens from '" +
                file + "'");
    return BB_OK;
  }

 private:
  bb_status read_settings(std::string& file, std::string& name) const {
    std::optional<std::string> text = host().config("");
    nlohmann::json doc = text ? sdk::parse_json(*text, nullptr, true) : nlohmann::json::object();
    if (doc.is_discarded() || !doc.is_object()) {
      host().error("settings: expected a JSON object");
      return BB_E_INVALID;
    }
    for (const auto& item : doc.items()) {
      const std::string& key = item.key();
      if (key != "file" && key != "name") {
        host().error("setting '" + key + "': unknown key (known: file, name)");
        return BB_E_INVALID;
      }
      if (!item.value().is_string() || item.value().get_ref<const std::string&>().empty()) {
        host().error("setting '" + key + "': expected a non-empty string");
        return BB_E_INVALID;
      }
      (key == "file" ? file : name) = item.value().get<std::string>();
    }
    if (file.empty()) {
      host().error("setting 'file': required (path of the token file)");
      return BB_E_INVALID;
    }
    return BB_OK;
  }

  // Thread: any kernel worker, concurrently. Synchronous: returns BB_OK.
  static bb_status authenticate(void* user, const bb_auth_request* req, bb_auth_ticket,
                                bb_auth_result* out) noexcept {
    if (user == nullptr || req == nullptr || out == nullptr) return BB_E_INVALID;
    auto* self = static_cast<FileTokenAuth*>(user);
    try {
      std::shared_ptr<const Table> table;
      {
        std::lock_guard lock(self->mutex_);
        table = self->table_;
      }
      std::string password;
      if (BB_HAS(req, bb_auth_request, password)) password = std::string(sdk::view(req->password));
      auto it = password.empty() ? table->entries.end() : table->entries.find(sha256(password));
      OPENSSL_cleanse(password.data(), password.size());
      if (it == table->entries.end()) {
        out->verdict = BB_AUTH_DENY;
        out->log_reason = sdk::str("unknown token");
        return BB_OK;
      }
      t_answered_from = table;
      out->verdict = BB_AUTH_ALLOW;
      out->principal = sdk::str(it->second.principal);
      out->statements = it->second.statements.data();
      out->statement_count = it->second.statements.size();
      out->expires_at_unix_s = 0;
      return BB_OK;
    } catch (...) {
      return BB_E_INTERNAL;
    }
  }

  std::mutex mutex_;
  std::shared_ptr<const Table> table_;
  std::string name_;
  bb_authenticator authenticator_{};  // registered: lives as long as the instance
};

}  // namespace
}  // namespace example::file_token_auth

BACKBONE_MODULE(example::file_token_auth::FileTokenAuth, "file_token_auth", "1.0.0", BB_KIND_AUTH,
                0)
