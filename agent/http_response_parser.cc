#include "agent/http_response_parser.h"

#include <algorithm>
#include <cstring>

namespace stampede::agent {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool EqualsIgnoreCase(const char* a, size_t len, const char* lower) {
  const size_t n = std::strlen(lower);
  if (len != n) return false;
  for (size_t i = 0; i < n; ++i) {
    if (Lower(a[i]) != lower[i]) return false;
  }
  return true;
}

// Whether the comma-separated header value contains `token` (lower case), ignoring case and spaces.
bool HasToken(const char* value, size_t len, const char* token) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) ++i;
    size_t start = i;
    while (i < len && value[i] != ',') ++i;
    size_t end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t')) --end;
    if (end > start && EqualsIgnoreCase(value + start, end - start, token)) return true;
  }
  return false;
}

// The last transfer coding decides whether the body is chunked.
bool LastCodingIsChunked(const char* value, size_t len) {
  size_t end = len;
  while (end > 0 && (value[end - 1] == ' ' || value[end - 1] == '\t')) --end;
  size_t start = end;
  while (start > 0 && value[start - 1] != ',') --start;
  while (start < end && (value[start] == ' ' || value[start] == '\t')) ++start;
  return EqualsIgnoreCase(value + start, end - start, "chunked");
}

}  // namespace

void HttpResponseParser::Reset(bool head_request, const Keep* keep) {
  keep_ = keep;
  body_.clear();
  body_truncated_ = false;
  set_cookie_count_ = 0;
  const size_t wanted = keep != nullptr && keep->headers != nullptr ? keep->headers->size() : 0;
  if (header_values_.size() < wanted) header_values_.resize(wanted);
  header_present_.assign(wanted, 0);
  state_ = State::kStatusLine;
  head_request_ = head_request;
  started_ = false;
  keep_alive_ = true;
  chunked_ = has_length_ = http10_ = false;
  connection_close_ = connection_keep_alive_ = false;
  status_ = 0;
  content_length_ = remaining_ = body_bytes_ = 0;
  header_bytes_ = 0;
  error_ = nullptr;
  partial_line_.clear();
}

HttpResponseParser::Result HttpResponseParser::Fail(const char* reason) {
  state_ = State::kError;
  error_ = reason;
  return Result::kError;
}

HttpResponseParser::Result HttpResponseParser::Parse(const char* data, size_t len,
                                                     size_t* consumed) {
  if (len > 0) started_ = true;
  size_t pos = 0;
  while (pos < len) {
    switch (state_) {
      case State::kDone:
        *consumed = pos;
        return Result::kComplete;
      case State::kError:
        *consumed = pos;
        return Result::kError;
      case State::kBodyLength:
      case State::kChunkData: {
        const uint64_t take = std::min<uint64_t>(remaining_, len - pos);
        if (keep_ != nullptr) KeepBody(data + pos, take);
        pos += take;
        remaining_ -= take;
        body_bytes_ += take;
        if (remaining_ == 0) {
          state_ = state_ == State::kBodyLength ? State::kDone : State::kChunkDataEnd;
        }
        break;
      }
      case State::kBodyUntilClose:
        if (keep_ != nullptr) KeepBody(data + pos, len - pos);
        body_bytes_ += len - pos;
        pos = len;
        break;
      default: {
        // Line-oriented states.
        if (state_ == State::kStatusLine) {
          // Bytes that cannot begin "HTTP/1." are not a response, whatever follows (an HTTP/2
          // frame, a TLS alert, a banner): say so at the first wrong byte rather than wait for a
          // line end that may never come.
          static constexpr char kPrefix[] = "HTTP/1.";
          const size_t have = partial_line_.size();
          for (size_t i = have; i + 1 < sizeof(kPrefix) && pos + (i - have) < len; ++i) {
            if (data[pos + (i - have)] != kPrefix[i]) {
              *consumed = pos + (i - have) + 1;
              return Fail("not an HTTP/1.x response");
            }
          }
        }
        const char* start = data + pos;
        const void* nl = std::memchr(start, '\n', len - pos);
        if (nl == nullptr) {
          // One byte over the limit is allowed only if it is the CR of a line exactly at it.
          const size_t carried = partial_line_.size() + (len - pos);
          if (carried > kMaxLineBytes + 1 ||
              (carried == kMaxLineBytes + 1 && data[len - 1] != '\r')) {
            *consumed = len;
            return Fail("line too long");
          }
          partial_line_.append(start, len - pos);
          pos = len;
          break;
        }
        const size_t line_len = static_cast<const char*>(nl) - start;
        pos += line_len + 1;
        Result r;
        if (partial_line_.empty()) {
          size_t n = line_len;
          if (n > 0 && start[n - 1] == '\r') --n;
          r = n > kMaxLineBytes ? Fail("line too long") : OnLine(start, n);
        } else {
          if (partial_line_.size() + line_len > kMaxLineBytes + 1) {
            r = Fail("line too long");
          } else {
            partial_line_.append(start, line_len);
            size_t n = partial_line_.size();
            if (n > 0 && partial_line_[n - 1] == '\r') --n;
            // Copy out: OnLine may Reset, which clears partial_line_.
            std::string line(partial_line_.data(), n);
            partial_line_.clear();
            r = n > kMaxLineBytes ? Fail("line too long") : OnLine(line.data(), line.size());
          }
        }
        if (r == Result::kError) {
          *consumed = pos;
          return r;
        }
        break;
      }
    }
  }
  *consumed = pos;
  if (state_ == State::kDone) return Result::kComplete;
  if (state_ == State::kError) return Result::kError;
  return Result::kNeedMore;
}

