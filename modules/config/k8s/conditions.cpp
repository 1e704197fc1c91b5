// SPDX-License-Identifier: GPL-3.0-or-later
#include "conditions.hpp"

#include <ctime>

namespace backbone::modules::k8s {
namespace {

using Json = nlohmann::json;

std::string bounded(const std::string& s) {
  if (s.size() <= kMaxConditionMessage) return s;
  // Cut on a UTF-8 character boundary.
  size_t end = kMaxConditionMessage - 3;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + "...";
}

const Json* find_ready(const Json& status) {
  if (!status.is_object()) return nullptr;
  auto conditions = status.find("conditions");
  if (conditions == status.end() || !conditions->is_array()) return nullptr;
  for (const auto& c : *conditions) {
    if (c.is_object() && c.value("type", Json()) == "Ready") return &c;
  }
  return nullptr;
}

}  // namespace

std::string ReadyCondition::fingerprint() const {
  return std::string(ready ? "True" : "False") + '\0' + reason + '\0' + bounded(message) + '\0' +
         std::to_string(generation) + '\0' + extra.dump();
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<Json> status_patch(const Json& current_status, const ReadyCondition& want,
                                 std::string_view now) {
  const std::string status = want.ready ? "True" : "False";
  const std::string message = bounded(want.message);
  const Json* ready = find_ready(current_status);
  const Json observed =
      current_status.is_object() ? current_status.value("observedGeneration", Json()) : Json();
  bool extra_equal = true;
  for (const auto& [key, value] : want.extra.items()) {
    extra_equal =
        extra_equal && current_status.is_object() && current_status.value(key, Json()) == value;
  }
  if (extra_equal && ready != nullptr && ready->value("status", Json()) == status &&
      ready->value("reason", Json()) == want.reason && ready->value("message", Json()) == message &&
      ready->value("observedGeneration", Json()) == want.generation &&
      observed == want.generation) {
    return std::nullopt;
  }
  std::string since(now);
  if (ready != nullptr && ready->value("status", Json()) == status) {
    const Json t = ready->value("lastTransitionTime", Json());
    if (t.is_string() && !t.get_ref<const std::string&>().empty()) since = t.get<std::string>();
  }
  Json conditions = Json::array();
  if (current_status.is_object()) {
    auto it = current_status.find("conditions");
    if (it != current_status.end() && it->is_array()) {
      for (const auto& c : *it) {
        if (c.is_object() && c.value("type", Json()) != "Ready") conditions.push_back(c);
      }
    }
  }
  conditions.push_back(Json{{"type", "Ready"},
                            {"status", status},
                            {"reason", want.reason},
                            {"message", message},
                            {"lastTransitionTime", since},
                            {"observedGeneration", want.generation}});
  Json patch = want.extra.is_object() ? want.extra : Json::object();
  patch["observedGeneration"] = want.generation;
  patch["conditions"] = std::move(conditions);
  return Json{{"status", std::move(patch)}};
}

}  // namespace backbone::modules::k8s
