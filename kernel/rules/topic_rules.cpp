// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/rules/topic_rules.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <regex>
#include <unordered_map>
#include <utility>
#include <vector>

#include <backbone/json.hpp>
#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "kernel/authz/resource_pattern.hpp"
#include "kernel/rules/fast_schema.hpp"

namespace backbone::kernel::rules {
namespace {

using authz::ResourcePattern;
using nlohmann::json;

constexpr uint8_t kAllQos = 0b111;

struct Entry {
  std::string rule;
  std::vector<ResourcePattern> patterns;
  std::optional<uint64_t> max_size;
  uint8_t qos_mask = kAllQos;
  std::optional<bool> retain;
  std::unique_ptr<valijson::Schema> schema;
  std::optional<FastSchema> fast;  // set when the schema fits FastSchema's subset
  // The longest regular expression valijson may run for this schema (pattern,
  // patternProperties, the date/time formats); 0 = none.
  size_t longest_regex = 0;

  const ResourcePattern* match(std::string_view topic) const {
    for (const auto& p : patterns) {
      if (p.matches(topic)) return &p;
    }
    return nullptr;
  }
};

std::string qos_list(uint8_t mask) {
  std::string out;
  for (int q = 0; q <= 2; ++q) {
    if (!(mask & (1u << q))) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(q);
  }
  return out;
}

// libstdc++'s std::regex (valijson's engine) matches by recursion, about one
// stack frame per character and pattern element: a long string against a
// pattern would overflow a worker's stack. Each string a schema's regexes may
// see is held to kRegexBudget / (longest regex) characters; longer ones are
// refused (0x99) before valijson runs. Measured: "^(a|b)*$" overflowed 8 MiB
// at ~100,000 characters (8 x 100,000 = 800,000), an 80-way alternation at
// ~1,000 (320 x 1,000): 32,768 stays well below both.
constexpr size_t kRegexBudget = 32768;
constexpr size_t kMaxRegexSize = 1024;  // longer patterns are refused at compile
// valijson's own regexes for these formats are about this long.
constexpr size_t kFormatRegexSize = 160;

// valijson builds a std::regex per "pattern" only while validating, where a
// bad expression would throw per message; refuse it up front instead. Sets
// `longest` to the longest regex the schema makes valijson run.
bool check_regexes(const json& node, const std::string& where, std::string& error,
                   size_t& longest) {
  if (node.is_array()) {
    for (const auto& e : node) {
      if (!check_regexes(e, where, error, longest)) return false;
    }
    return true;
  }
  if (!node.is_object()) return true;
  for (const auto& [key, value] : node.items()) {
    if (key == "enum" || key == "const" || key == "default" || key == "examples") continue;
    std::vector<std::string> regexes;
    if (key == "pattern" && value.is_string()) regexes.push_back(value.get<std::string>());
    if (key == "patternProperties" && value.is_object()) {
      for (const auto& [re, sub] : value.items()) regexes.push_back(re);
    }
    if (key == "format" && value.is_string() &&
        (value == "date" || value == "time" || value == "date-time"))
      longest = std::max(longest, kFormatRegexSize);
    for (const auto& re : regexes) {
      // Compiling recurses along the expression too (nested groups).
      if (re.size() > kMaxRegexSize) {
        error = where + ": regular expression longer than " + std::to_string(kMaxRegexSize) +
                " characters";
        return false;
      }
      longest = std::max(longest, std::max<size_t>(re.size(), 1));
    }
    for (const auto& re : regexes) {
      try {
        std::regex compiled(re);
      } catch (const std::regex_error& e) {
        error = where + ": invalid regular expression '" + re + "': " + e.what();
        return false;
      }
    }
    if (!check_regexes(value, where, error, longest)) return false;
  }
  return true;
}

// The longest string (value or member name) in `doc` exceeds `limit`?
bool has_string_longer(const json& doc, size_t limit) {
  if (doc.is_string()) return doc.get_ref<const std::string&>().size() > limit;
  if (doc.is_array()) {
    for (const auto& e : doc) {
      if (has_string_longer(e, limit)) return true;
    }
  } else if (doc.is_object()) {
    for (const auto& [key, value] : doc.items()) {
      if (key.size() > limit || has_string_longer(value, limit)) return true;
    }
  }
  return false;
}

bool compile_schema(const json& schema, const std::string& where,
                    std::unique_ptr<valijson::Schema>& out, size_t& longest_regex,
                    std::string& error) {
  if (!schema.is_object()) {
    error = where + ": expected object";
    return false;
  }
  if (!check_regexes(schema, where, error, longest_regex)) return false;
  auto compiled = std::make_unique<valijson::Schema>();
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(schema);
    parser.populateSchema(adapter, *compiled);
  } catch (const std::exception& e) {
    error = where + ": invalid JSON Schema: " + e.what();
    return false;
  }
  out = std::move(compiled);
  return true;
}

bool is_non_negative_integer(const json& v) {
  return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
}

bool parse_entry(const json& e, const std::string& at, Entry& out, std::string& error) {
  if (!e.is_object()) {
    error = at + ": expected object";
    return false;
  }
  for (const auto& [key, value] : e.items()) {
    if (key != "pattern" && key != "matches" && key != "maxMessageSize" && key != "allowedQoS" &&
        key != "qos" && key != "retain" && key != "schema") {
      error = at + "." + key + ": unknown field";
      return false;
    }
  }
  const bool has_pattern = e.contains("pattern");
  const bool has_matches = e.contains("matches");
  if (has_pattern == has_matches) {
    error = at + ": expected exactly one of 'pattern' or 'matches'";
    return false;
  }
  std::vector<std::pair<std::string, std::string>> texts;  // (field path, pattern)
  if (has_pattern) {
    const json& p = e["pattern"];
    if (!p.is_string()) {
      error = at + ".pattern: expected string";
      return false;
    }
    texts.emplace_back(at + ".pattern", p.get<std::string>());
  } else {
    const json& m = e["matches"];
    if (m.is_string()) {
      texts.emplace_back(at + ".matches", m.get<std::string>());
    } else if (m.is_array() && !m.empty()) {
      for (size_t i = 0; i < m.size(); ++i) {
        if (!m[i].is_string()) {
          error = at + ".matches: expected non-empty array of strings";
          return false;
        }
        texts.emplace_back(at + ".matches[" + std::to_string(i) + "]", m[i].get<std::string>());
      }
    } else {
      error = at + ".matches: expected non-empty array of strings";
      return false;
    }
  }
  for (const auto& [where, text] : texts) {
    std::string why;
    auto pattern = ResourcePattern::parse(text, &why);
    if (!pattern) {
      error = where + ": " + why;
      return false;
    }
    out.patterns.push_back(std::move(*pattern));
  }

  if (auto it = e.find("maxMessageSize"); it != e.end()) {
    if (!is_non_negative_integer(*it)) {
      error = at + ".maxMessageSize: expected non-negative integer";
      return false;
    }
    out.max_size = it->get<uint64_t>();
  }
  if (e.contains("allowedQoS") && e.contains("qos")) {
    error = at + ": expected at most one of 'allowedQoS' or 'qos'";
    return false;
  }
  for (const char* field : {"allowedQoS", "qos"}) {
    auto it = e.find(field);
    if (it == e.end()) continue;
    bool ok = it->is_array() && !it->empty();
    uint8_t mask = 0;
    for (size_t i = 0; ok && i < it->size(); ++i) {
      const json& q = (*it)[i];
      ok = is_non_negative_integer(q) && q.get<uint64_t>() <= 2;
      if (ok) mask |= static_cast<uint8_t>(1u << q.get<uint64_t>());
    }
    if (!ok) {
      error = at + "." + field + ": expected non-empty array of integers 0..2";
      return false;
    }
    out.qos_mask = mask;
  }
  if (auto it = e.find("retain"); it != e.end()) {
    if (!it->is_boolean()) {
      error = at + ".retain: expected boolean";
      return false;
    }
    out.retain = it->get<bool>();
  }
  if (auto it = e.find("schema"); it != e.end()) {
    if (!compile_schema(*it, at + ".schema", out.schema, out.longest_regex, error)) return false;
    out.fast = FastSchema::compile(*it);
  }
  return true;
}

// Appends the entries of one rule; `error` names fields relative to the spec.
bool parse_spec(const std::string& name, const json& spec, std::vector<Entry>& out,
                std::string& error) {
  if (!spec.is_object()) {
    error = "expected object";
    return false;
  }
  for (const auto& [key, value] : spec.items()) {
    if (key != "patterns") {
      error = key + ": unknown field";
      return false;
    }
  }
  auto patterns = spec.find("patterns");
  if (patterns == spec.end()) {
    error = "patterns: missing";
    return false;
  }
  if (!patterns->is_array()) {
    error = "patterns: expected array";
    return false;
  }
  for (size_t i = 0; i < patterns->size(); ++i) {
    Entry entry;
    entry.rule = name;
    if (!parse_entry((*patterns)[i], "patterns[" + std::to_string(i) + "]", entry, error)) {
      return false;
    }
    out.push_back(std::move(entry));
  }
  return true;
}

std::string prefix(const Entry& e, const ResourcePattern& p) {
  return "topic rule '" + e.rule + "' pattern '" + p.text() + "': ";
}

// Each RuleSet gets an id so that a thread's cached regexes are dropped when
// the rules change instead of piling up.
std::atomic<uint64_t> next_generation{1};

valijson::Validator& thread_validator(uint64_t generation) {
  thread_local uint64_t current = 0;
  thread_local valijson::Validator validator;
  if (current != generation) {
    validator = valijson::Validator();
    current = generation;
  }
  return validator;
}

}  // namespace

