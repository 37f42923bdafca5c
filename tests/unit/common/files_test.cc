// The files a user names: what is read is bounded and must be a regular file; what is written is
// replaced whole when it is a file and written in place when it is anything else.
#include "common/files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace stampede::common {
namespace {

class FilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stampede-files-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)!std::system(("rm -rf '" + dir_ + "'").c_str()); }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  static void Put(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  static std::string Get(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The names in the folder (to see that no temporary file is left).
  std::string Listing() const {
    std::string out;
    FILE* ls = popen(("ls -A '" + dir_ + "'").c_str(), "r");
    char buf[256];
    while (fgets(buf, sizeof buf, ls) != nullptr) out += buf;
    pclose(ls);
    return out;
  }

  std::string dir_;
};

TEST_F(FilesTest, ReadsARegularFileWithinItsBound) {
  Put(Path("spec.yaml"), "kind: LoadTest\n");
  EXPECT_EQ(*ReadSmallFile(Path("spec.yaml"), 100), "kind: LoadTest\n");
  const absl::StatusOr<std::string> big = ReadSmallFile(Path("spec.yaml"), 5);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().message(), Path("spec.yaml") + " is larger than 5 bytes");
}

TEST_F(FilesTest, RefusesWhatIsNotARegularFileAtOnce) {
  // /dev/zero would never end; a directory used to read as an empty document; a FIFO would block.
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0600), 0);
  const struct {
    std::string path, message;
  } cases[] = {{"/dev/zero", "/dev/zero is a character device, not a file to read"},
               {dir_, dir_ + " is a directory, not a file to read"},
               {Path("fifo"), Path("fifo") + " is a FIFO, not a file to read"}};
  for (const auto& c : cases) {
    const absl::StatusOr<std::string> got = ReadSmallFile(c.path, 1 << 20);
    ASSERT_FALSE(got.ok()) << c.path;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(got.status().message(), c.message);
  }
  const absl::StatusOr<std::string> missing = ReadSmallFile(Path("nope"), 10);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("No such file"), std::string::npos);
}

TEST_F(FilesTest, ARegularFileIsReplacedWholeAndNoTemporaryFileStays) {
  Put(Path("out.json"), "old");
  absl::StatusOr<OutputFile> out = OutputFile::Prepare(Path("out.json"));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(out->Write("{\"new\": true}").ok());
  EXPECT_EQ(Get(Path("out.json")), "{\"new\": true}");
  absl::StatusOr<OutputFile> fresh = OutputFile::Prepare(Path("fresh.csv"));
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(fresh->Write("a,b\n").ok());
  EXPECT_EQ(Listing(), "fresh.csv\nout.json\n");
}

TEST_F(FilesTest, ThroughASymlinkTheFileIsReplacedAndTheLinkStays) {
  Put(Path("real.json"), "old");
  ASSERT_EQ(symlink("real.json", Path("link.json").c_str()), 0);
  absl::StatusOr<OutputFile> out = OutputFile::Prepare(Path("link.json"));
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_TRUE(out->Write("new").ok());
  struct stat st {};
  ASSERT_EQ(lstat(Path("link.json").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced by a file";
  EXPECT_EQ(Get(Path("real.json")), "new");
}

TEST_F(FilesTest, AFifoIsWrittenInPlace) {
  ASSERT_EQ(mkfifo(Path("fifo").c_str(), 0600), 0);
  absl::StatusOr<OutputFile> out = OutputFile::Prepare(Path("fifo"));
  ASSERT_TRUE(out.ok()) << out.status();
  std::string got;
  std::thread reader([&] { got = Get(Path("fifo")); });
  ASSERT_TRUE(out->Write("through the pipe").ok());
  reader.join();
  EXPECT_EQ(got, "through the pipe");
  struct stat st {};
  ASSERT_EQ(stat(Path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced by a regular file";
}

TEST_F(FilesTest, AWriteErrorIsReportedWithItsReason) {
  // /dev/full (a device, so written in place, and never replaced, even as root).
  absl::StatusOr<OutputFile> out = OutputFile::Prepare("/dev/full");
  ASSERT_TRUE(out.ok()) << out.status();
  const absl::Status s = out->Write("results");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "cannot write /dev/full: No space left on device");
  struct stat st {};
  ASSERT_EQ(stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(FilesTest, AnUnwritablePathIsKnownBeforeAnythingIsWritten) {
  const absl::StatusOr<OutputFile> missing_dir = OutputFile::Prepare(Path("no/such/dir/out.json"));
  ASSERT_FALSE(missing_dir.ok());
  EXPECT_EQ(missing_dir.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(missing_dir.status().message().find("No such file or directory"), std::string::npos)
      << missing_dir.status();
  const absl::StatusOr<OutputFile> a_dir = OutputFile::Prepare(dir_);
  ASSERT_FALSE(a_dir.ok());
  EXPECT_EQ(a_dir.status().message(), dir_ + " is a directory");
}

}  // namespace
}  // namespace stampede::common
