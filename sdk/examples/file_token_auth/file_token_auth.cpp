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
// It uses only the public SDK: <backbone/module_abi.h> (the C ABI),
// <backbone/sdk.hpp>, <backbone/authenticator.hpp>, <backbone/settings.hpp>
// and <backbone/statements.hpp> (the header-only C++ layer).

#include <backbone/module_abi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <backbone/authenticator.hpp>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>
#include <backbone/statements.hpp>
#include <nlohmann/json.hpp>

#include <array>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
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
  std::string principal;  // "<name>:line<N>": never the token
  sdk::StatementList statements;
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
    const std::string at = "'" + path + "' line " + std::to_string(number) + ": ";
    const int32_t e = sdk::parse_effect(effect);
    if (e == 0) {
      error = at + "effect: " + std::string(sdk::kEffectExpected);
      return nullptr;
    }
    for (const auto& [field, value] : {std::pair{"action", &action}, {"resource", &resource}}) {
      if (std::string why = sdk::pattern_problem(*value); !why.empty()) {
        error = at + field + ": " + why;
        return nullptr;
      }
    }
    Entry& entry = table->entries[sha256(token)];
    OPENSSL_cleanse(token.data(), token.size());
    if (entry.principal.empty()) entry.principal = name + ":line" + std::to_string(number);
    entry.statements.add(e, std::move(action), std::move(resource));
  }
  return table;
}

class FileTokenAuth final : public sdk::Module, sdk::Authenticator {
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
      bb_status s = register_with(host(), name_);
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
    const nlohmann::json doc =
        text ? sdk::parse_json(*text, nullptr, true) : nlohmann::json::object();
    sdk::Settings settings(doc);
    settings.known({"file", "name"});
    settings.get_string("file", file);
    settings.get_string("name", name);
    settings.require("file", "path of the token file");
    if (!settings.ok()) {
      host().error(settings.error());
      return BB_E_INVALID;
    }
    return BB_OK;
  }

  // Thread: any kernel worker, concurrently. Synchronous.
  std::optional<sdk::AuthReply> authenticate(const sdk::LoginRequest& request) override {
    std::shared_ptr<const Table> table;
    {
      std::lock_guard lock(mutex_);
      table = table_;
    }
    std::string password(request.password);
    auto it = password.empty() ? table->entries.end() : table->entries.find(sha256(password));
    OPENSSL_cleanse(password.data(), password.size());
    if (it == table->entries.end()) return sdk::AuthReply::deny("unknown token");
    return sdk::AuthReply::allow(it->second.principal, it->second.statements);
  }

  std::mutex mutex_;
  std::shared_ptr<const Table> table_;
  std::string name_;
};

}  // namespace
}  // namespace example::file_token_auth

BACKBONE_MODULE(example::file_token_auth::FileTokenAuth, "file_token_auth", "1.0.0", BB_KIND_AUTH,
                0)
