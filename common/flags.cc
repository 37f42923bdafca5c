#include "common/flags.h"

#include <cmath>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/duration.h"
#include "common/host_port.h"

namespace stampede::common {
namespace {

constexpr size_t kWidth = 100;         // the usage text's right margin
constexpr size_t kMaxHelpColumn = 30;  // help starts here at the latest

absl::Status FlagError(const std::string& flag, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", why));
}

std::string Quoted(const std::string& value) { return absl::StrCat("\"", value, "\""); }

// Appends `words` to `out`, whose last line already holds `column` characters, separated by
// spaces: a line breaks before kWidth and goes on at column `indent`.
size_t AppendWords(std::string* out, const std::vector<std::string>& words, size_t column,
                   size_t indent) {
  bool line_empty = true;  // nothing after the indent yet
  for (const std::string& word : words) {
    if (!line_empty && column + 1 + word.size() > kWidth) {
      out->append("\n").append(indent, ' ');
      column = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out->push_back(' ');
      ++column;
    }
    out->append(word);
    column += word.size();
    line_empty = false;
  }
  return column;
}

// The same for text, which also breaks at each '\n'; ends the line.
void AppendWrapped(std::string* out, const std::string& text, size_t column, size_t indent) {
  bool first_paragraph = true;
  for (absl::string_view paragraph : absl::StrSplit(text, '\n')) {
    if (!first_paragraph) {
      out->append("\n").append(indent, ' ');
      column = indent;
    }
    first_paragraph = false;
    const std::vector<std::string> words = absl::StrSplit(paragraph, ' ', absl::SkipEmpty());
    column = AppendWords(out, words, column, indent);
  }
  out->push_back('\n');
}

absl::StatusOr<absl::Duration> ParseBoundedDuration(const std::string& value, FlagSet::Lower lower,
                                                    absl::Duration max) {
  absl::StatusOr<absl::Duration> d = ParseDuration(value);
  if (!d.ok()) return d.status();
  if ((lower == FlagSet::kPositive && *d == absl::ZeroDuration()) || *d > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        Quoted(value), " is not a duration ", lower == FlagSet::kPositive ? "> 0" : ">= 0",
        max == absl::InfiniteDuration() ? ""
                                        : absl::StrCat(" and <= ", absl::FormatDuration(max))));
  }
  return d;
}

}  // namespace

std::optional<std::string> FlagSet::ProcessEnv(const std::string& variable) {
  const char* value = std::getenv(variable.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

FlagSet::FlagSet(std::string command, bool* help) : command_(std::move(command)), help_(help) {}

FlagSet& FlagSet::Synopsis(std::string text) {
  synopsis_ = std::move(text);
  return *this;
}

FlagSet& FlagSet::Description(std::string text) {
  description_ = std::move(text);
  return *this;
}

FlagSet& FlagSet::Footer(std::string text) {
  footer_ = std::move(text);
  return *this;
}

FlagSet& FlagSet::Group(std::string heading) {
  groups_.push_back(std::move(heading));
  return *this;
}

FlagSet& FlagSet::Positional(std::string value_name, std::string* dest) {
  positionals_.push_back({std::move(value_name), dest});
  return *this;
}

FlagSet& FlagSet::Add(Flag flag) {
  flag.group = groups_.size() - 1;
  flags_.push_back(std::move(flag));
  return *this;
}

FlagSet& FlagSet::Bool(std::string name, std::string help, bool* dest) {
  // No value name: Parse gives the flag alone the value "true".
  return Custom(std::move(name), "", std::move(help), [dest](const std::string& value) {
    if (value != "true" && value != "false") {
      return absl::InvalidArgumentError(absl::StrCat(Quoted(value), " is not true or false"));
    }
    *dest = value == "true";
    return absl::OkStatus();
  });
}

FlagSet& FlagSet::String(std::string name, std::string value_name, std::string help,
                         std::string* dest) {
  return Custom(std::move(name), std::move(value_name), std::move(help),
                [dest](const std::string& value) {
                  *dest = value;
                  return absl::OkStatus();
                });
}

FlagSet& FlagSet::Strings(std::string name, std::string value_name, std::string help,
                          std::vector<std::string>* dest) {
  Custom(std::move(name), std::move(value_name), std::move(help), [dest](const std::string& value) {
    dest->push_back(value);
    return absl::OkStatus();
  });
  flags_.back().repeatable = true;
  return *this;
}

FlagSet& FlagSet::HostPort(std::string name, std::string value_name, std::string help,
                           std::string* dest) {
  return Custom(std::move(name), std::move(value_name), std::move(help),
                [dest](const std::string& value) {
                  absl::Status s = SplitHostPort(value).status();
                  if (s.ok()) *dest = value;
                  return s;
                });
}

absl::Status FlagSet::ParseCount(const std::string& value, int64_t min, int64_t max,
                                 int64_t type_max, int64_t* out) {
  if (!absl::SimpleAtoi(value, out) || *out < min || *out > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        Quoted(value), " is not a count ",
        max == kNoMax ? absl::StrCat(">= ", min) : absl::StrCat("in ", min, "..", max)));
  }
  if (*out > type_max)
    return absl::InvalidArgumentError(absl::StrCat(Quoted(value), " is too large"));
  return absl::OkStatus();
}

