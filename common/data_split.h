// Which row of a scenario's data table each virtual user or iteration uses, computed from the
// global indices the load plan already gives (user u runs on stream u % S; arrival i on stream
// i % S): no coordination between agents at run time, and the same user gets the same row
// whatever the agent and thread counts.
//
//   bind user, closed model        user u takes row P(u): each row to one user of the whole test
//   bind iteration, closed model   user u's j-th iteration takes row P(u + U * j), U the plan's
//                                  most users: disjoint across users
//   bind user or iteration, open   arrival i takes row P(i)
//
// P is the identity (order sequence) or a permutation of [0, rows) seeded by the run (order
// shuffle): a Feistel network with cycle-walking, so P(k) is computed for one k without building
// the table. Past the last row an index wraps (wrap) or finds no row (the user stops, or the
// spec was refused when the plan needs more rows than there are: RowsNeeded).
//
// With an exact split the controller sends each agent only the rows of its streams (RowsOfStreams);
// with a shared table every agent gets all of it. Pure and thread-safe.
#ifndef STAMPEDE_COMMON_DATA_SPLIT_H_
#define STAMPEDE_COMMON_DATA_SPLIT_H_

#include <cstdint>
#include <optional>
#include <vector>

namespace stampede::common {

class LoadPlan;

struct DataBinding {
  enum class Bind { kUser, kIteration };
  enum class Order { kSequence, kShuffle };
  Bind bind = Bind::kUser;
  Order order = Order::kSequence;
  bool wrap = false;  // past the last row, start again from the first
  uint64_t rows = 0;  // > 0
  uint64_t seed = 0;  // the run's seed, for kShuffle
  bool open_model = false;
  uint64_t max_users = 0;  // closed model: the plan's MaxUsers (U above)
};

// A bijection of [0, rows) seeded by `seed` (rows > 0).
class Permutation {
 public:
  Permutation(uint64_t rows, uint64_t seed);
  uint64_t operator()(uint64_t k) const;  // k < rows

 private:
  uint64_t Round(uint64_t half, int round) const;
  uint64_t rows_;
  int half_bits_;
  uint64_t half_mask_;
  uint64_t keys_[4];
};

// The global index whose row a request of user `user`'s iteration `iteration` uses (closed model),
// or of arrival `user` (open model, `iteration` ignored), before the permutation and the wrap.
uint64_t DataIndex(const DataBinding& b, uint64_t user, uint64_t iteration);

// The row for that index: P(index), or P(index % rows) with wrap, or nullopt past the last row.
std::optional<uint64_t> RowFor(const DataBinding& b, const Permutation& p, uint64_t index);

// How many distinct indices the plan can reach: with bind user each user of the closed model,
// and in the open model each arrival (either bind); nullopt for bind iteration in the closed
// model, whose count depends on how fast the target answers. A spec without wrap whose table has
// fewer rows is refused, naming the table.
std::optional<uint64_t> RowsNeeded(const DataBinding& b, const LoadPlan& plan);

// Whether index `x` belongs to the streams [first, first + count) of `streams` (the ones an agent
// runs): user x % streams with bind user, user (x % U) % streams with bind iteration (closed),
// arrival x % streams (open).
bool OnStreams(const DataBinding& b, uint32_t streams, uint32_t first, uint32_t count, uint64_t x);
// The place of `x` (OnStreams) among the indices on those streams, in ascending order.
uint64_t LocalPosition(const DataBinding& b, uint32_t streams, uint32_t first, uint32_t count,
                       uint64_t x);

// For an exact split: the rows those streams can use, P(x) for each index x on them below
// `reach` (RowsNeeded, or the rows), in ascending x, so that LocalPosition(x) is where the agent
// finds x's row. With wrap every row may come to any stream: all rows, in order.
std::vector<uint64_t> RowsOfStreams(const DataBinding& b, const Permutation& p, uint64_t reach,
                                    uint32_t streams, uint32_t first, uint32_t count);

}  // namespace stampede::common

#endif  // STAMPEDE_COMMON_DATA_SPLIT_H_
