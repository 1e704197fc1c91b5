// SPDX-License-Identifier: GPL-3.0-or-later
#include "kernel/rules/fast_schema.hpp"

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "kernel/rules/rapidjson.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <nlohmann/json.hpp>

#include "kernel/protocol/codec.hpp"

namespace backbone::kernel::rules {

void rapidjson_assertion_failed(const char* file, int line) {
  throw std::runtime_error(std::string("JSON parser assertion failed at ") + file + ":" +
                           std::to_string(line));
}

namespace {

// Annotations that never affect validation.
bool is_annotation(std::string_view key) {
  return key == "$schema" || key == "$id" || key == "$comment" || key == "title" ||
         key == "description" || key == "default" || key == "examples";
}

bool read_bound(const nlohmann::json& v, std::optional<double>& out) {
  if (!v.is_number()) return false;
  out = v.get<double>();
  return true;
}

bool read_count(const nlohmann::json& v, std::optional<uint64_t>& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<uint64_t>();
  return true;
}

// JSON Schema counts string length in code points.
uint64_t code_points(const char* p, size_t size) {
  uint64_t n = 0;
  for (size_t i = 0; i < size; ++i) n += (static_cast<unsigned char>(p[i]) & 0xC0) != 0x80;
  return n;
}

// Names are short: a loop beats a call to memcmp.
bool same(const std::string& name, const char* s, size_t size) {
  if (name.size() != size) return false;
  for (size_t i = 0; i < size; ++i) {
    if (name[i] != s[i]) return false;
  }
  return true;
}

using Node = FastSchema::Node;
constexpr uint32_t kAny = FastSchema::kAny;

// Receives the parser's events and walks the compiled schema alongside. A
// violation is remembered, not reported to the parser: the text is parsed to
// its end either way, so that text which is not JSON is always named so.
class Validator {
 public:
  Validator(const std::vector<Node>& nodes, uint32_t root) : nodes_(nodes), next_(root) {}

  bool ok() const { return ok_; }
  // Whether the parse was stopped for nesting deeper than kMaxNesting.
  bool too_deep() const { return too_deep_; }

  // RapidJSON's default parser recurses per nesting level; deeper payloads
  // are stopped here and parsed again iteratively (see check()), so that a
  // payload cannot exhaust the thread's stack.
  static constexpr size_t kMaxNesting = 256;
  void allow_any_depth() { max_nesting_ = SIZE_MAX; }  // for the iterative parser

  bool Null() { return scalar(FastSchema::kNull); }
  bool Bool(bool) { return scalar(FastSchema::kBoolean); }
  bool Int(int i) { return number(i, true); }
  bool Uint(unsigned u) { return number(u, true); }
  bool Int64(int64_t i) { return number(static_cast<double>(i), true); }
  bool Uint64(uint64_t u) { return number(static_cast<double>(u), true); }
  // As valijson decides it: a number written with a fraction or an exponent
  // is not an integer, even 3.0.
  bool Double(double d) { return number(d, false); }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return true; }  // not requested

  bool String(const char* s, rapidjson::SizeType size, bool) {
    const uint32_t index = take();
    if (index == kAny) return true;
    const Node& n = nodes_[index];
    if (n.types && !(n.types & FastSchema::kString)) return fail();
    if (n.min_length || n.max_length) {
      const uint64_t len = code_points(s, size);
      if (n.min_length && len < *n.min_length) return fail();
      if (n.max_length && len > *n.max_length) return fail();
    }
    return true;
  }

  bool StartObject() { return open(FastSchema::kObject); }

  bool Key(const char* s, rapidjson::SizeType size, bool) {
    if (skip_) return true;
    const Node& n = nodes_[frames_[depth_ - 1].node];
    for (const auto& key : n.keys) {
      if (same(key.name, s, size)) {
        frames_[depth_ - 1].seen |= key.required;
        next_ = key.child;
        // A name only "required" is still an additional property.
        if (!key.property && !n.additional_properties) fail();
        return true;
      }
    }
    next_ = kAny;
    if (!n.additional_properties) fail();
    return true;
  }

  bool EndObject(rapidjson::SizeType) {
    if (skip_) {
      --skip_;
      return true;
    }
    const Frame& f = frames_[--depth_];
    const Node& n = nodes_[f.node];
    if ((f.seen & n.required) != n.required) fail();
    return true;
  }

  bool StartArray() { return open(FastSchema::kArray); }

  bool EndArray(rapidjson::SizeType size) {
    if (skip_) {
      --skip_;
      return true;
    }
    const Node& n = nodes_[frames_[--depth_].node];
    if (n.min_items && size < *n.min_items) fail();
    if (n.max_items && size > *n.max_items) fail();
    return true;
  }

