#include "controller/kube/client.h"

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "controller/kube/api_status.h"
#include "controller/kube/watch_stream.h"

namespace stampede::kube {
namespace {

constexpr int kMaxListRestarts = 3;
// More than the operator's threads that write at once (16 Pod writers by default, and a few).
constexpr size_t kMaxIdleConnections = 32;
constexpr std::chrono::seconds kMaxIdleAge(30);

// Percent-encodes a query value: everything but RFC 3986 unreserved characters.
std::string QueryEscape(const std::string& value) {
  std::string out;
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// Appends name=value to a path that may already carry a query; empty values are left out.
void AddQuery(std::string& path, const char* name, const std::string& value) {
  if (value.empty()) return;
  absl::StrAppend(&path, path.find('?') == std::string::npos ? "?" : "&", name, "=",
                  QueryEscape(value));
}

std::chrono::milliseconds Millis(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

// Parses "http(s)://host[:port][/prefix]"; IPv6 hosts come in brackets.
absl::Status ParseServer(const std::string& server, bool& tls, std::string& host, int& port,
                         std::string& prefix) {
  auto invalid = [&](const char* why) {
    return absl::InvalidArgumentError(absl::StrCat("server \"", server, "\": ", why));
  };
  std::string rest;
  if (absl::StartsWith(server, "https://")) {
    tls = true;
    rest = server.substr(8);
  } else if (absl::StartsWith(server, "http://")) {
    tls = false;
    rest = server.substr(7);
  } else {
    return invalid("must start with https:// or http://");
  }
  const size_t slash = rest.find('/');
  if (slash != std::string::npos) {
    prefix = rest.substr(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    rest.resize(slash);
  }
  std::string port_text;
  if (!rest.empty() && rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string::npos) return invalid("unclosed [ in the host");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return invalid("junk after the IPv6 address");
      port_text = rest.substr(close + 2);
    }
  } else {
    const size_t colon = rest.rfind(':');
    host = rest.substr(0, colon);
    if (colon != std::string::npos) port_text = rest.substr(colon + 1);
  }
  if (host.empty()) return invalid("no host");
  port = tls ? 443 : 80;
  if (!port_text.empty() && (!absl::SimpleAtoi(port_text, &port) || port <= 0 || port > 65535)) {
    return invalid("bad port");
  }
  return absl::OkStatus();
}

double DefaultJitter() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(generator);
}

}  // namespace

bool IsExpired(const absl::Status& status) {
  return status.code() == absl::StatusCode::kFailedPrecondition;
}

std::string ObjectKey(const Json& object) {
  const std::string name_space = MetadataField(object, "namespace");
  const std::string name = MetadataField(object, "name");
  return name_space.empty() ? name : absl::StrCat(name_space, "/", name);
}

void WatchCanceler::Cancel() {
  cancelled_.store(true);
  common::MutexLock lock(&mu_);
  if (watcher_ == std::this_thread::get_id()) return;
  // httplib's stop() is lost when it lands before the request has its socket, so repeat it
  // until the watch lets go.
  while (stop_) {
    stop_();
    detached_.WaitFor(&mu_, std::chrono::milliseconds(10));
  }
}

bool WatchCanceler::Attach(std::function<void()> stop) {
  common::MutexLock lock(&mu_);
  if (cancelled_.load()) return false;
  stop_ = std::move(stop);
  watcher_ = std::this_thread::get_id();
  return true;
}

void WatchCanceler::Detach() {
  common::MutexLock lock(&mu_);
  stop_ = nullptr;
  watcher_ = std::thread::id();
  detached_.SignalAll();
}

Client::Client(Config config, Options options)
    : config_(std::move(config)), options_(std::move(options)) {}

Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::New(Config config, Options options) {
  if (!options.sleep) {
    options.sleep = [](std::chrono::nanoseconds d) { std::this_thread::sleep_for(d); };
  }
  if (!options.now) options.now = [] { return std::chrono::steady_clock::now(); };
  if (!options.jitter) options.jitter = DefaultJitter;
  options.max_attempts = std::max(1, options.max_attempts);
  options.list_page_size = std::max(1, options.list_page_size);
  // OpenSSL writes with write(), not send(MSG_NOSIGNAL): a request on a kept connection that the
  // server has closed (an API server restart) would otherwise end the whole process.
  signal(SIGPIPE, SIG_IGN);
  std::unique_ptr<Client> client(new Client(std::move(config), std::move(options)));
  RETURN_IF_ERROR(ParseServer(client->config_.server, client->tls_, client->host_, client->port_,
                              client->path_prefix_));
  for (const std::string* file : {&client->config_.ca_file, &client->config_.client_cert_file,
                                  &client->config_.client_key_file}) {
    if (!file->empty() && access(file->c_str(), R_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("cannot read ", *file));
    }
  }
  common::MutexLock lock(&client->mu_);
  client->token_ = client->config_.token;
  client->token_read_at_ = client->options_.now();
  if (!client->config_.token_file.empty()) {
    ASSIGN_OR_RETURN(client->token_, ReadTokenFile(client->config_.token_file));
  }
  return client;
}

std::string Client::Token() {
  common::MutexLock lock(&mu_);
  if (!config_.token_file.empty() &&
      options_.now() - token_read_at_ >= options_.token_reload_period) {
    token_read_at_ = options_.now();
    absl::StatusOr<std::string> token = ReadTokenFile(config_.token_file);
    if (token.ok()) {
      token_ = *std::move(token);
    } else {
      SLOG(kWarning) << "kube_token_reload_failed keeping=last_good error=\""
                     << token.status().message() << "\"";
    }
  }
  return token_;
}

void Client::ReloadToken() {
  common::MutexLock lock(&mu_);
  token_read_at_ = options_.now() - options_.token_reload_period;  // due now
}

std::unique_ptr<httplib::ClientImpl> Client::Connect(std::chrono::milliseconds read_timeout,
                                                     bool keep_alive) const {
  std::unique_ptr<httplib::ClientImpl> http;
  if (tls_) {
    auto https = std::make_unique<httplib::SSLClient>(host_, port_, config_.client_cert_file,
                                                      config_.client_key_file);
    if (!config_.ca_file.empty()) https->set_ca_cert_path(config_.ca_file);
    https->enable_server_certificate_verification(!config_.insecure_skip_tls_verify);
    http = std::move(https);
  } else {
    http = std::make_unique<httplib::ClientImpl>(host_, port_);
  }
  const auto timeout_us = std::chrono::duration_cast<std::chrono::microseconds>(read_timeout);
  http->set_read_timeout(timeout_us.count() / 1'000'000, timeout_us.count() % 1'000'000);
  const auto request_us =
      std::chrono::duration_cast<std::chrono::microseconds>(options_.request_timeout);
  http->set_connection_timeout(request_us.count() / 1'000'000, request_us.count() % 1'000'000);
  http->set_write_timeout(request_us.count() / 1'000'000, request_us.count() % 1'000'000);
  http->set_url_encode(false);  // paths and queries arrive escaped
  http->set_keep_alive(keep_alive);
  // A request's body follows its headers in a second write: on a kept connection, Nagle would
  // hold it until the server's delayed ACK (40 ms).
  http->set_tcp_nodelay(true);
  return http;
}

std::chrono::nanoseconds Client::Backoff(int retry) const {
  const double cap = std::min(static_cast<double>(options_.backoff_max.count()),
                              options_.backoff_base.count() * std::pow(2.0, retry - 1));
  const double jitter = std::clamp(options_.jitter(), 0.0, 1.0);
  return std::chrono::nanoseconds(static_cast<int64_t>(cap * jitter * 1e6));
}

absl::StatusOr<Client::Answer> Client::Exchange(const std::string& method, const std::string& path,
                                                const std::string& body,
                                                const std::string& content_type) {
  std::unique_ptr<httplib::ClientImpl> http;
  std::vector<Idle> stale;  // closed after the lock is let go
  {
    common::MutexLock lock(&mu_);
    const auto now = options_.now();
    while (http == nullptr && !idle_.empty()) {
      if (now - idle_.back().since < kMaxIdleAge) {
        http = std::move(idle_.back().http);
      } else {
        stale.push_back(std::move(idle_.back()));
      }
      idle_.pop_back();
    }
  }
  // httplib also checks a kept connection before it sends: one the server closed is reopened.
  if (http == nullptr) http = Connect(options_.request_timeout, /*keep_alive=*/true);
  httplib::Request request;
  request.method = method;
  request.path = path_prefix_ + path;
  request.set_header("Accept", "application/json");
  const std::string token = Token();
  if (!token.empty()) request.set_header("Authorization", "Bearer " + token);
  if (!body.empty()) {
    request.body = body;
    request.set_header("Content-Type", content_type);
  }
  httplib::Result result = http->send(request);
  if (!result) {
    // The server may have gone away (a restart): the kept connections are likely dead too.
    {
      common::MutexLock lock(&mu_);
      for (Idle& kept : idle_) stale.push_back(std::move(kept));
      idle_.clear();
    }
    return absl::UnavailableError(
        absl::StrCat(method, " ", path, ": ", httplib::to_string(result.error())));
  }
  Answer answer{result->status, std::move(result->body), result->get_header_value("Retry-After")};
  // Closed when the server said "Connection: close": then it is not kept.
  if (http->is_socket_open()) {
    common::MutexLock lock(&mu_);
    if (idle_.size() < kMaxIdleConnections) idle_.push_back(Idle{std::move(http), options_.now()});
  }
  return answer;
}

absl::StatusOr<Json> Client::Call(const std::string& method, const std::string& path,
                                  const std::string& body, const std::string& content_type) {
  bool token_reloaded = false;
  for (int attempt = 1;;) {
    absl::StatusOr<Answer> answer = Exchange(method, path, body, content_type);
    absl::Status failure;
    std::optional<std::chrono::nanoseconds> retry_after;
    if (!answer.ok()) {
      failure = answer.status();
    } else if (answer->status == 401 && !token_reloaded && !config_.token_file.empty()) {
      token_reloaded = true;  // the token may have rotated: re-read it and try once more
      ReloadToken();
      continue;
    } else if (Retryable(answer->status)) {
      failure = StatusFromHttp(method, path, answer->status, answer->body);
      int seconds = 0;
      if (absl::SimpleAtoi(answer->retry_after, &seconds) && seconds >= 0) {
        retry_after =
            std::min<std::chrono::nanoseconds>(std::chrono::seconds(seconds), options_.backoff_max);
      }
    } else if (answer->status < 200 || answer->status >= 300) {
      return StatusFromHttp(method, path, answer->status, answer->body);
    } else if (absl::StripAsciiWhitespace(answer->body).empty()) {
      return Json::object();
    } else {
      Json json = Json::parse(answer->body, nullptr, /*allow_exceptions=*/false);
      if (json.is_discarded()) {
        return absl::InternalError(absl::StrCat(method, " ", path, ": HTTP ", answer->status,
                                                " with a body that is not JSON"));
      }
      return json;
    }
    if (attempt >= options_.max_attempts) {
      return absl::UnavailableError(
          absl::StrCat(failure.message(), " (gave up after ", attempt, " attempts)"));
    }
    const std::chrono::nanoseconds delay = retry_after ? *retry_after : Backoff(attempt);
    SLOG(kDebug) << "kube_retry method=" << method << " path=" << path << " attempt=" << attempt
                 << " delay_ms=" << Millis(delay).count() << " error=\"" << failure.message()
                 << "\"";
    options_.sleep(delay);
    ++attempt;
  }
}

absl::StatusOr<Json> Client::Get(const std::string& path) { return Call("GET", path, "", ""); }

absl::StatusOr<Json> Client::Create(const std::string& path, const Json& body) {
  return Call("POST", path, body.dump(), "application/json");
}

absl::StatusOr<Json> Client::Update(const std::string& path, const Json& body) {
  return Call("PUT", path, body.dump(), "application/json");
}

absl::StatusOr<Json> Client::MergePatch(const std::string& path, const Json& patch) {
  return Call("PATCH", path, patch.dump(), "application/merge-patch+json");
}

absl::StatusOr<Json> Client::Delete(const std::string& path, const Json& options) {
  const bool no_body = options.is_null() || (options.is_object() && options.empty());
  return Call("DELETE", path, no_body ? "" : options.dump(), "application/json");
}

absl::StatusOr<Json> Client::List(const std::string& path, const std::string& label_selector,
                                  const std::string& field_selector) {
  for (int restart = 0;; ++restart) {
    Json list;
    std::string continue_token;
    bool expired = false;
    do {
      std::string page_path = path;
      AddQuery(page_path, "limit", std::to_string(options_.list_page_size));
      AddQuery(page_path, "continue", continue_token);
      AddQuery(page_path, "labelSelector", label_selector);
      AddQuery(page_path, "fieldSelector", field_selector);
      absl::StatusOr<Json> page = Call("GET", page_path, "", "");
      if (!page.ok()) {
        if (IsExpired(page.status()) && !continue_token.empty() && restart < kMaxListRestarts) {
          SLOG(kInfo) << "kube_list_restart path=" << path << " reason=continue_expired";
          expired = true;
          break;
        }
        return page.status();
      }
      if (!page->is_object()) {
        return absl::InternalError(absl::StrCat("GET ", page_path, ": the answer is not a list"));
      }
      if (list.is_null()) {
        list = *page;
        list["items"] = Json::array();
      }
      if (page->contains("items") && (*page)["items"].is_array()) {
        for (Json& item : (*page)["items"]) list["items"].push_back(std::move(item));
      }
      list["metadata"]["resourceVersion"] = MetadataField(*page, "resourceVersion");
      continue_token = MetadataField(*page, "continue");
    } while (!continue_token.empty());
    if (!expired) {
      list["metadata"].erase("continue");
      return list;
    }
  }
}

absl::Status Client::Watch(const std::string& path, const WatchOptions& options,
                           const std::function<bool(WatchEvent&)>& on_event,
                           WatchCanceler* canceler) {
  const std::chrono::milliseconds idle_timeout =
      options.idle_timeout.count() > 0
          ? options.idle_timeout
          : std::chrono::seconds(options.timeout_seconds) + std::chrono::seconds(5);
  std::string watch_path = path;
  AddQuery(watch_path, "watch", "1");
  AddQuery(watch_path, "resourceVersion", options.resource_version);
  AddQuery(watch_path, "labelSelector", options.label_selector);
  AddQuery(watch_path, "fieldSelector", options.field_selector);
  AddQuery(watch_path, "timeoutSeconds", std::to_string(options.timeout_seconds));
  if (options.allow_bookmarks) AddQuery(watch_path, "allowWatchBookmarks", "true");

  for (bool token_reloaded = false;;) {
    std::unique_ptr<httplib::ClientImpl> http = Connect(idle_timeout, /*keep_alive=*/false);
    WatchStream stream(watch_path, on_event);
    httplib::Request request;
    request.method = "GET";
    request.path = path_prefix_ + watch_path;
    request.set_header("Accept", "application/json");
    request.set_header("Accept-Encoding", "identity");  // each event as soon as it is sent
    const std::string token = Token();
    if (!token.empty()) request.set_header("Authorization", "Bearer " + token);
    request.response_handler = [&stream](const httplib::Response& response) {
      stream.http_status = response.status;
      return true;
    };
    request.content_receiver = [&stream, canceler](const char* data, size_t size, uint64_t,
                                                   uint64_t) {
      return stream.Receive(data, size) && (canceler == nullptr || !canceler->cancelled());
    };
    httplib::ClientImpl* raw = http.get();
    if (canceler != nullptr && !canceler->Attach([raw] { raw->stop(); })) {
      return absl::CancelledError(absl::StrCat("watch ", watch_path, ": cancelled"));
    }
    httplib::Response response;
    httplib::Error error = httplib::Error::Success;
    const bool sent = http->send(request, response, error);
    if (canceler != nullptr) canceler->Detach();

    if (!stream.result.ok()) return stream.result;
    if (stream.stopped) return absl::OkStatus();
    if (canceler != nullptr && canceler->cancelled()) {
      return absl::CancelledError(absl::StrCat("watch ", watch_path, ": cancelled"));
    }
    if (!sent) {
      const auto silent = std::chrono::steady_clock::now() - stream.last_byte();
      if (silent >= idle_timeout - std::chrono::milliseconds(50)) {
        return absl::UnavailableError(absl::StrCat("watch ", watch_path, ": no data for ",
                                                   Millis(silent).count(), " ms (idle timeout)"));
      }
      return absl::UnavailableError(
          absl::StrCat("watch ", watch_path, ": ", httplib::to_string(error)));
    }
    if (stream.http_status == 0) stream.http_status = response.status;  // answered without a body
    if (stream.http_status == 401 && !token_reloaded && !config_.token_file.empty()) {
      token_reloaded = true;
      ReloadToken();
      continue;
    }
    if (stream.http_status != 200) {
      return StatusFromHttp("WATCH", watch_path, stream.http_status, stream.error_body);
    }
    stream.Finish();
    if (!stream.result.ok()) return stream.result;
    return absl::OkStatus();
  }
}

}  // namespace stampede::kube
