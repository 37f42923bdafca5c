#include "controller/operator/agent_tls.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "controller/operator/kube_launcher.h"

namespace stampede::controller {
namespace {

std::string Data(const kube::Json& secret, const char* key) {
  if (!secret.contains("data") || !secret["data"].is_object() || !secret["data"].contains(key) ||
      !secret["data"][key].is_string()) {
    return "";
  }
  std::string decoded;
  if (!absl::Base64Unescape(secret["data"][key].get<std::string>(), &decoded)) return "";
  return decoded;
}

absl::StatusOr<KeyAndCert> Pair(const kube::Json& secret, const char* cert_key,
                                const char* key_key) {
  KeyAndCert pair{Data(secret, key_key), Data(secret, cert_key)};
  if (pair.cert_pem.empty()) return absl::InvalidArgumentError(absl::StrCat("no ", cert_key));
  if (pair.key_pem.empty()) return absl::InvalidArgumentError(absl::StrCat("no ", key_key));
  absl::StatusOr<CertInfo> info = ReadCert(pair.cert_pem);
  if (!info.ok()) return absl::InvalidArgumentError(absl::StrCat(cert_key, ": not a certificate"));
  if (!info->is_ca) return absl::InvalidArgumentError(absl::StrCat(cert_key, ": not a CA"));
  if (!KeyMatches(pair.key_pem, pair.cert_pem)) {
    return absl::InvalidArgumentError(absl::StrCat(key_key, ": not the key of ", cert_key));
  }
  return pair;
}

absl::Time NotBefore(const KeyAndCert& pair) {
  absl::StatusOr<CertInfo> info = ReadCert(pair.cert_pem);
  return info.ok() ? info->not_before : absl::InfiniteFuture();
}

absl::Time NotAfter(const KeyAndCert& pair) {
  absl::StatusOr<CertInfo> info = ReadCert(pair.cert_pem);
  return info.ok() ? info->not_after : absl::InfinitePast();
}

absl::Status WriteFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  if (chmod(path.c_str(), mode) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot chmod ", path));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CaSecret> ParseCaSecret(const kube::Json& secret) {
  CaSecret ca;
  ASSIGN_OR_RETURN(ca.current, Pair(secret, "tls.crt", "tls.key"));
  if (!Data(secret, "previous.crt").empty()) {
    ASSIGN_OR_RETURN(ca.previous, Pair(secret, "previous.crt", "previous.key"));
  }
  ca.resource_version = kube::MetadataField(secret, "resourceVersion");
  return ca;
}

std::string TrustBundle(const CaSecret& ca) {
  std::string bundle = ca.current.cert_pem;
  if (ca.previous.has_value()) bundle += ca.previous->cert_pem;
  return bundle;
}

kube::Json CaSecretObject(const CaSecret& ca, const std::string& ns, const std::string& name) {
  kube::Json data = {{"ca.crt", absl::Base64Escape(TrustBundle(ca))},
                     {"tls.crt", absl::Base64Escape(ca.current.cert_pem)},
                     {"tls.key", absl::Base64Escape(ca.current.key_pem)}};
  if (ca.previous.has_value()) {
    data["previous.crt"] = absl::Base64Escape(ca.previous->cert_pem);
    data["previous.key"] = absl::Base64Escape(ca.previous->key_pem);
  }
  kube::Json metadata = {{"name", name},
                         {"namespace", ns},
                         {"labels",
                          {{"app.kubernetes.io/name", "stampede"},
                           {"app.kubernetes.io/component", "agent-ca"},
                           {kManagedByLabel, kManagedByValue}}}};
  if (!ca.resource_version.empty()) metadata["resourceVersion"] = ca.resource_version;
  return {{"apiVersion", "v1"},
          {"kind", "Secret"},
          {"metadata", metadata},
          {"type", "Opaque"},
          {"data", data}};
}

absl::StatusOr<bool> RotateCa(CaSecret* ca, absl::Time now, absl::Duration validity) {
  bool changed = false;
  if (ca->previous.has_value() && NotAfter(*ca->previous) <= now) {
    ca->previous.reset();
    changed = true;
  }
  if (NotAfter(ca->current) - now < validity / 3) {
    ASSIGN_OR_RETURN(KeyAndCert fresh, MakeCa("stampede-agent-ca", now, validity));
    ca->previous = std::move(ca->current);
    ca->current = std::move(fresh);
    changed = true;
  }
  return changed;
}

const KeyAndCert& Signer(const CaSecret& ca, absl::Time now, absl::Duration overlap) {
  if (ca.previous.has_value() && NotBefore(ca.current) + overlap > now &&
      NotAfter(*ca.previous) > now) {
    return *ca.previous;
  }
  return ca.current;
}

AgentTls::AgentTls(kube::Api* api, AgentTlsOptions options)
    : api_(api),
      options_(std::move(options)),
      key_file_(options_.dir + "/current/tls.key"),
      cert_file_(options_.dir + "/current/tls.crt") {}

absl::StatusOr<std::unique_ptr<AgentTls>> AgentTls::Start(kube::Api* api, AgentTlsOptions options) {
  if (options.hosts.empty()) return absl::InvalidArgumentError("no host to certify");
  if (options.dir.empty()) return absl::InvalidArgumentError("no folder for the certificate");
  std::error_code error;
  std::filesystem::create_directories(options.dir, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create ", options.dir, ": ", error.message()));
  }
  std::unique_ptr<AgentTls> tls(new AgentTls(api, std::move(options)));
  RETURN_IF_ERROR(tls->Check());
  AgentTls* self = tls.get();
  tls->thread_ = std::thread([self] {
    while (true) {
      {
        common::MutexLock lock(&self->mu_);
        if (!self->stop_) self->cv_.WaitFor(&self->mu_, self->options_.check_interval);
        if (self->stop_) return;
      }
      if (absl::Status s = self->Check(); !s.ok()) {
        SLOG(kWarning) << "agent_tls_check_failed error=\"" << s.message() << "\"";
      }
    }
  });
  return tls;
}

AgentTls::~AgentTls() { Stop(); }

void AgentTls::Stop() {
  {
    common::MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

std::string AgentTls::TrustBundle() const {
  common::MutexLock lock(&mu_);
  return bundle_;
}

std::string AgentTls::ServingCert() const {
  common::MutexLock lock(&mu_);
  return serving_cert_;
}

absl::StatusOr<CaSecret> AgentTls::ReadOrCreate() {
  const std::string collection =
      absl::StrCat("/api/v1/namespaces/", options_.secret_namespace, "/secrets");
  const std::string path = absl::StrCat(collection, "/", options_.secret_name);
  const std::string where =
      absl::StrCat("Secret ", options_.secret_namespace, "/", options_.secret_name);
  for (int attempt = 0; attempt < 5; ++attempt) {
    absl::StatusOr<kube::Json> read = api_->Get(path);
    if (read.ok()) {
      absl::StatusOr<CaSecret> ca = ParseCaSecret(*read);
      if (!ca.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            where, ": ", ca.status().message(), " (delete it and the operator makes a new CA)"));
      }
      absl::StatusOr<bool> rotated = RotateCa(&*ca, options_.now(), options_.ca_validity);
      if (!rotated.ok()) return rotated.status();
      if (!*rotated) return ca;
      absl::StatusOr<kube::Json> updated =
          api_->Update(path, CaSecretObject(*ca, options_.secret_namespace, options_.secret_name));
      if (updated.ok()) {
        SLOG(kInfo) << "agent_ca_rotated secret=" << options_.secret_namespace << "/"
                    << options_.secret_name;
        ca->resource_version = kube::MetadataField(*updated, "resourceVersion");
        return ca;
      }
      if (!kube::IsConflict(updated.status())) {
        return absl::Status(updated.status().code(),
                            absl::StrCat("updating ", where, ": ", updated.status().message()));
      }
      continue;  // another replica rotated first: use its CA
    }
    if (read.status().code() != absl::StatusCode::kNotFound) {
      return absl::Status(read.status().code(),
                          absl::StrCat("reading ", where, ": ", read.status().message()));
    }
    ASSIGN_OR_RETURN(KeyAndCert fresh,
                     MakeCa("stampede-agent-ca", options_.now(), options_.ca_validity));
    CaSecret ca{std::move(fresh), std::nullopt, ""};
    absl::StatusOr<kube::Json> created = api_->Create(
        collection, CaSecretObject(ca, options_.secret_namespace, options_.secret_name));
    if (created.ok()) {
      SLOG(kInfo) << "agent_ca_created secret=" << options_.secret_namespace << "/"
                  << options_.secret_name;
      ca.resource_version = kube::MetadataField(*created, "resourceVersion");
      return ca;
    }
    if (created.status().code() != absl::StatusCode::kAlreadyExists) {
      return absl::Status(created.status().code(),
                          absl::StrCat("creating ", where, ": ", created.status().message()));
    }
    // Another replica created it first: read its CA.
  }
  return absl::AbortedError(absl::StrCat(where, ": changed under us 5 times in a row"));
}

absl::Status AgentTls::Check() {
  common::MutexLock check(&check_mu_);
  ASSIGN_OR_RETURN(CaSecret ca, ReadOrCreate());
  const absl::Time now = options_.now();
  const KeyAndCert& signer = Signer(ca, now, options_.ca_overlap);
  bool renew = false;
  {
    common::MutexLock lock(&mu_);
    bundle_ = controller::TrustBundle(ca);
    renew = serving_cert_.empty() || signer_cert_ != signer.cert_pem || now >= renew_at_;
  }
  if (!renew) return absl::OkStatus();
  absl::StatusOr<KeyAndCert> serving =
      IssueServing(signer, options_.hosts, now, options_.cert_validity);
  if (!serving.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the serving certificate: ", serving.status().message()));
  }
  RETURN_IF_ERROR(WriteServing(*serving));
  ASSIGN_OR_RETURN(CertInfo info, ReadCert(serving->cert_pem));
  common::MutexLock lock(&mu_);
  serving_cert_ = serving->cert_pem;
  signer_cert_ = signer.cert_pem;
  renew_at_ = info.not_before + (info.not_after - info.not_before) * 2 / 3;
  SLOG(kInfo) << "agent_tls_certificate serial=" << info.serial
              << " not_after=" << absl::FormatTime(info.not_after)
              << " renew_at=" << absl::FormatTime(renew_at_);
  return absl::OkStatus();
}

absl::Status AgentTls::WriteServing(const KeyAndCert& serving) {
  // A new folder per certificate, then the symlink swapped by rename: a reader that follows
  // `current` sees either the old pair or the new one, never half of each.
  int generation = 0;
  {
    common::MutexLock lock(&mu_);
    generation = ++generation_;
  }
  const std::string name = absl::StrCat("gen-", getpid(), "-", generation);
  const std::string folder = absl::StrCat(options_.dir, "/", name);
  std::error_code error;
  std::filesystem::create_directories(folder, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot create ", folder));
  RETURN_IF_ERROR(WriteFile(folder + "/tls.key", serving.key_pem, 0600));
  RETURN_IF_ERROR(WriteFile(folder + "/tls.crt", serving.cert_pem, 0644));
  const std::string link = options_.dir + "/current";
  const std::string staged = absl::StrCat(link, ".", name);
  std::filesystem::remove(staged, error);
  std::filesystem::create_directory_symlink(name, staged, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot link ", staged));
  std::filesystem::rename(staged, link, error);
  if (error) return absl::UnavailableError(absl::StrCat("cannot rename to ", link));
  // Older folders go, but for the one just replaced: gRPC may be reading it right now.
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, error)) {
    const std::string old = entry.path().filename().string();
    if (old.rfind("gen-", 0) == 0 && old != name && old != replaced_folder_) {
      std::filesystem::remove_all(entry.path(), error);
    }
  }
  replaced_folder_ = name;
  return absl::OkStatus();
}

}  // namespace stampede::controller