HttpResponseParser::Result HttpResponseParser::OnEof() {
  if (state_ == State::kDone) return Result::kComplete;
  if (state_ == State::kBodyUntilClose) {
    state_ = State::kDone;
    return Result::kComplete;
  }
  if (state_ == State::kError) return Result::kError;
  return Fail(started_ ? "connection closed before the response was complete"
                       : "connection closed before any response");
}

HttpResponseParser::Result HttpResponseParser::OnLine(const char* line, size_t len) {
  switch (state_) {
    case State::kStatusLine:
      return OnStatusLine(line, len);
    case State::kHeaders:
      header_bytes_ += len + 2;
      if (header_bytes_ > kMaxHeaderBytes) return Fail("headers too large");
      if (len == 0) return OnHeadersDone();
      return OnHeader(line, len);
    case State::kChunkSize:
      return OnChunkSize(line, len);
    case State::kChunkDataEnd:
      if (len != 0) return Fail("chunk data longer than its size");
      state_ = State::kChunkSize;
      return Result::kNeedMore;
    case State::kTrailers:
      header_bytes_ += len + 2;
      if (header_bytes_ > kMaxHeaderBytes) return Fail("trailers too large");
      if (len == 0) state_ = State::kDone;
      return Result::kNeedMore;
    default:
      return Fail("internal parser state");
  }
}

HttpResponseParser::Result HttpResponseParser::OnStatusLine(const char* line, size_t len) {
  // "HTTP/1.x SSS[ reason]"
  if (len < 12 || std::memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
      line[8] != ' ') {
    return Fail("bad status line");
  }
  int status = 0;
  for (int i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return Fail("bad status code");
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || (len > 12 && line[12] != ' ')) return Fail("bad status code");
  status_ = status;
  http10_ = line[7] == '0';
  state_ = State::kHeaders;
  return Result::kNeedMore;
}

HttpResponseParser::Result HttpResponseParser::OnHeader(const char* line, size_t len) {
  const void* colon = std::memchr(line, ':', len);
  if (colon == nullptr) return Fail("header without colon");
  const size_t name_len = static_cast<const char*>(colon) - line;
  if (name_len == 0 || line[name_len - 1] == ' ' || line[name_len - 1] == '\t') {
    return Fail("bad header name");
  }
  const char* value = line + name_len + 1;
  size_t value_len = len - name_len - 1;
  while (value_len > 0 && (*value == ' ' || *value == '\t')) {
    ++value;
    --value_len;
  }
  while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t')) {
    --value_len;
  }
  switch (name_len) {
    case 14:
      if (EqualsIgnoreCase(line, name_len, "content-length")) {
        if (value_len == 0 || value_len > 18) return Fail("bad Content-Length");
        uint64_t n = 0;
        for (size_t i = 0; i < value_len; ++i) {
          if (value[i] < '0' || value[i] > '9') return Fail("bad Content-Length");
          n = n * 10 + static_cast<uint64_t>(value[i] - '0');
        }
        if (has_length_ && n != content_length_) return Fail("conflicting Content-Length");
        has_length_ = true;
        content_length_ = n;
      }
      break;
    case 17:
      if (EqualsIgnoreCase(line, name_len, "transfer-encoding")) {
        chunked_ = LastCodingIsChunked(value, value_len);
        if (!chunked_) return Fail("unsupported Transfer-Encoding");
      }
      break;
    case 10:
      if (EqualsIgnoreCase(line, name_len, "connection")) {
        if (HasToken(value, value_len, "close")) connection_close_ = true;
        if (HasToken(value, value_len, "keep-alive")) connection_keep_alive_ = true;
      }
      break;
    default:
      break;
  }
  if (keep_ != nullptr) KeepHeader(line, name_len, value, value_len);
  return Result::kNeedMore;
}

