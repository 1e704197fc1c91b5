// SPDX-License-Identifier: GPL-3.0-or-later
// The `env` config source: the environment variables of SPEC §3, handed to
// the kernel as one "settings" resource to merge into the modules' settings.

#include <backbone/module_abi.h>
#include <backbone/json.hpp>
#include <backbone/sdk.hpp>
#include <backbone/settings.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <optional>
#include <string>

#include "env_settings.hpp"

namespace backbone::modules::env {
namespace {

class EnvModule final : public sdk::Module {
 public:
  using Module::Module;

  bb_status configure(bool /*reloading*/) override {
    std::string prefix;
    if (bb_status s = read_settings(prefix); s != BB_OK) return s;

    // Control thread, and nothing in the broker calls setenv.
    EnvSettings env = settings_from_environment(
        [](const std::string& name) -> std::optional<std::string> {
          const char* v = std::getenv(name.c_str());
          return v == nullptr ? std::nullopt : std::optional<std::string>(v);
        },
        prefix);
    for (const auto& e : env.errors) host().error(e);
    if (!env.errors.empty()) return BB_E_INVALID;
    for (const auto& w : env.warnings) host().warn(w);

    bb_status s = host().submit("settings", "env", env.settings.dump());
    if (s != BB_OK) {
      host().error("the kernel refused the settings from the environment");
      return s < 0 ? s : BB_E_INTERNAL;
    }
    std::string names;
    for (const auto& n : env.applied) names += (names.empty() ? "" : ", ") + n;
    host().info(env.applied.empty() ? std::string("no environment variables set")
                                    : "settings from the environment: " + names);
    return BB_OK;
  }

 private:
  bb_status read_settings(std::string& prefix) const {
    std::optional<std::string> text = host().config("");
    if (!text) return BB_OK;
    nlohmann::json doc = sdk::parse_json(*text, nullptr, true);
    if (doc.is_null()) return BB_OK;
    sdk::Settings settings(doc);
    settings.known({"prefix"});
    settings.get_string("prefix", prefix, /*allow_empty=*/true);
    if (!settings.ok()) {
      host().error(settings.error());
      return BB_E_INVALID;
    }
    return BB_OK;
  }
};

}  // namespace
}  // namespace backbone::modules::env

BACKBONE_MODULE(backbone::modules::env::EnvModule, "env", "1.0.0", BB_KIND_CONFIG, 0)