 private:
  struct Frame {
    uint32_t node;
    bool array;
    uint64_t seen;  // the "required" bits of the keys seen so far
  };

  // The node a value starting now must meet.
  uint32_t take() {
    if (skip_) return kAny;
    if (depth_ && frames_[depth_ - 1].array) return nodes_[frames_[depth_ - 1].node].items;
    const uint32_t index = next_;  // the root, or the one chosen by Key()
    next_ = kAny;
    return index;
  }

  bool fail() {
    ok_ = false;
    return true;  // keep parsing: the verdict on the syntax comes first
  }

  bool scalar(uint8_t type) {
    const uint32_t index = take();
    if (index != kAny && nodes_[index].types && !(nodes_[index].types & type)) fail();
    return true;
  }

  bool number(double d, bool integral) {
    const uint32_t index = take();
    if (index == kAny) return true;
    const Node& n = nodes_[index];
    const uint8_t have = FastSchema::kNumber | (integral ? FastSchema::kInteger : 0);
    if (n.types && !(n.types & have)) return fail();
    if (n.minimum && d < *n.minimum) return fail();
    if (n.maximum && d > *n.maximum) return fail();
    if (n.exclusive_minimum && d <= *n.exclusive_minimum) return fail();
    if (n.exclusive_maximum && d >= *n.exclusive_maximum) return fail();
    return true;
  }

  bool open(uint8_t type) {
    if (depth_ + skip_ >= max_nesting_) {
      too_deep_ = true;
      return false;  // stops the parse
    }
    const uint32_t index = take();
    if (index == kAny) {
      ++skip_;
      return true;
    }
    if (nodes_[index].types && !(nodes_[index].types & type)) fail();
    // Bounded by the schema's depth (compile_node), so this never overflows.
    frames_[depth_++] = Frame{index, type == FastSchema::kArray, 0};
    return true;
  }

  const std::vector<Node>& nodes_;
  uint32_t next_;
  bool ok_ = true;
  bool too_deep_ = false;
  size_t max_nesting_ = kMaxNesting;
  uint32_t depth_ = 0;  // frames in use
  size_t skip_ = 0;     // open arrays and objects no schema node applies to
  Frame frames_[FastSchema::kMaxDepth];
};

// Only the syntax.
struct NoSchema : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, NoSchema> {};

using Pool = rapidjson::MemoryPoolAllocator<>;

// Per thread: the parser's stack comes from a fixed buffer, and the padded
// copy of the text is reused, so that typical payloads allocate nothing.
struct ParseMemory {
  char stack_buffer[4 * 1024];
  Pool pool{stack_buffer, sizeof(stack_buffer)};
  std::string text;
};

// One per thread for every parse() below (a thread_local in the template
// would be one per instantiation).
ParseMemory& parse_memory() {
  thread_local ParseMemory memory;
  return memory;
}

// Parses `payload` (already checked to be UTF-8) with RapidJSON; false if it
// is not JSON or the handler stopped the parse.
template <unsigned kFlags, class Handler>
bool parse(std::string_view payload, Handler& handler) {
  ParseMemory& memory = parse_memory();
  // Parsed in place in a per-thread copy: string values are then checked
  // where they lie instead of being copied again into the parser's stack.
  // RapidJSON's SSE2 scanning loads whole aligned 16-byte blocks, so the
  // text is padded with NULs to keep every load inside the buffer. The
  // payload has no U+0000 (valid_utf8), so the first NUL ends the text.
  std::string& text = memory.text;
  if (text.size() < payload.size() + 16) text.resize(payload.size() + 16);
  std::memcpy(text.data(), payload.data(), payload.size());
  std::memset(text.data() + payload.size(), 0, 16);
  bool ok;
  {
    rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>, Pool> reader(&memory.pool);
    rapidjson::InsituStringStream stream(text.data());
    try {
      ok = !reader.Parse<kFlags | rapidjson::kParseInsituFlag>(stream, handler).IsError();
    } catch (const std::exception&) {
      ok = false;  // an internal assertion: treat as unparsable
    }
  }
  memory.pool.Clear();  // frees what a deeply nested payload needed beyond the buffer
  return ok;
}

// The end of the body of a JSON string starting at `p`: the closing quote,
// or nullptr if the string has an escape or a control character (or no end).
// A byte >= 0x80 in it (or in the 15 bytes after it) makes `high` non-zero.
const char* simple_string_end(const char* p, const char* end, unsigned& high) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i control = _mm_set1_epi8(0x1F);
  for (; end - p >= 16; p += 16) {
    const __m128i s = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Unsigned s <= 0x1F, as max(s, 0x1F) == 0x1F.
    const __m128i hit =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(s, quote), _mm_cmpeq_epi8(s, backslash)),
                     _mm_cmpeq_epi8(_mm_max_epu8(s, control), control));
    high |= static_cast<unsigned>(_mm_movemask_epi8(s));
    if (const int mask = _mm_movemask_epi8(hit)) {
      p += __builtin_ctz(static_cast<unsigned>(mask));
      return *p == '"' ? p : nullptr;
    }
  }
