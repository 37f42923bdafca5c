#include "controller/http_api.h"

#include <httplib.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/host_port.h"
#include "common/logging.h"
#include "common/spec.h"
#include "controller/results.h"

namespace stampede::controller {
namespace {

using nlohmann::json;

constexpr char kApiPrefix[] = "/api/v1/loadtests";
constexpr char kRunIdAnnotation[] = "stampede.dev/run-id";

bool Ended(Phase phase) {
  return phase == Phase::kSucceeded || phase == Phase::kFailed || phase == Phase::kAborted;
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  // Request names are the user's bytes; invalid UTF-8 must not turn a response into a 500.
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status, {{"error", message}});
}

void NoSuchRun(httplib::Response& res, const std::string& id) {
  SendError(res, 404, absl::StrCat("no LoadTest run with id \"", id, "\""));
}

// The status as the LoadTest JSON writes it (64-bit counts as numbers), as a json value.
json StatusJson(const v1::LoadTestStatus& status) {
  v1::LoadTest holder;
  *holder.mutable_status() = status;
  json parsed = json::parse(common::LoadTestToJson(holder), nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() && parsed.contains("status") ? parsed["status"] : json::object();
}

std::string LoadTestWithStatus(const Run& run) {
  v1::LoadTest test = run.test();
  *test.mutable_status() = run.Status();
  (*test.mutable_metadata()->mutable_annotations())[kRunIdAnnotation] = run.id();
  return common::LoadTestToJson(test) + "\n";
}

// Media types a LoadTest may arrive as. YAML is a superset of JSON and the parser takes both, so
// the type only filters out what is clearly something else (a form upload, HTML). curl -d sends
// application/x-www-form-urlencoded, so that is taken as "unspecified".
bool AcceptedContentType(const std::string& header) {
  const std::string type =
      absl::AsciiStrToLower(absl::StripAsciiWhitespace(header.substr(0, header.find(';'))));
  for (const char* ok : {"", "application/json", "application/yaml", "application/x-yaml",
                         "text/yaml", "text/x-yaml", "text/plain",
                         "application/x-www-form-urlencoded", "application/octet-stream"}) {
    if (type == ok) return true;
  }
  return false;
}

}  // namespace

HttpApi::HttpApi(HttpApiOptions options, Controller* controller)
    : options_(std::move(options)),
      controller_(controller),
      server_(std::make_unique<httplib::Server>()) {
  metrics_ = options_.loadtest_api ? std::make_unique<RunMetrics>([this] { return RunsInOrder(); })
                                   : RunMetrics::ForController(controller_);
}

HttpApi::~HttpApi() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(HttpApiOptions options,
                                                        Controller* controller) {
  auto address = common::SplitHostPort(options.listen);
  if (!address.ok()) return address.status();
  if (options.loadtest_api && !options.make_launcher) {
    return absl::InvalidArgumentError("the LoadTest API needs a launcher factory");
  }
  std::unique_ptr<HttpApi> api(new HttpApi(std::move(options), controller));
  httplib::Server& server = *api->server_;
  const size_t threads = static_cast<size_t>(std::max(1, api->options_.threads));
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_payload_max_length(api->options_.max_body_bytes);
  api->Route();
  const auto& [host, port] = *address;
  api->port_ =
      port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (api->port_ <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", api->options_.listen, " (in use?)"));
  }
  HttpApi* self = api.get();
  api->thread_ = std::thread([self] { self->server_->listen_after_bind(); });
  // httplib's stop() is lost if it comes before the accept loop runs; the socket already
  // listens (connections queue), this only makes Stop() reliable.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server.is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  SLOG(kInfo) << "http_listening address=" << host << ":" << api->port_
              << " api=" << api->options_.loadtest_api;
  return api;
}

void HttpApi::Stop() {
  std::call_once(stopped_, [this] {
    shutting_down_.store(true);
    server_->stop();
    if (thread_.joinable()) thread_.join();
  });
}

std::vector<std::shared_ptr<Run>> HttpApi::BeginShutdown(const std::string& reason) {
  shutting_down_.store(true);
  std::vector<std::shared_ptr<Run>> active;
  for (const std::shared_ptr<Run>& run : RunsInOrder()) {
    if (Ended(run->phase())) continue;
    run->Abort(reason);
    active.push_back(run);
  }
  return active;
}

std::vector<std::shared_ptr<Run>> HttpApi::RunsInOrder() const {
  common::MutexLock lock(&mu_);
  return runs_;
}

std::shared_ptr<Run> HttpApi::Find(const std::string& id) const {
  common::MutexLock lock(&mu_);
  for (const std::shared_ptr<Run>& run : runs_) {
    if (run->id() == id) return run;
  }
  return nullptr;
}

void HttpApi::Route() {
  httplib::Server& s = *server_;
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    // The controller exists only once its gRPC listener is up; shutting down ends readiness.
    const bool up = controller_->grpc_port() > 0 && !shutting_down_.load();
    const bool ready = up && (!options_.ready || options_.ready());
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "ok\n" : up ? "not leading\n" : "shutting down\n", "text/plain");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(SerializeMetrics(metrics_->Collect()), kMetricsContentType);
  });
  // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 section 6.3), but
  // httplib 0.11.4 reads a POST's body until the connection closes and answers 400 after its read
  // timeout (`curl -X POST .../abort` would). The request object is not const where httplib
  // owns it, only in this callback's signature.
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response&) {
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      const_cast<httplib::Request&>(req).headers.emplace("Content-Length", "0");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // 413, 404 and the like come without a body from httplib; give them a JSON one.
  s.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        json body = {{"error", absl::StrCat("HTTP ", res.status)}};
        if (res.status == 400) body = {{"error", "bad request"}};
        if (res.status == 404) body = {{"error", "not found"}, {"path", req.path}};
        if (res.status == 413) body = {{"error", "request body too large"}};
        SendJson(res, res.status, body);
        return httplib::Server::HandlerResponse::Handled;
      }));
  s.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr e) {
        std::string what = "unknown";
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          what = ex.what();
        } catch (...) {
        }
        SLOG(kError) << "http_handler_failed path=" << req.path << " error=\"" << what << "\"";
        SendError(res, 500, "internal error");
      });
  if (!options_.loadtest_api) return;

  const std::string api = kApiPrefix;
  s.Post(api, [this](const httplib::Request& req, httplib::Response& res) { Create(req, res); });
  s.Get(api, [this](const httplib::Request& req, httplib::Response& res) { List(req, res); });
  s.Get(api + "/([^/]+)", [this](const httplib::Request& req, httplib::Response& res) {
    std::shared_ptr<Run> run = Find(req.matches[1]);
    if (run == nullptr) return NoSuchRun(res, req.matches[1]);
    Get(run, res);
  });
  s.Get("/api/v1/namespaces/([^/]+)/loadtests/([^/]+)",
        [this](const httplib::Request& req, httplib::Response& res) {
          const std::string ns = req.matches[1], name = req.matches[2];
          std::shared_ptr<Run> newest;
          for (const std::shared_ptr<Run>& run : RunsInOrder()) {
            if (run->name_space() == ns && run->name() == name) newest = run;
          }
          if (newest == nullptr) {
            return SendError(res, 404, absl::StrCat("no LoadTest ", ns, "/", name));
          }
          Get(newest, res);
        });
  s.Post(api + "/([^/]+)/abort",
         [this](const httplib::Request& req, httplib::Response& res) { Abort(req, res); });
  s.Get(api + "/([^/]+)/results(\\.csv)?",
        [this](const httplib::Request& req, httplib::Response& res) { Results(req, res); });
}

