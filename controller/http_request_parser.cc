#include "controller/http_request_parser.h"

#include <algorithm>
#include <cctype>

#include "common/http_syntax.h"

namespace stampede::controller {
namespace {

constexpr size_t kMaxChunkLine = 1024;  // a chunk size with its extensions

using common::IsToken;

using common::AsciiLower;
using common::TrimOws;

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

const std::string& HttpRequest::Header(std::string_view lowercase_name) const {
  static const std::string* const kEmpty = new std::string();
  for (const auto& [name, value] : headers) {
    if (name == lowercase_name) return value;
  }
  return *kEmpty;
}

std::string HttpRequest::QueryParam(std::string_view key) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
    const size_t eq = pair.find('=');
    if (PercentDecode(pair.substr(0, eq)) == key) {
      return eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
    }
  }
  return "";
}

void HttpRequestParser::Reset() {
  state_ = State::kHead;
  head_.clear();
  request_ = HttpRequest();
  error_status_ = 0;
  error_.clear();
  body_mode_ = BodyMode::kNone;
  remaining_ = 0;
  chunk_state_ = ChunkState::kSize;
  line_.clear();
  trailer_bytes_ = 0;
  skipped_cr_ = false;
}

void HttpRequestParser::Fail(int status, std::string why) {
  state_ = State::kError;
  error_status_ = status;
  error_ = std::move(why);
}

size_t HttpRequestParser::Feed(std::string_view data) {
  size_t used = 0;
  if (state_ == State::kHead) {
    // Empty lines before a request line are skipped (RFC 9112 section 2.2).
    while (head_.empty() && used < data.size() && (data[used] == '\r' || data[used] == '\n')) {
      if (data[used] == '\n' && !skipped_cr_) {
        Fail(400, "a bare LF ends a line");
        return used;
      }
      skipped_cr_ = data[used] == '\r';
      ++used;
    }
    const size_t before = head_.size();
    const size_t room = max_head_bytes_ + 1 - std::min(before, max_head_bytes_ + 1);
    head_.append(data.substr(used, room));
    const size_t end = head_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    // A bare LF in the head is refused at once rather than waited on (what follows the head is
    // body, where any byte goes).
    for (size_t i = before, last = end == std::string::npos ? head_.size() : end + 4; i < last;
         ++i) {
      if (head_[i] == '\n' && (i == 0 || head_[i - 1] != '\r')) {
        Fail(400, "a bare LF ends a line");
        return used;
      }
    }
    if (end == std::string::npos) {
      if (head_.size() > max_head_bytes_) {
        Fail(431, "the request head is too large");
        return used;
      }
      return data.size();
    }
    if (end + 4 > max_head_bytes_) {
      Fail(431, "the request head is too large");
      return used;
    }
    used += end + 4 - before;
    head_.resize(end + 4);
    ParseHead();
    if (state_ == State::kError) return used;
  }
  if (state_ == State::kBody) used += FeedBody(data.substr(used));
  return used;
}

void HttpRequestParser::ParseHead() {
  std::string_view head(head_);
  head.remove_suffix(2);  // the empty line's CRLF; every line below ends in CRLF
  const size_t line_end = head.find("\r\n");
  const std::string_view line = head.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(400, "the request line is not METHOD TARGET VERSION");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Fail(400, "the method is not a token");
  if (target.empty() || target.front() != '/' ||
      std::any_of(target.begin(), target.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; })) {
    return Fail(400, "the target is not an absolute path");
  }
  if (version == "HTTP/1.1") {
    request_.minor_version = 1;
  } else if (version == "HTTP/1.0") {
    request_.minor_version = 0;
  } else if (version.substr(0, 5) == "HTTP/") {
    return Fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
  } else {
    return Fail(400, "the version is not HTTP/1.x");
  }
  request_.method = std::string(method);
  request_.target = std::string(target);
  const size_t q = target.find('?');
  request_.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) request_.query = std::string(target.substr(q + 1));

  std::string_view rest =
      line_end == std::string_view::npos ? std::string_view() : head.substr(line_end + 2);
  while (!rest.empty()) {
    const size_t end = rest.find("\r\n");
    std::string_view field = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    if (field.front() == ' ' || field.front() == '\t') return Fail(400, "obsolete line folding");
    const size_t colon = field.find(':');
    if (colon == std::string_view::npos || !IsToken(field.substr(0, colon))) {
      return Fail(400, "a header line is not NAME: VALUE");
    }
    const std::string_view value = TrimOws(field.substr(colon + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return (u < ' ' && u != '\t') || u == 0x7f;
        })) {
      return Fail(400, "a header value holds a control character");
    }
    request_.headers.emplace_back(AsciiLower(field.substr(0, colon)), std::string(value));
  }

  bool has_length = false, chunked = false, close = false, keep_alive = false;
  uint64_t length = 0;
  for (const auto& [name, value] : request_.headers) {
    if (name == "content-length") {
      uint64_t n = 0;
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), ::isdigit)) {
        return Fail(400, "Content-Length is not a number");
      }
      n = std::stoull(value);
      if (has_length && n != length) return Fail(400, "conflicting Content-Length headers");
      has_length = true;
      length = n;
    } else if (name == "transfer-encoding") {
      if (AsciiLower(value) != "chunked" || chunked)
        return Fail(501, "only Transfer-Encoding: chunked is served");
      chunked = true;
    } else if (name == "connection") {
      const std::string v = AsciiLower(value);
      close = close || v.find("close") != std::string::npos;
      keep_alive = keep_alive || v.find("keep-alive") != std::string::npos;
    } else if (name == "expect") {
      if (AsciiLower(value) != "100-continue")
        return Fail(417, "only Expect: 100-continue is understood");
      request_.expect_continue = true;
    }
  }
  // HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when asked to keep it.
  request_.keep_alive = !close && (request_.minor_version == 1 || keep_alive);
  if (has_length && chunked) return Fail(400, "both Content-Length and Transfer-Encoding");
  if (chunked && request_.minor_version == 0) return Fail(400, "Transfer-Encoding in HTTP/1.0");
  if (has_length && length > max_body_bytes_) {
    return Fail(413, "request body too large");
  }
  body_mode_ = chunked                    ? BodyMode::kChunked
               : has_length && length > 0 ? BodyMode::kLength
                                          : BodyMode::kNone;
  remaining_ = length;
  state_ = body_mode_ == BodyMode::kNone ? State::kDone : State::kBody;
  if (body_mode_ == BodyMode::kLength) request_.body.reserve(length);
}

