// SPDX-License-Identifier: GPL-3.0-or-later
// A named client (its token hash, statements and quotas) and the strict
// readers of its definition, shared by the config file, the HTTP API and
// the stored API clients.
#pragma once

#include <backbone/module_abi.h>
#include <backbone/statements.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace backbone::modules::client {

using nlohmann::json;

struct ClientEntry {
  std::string name;
  std::string token_sha256;  // 32 raw bytes
  std::vector<sdk::Statement> statements;
  json statements_json;  // as given, for GET /api/clients
  // SPEC §6 quotas beside the statements; quotas_json as given (null: none).
  std::optional<bb_quotas> quotas;
  json quotas_json;
  bool same_grants(const ClientEntry& o) const {
    return statements == o.statements && quotas_json == o.quotas_json;
  }
};

// name -> entry
using ClientTable = std::map<std::string, ClientEntry>;

// The entry's "quotas", when given: false (and `error`) when malformed.
bool read_quotas(const json& spec, const std::string& where, ClientEntry& entry,
                 std::string& error);

// The module's settings {"clients": {name: {token_sha256, statements,
// quotas}}, "enabled": ...} into `table`.
bool parse_settings(const json& settings, ClientTable& table, std::string& error);

// Raw SHA-256 digest (32 bytes).
std::string sha256(std::string_view data);
std::string to_hex(std::string_view raw);
// 64 hex digits into 32 raw bytes.
bool from_hex(const std::string& hex, std::string& out);
// 32 random bytes, base64url without padding: the token of an API client.
std::optional<std::string> random_token();
// 1-128 of A-Z a-z 0-9 . _ -
bool valid_name(std::string_view name);

}  // namespace backbone::modules::client