void HttpApi::Create(const httplib::Request& req, httplib::Response& res) {
  if (shutting_down_.load()) return SendError(res, 503, "shutting down");
  const std::string type = req.get_header_value("Content-Type");
  if (!AcceptedContentType(type)) {
    return SendError(res, 415,
                     absl::StrCat("Content-Type \"", type,
                                  "\": send the LoadTest as application/yaml or application/json"));
  }
  absl::StatusOr<v1::LoadTest> parsed = common::ParseLoadTest(req.body);
  if (!parsed.ok()) {
    json problems = json::array();
    for (absl::string_view line :
         absl::StrSplit(parsed.status().message(), '\n', absl::SkipWhitespace())) {
      problems.push_back(std::string(line));
    }
    return SendJson(res, 400, {{"error", "invalid LoadTest"}, {"problems", problems}});
  }
  v1::LoadTest test = std::move(*parsed);
  test.clear_status();  // Stampede writes the status
  std::shared_ptr<Run> run;
  {
    common::MutexLock lock(&mu_);
    int active = 0;
    for (const std::shared_ptr<Run>& r : runs_) {
      if (Ended(r->phase())) continue;
      ++active;
      if (r->name_space() == test.metadata().namespace_() && r->name() == test.metadata().name()) {
        return SendJson(
            res, 409,
            {{"error", absl::StrCat("LoadTest ", r->name_space(), "/", r->name(),
                                    " is still running; abort it or wait until it ends")},
             {"id", r->id()}});
      }
    }
    if (active >= options_.max_active_runs) {
      res.set_header("Retry-After", "10");
      return SendError(
          res, 429,
          absl::StrCat(active, " LoadTests are running, the most this server runs at once"));
    }
    run = controller_->StartRun(std::move(test), options_.make_launcher());
    runs_.push_back(run);
    ForgetOldFinishedLocked();
  }
  SLOG(kInfo) << "loadtest_created run=" << run->id() << " remote=" << req.remote_addr;
  res.set_header("Location", absl::StrCat(kApiPrefix, "/", run->id()));
  SendJson(res, 201,
           {{"id", run->id()},
            {"name", run->name()},
            {"namespace", run->name_space()},
            {"status", StatusJson(run->Status())}});
}

