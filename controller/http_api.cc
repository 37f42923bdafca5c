#include "controller/http_api.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/data_table.h"
#include "common/host_port.h"
#include "common/http_syntax.h"
#include "common/logging.h"
#include "common/spec.h"
#include "controller/report.h"
#include "controller/results.h"
#include "controller/ui_assets.h"

namespace stampede::controller {
namespace {

using nlohmann::json;

constexpr char kApiPrefix[] = "/api/v1/loadtests";
constexpr char kRunIdAnnotation[] = "stampede.dev/run-id";

HttpResponse JsonResponse(int status, const json& body) {
  // Request names are the user's bytes; invalid UTF-8 must not turn a response into a 500.
  return {status,
          "application/json",
          body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
          {},
          false};
}

HttpResponse Error(int status, const std::string& message) {
  return JsonResponse(status, {{"error", message}});
}

HttpResponse Text(int status, std::string body) {
  return {status, "text/plain", std::move(body), {}, false};
}

HttpResponse ReadOnly() {
  HttpResponse r = Error(405,
                         "this port is read-only: create, edit or abort LoadTests through the "
                         "Kubernetes API (kubectl apply, or spec.abort: true)");
  r.headers.emplace_back("Allow", "GET");
  return r;
}

// The read-only port shows figures, as /metrics does, but not the LoadTests themselves (their
// headers and bodies): those are for whoever may read them in Kubernetes.
HttpResponse SpecNotHere() {
  return Error(403,
               "this port serves results, not LoadTests: read them through the Kubernetes API "
               "(kubectl get loadtest NAME -o yaml)");
}

HttpResponse NoSuchRun(const std::string& id) {
  return Error(404, absl::StrCat("no LoadTest run with id \"", id, "\""));
}

HttpResponse MethodNotAllowed(const char* allow) {
  HttpResponse r = Error(405, absl::StrCat("this route takes ", allow));
  r.headers.emplace_back("Allow", allow);
  return r;
}

// The status as the LoadTest JSON writes it (64-bit counts as numbers), as a json value.
json StatusJson(const v1::LoadTestStatus& status) {
  v1::LoadTest holder;
  *holder.mutable_status() = status;
  json parsed = json::parse(common::LoadTestToJson(holder), nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() && parsed.contains("status") ? parsed["status"] : json::object();
}

std::string LoadTestWithStatus(const Run& run) {
  v1::LoadTest test = Redacted(run.test());
  *test.mutable_status() = run.Status();
  (*test.mutable_metadata()->mutable_annotations())[kRunIdAnnotation] = run.id();
  return common::LoadTestToJson(test) + "\n";
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// The UI's files hold no data: they are served without the token, with a policy that lets the
// page load only its own script and style and talk only to this server.
constexpr char kUiPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// "index.html" for /ui/ and /ui/index.html, "app.js" for /ui/app.js; "" for any other path.
std::string UiAssetName(const std::string& path) {
  if (path == "/ui/") return "index.html";
  constexpr absl::string_view kUi = "/ui/";
  if (!absl::StartsWith(path, kUi)) return "";
  const std::string name = path.substr(kUi.size());
  return FindUiAsset(name) != nullptr ? name : "";
}

HttpResponse UiFile(const UiAsset& asset) {
  HttpResponse r{200, std::string(asset.content_type), std::string(asset.body), {}, false};
  r.headers.emplace_back("Content-Security-Policy", kUiPolicy);
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace

v1::LoadTest Redacted(v1::LoadTest test) {
  std::vector<std::string> secret = {"authorization", "cookie", "proxy-authorization"};
  for (const std::string& h : test.spec().secret_headers())
    secret.push_back(absl::AsciiStrToLower(h));
  for (v1::Request& r : *test.mutable_spec()->mutable_requests()) {
    for (auto& [name, value] : *r.mutable_headers()) {
      if (std::find(secret.begin(), secret.end(), absl::AsciiStrToLower(name)) != secret.end())
        value = "<redacted>";
    }
  }
  return test;
}

HttpApi::HttpApi(HttpApiOptions options, Controller* controller)
    : options_(std::move(options)), controller_(controller) {
  metrics_ = options_.loadtest_api ? std::make_unique<RunMetrics>([this] { return RunsInOrder(); })
                                   : RunMetrics::ForController(controller_);
}

HttpApi::~HttpApi() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpApi>> HttpApi::Start(HttpApiOptions options,
                                                        Controller* controller) {
  auto address = common::SplitHostPort(options.listen);
  if (!address.ok()) return address.status();
  if (options.policy == nullptr) {
    options.policy = std::make_shared<const common::Policy>(common::Policy::LoopbackOnly());
  }
  if (options.loadtest_api && !options.make_launcher) {
    return absl::InvalidArgumentError("the LoadTest API needs a launcher factory");
  }
  std::unique_ptr<HttpApi> api(new HttpApi(std::move(options), controller));
  HttpServerOptions server;
  server.listen = api->options_.listen;
  server.workers = std::max(1, api->options_.threads);
  server.max_body_bytes = api->options_.max_body_bytes;
  server.max_connections = api->options_.max_connections;
  HttpApi* self = api.get();
  auto started = HttpServer::Start(
      server, [self](const HttpRequest& req) { return self->Quick(req); },
      [self](const HttpRequest& req) { return self->Handle(req); });
  if (!started.ok()) return started.status();
  api->server_ = std::move(*started);
  const std::string host = address->first;
  if (IsLoopback(host)) {
    // What a browser on this machine sends as Host when it means this server.
    const std::string port = std::to_string(api->server_->port());
    for (const char* name : {"localhost", "127.0.0.1", "[::1]"})
      api->allowed_hosts_.push_back(absl::StrCat(name, ":", port));
    if (host != "localhost" && host != "127.0.0.1" && host != "::1")
      api->allowed_hosts_.push_back(absl::StrCat(host, ":", port));
  }
  SLOG(kInfo) << "http_listening address=" << host << ":" << api->port()
              << " api=" << api->options_.loadtest_api
              << " token=" << (api->options_.token.empty() ? "none" : "required");
  return api;
}

void HttpApi::Stop() {
  shutting_down_.store(true);
  if (server_ != nullptr) server_->Stop();
}

std::vector<std::shared_ptr<Run>> HttpApi::BeginShutdown(const std::string& reason) {
  shutting_down_.store(true);
  std::vector<std::shared_ptr<Run>> active;
  std::vector<std::shared_ptr<Run>> started_here;  // not the operator's, on a read-only port
  {
    common::MutexLock lock(&mu_);
    started_here = runs_;
  }
  for (const std::shared_ptr<Run>& run : started_here) {
    if (IsTerminal(run->phase())) continue;
    run->Abort(reason);
    active.push_back(run);
  }
  return active;
}

std::vector<std::shared_ptr<Run>> HttpApi::RunsInOrder() const {
  if (!options_.loadtest_api) return controller_->Runs();  // the operator's, read-only
  common::MutexLock lock(&mu_);
  return runs_;
}

std::shared_ptr<Run> HttpApi::Find(const std::string& id) const {
  if (!options_.loadtest_api) return controller_->FindRun(id);
  common::MutexLock lock(&mu_);
  for (const std::shared_ptr<Run>& run : runs_) {
    if (run->id() == id) return run;
  }
  return nullptr;
}

std::optional<HttpResponse> HttpApi::Quick(const HttpRequest& req) {
  if (req.path == "/healthz") {
    if (req.method != "GET" && req.method != "HEAD") return MethodNotAllowed("GET");
    return Text(200, "ok\n");
  }
  if (req.path == "/readyz") {
    if (req.method != "GET" && req.method != "HEAD") return MethodNotAllowed("GET");
    // The controller exists only once its gRPC listener is up; shutting down ends readiness.
    const bool up = controller_->grpc_port() > 0 && !shutting_down_.load();
    const bool ready = up && (!options_.ready || options_.ready());
    return Text(ready ? 200 : 503, ready ? "ok\n" : up ? "not leading\n" : "shutting down\n");
  }
  // Refusals are cheap: they need not wait for a worker.
  return Refusal(req);
}

std::optional<HttpResponse> HttpApi::Refusal(const HttpRequest& req) const {
  if (!allowed_hosts_.empty()) {
    const std::string& host = req.Header("host");
    if (std::find(allowed_hosts_.begin(), allowed_hosts_.end(), host) == allowed_hosts_.end()) {
      return Error(403, absl::StrCat("Host \"", host, "\" is not this server (use ",
                                     allowed_hosts_.front(), ")"));
    }
  }
  if (const std::string& origin = req.Header("origin"); !origin.empty()) {
    const std::string same = absl::StrCat("http://", req.Header("host"));
    if (origin != same) {
      return Error(403, absl::StrCat("requests from web pages (Origin ", origin, ") are refused"));
    }
  }
  if (options_.token.empty() || (req.path == "/metrics" && options_.public_metrics))
    return std::nullopt;
  // What the page needs before it has the token: its files and whether to ask for one.
  if (ServesApi() && (req.path == "/" || req.path == "/ui" || req.path == "/api/v1/info" ||
                      !UiAssetName(req.path).empty()))
    return std::nullopt;
  const std::string& auth = req.Header("authorization");
  constexpr absl::string_view kBearer = "Bearer ";
  if (auth.size() <= kBearer.size() || !absl::StartsWithIgnoreCase(auth, kBearer) ||
      !ConstantTimeEquals(absl::string_view(auth).substr(kBearer.size()), options_.token)) {
    HttpResponse r = Error(
        401,
        "this server needs \"Authorization: Bearer TOKEN\" (the token stampede serve printed)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  return std::nullopt;
}

HttpResponse HttpApi::Handle(const HttpRequest& req) {
  const std::vector<std::string> parts = absl::StrSplit(req.path, '/', absl::SkipEmpty());
  const bool get = req.method == "GET" || req.method == "HEAD", post = req.method == "POST";
  if (req.path == "/metrics") {
    if (!get) return MethodNotAllowed("GET");
    std::vector<prometheus::MetricFamily> families = metrics_->Collect();
    if (options_.refusals != nullptr) options_.refusals->AppendTo(&families);
    if (controller_ != nullptr) AppendChannelMetrics(*controller_, &families);
    return {200, kMetricsContentType, SerializeMetrics(families), {}, false};
  }
  const bool api = ServesApi() && parts.size() >= 3 && parts[0] == "api" && parts[1] == "v1";
  const bool read_only = !options_.loadtest_api;
  if (ServesApi()) {
    if (req.path == "/" || req.path == "/ui") {  // the page's relative links need the slash
      if (!get) return MethodNotAllowed("GET");
      HttpResponse r = Text(302, "the web UI is at /ui/\n");
      r.headers.emplace_back("Location", "/ui/");
      return r;
    }
    if (const std::string name = UiAssetName(req.path); !name.empty()) {
      if (!get) return MethodNotAllowed("GET");
      return UiFile(*FindUiAsset(name));
    }
    if (req.path == "/api/v1/info") {
      if (!get) return MethodNotAllowed("GET");
      return JsonResponse(200,
                          {{"readOnly", read_only}, {"tokenRequired", !options_.token.empty()}});
    }
  }
  if (api && parts[2] == "loadtests") {
    if (parts.size() == 3) {
      if (post && read_only) return ReadOnly();
      if (post) return Create(req);
      if (get) return List();
      return MethodNotAllowed(read_only ? "GET" : "GET, POST");
    }
    const std::string& id = parts[3];
    if (parts.size() == 4) {
      if (!get) return MethodNotAllowed("GET");
      if (read_only) return SpecNotHere();
      std::shared_ptr<Run> run = Find(id);
      return run == nullptr ? NoSuchRun(id) : Get(*run);
    }
    if (parts.size() == 5 && parts[4] == "abort") {
      if (read_only) return ReadOnly();
      if (!post) return MethodNotAllowed("POST");
      return Abort(req, id);
    }
    if (parts.size() == 5 && (parts[4] == "results" || parts[4] == "results.csv")) {
      if (!get) return MethodNotAllowed("GET");
      return Results(req, id, parts[4] == "results.csv");
    }
    if (parts.size() == 5 && parts[4] == "report.html") {
      if (!get) return MethodNotAllowed("GET");
      return Report(id);
    }
  }
  if (api && parts.size() == 6 && parts[2] == "namespaces" && parts[4] == "loadtests") {
    if (!get) return MethodNotAllowed("GET");
    if (read_only) return SpecNotHere();
    std::shared_ptr<Run> newest;
    for (const std::shared_ptr<Run>& run : RunsInOrder()) {
      if (run->name_space() == parts[3] && run->name() == parts[5]) newest = run;
    }
    if (newest == nullptr) return Error(404, absl::StrCat("no LoadTest ", parts[3], "/", parts[5]));
    return Get(*newest);
  }
  return JsonResponse(404, {{"error", "not found"}, {"path", req.path}});
}

namespace {
// 400 with each problem line of `status` (one per field) in "problems".
HttpResponse InvalidLoadTest(const absl::Status& status) {
  json problems = json::array();
  for (absl::string_view line : absl::StrSplit(status.message(), '\n', absl::SkipWhitespace()))
    problems.push_back(std::string(line));
  return JsonResponse(400, {{"error", "invalid LoadTest"}, {"problems", problems}});
}
}  // namespace

HttpResponse HttpApi::Create(const HttpRequest& req) {
  if (shutting_down_.load()) return Error(503, "shutting down");
  const std::string& type = req.Header("content-type");
  if (!common::IsLoadTestMediaType(type)) {
    return Error(415,
                 absl::StrCat("Content-Type \"", type,
                              "\": send the LoadTest as application/yaml or application/json"));
  }
  absl::StatusOr<v1::LoadTest> parsed = common::ParseLoadTest(req.body);
  if (!parsed.ok()) {
    return InvalidLoadTest(parsed.status());
  }
  v1::LoadTest test = std::move(*parsed);
  test.clear_status();  // Stampede writes the status
  // The server reads no file and no Kubernetes object for a client: inline rows only. Of its
  // environment, templates see only LOADTEST_* variables (common::ServerEnv).
  absl::StatusOr<common::TestData> data = common::PrepareTestData(
      test.spec(),
      [](const std::string& name, const v1::DataTable&) -> absl::StatusOr<std::string> {
        return absl::InvalidArgumentError(
            absl::StrCat("spec.data.", name,
                         ": the REST API takes inline rows only (a server reads no file, "
                         "ConfigMap or Secret for its clients)"));
      },
      common::ServerEnv);
  if (!data.ok()) {
    return InvalidLoadTest(data.status());
  }
  std::shared_ptr<Run> run;
  {
    common::MutexLock lock(&mu_);
    int active = 0;
    for (const std::shared_ptr<Run>& r : runs_) {
      if (IsTerminal(r->phase())) continue;
      ++active;
      if (r->name_space() == test.metadata().namespace_() && r->name() == test.metadata().name()) {
        return JsonResponse(
            409, {{"error", absl::StrCat("LoadTest ", r->name_space(), "/", r->name(),
                                         " is still running; abort it or wait until it ends")},
                  {"id", r->id()}});
      }
    }
    uint32_t running_in_namespace = 0;
    for (const std::shared_ptr<Run>& r : runs_) {
      if (!IsTerminal(r->phase()) && r->name_space() == test.metadata().namespace_())
        ++running_in_namespace;
    }
    if (std::optional<common::Refusal> refused =
            options_.policy->Admit(test, running_in_namespace)) {
      if (options_.refusals != nullptr) {
        options_.refusals->Count(test.metadata().namespace_(), refused->rule, refused->reason,
                                 "admission");
      }
      SLOG(kWarning) << "loadtest_refused namespace=" << test.metadata().namespace_()
                     << " name=" << test.metadata().name() << " rule=" << refused->rule
                     << " field=" << refused->field << " remote=" << req.remote;
      return JsonResponse(403, {{"error", "the policy refuses this LoadTest"},
                                {"rule", refused->rule},
                                {"field", refused->field},
                                {"problems", json::array({refused->message})}});
    }
    if (active >= options_.max_active_runs) {
      HttpResponse busy = Error(
          429, absl::StrCat(active, " LoadTests are running, the most this server runs at once"));
      busy.headers.emplace_back("Retry-After", "10");
      return busy;
    }
    auto rules = std::make_shared<const v1::TargetRules>(options_.policy->TargetRulesFor(test));
    run = controller_->StartRun(std::move(test), options_.make_launcher(),
                                std::make_shared<const common::TestData>(*std::move(data)),
                                std::move(rules));
    runs_.push_back(run);
    ForgetOldFinishedLocked();
  }
  SLOG(kInfo) << "loadtest_created run=" << run->id() << " remote=" << req.remote;
  HttpResponse created = JsonResponse(201, {{"id", run->id()},
                                            {"name", run->name()},
                                            {"namespace", run->name_space()},
                                            {"status", StatusJson(run->Status())}});
  created.headers.emplace_back("Location", absl::StrCat(kApiPrefix, "/", run->id()));
  return created;
}

void HttpApi::ForgetOldFinishedLocked() {
  size_t finished = 0;
  for (const std::shared_ptr<Run>& r : runs_) finished += IsTerminal(r->phase()) ? 1 : 0;
  // Oldest first: drop finished runs from the front until the bound holds.
  for (auto it = runs_.begin();
       it != runs_.end() && finished > static_cast<size_t>(options_.max_finished_runs);) {
    if (!IsTerminal((*it)->phase())) {
      ++it;
      continue;
    }
    SLOG(kInfo) << "loadtest_forgotten run=" << (*it)->id()
                << " kept=" << options_.max_finished_runs;
    controller_->RemoveRun((*it)->id());
    it = runs_.erase(it);
    --finished;
  }
}

HttpResponse HttpApi::List() {
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
  return JsonResponse(200, {{"items", items}});
}

HttpResponse HttpApi::Get(const Run& run) {
  return {200, "application/json", LoadTestWithStatus(run), {}, false};
}

HttpResponse HttpApi::Abort(const HttpRequest& req, const std::string& id) {
  std::shared_ptr<Run> run = Find(id);
  if (run == nullptr) return NoSuchRun(id);
  if (IsTerminal(run->phase())) {
    return JsonResponse(
        409, {{"error", absl::StrCat("the run has already ended (", PhaseName(run->phase()), ")")},
              {"id", run->id()}});
  }
  run->Abort(absl::StrCat("aborted through the API from ", req.remote));
  return JsonResponse(202, {{"id", run->id()}, {"status", StatusJson(run->Status())}});
}

HttpResponse HttpApi::Results(const HttpRequest& req, const std::string& id, bool csv_path) {
  std::shared_ptr<Run> run = Find(id);
  if (run == nullptr) return NoSuchRun(id);
  const std::string format = req.QueryParam("format");
  const bool csv = csv_path || format == "csv";
  if (!csv && !format.empty() && format != "json") {
    return Error(400, absl::StrCat("format \"", format, "\": use json or csv"));
  }
  Run::Snapshot snapshot = run->TakeSnapshot(/*with_series=*/true);
  // since=S: only the seconds after S (the UI asks for what it has not seen yet).
  if (const std::string since = req.QueryParam("since"); !since.empty()) {
    int64_t after = 0;
    if (!absl::SimpleAtoi(since, &after)) {
      return Error(400, absl::StrCat("since \"", since, "\": give a second of the series"));
    }
    snapshot.series.erase(std::remove_if(snapshot.series.begin(), snapshot.series.end(),
                                         [after](const IntervalPoint& p) {
                                           return static_cast<int64_t>(p.index) <= after;
                                         }),
                          snapshot.series.end());
  }
  if (csv) return {200, "text/csv; charset=utf-8", ResultsCsv(snapshot), {}, false};
  return {200, "application/json", ResultsJson(*run, snapshot), {}, false};
}

HttpResponse HttpApi::Report(const std::string& id) {
  std::shared_ptr<Run> run = Find(id);
  if (run == nullptr) return NoSuchRun(id);
  absl::StatusOr<std::string> html =
      ReportHtml(ResultsJson(*run, run->TakeSnapshot(/*with_series=*/true)));
  if (!html.ok()) return Error(500, std::string(html.status().message()));
  return {200, "text/html; charset=utf-8", *html, {}, false};
}

}  // namespace stampede::controller