#endif
  for (; p < end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    high |= c & 0x80;
    if (c == '"') return p;
    if (c == '\\' || c < 0x20) return nullptr;
  }
  return nullptr;
}

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';  // as RapidJSON
}

// The most common payload shape, a flat object of strings without escapes,
// small integers, booleans and nulls (e.g. {"id":"x","v":12}), read without
// RapidJSON: no copy, no unescaping buffer. The handler gets the events
// RapidJSON would send for the same text. Anything else, including text
// that is not JSON, gives false (the handler is then left half-way) and
// RapidJSON decides. `ascii` tells whether the text is all ASCII: only
// strings may hold other bytes, and whether they are UTF-8 is not checked.
template <class Handler>
bool scan_flat_object(std::string_view text, Handler& handler, bool& ascii) {
  unsigned high = 0;
  const char* p = text.data();
  const char* const end = p + text.size();
  auto skip_space = [&] {
    while (p < end && is_space(*p)) ++p;
  };
  skip_space();
  if (p == end || *p != '{') return false;
  ++p;
  handler.StartObject();
  skip_space();
  rapidjson::SizeType members = 0;
  if (p < end && *p == '}') {
    ++p;
  } else {
    for (;;) {
      if (p == end || *p != '"') return false;
      const char* key = ++p;
      if (!(p = simple_string_end(p, end, high))) return false;
      handler.Key(key, static_cast<rapidjson::SizeType>(p - key), false);
      ++p;
      skip_space();
      if (p == end || *p != ':') return false;
      ++p;
      skip_space();
      if (p == end) return false;
      const auto literal = [&](std::string_view word) {
        if (static_cast<size_t>(end - p) < word.size() || std::memcmp(p, word.data(), word.size()))
          return false;
        p += word.size();
        return true;
      };
      if (*p == '"') {
        const char* value = ++p;
        if (!(p = simple_string_end(p, end, high))) return false;
        handler.String(value, static_cast<rapidjson::SizeType>(p - value), false);
        ++p;
      } else if (*p == 't') {
        if (!literal("true")) return false;
        handler.Bool(true);
      } else if (*p == 'f') {
        if (!literal("false")) return false;
        handler.Bool(false);
      } else if (*p == 'n') {
        if (!literal("null")) return false;
        handler.Null();
      } else {
        // Up to 18 digits always fit an int64_t; RapidJSON reports such a
        // number as an integer too (Int, Uint, Int64 or Uint64).
        const bool minus = *p == '-';
        p += minus;
        const char* digits = p;
        int64_t value = 0;
        while (p < end && *p >= '0' && *p <= '9' && p - digits < 18)
          value = value * 10 + (*p++ - '0');
        const size_t count = static_cast<size_t>(p - digits);
        if (count == 0 || (count > 1 && *digits == '0')) return false;
        // A fraction, an exponent or more digits: RapidJSON's number parser.
        if (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E'))
          return false;
        handler.Int64(minus ? -value : value);
      }
      ++members;
      skip_space();
      if (p == end) return false;
      if (*p == '}') {
        ++p;
        break;
      }
      if (*p != ',') return false;
      ++p;
      skip_space();
    }
  }
  handler.EndObject(members);
  skip_space();
  ascii = high == 0;
  return p == end;
}

// A node with no constraint is not walked at all.
bool unconstrained(const Node& n) {
  return n.types == 0 && n.additional_properties && n.keys.empty() && n.items == kAny &&
         !n.minimum && !n.maximum && !n.exclusive_minimum && !n.exclusive_maximum &&
         !n.min_length && !n.max_length && !n.min_items && !n.max_items;
}

}  // namespace

bool well_formed_json(std::string_view text) {
  NoSchema handler;
  bool ascii;
  // JSON text is UTF-8 (RFC 8259). A scanned text is ASCII outside its
  // strings and has no NUL (U+0000 is a control character, refused in strings
  // and not JSON elsewhere), so it is UTF-8 when it has no high byte.
  if (scan_flat_object(text, handler, ascii)) return ascii || protocol::valid_utf8(text);
  // Checked up front by the codec's fast validator rather than character by
  // character inside the parser, which would also turn off RapidJSON's SSE2
  // string scanning; it also refuses U+0000, which would end the copy parse()
  // makes early.
  if (!protocol::valid_utf8(text)) return false;
  NoSchema again;
  return parse<rapidjson::kParseIterativeFlag>(text, again);
}

std::optional<FastSchema> FastSchema::compile(const nlohmann::json& schema) {
  FastSchema fs;
  if (!compile_node(schema, fs.nodes_, 1, fs.root_)) return std::nullopt;
  return fs;
}