FlagSet& FlagSet::Number(std::string name, std::string value_name, std::string help, double* dest,
                         Lower lower, double max) {
  return Custom(
      std::move(name), std::move(value_name), std::move(help),
      [dest, lower, max](const std::string& value) {
        double n = 0;
        if (!absl::SimpleAtod(value, &n) || !std::isfinite(n) || n < 0 ||
            (lower == kPositive && n == 0)) {
          return absl::InvalidArgumentError(absl::StrCat(Quoted(value), " is not a number ",
                                                         lower == kPositive ? "> 0" : ">= 0"));
        }
        if (n > max) {
          return absl::InvalidArgumentError(absl::StrCat(Quoted(value), " is more than ", max));
        }
        *dest = n;
        return absl::OkStatus();
      });
}

FlagSet& FlagSet::Duration(std::string name, std::string value_name, std::string help,
                           absl::Duration* dest, Lower lower, absl::Duration max) {
  return Custom(std::move(name), std::move(value_name), std::move(help),
                [dest, lower, max](const std::string& value) {
                  absl::StatusOr<absl::Duration> d = ParseBoundedDuration(value, lower, max);
                  if (d.ok()) *dest = *d;
                  return d.status();
                });
}

FlagSet& FlagSet::DurationNanos(std::string name, std::string value_name, std::string help,
                                int64_t* dest, Lower lower, absl::Duration max) {
  return Custom(std::move(name), std::move(value_name), std::move(help),
                [dest, lower, max](const std::string& value) {
                  absl::StatusOr<absl::Duration> d = ParseBoundedDuration(value, lower, max);
                  if (d.ok()) *dest = absl::ToInt64Nanoseconds(*d);
                  return d.status();
                });
}

FlagSet& FlagSet::Custom(std::string name, std::string value_name, std::string help, Setter set) {
  Flag flag;
  flag.name = std::move(name);
  flag.value_name = std::move(value_name);
  flag.help = std::move(help);
  flag.set = std::move(set);
  return Add(std::move(flag));
}

FlagSet& FlagSet::Env(std::string variable) {
  flags_.back().env = std::move(variable);
  return *this;
}

FlagSet& FlagSet::Required() {
  flags_.back().required = true;
  return *this;
}

const FlagSet::Flag* FlagSet::Find(const std::string& name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) const {
  return Parse(args, ProcessEnv);
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args, const EnvLookup& env) const {
  std::vector<bool> given(flags_.size(), false);
  size_t next_positional = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help") {
      *help_ = true;
      return absl::OkStatus();
    }
    if (arg.empty() || arg[0] != '-') {
      if (positionals_.empty()) return FlagError(arg, "unknown argument");
      if (next_positional == positionals_.size()) {
        const Slot& last = positionals_.back();
        return FlagError(last.value_name, absl::StrCat("one at a time (got ", Quoted(*last.dest),
                                                       " and ", Quoted(arg), ")"));
      }
      *positionals_[next_positional++].dest = arg;
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(0, eq);
    const Flag* flag = Find(name);
    if (flag == nullptr) return FlagError(name, "unknown flag");
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (flag->value_name.empty()) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return FlagError(name, "needs a value");
    }
    if (absl::Status s = flag->set(value); !s.ok()) return FlagError(name, s.message());
    given[flag - flags_.data()] = true;
  }
  for (size_t f = 0; f < flags_.size(); ++f) {
    const Flag& flag = flags_[f];
    if (given[f] || flag.env.empty()) continue;
    const std::optional<std::string> value = env(flag.env);
    if (!value.has_value() || value->empty()) continue;
    if (absl::Status s = flag.set(*value); !s.ok()) {
      return FlagError(absl::StrCat(flag.name, " (from ", flag.env, ")"), s.message());
    }
    given[f] = true;
  }
  for (size_t f = 0; f < flags_.size(); ++f) {
    const Flag& flag = flags_[f];
    if (!flag.required || given[f]) continue;
    return FlagError(flag.env.empty() ? flag.name : absl::StrCat(flag.name, " (or ", flag.env, ")"),
                     "is required");
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  const std::string opening = absl::StrCat("usage: ", command_, " ");
  std::string out = opening;
  if (!synopsis_.empty()) {
    AppendWrapped(&out, synopsis_, opening.size(), opening.size());
  } else {
    // Each "[--flag VALUE]" stays whole on its line.
    std::vector<std::string> words;
    for (const Slot& slot : positionals_) words.push_back(slot.value_name);
    for (const Flag& flag : flags_) {
      const std::string word =
          flag.value_name.empty() ? flag.name : absl::StrCat(flag.name, " ", flag.value_name);
      words.push_back(flag.required ? word : absl::StrCat("[", word, "]"));
    }
    AppendWords(&out, words, opening.size(), opening.size());
    out.push_back('\n');
  }
  if (!description_.empty()) AppendWrapped(&out.append("  "), description_, 2, 2);

  size_t column = 0;  // where help starts: after the longest "  --flag VALUE", within bounds
  for (const Flag& flag : flags_) {
    column = std::max(column, 2 + flag.name.size() + 1 + flag.value_name.size() + 2);
  }
  column = std::min(column, kMaxHelpColumn);
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (!groups_[g].empty()) absl::StrAppend(&out, "\n", groups_[g], "\n");
    for (const Flag& flag : flags_) {
      if (flag.group != g) continue;
      std::string line = absl::StrCat("  ", flag.name);
      if (!flag.value_name.empty()) absl::StrAppend(&line, " ", flag.value_name);
      line.append(line.size() + 2 <= column ? column - line.size() : 2, ' ');
      std::string help = flag.help;
      if (flag.repeatable) absl::StrAppend(&help, " (repeatable)");
      if (!flag.env.empty()) absl::StrAppend(&help, " [env ", flag.env, "]");
      out.append(line);
      AppendWrapped(&out, help, line.size(), column);
    }
  }
  if (!footer_.empty()) AppendWrapped(&out.append("  "), footer_, 2, 2);
  return out;
}

}  // namespace stampede::common