void HttpResponseParser::DecodedStatus(int status) {
  status_ = status;
  started_ = true;
}

void HttpResponseParser::DecodedHeader(const char* name, size_t name_len, const char* value,
                                       size_t value_len) {
  started_ = true;
  if (keep_ != nullptr) KeepHeader(name, name_len, value, value_len);
}

void HttpResponseParser::DecodedBody(const char* data, size_t len) {
  started_ = true;
  body_bytes_ += len;
  if (keep_ != nullptr) KeepBody(data, len);
}

void HttpResponseParser::KeepHeader(const char* name, size_t name_len, const char* value,
                                    size_t value_len) {
  if (keep_->set_cookies && EqualsIgnoreCase(name, name_len, "set-cookie")) {
    if (set_cookies_.size() <= set_cookie_count_) set_cookies_.emplace_back();
    set_cookies_[set_cookie_count_++].assign(value, value_len);
  }
  if (keep_->headers == nullptr) return;
  for (size_t i = 0; i < keep_->headers->size(); ++i) {
    if (!header_present_[i] && EqualsIgnoreCase(name, name_len, (*keep_->headers)[i].c_str())) {
      header_values_[i].assign(value, value_len);
      header_present_[i] = 1;
    }
  }
}

void HttpResponseParser::KeepBody(const char* data, uint64_t len) {
  const size_t room = keep_->body_bytes > body_.size() ? keep_->body_bytes - body_.size() : 0;
  const size_t take = static_cast<size_t>(std::min<uint64_t>(room, len));
  body_.append(data, take);
  if (take < len) body_truncated_ = true;
}

HttpResponseParser::Result HttpResponseParser::OnHeadersDone() {
  keep_alive_ = http10_ ? (connection_keep_alive_ && !connection_close_) : !connection_close_;
  if (status_ < 200 && status_ != 101) {
    // Interim response (100 Continue, 103 Early Hints): the real one follows, and only its
    // headers are kept.
    const bool head = head_request_;
    Reset(head, keep_);
    started_ = true;
    return Result::kNeedMore;
  }
  if (status_ == 101) {
    keep_alive_ = false;  // the connection now speaks another protocol; we do not
    state_ = State::kDone;
    return Result::kNeedMore;
  }
  if (head_request_ || status_ == 204 || status_ == 304) {
    state_ = State::kDone;
  } else if (chunked_) {
    state_ = State::kChunkSize;
  } else if (has_length_) {
    remaining_ = content_length_;
    state_ = remaining_ == 0 ? State::kDone : State::kBodyLength;
  } else {
    keep_alive_ = false;
    state_ = State::kBodyUntilClose;
  }
  return Result::kNeedMore;
}

HttpResponseParser::Result HttpResponseParser::OnChunkSize(const char* line, size_t len) {
  uint64_t size = 0;
  size_t i = 0;
  for (; i < len; ++i) {
    const char c = line[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      break;
    }
    if (i >= 15) return Fail("chunk size too large");
    size = size * 16 + static_cast<uint64_t>(digit);
  }
  if (i == 0) return Fail("bad chunk size");
  if (i < len && line[i] != ';' && line[i] != ' ' && line[i] != '\t') return Fail("bad chunk size");
  if (size == 0) {
    state_ = State::kTrailers;
  } else {
    remaining_ = size;
    state_ = State::kChunkData;
  }
  return Result::kNeedMore;
}

}  // namespace stampede::agent
