#include "common/data_split.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "common/load_plan.h"

namespace stampede::common {
namespace {

using Bind = DataBinding::Bind;
using Order = DataBinding::Order;

TEST(PermutationTest, IsABijectionOfEveryTableSize) {
  for (const uint64_t rows : {1u, 2u, 3u, 5u, 16u, 17u, 1000u, 4097u}) {
    for (const uint64_t seed : {0u, 1u, 42u}) {
      const Permutation p(rows, seed);
      std::vector<bool> seen(rows, false);
      for (uint64_t k = 0; k < rows; ++k) {
        const uint64_t v = p(k);
        ASSERT_LT(v, rows) << rows << " " << seed;
        ASSERT_FALSE(seen[v]) << "row " << v << " twice; rows " << rows << " seed " << seed;
        seen[v] = true;
      }
    }
  }
}

TEST(PermutationTest, DependsOnTheSeedOnlyAndShuffles) {
  const Permutation a(1000, 7), b(1000, 7), c(1000, 8);
  int same_as_identity = 0, same_as_other_seed = 0;
  for (uint64_t k = 0; k < 1000; ++k) {
    EXPECT_EQ(a(k), b(k));
    same_as_identity += a(k) == k;
    same_as_other_seed += a(k) == c(k);
  }
  // A random permutation fixes about one point; a seeded one of these sizes a handful at most.
  EXPECT_LT(same_as_identity, 20);
  EXPECT_LT(same_as_other_seed, 20);
}

// Agents with 3, 2 and 2 threads: 7 streams, as the controller assigns them.
struct AgentStreams {
  uint32_t first, count;
};
const std::vector<AgentStreams> kAgents = {{0, 3}, {3, 2}, {5, 2}};
constexpr uint32_t kStreams = 7;

// What each user (or index) of each agent reads: the row the agent finds at LocalPosition in
// the rows the controller sent it.
void ExpectEveryIndexFindsItsOwnRow(const DataBinding& b, uint64_t reach,
                                    const std::vector<uint64_t>& indices,
                                    std::multiset<uint64_t>* used) {
  const Permutation p(b.rows, b.seed);
  for (const AgentStreams& a : kAgents) {
    const std::vector<uint64_t> sent = RowsOfStreams(b, p, reach, kStreams, a.first, a.count);
    size_t on_agent = 0;
    for (const uint64_t x : indices) {
      if (!OnStreams(b, kStreams, a.first, a.count, x)) continue;
      ++on_agent;
      const std::optional<uint64_t> row = RowFor(b, p, x);
      ASSERT_TRUE(row.has_value()) << x;
      const uint64_t at = LocalPosition(b, kStreams, a.first, a.count, x);
      ASSERT_LT(at, sent.size()) << "index " << x << " on agent " << a.first;
      EXPECT_EQ(sent[at], *row) << "index " << x;
      used->insert(*row);
    }
    EXPECT_EQ(sent.size(), on_agent) << "the agent gets exactly the rows its users use";
  }
}

TEST(DataSplitTest, BindUserGivesEachRowToExactlyOneUserOfTheWholeTest) {
  for (const Order order : {Order::kSequence, Order::kShuffle}) {
    DataBinding b;
    b.bind = Bind::kUser;
    b.order = order;
    b.rows = 120;  // more rows than the 103 users: the rest are unused
    b.seed = 99;
    b.max_users = 103;
    std::vector<uint64_t> users;
    for (uint64_t u = 0; u < 103; ++u) users.push_back(DataIndex(b, u, /*iteration=*/5));
    std::multiset<uint64_t> used;
    ExpectEveryIndexFindsItsOwnRow(b, 103, users, &used);
    EXPECT_EQ(used.size(), 103u);
    EXPECT_EQ(std::set<uint64_t>(used.begin(), used.end()).size(), 103u) << "no row twice";
  }
}

TEST(DataSplitTest, AUsersRowDoesNotDependOnHowTheTestIsSplit) {
  DataBinding b;
  b.order = Order::kShuffle;
  b.rows = 500;
  b.seed = 3;
  b.max_users = 500;
  const Permutation p(b.rows, b.seed);
  for (uint64_t u = 0; u < 500; u += 37) {
    const uint64_t row = *RowFor(b, p, DataIndex(b, u, 0));
    for (const uint32_t streams : {1u, 4u, 7u, 64u}) {
      const uint32_t stream = static_cast<uint32_t>(u % streams);
      const std::vector<uint64_t> sent = RowsOfStreams(b, p, 500, streams, stream, 1);
      EXPECT_EQ(sent.at(LocalPosition(b, streams, stream, 1, u)), row) << u << " " << streams;
    }
  }
}

TEST(DataSplitTest, BindIterationGivesEachRowToOneIterationOfOneUser) {
  DataBinding b;
  b.bind = Bind::kIteration;
  b.order = Order::kShuffle;
  b.rows = 95;
  b.seed = 11;
  b.max_users = 10;
  std::vector<uint64_t> indices;
  std::set<std::pair<uint64_t, uint64_t>> user_iterations;
  for (uint64_t j = 0; j < 20; ++j) {
    for (uint64_t u = 0; u < 10; ++u) {
      const uint64_t x = DataIndex(b, u, j);
      if (x < b.rows) {
        indices.push_back(x);
        user_iterations.insert({u, j});
      } else {
        EXPECT_FALSE(RowFor(b, Permutation(b.rows, b.seed), x).has_value())
            << "user " << u << " iteration " << j << " is past the table";
      }
    }
  }
  EXPECT_EQ(indices.size(), 95u);
  std::multiset<uint64_t> used;
  ExpectEveryIndexFindsItsOwnRow(b, b.rows, indices, &used);
  EXPECT_EQ(std::set<uint64_t>(used.begin(), used.end()).size(), 95u) << "every row once";
}

TEST(DataSplitTest, OpenModelArrivalsTakeRowsInTheirPlannedOrder) {
  absl::StatusOr<LoadPlan> plan = LoadPlan::Open(20, {}, 3'000'000'000);
  ASSERT_TRUE(plan.ok());
  DataBinding b;
  b.bind = Bind::kIteration;
  b.open_model = true;
  b.rows = 60;
  ASSERT_EQ(RowsNeeded(b, *plan), 60u);
  std::vector<uint64_t> arrivals;
  for (uint64_t i = 0; i < 60; ++i) {
    EXPECT_EQ(DataIndex(b, i, 123), i) << "an arrival's index is its number";
    arrivals.push_back(i);
  }
  std::multiset<uint64_t> used;
  ExpectEveryIndexFindsItsOwnRow(b, 60, arrivals, &used);
  EXPECT_EQ(std::set<uint64_t>(used.begin(), used.end()).size(), 60u);
}

TEST(DataSplitTest, RowsNeededIsThePlansMostUsersAndNoneForClosedIterations) {
  absl::StatusOr<LoadPlan> plan =
      LoadPlan::Closed(0, 0, {{1'000'000'000, 50}, {1'000'000'000, 20}}, 0);
  ASSERT_TRUE(plan.ok());
  DataBinding b;
  EXPECT_EQ(RowsNeeded(b, *plan), 50u) << "a ramp down and up reuses the same 50 users";
  b.bind = Bind::kIteration;
  EXPECT_FALSE(RowsNeeded(b, *plan).has_value());
}

TEST(DataSplitTest, PastTheLastRowAnIndexWrapsOrHasNoRow) {
  DataBinding b;
  b.rows = 3;
  const Permutation p(3, 0);
  EXPECT_EQ(RowFor(b, p, 2), 2u);
  EXPECT_FALSE(RowFor(b, p, 3).has_value());
  b.wrap = true;
  EXPECT_EQ(RowFor(b, p, 3), 0u);
  EXPECT_EQ(RowFor(b, p, 7), 1u);
  // With wrap any stream may reach any row: each agent gets the whole table, in order.
  EXPECT_EQ(RowsOfStreams(b, p, 100, 7, 3, 2), (std::vector<uint64_t>{0, 1, 2}));
}

}  // namespace
}  // namespace stampede::common