struct RuleSet::Impl {
  std::vector<Entry> entries;
  uint64_t generation = next_generation.fetch_add(1, std::memory_order_relaxed);
};

RuleSet::RuleSet() : impl_(std::make_unique<Impl>()) {}
RuleSet::~RuleSet() = default;

std::shared_ptr<const RuleSet> RuleSet::compile(const std::map<std::string, json>& topics,
                                                std::string* error) {
  std::shared_ptr<RuleSet> set(new RuleSet());
  for (const auto& [name, spec] : topics) {
    std::string why;
    if (!parse_spec(name, spec, set->impl_->entries, why)) {
      if (error) *error = "topic rule '" + name + "': " + why;
      return nullptr;
    }
  }
  return set;
}

bool RuleSet::validate_spec(const json& spec, std::string* error) {
  std::vector<Entry> entries;
  std::string why;
  if (parse_spec("", spec, entries, why)) return true;
  if (error) *error = std::move(why);
  return false;
}

bool RuleSet::empty() const {
  return impl_->entries.empty();
}

namespace {

// Which entries (and which of their patterns) match a topic, remembered per
// thread and per rule set: publishers reuse few topics, so matching becomes
// one hash lookup instead of a pattern walk per rule per message.
struct TopicMatches {
  using Match = std::pair<uint32_t, const ResourcePattern*>;
  std::vector<Match> entries;
  std::vector<Match> schemas;  // the entries with a schema, in the same order
  // The cheap checks of all entries together: a message that passes these
  // passes each entry's, so the entries are walked only to name a violation.
  uint64_t max_size = UINT64_MAX;
  uint8_t qos_mask = kAllQos;
  uint8_t retain_mask = 0b11;  // bit 0: retain false allowed, bit 1: true
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

const TopicMatches& thread_matches(uint64_t generation, const std::vector<Entry>& entries,
                                   std::string_view topic) {
  constexpr size_t kCapacity = 4096;
  thread_local uint64_t current = 0;
  thread_local std::unordered_map<std::string, TopicMatches, StringHash, std::equal_to<>> cache;
  // The last topic asked about, compared before hashing (see DecisionCache).
  thread_local std::string last_topic;
  thread_local const TopicMatches* last = nullptr;
  if (current != generation || cache.size() >= kCapacity) {
    cache.clear();
    current = generation;
    last = nullptr;
  }
  if (last && last_topic == topic) return *last;
  if (auto it = cache.find(topic); it != cache.end()) {
    last_topic.assign(topic);
    last = &it->second;
    return it->second;
  }
  TopicMatches m;
  for (uint32_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    const ResourcePattern* p = e.match(topic);
    if (!p) continue;
    m.entries.emplace_back(i, p);
    if (e.schema) m.schemas.emplace_back(i, p);
    if (e.max_size) m.max_size = std::min(m.max_size, *e.max_size);
    m.qos_mask &= e.qos_mask;
    if (e.retain) m.retain_mask &= *e.retain ? 0b10 : 0b01;
  }
  last_topic.assign(topic);
  last = &cache.emplace(std::string(topic), std::move(m)).first->second;
  return *last;
}

// The first cheap check an entry fails, in entry order.
std::optional<Violation> cheap_violation(const std::vector<Entry>& entries,
                                         const TopicMatches& matches, size_t size, uint8_t qos,
                                         bool retain) {
  for (const auto& [index, p] : matches.entries) {
    const Entry& e = entries[index];
    if (e.max_size && size > *e.max_size) {
      return Violation{e.rule, Violation::kPacketTooLarge,
                       prefix(e, *p) + "payload exceeds " + std::to_string(*e.max_size) + " bytes"};
    }
    if (qos > 2 || !(e.qos_mask & (1u << qos))) {
      return Violation{e.rule, Violation::kQosNotSupported,
                       prefix(e, *p) + "QoS " + std::to_string(qos) +
                           " not allowed (allowed: " + qos_list(e.qos_mask) + ")"};
    }
    if (e.retain && *e.retain != retain) {
      return Violation{e.rule, Violation::kRetainNotSupported,
                       prefix(e, *p) + "retain flag must be " + (*e.retain ? "true" : "false")};
    }
  }
  return std::nullopt;
}

Violation not_json(const Entry& e, const ResourcePattern& p,
                   const std::string& why = "not valid JSON") {
  return Violation{e.rule, Violation::kPayloadFormatInvalid, prefix(e, p) + "payload is " + why};
}

// valijson decides, and explains a refusal. `doc` is valijson's view of the
// payload, parsed at the first call and shared by the entries of a message.
// valijson recurses along the payload (e.g. uniqueItems, $ref), so a payload
// nested deeper than sdk::kMaxJsonDepth is refused here, though the fast
// check, which does not recurse, accepts any depth.
std::optional<Violation> reference_check(const Entry& e, const ResourcePattern& p,
                                         uint64_t generation, std::string_view payload,
                                         std::optional<json>& doc, sdk::JsonError& doc_error) {
  if (!doc) doc = sdk::parse_json(payload, &doc_error);
  if (doc->is_discarded()) return not_json(e, p, doc_error.message);
  // The payload is at most sdk::kMaxJsonDepth deep, so this walk is bounded.
  if (e.longest_regex && has_string_longer(*doc, kRegexBudget / e.longest_regex)) {
    return Violation{e.rule, Violation::kPayloadFormatInvalid,
                     prefix(e, p) + "payload has a string longer than " +
                         std::to_string(kRegexBudget / e.longest_regex) +
                         " characters, too long for the schema's regular expressions"};
  }
  const valijson::adapters::NlohmannJsonAdapter adapter(*doc);
  std::string detail;
  bool valid = false;
  // The regexes were checked at compile time, so nothing should throw here;
  // if valijson still does, the message is refused rather than let through.
  try {
    valijson::Validator& validator = thread_validator(generation);
    valid = validator.validate(*e.schema, adapter, nullptr);
    if (!valid) {
      valijson::ValidationResults results;
      validator.validate(*e.schema, adapter, &results);
      valijson::ValidationResults::Error first;
      if (results.popError(first)) {
        for (size_t i = 1; i < first.context.size(); ++i) detail += first.context[i];
        detail = (detail.empty() ? std::string() : detail + ": ") + first.description;
      }
    }
  } catch (const std::exception& ex) {
    detail = std::string("schema validation failed: ") + ex.what();
  }
  if (valid) return std::nullopt;
  return Violation{e.rule, Violation::kPayloadFormatInvalid,
                   prefix(e, p) + "payload does not match schema" +
                       (detail.empty() ? std::string() : ": " + detail)};
}

}  // namespace

std::optional<Violation> RuleSet::check(std::string_view topic, std::string_view payload,
                                        uint8_t qos, bool retain, RuleMemo* memo) const {
  if (topic.starts_with("$SYS/") || impl_->entries.empty()) return std::nullopt;
  const auto& entries = impl_->entries;
  const TopicMatches* found;
  if (memo && memo->generation == impl_->generation && memo->topic == topic) {
    found = static_cast<const TopicMatches*>(memo->matches.get());
  } else {
    found = &thread_matches(impl_->generation, entries, topic);
    if (memo) {
      // Generations are never reused, so a memo of a replaced set never hits.
      memo->matches = std::make_shared<const TopicMatches>(*found);
      memo->generation = impl_->generation;
      memo->topic.assign(topic);
      found = static_cast<const TopicMatches*>(memo->matches.get());
    }
  }
  const TopicMatches& matches = *found;
  if (payload.size() > matches.max_size || qos > 2 || !(matches.qos_mask & (1u << qos)) ||
      !(matches.retain_mask & (retain ? 0b10 : 0b01))) {
    if (auto v = cheap_violation(entries, matches, payload.size(), qos, retain)) return v;
  }
  // Set once the payload is known to be JSON, to parse it only for the schemas.
  bool is_json = false;
  std::optional<json> slow_doc;
  sdk::JsonError slow_doc_error;
  for (const auto& [index, p] : matches.schemas) {
    const Entry& e = entries[index];
    // valijson is asked when the fast check cannot express the schema or
    // refuses the payload (then valijson decides and explains).
    if (e.fast) {
      const Verdict verdict = e.fast->check(payload);
      if (verdict == Verdict::kValid) continue;
      if (verdict == Verdict::kNotJson) return not_json(e, *p);
    } else if (!is_json && !well_formed_json(payload)) {
      return not_json(e, *p);
    }
    is_json = true;
    if (auto v = reference_check(e, *p, impl_->generation, payload, slow_doc, slow_doc_error))
      return v;
  }
  return std::nullopt;
}

}  // namespace backbone::kernel::rules