bool FastSchema::compile_node(const nlohmann::json& schema, std::vector<Node>& nodes, size_t depth,
                              uint32_t& index) {
  // Boolean schemas and the rest: valijson. Each level may open a frame.
  if (!schema.is_object() || depth > kMaxDepth) return false;
  Node n;
  auto key_of = [&n](const std::string& name) -> Key& {
    for (auto& k : n.keys) {
      if (k.name == name) return k;
    }
    return n.keys.emplace_back(Key{name});
  };
  for (const auto& [key, value] : schema.items()) {
    if (is_annotation(key)) continue;
    if (key == "type") {
      auto add = [&](const nlohmann::json& t) {
        if (!t.is_string()) return false;
        const std::string name = t.get<std::string>();
        uint8_t bit = name == "null"      ? kNull
                      : name == "boolean" ? kBoolean
                      : name == "object"  ? kObject
                      : name == "array"   ? kArray
                      : name == "number"  ? kNumber
                      : name == "string"  ? kString
                      : name == "integer" ? kInteger
                                          : 0;
        if (bit == 0) return false;
        n.types |= bit;
        return true;
      };
      if (value.is_array()) {
        if (value.empty()) return false;
        for (const auto& t : value) {
          if (!add(t)) return false;
        }
      } else if (!add(value)) {
        return false;
      }
    } else if (key == "required") {
      if (!value.is_array()) return false;
      int bits = 0;
      for (const auto& r : value) {
        if (!r.is_string()) return false;
        Key& k = key_of(r.get<std::string>());
        if (k.required) continue;      // listed twice
        if (bits == 64) return false;  // one bit each
        k.required = uint64_t{1} << bits++;
        n.required |= k.required;
      }
    } else if (key == "properties") {
      if (!value.is_object()) return false;
      for (const auto& [name, sub] : value.items()) {
        uint32_t child;
        if (!compile_node(sub, nodes, depth + 1, child)) return false;
        Key& k = key_of(name);
        k.child = child;
        k.property = true;
      }
    } else if (key == "additionalProperties") {
      if (!value.is_boolean()) return false;
      n.additional_properties = value.get<bool>();
    } else if (key == "items") {
      if (!compile_node(value, nodes, depth + 1, n.items)) return false;
    } else if (key == "minimum") {
      if (!read_bound(value, n.minimum)) return false;
    } else if (key == "maximum") {
      if (!read_bound(value, n.maximum)) return false;
    } else if (key == "exclusiveMinimum") {
      if (!read_bound(value, n.exclusive_minimum)) return false;
    } else if (key == "exclusiveMaximum") {
      if (!read_bound(value, n.exclusive_maximum)) return false;
    } else if (key == "minLength") {
      if (!read_count(value, n.min_length)) return false;
    } else if (key == "maxLength") {
      if (!read_count(value, n.max_length)) return false;
    } else if (key == "minItems") {
      if (!read_count(value, n.min_items)) return false;
    } else if (key == "maxItems") {
      if (!read_count(value, n.max_items)) return false;
    } else {
      return false;  // unsupported keyword: the whole schema goes to valijson
    }
  }
  // Keys that neither constrain their value nor are required need no lookup
  // unless every other key is refused.
  if (n.additional_properties) {
    std::erase_if(n.keys, [](const Key& k) { return k.child == kAny && k.required == 0; });
  }
  if (unconstrained(n)) {
    index = kAny;
    return true;
  }
  index = static_cast<uint32_t>(nodes.size());
  nodes.push_back(std::move(n));
  return true;
}

Verdict FastSchema::check(std::string_view text) const {
  // UTF-8 is checked as in well_formed_json().
  {
    Validator validator(nodes_, root_);
    bool ascii;
    if (scan_flat_object(text, validator, ascii)) {
      if (!ascii && !protocol::valid_utf8(text)) return Verdict::kNotJson;
      return validator.ok() ? Verdict::kValid : Verdict::kInvalid;
    }
  }
  if (!protocol::valid_utf8(text)) return Verdict::kNotJson;
  {
    // Recursive: faster than RapidJSON's iterative parser, when not too deep.
    Validator validator(nodes_, root_);
    if (parse<rapidjson::kParseNoFlags>(text, validator)) {
      return validator.ok() ? Verdict::kValid : Verdict::kInvalid;
    }
    if (!validator.too_deep()) return Verdict::kNotJson;
  }
  Validator validator(nodes_, root_);
  validator.allow_any_depth();
  if (!parse<rapidjson::kParseIterativeFlag>(text, validator)) return Verdict::kNotJson;
  return validator.ok() ? Verdict::kValid : Verdict::kInvalid;
}

}  // namespace backbone::kernel::rules