void HttpApi::ForgetOldFinishedLocked() {
  size_t finished = 0;
  for (const std::shared_ptr<Run>& r : runs_) finished += Ended(r->phase()) ? 1 : 0;
  // Oldest first: drop finished runs from the front until the bound holds.
  for (auto it = runs_.begin(); it != runs_.end() && finished > static_cast<size_t>(options_.max_finished_runs);) {
    if (!Ended((*it)->phase())) {
      ++it;
      continue;
    }
    SLOG(kInfo) << "loadtest_forgotten run=" << (*it)->id() << " kept=" << options_.max_finished_runs;
    controller_->RemoveRun((*it)->id());
    it = runs_.erase(it);
    --finished;
  }
}

void HttpApi::List(const httplib::Request&, httplib::Response& res) {
  json items = json::array();
  for (const std::shared_ptr<Run>& run : RunsInOrder()) {
    const v1::LoadTestStatus status = run->Status();
    json summary = StatusJson(status);
    items.push_back(
        {{"id", run->id()},
         {"name", run->name()},
         {"namespace", run->name_space()},
         {"phase", status.phase()},
         {"summary", summary.contains("summary") ? summary["summary"] : json::object()}});
  }
  SendJson(res, 200, {{"items", items}});
}

void HttpApi::Get(const std::shared_ptr<Run>& run, httplib::Response& res) {
  res.set_content(LoadTestWithStatus(*run), "application/json");
}

void HttpApi::Abort(const httplib::Request& req, httplib::Response& res) {
  std::shared_ptr<Run> run = Find(req.matches[1]);
  if (run == nullptr) return NoSuchRun(res, req.matches[1]);
  if (Ended(run->phase())) {
    return SendJson(
        res, 409,
        {{"error", absl::StrCat("the run has already ended (", PhaseName(run->phase()), ")")},
         {"id", run->id()}});
  }
  run->Abort(absl::StrCat("aborted through the API from ", req.remote_addr));
  SendJson(res, 202, {{"id", run->id()}, {"status", StatusJson(run->Status())}});
}

void HttpApi::Results(const httplib::Request& req, httplib::Response& res) {
  std::shared_ptr<Run> run = Find(req.matches[1]);
  if (run == nullptr) return NoSuchRun(res, req.matches[1]);
  const std::string format = req.get_param_value("format");
  const bool csv = req.matches[2].matched || format == "csv";
  if (!csv && !format.empty() && format != "json") {
    return SendError(res, 400, absl::StrCat("format \"", format, "\": use json or csv"));
  }
  const Run::Snapshot snapshot = run->TakeSnapshot(/*with_series=*/true);
  if (csv) {
    res.set_content(ResultsCsv(snapshot), "text/csv; charset=utf-8");
  } else {
    res.set_content(ResultsJson(*run, snapshot), "application/json");
  }
}

}  // namespace stampede::controller
