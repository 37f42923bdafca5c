// A command's flags as one table: each flag is declared once, with where its value goes, its help
// line and its bounds. Parse fills the destinations; Usage writes the help text from the same
// table, so help cannot drift from the flags.
//
//   RunCommandOptions o;
//   common::FlagSet flags("stampede run", &o.help);
//   flags.Positional("TEST.yaml", &o.file);
//   flags.Count("--agents", "N", "override spec.agents", &o.agents, 1);
//   RETURN_IF_ERROR(flags.Parse(args));
//
// Forms: every flag takes `--flag value` or `--flag=value` (the next argument is the value even
// when it starts with '-'); a boolean flag takes `--flag`, `--flag=true` or `--flag=false`. A flag
// given twice keeps its last value, except a repeatable one (Strings), which keeps every value.
// Arguments that do not start with '-' fill the positional slots in order.
//
// Help: -h or --help stops the parse where it stands and sets the help destination; Parse then
// returns OK without checking the rest (required flags, the environment). It is not an error.
//
// Errors are InvalidArgument, with a message "FLAG: why" a user can act on:
// `--agents: "0" is not a count >= 1`, `--bogus: unknown flag`, `--out: needs a value`,
// `--url: is required`, `x: unknown argument`. A bad value from the environment names both:
// `--threads (from STAMPEDE_THREADS): "x" is not a count in 0..1024`.
//
// Ownership: a FlagSet keeps the destination pointers it is given; they must outlive its Parse
// calls. A FlagSet is not thread-safe. The usual shape is one function that declares a command's
// flags into its options struct, used both to parse and (on a throwaway struct) for the usage.
#ifndef STAMPEDE_COMMON_FLAGS_H_
#define STAMPEDE_COMMON_FLAGS_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace stampede::common {

class FlagSet {
 public:
  // Stores one value into its destination, or says why the value is wrong (the message without
  // the flag's name, which Parse puts in front).
  using Setter = std::function<absl::Status(const std::string& value)>;
  // The environment: a variable's value, or nullopt when unset. An empty value counts as unset.
  using EnvLookup = std::function<std::optional<std::string>(const std::string& variable)>;
  // The process's environment (getenv).
  static std::optional<std::string> ProcessEnv(const std::string& variable);
  // The lower bound of a number or a duration.
  enum Lower { kNonNegative, kPositive };
  static constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

  // `command` ("stampede run") opens the usage text. `help` is set when -h/--help is given.
  FlagSet(std::string command, bool* help);

  // The usage text around the flags. Synopsis replaces the generated "[--flag VALUE]..." list
  // (for alternatives the table cannot express); Description comes below it, Footer last; Group
  // starts a new group of flags under `heading`, after a blank line. Text is wrapped at 100
  // columns; a '\n' in it starts a new line.
  FlagSet& Synopsis(std::string text);
  FlagSet& Description(std::string text);
  FlagSet& Footer(std::string text);
  FlagSet& Group(std::string heading);

  // The next argument that does not start with '-'. One slot per call; a surplus argument is an
  // error naming the last slot.
  FlagSet& Positional(std::string value_name, std::string* dest);

  // The flags. `value_name` is what the usage shows after the name ("N", "FILE").
  FlagSet& Bool(std::string name, std::string help, bool* dest);
  FlagSet& String(std::string name, std::string value_name, std::string help, std::string* dest);
  // Repeatable: each occurrence appends its value.
  FlagSet& Strings(std::string name, std::string value_name, std::string help,
                   std::vector<std::string>* dest);
  // "host:port" as SplitHostPort (common/host_port.h) accepts it.
  FlagSet& HostPort(std::string name, std::string value_name, std::string help, std::string* dest);
  // A whole number in [min, max] (and within what Int holds).
  template <typename Int>
  FlagSet& Count(std::string name, std::string value_name, std::string help, Int* dest, int64_t min,
                 int64_t max = kNoMax) {
    constexpr int64_t kIntMax =
        static_cast<uint64_t>(std::numeric_limits<Int>::max()) > static_cast<uint64_t>(kNoMax)
            ? kNoMax
            : static_cast<int64_t>(std::numeric_limits<Int>::max());
    return Custom(std::move(name), std::move(value_name), std::move(help),
                  [dest, min, max](const std::string& value) {
                    int64_t n = 0;
                    absl::Status s = ParseCount(value, min, max, kIntMax, &n);
                    if (s.ok()) *dest = static_cast<Int>(n);
                    return s;
                  });
  }
  // A finite number, >= 0 or > 0, at most `max`.
  FlagSet& Number(std::string name, std::string value_name, std::string help, double* dest,
                  Lower lower, double max = std::numeric_limits<double>::infinity());
  // A duration as common::ParseDuration reads it ("500ms", "1m30s"), >= 0 or > 0, at most `max`.
  FlagSet& Duration(std::string name, std::string value_name, std::string help,
                    absl::Duration* dest, Lower lower,
                    absl::Duration max = absl::InfiniteDuration());
  // The same, stored as nanoseconds.
  FlagSet& DurationNanos(std::string name, std::string value_name, std::string help, int64_t* dest,
                         Lower lower, absl::Duration max = absl::InfiniteDuration());
  // Any other kind of value: `set` parses and stores it.
  FlagSet& Custom(std::string name, std::string value_name, std::string help, Setter set);

  // Change the flag declared last: read `variable` when the command line does not give the flag;
  // make the flag required (on the command line or, with Env, in the environment).
  FlagSet& Env(std::string variable);
  FlagSet& Required();

  // Parses `args` (without the command's own name) into the destinations; see the top of the
  // file for the forms and the errors. The one-argument form reads the process environment.
  absl::Status Parse(const std::vector<std::string>& args) const;
  absl::Status Parse(const std::vector<std::string>& args, const EnvLookup& env) const;

  // The help text: synopsis, description, the flags by group, footer.
  std::string Usage() const;

 private:
  static absl::Status ParseCount(const std::string& value, int64_t min, int64_t max,
                                 int64_t type_max, int64_t* out);

  struct Flag {
    std::string name;
    std::string value_name;  // empty: a boolean flag, which takes no value
    std::string help;
    std::string env;
    bool repeatable = false;
    bool required = false;
    size_t group = 0;  // index into groups_
    Setter set;
  };
  struct Slot {
    std::string value_name;
    std::string* dest;
  };

  FlagSet& Add(Flag flag);
  const Flag* Find(const std::string& name) const;

  std::string command_;
  bool* help_;
  std::string synopsis_, description_, footer_;
  std::vector<std::string> groups_{""};  // headings; the first group has none
  std::vector<Flag> flags_;              // in the order of the usage text
  std::vector<Slot> positionals_;
};

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_FLAGS_H_
