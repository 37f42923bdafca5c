#include "agent/tls_probe.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/host_port.h"
#include "common/policy.h"

namespace stampede::agent {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};

// A blocking TCP connection to the first address of host:port that answers within `timeout`.
int Dial(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t len = sizeof(error);
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

}  // namespace

absl::Status ProbeTls(const std::string& host_port, const std::string& ca_pem,
                      std::chrono::milliseconds timeout) {
  absl::StatusOr<std::pair<std::string, int>> split = common::SplitHostPort(host_port);
  if (!split.ok()) return split.status();
  const auto& [host, port] = *split;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError("cannot create a TLS context");
  BIO* bio = BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size()));
  int loaded = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    loaded += X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), cert);
    X509_free(cert);
  }
  BIO_free(bio);
  ERR_clear_error();
  if (loaded == 0) return absl::InvalidArgumentError("the CA holds no PEM certificate");
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);  // we read the verdict ourselves
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof(kAlpn));

  const int fd = Dial(host, port, timeout);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot connect to ", host_port));
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl.get());
  if (common::IpAddress::Parse(host).has_value()) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    SSL_set_tlsext_host_name(ssl.get(), host.c_str());
  }
  SSL_set_fd(ssl.get(), fd);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int done = 0;
  while ((done = SSL_connect(ssl.get())) != 1) {
    const int want = SSL_get_error(ssl.get(), done);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, static_cast<short>(want == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
    if ((want != SSL_ERROR_WANT_READ && want != SSL_ERROR_WANT_WRITE) || left.count() <= 0 ||
        poll(&p, 1, static_cast<int>(left.count())) != 1) {
      break;
    }
  }
  ERR_clear_error();
  const long verified = SSL_get_verify_result(ssl.get());
  const bool presented = SSL_get0_peer_certificate(ssl.get()) != nullptr;
  close(fd);
  if (!presented) {
    return absl::UnavailableError(
        absl::StrCat("no TLS handshake with ", host_port, " (a plaintext controller?)"));
  }
  if (verified != X509_V_OK) {
    return absl::PermissionDeniedError(X509_verify_cert_error_string(verified));
  }
  return absl::OkStatus();
}

}  // namespace stampede::agent
