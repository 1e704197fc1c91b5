// SPDX-License-Identifier: GPL-3.0-or-later
// libFuzzer target: what the k8s module reads from the API server: a watch
// stream line, a list response and an error body, then the statements of a
// Client resource as the controller reads them; and a kubeconfig (YAML).
#include <backbone/statements.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/kube/watch_event.hpp"
#include "common/kube/yaml_json.hpp"

namespace k8s = backbone::modules::k8s;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string error;
  if (auto event = k8s::parse_watch_event(in, error)) {
    const nlohmann::json& object = event->object;
    k8s::meta_of(object);
    k8s::parse_status(object);
    const auto spec = object.find("spec");
    if (spec != object.end() && spec->is_object()) {
      if (auto s = spec->find("statements"); s != spec->end()) {
        std::vector<backbone::sdk::Statement> statements;
        backbone::sdk::parse_statements(*s, "spec.statements", statements, error);
      }
    }
  }
  k8s::parse_list(in, error);
  k8s::parse_status_body(in, 500);
  if (auto doc = k8s::yaml_to_json(in, error)) doc->dump();
  return 0;
}