size_t HttpRequestParser::FeedBody(std::string_view data) {
  size_t used = 0;
  while (used < data.size() && state_ == State::kBody) {
    if (body_mode_ == BodyMode::kLength) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - used));
      request_.body.append(data.substr(used, n));
      used += n;
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::kDone;
      continue;
    }
    switch (chunk_state_) {
      case ChunkState::kSize:
      case ChunkState::kTrailer: {
        // One line: a chunk size (hex, then ";extensions"), or a trailer field / the final CRLF.
        const size_t nl = data.find('\n', used);
        const size_t take = (nl == std::string_view::npos ? data.size() : nl + 1) - used;
        line_.append(data.substr(used, take));
        used += take;
        const size_t limit = chunk_state_ == ChunkState::kSize ? kMaxChunkLine : max_head_bytes_;
        if (line_.size() > limit || trailer_bytes_ + line_.size() > max_head_bytes_) {
          Fail(chunk_state_ == ChunkState::kSize ? 400 : 431, "a chunk line is too long");
          return used;
        }
        if (line_.empty() || line_.back() != '\n') continue;
        if (line_.size() < 2 || line_[line_.size() - 2] != '\r') {
          Fail(400, "a bare LF ends a line");
          return used;
        }
        const std::string_view text(line_.data(), line_.size() - 2);
        if (chunk_state_ == ChunkState::kTrailer) {
          trailer_bytes_ += line_.size();
          line_.clear();
          if (text.empty()) state_ = State::kDone;
          continue;
        }
        const std::string_view digits = text.substr(0, text.find(';'));
        if (digits.empty() || digits.size() > 15 ||
            !std::all_of(digits.begin(), digits.end(), [](char c) { return HexValue(c) >= 0; })) {
          Fail(400, "a chunk size is not hexadecimal");
          return used;
        }
        uint64_t size = 0;
        for (char c : digits) size = size * 16 + static_cast<uint64_t>(HexValue(c));
        line_.clear();
        if (size > max_body_bytes_ - std::min(max_body_bytes_, request_.body.size())) {
          Fail(413, "request body too large");
          return used;
        }
        if (size == 0) {
          chunk_state_ = ChunkState::kTrailer;
        } else {
          remaining_ = size;
          chunk_state_ = ChunkState::kData;
        }
        break;
      }
      case ChunkState::kData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - used));
        request_.body.append(data.substr(used, n));
        used += n;
        remaining_ -= n;
        if (remaining_ == 0) chunk_state_ = ChunkState::kDataEnd;
        break;
      }
      case ChunkState::kDataEnd: {
        // The CRLF after a chunk's data.
        line_.push_back(data[used++]);
        if (line_ != "\r" && line_ != "\r\n") {
          Fail(400, "a chunk does not end in CRLF");
          return used;
        }
        if (line_.size() < 2) break;
        line_.clear();
        chunk_state_ = ChunkState::kSize;
        break;
      }
    }
  }
  return used;
}

}  // namespace stampede::controller
