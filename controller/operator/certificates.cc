#include "controller/operator/certificates.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/policy.h"

namespace stampede::controller {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using Names = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// OpenSSL's queued errors, oldest first, cleared.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no detail" : out;
}

absl::Status Internal(const char* what) {
  return absl::InternalError(absl::StrCat(what, ": ", OpenSslErrors()));
}

Bio MemoryBio(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

absl::StatusOr<Cert> ParseCert(const std::string& pem) {
  Bio bio = MemoryBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return cert;
}

absl::StatusOr<std::vector<Cert>> ParseCerts(const std::string& pem) {
  Bio bio = MemoryBio(pem);
  std::vector<Cert> out;
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the end of the bundle reads as an error
  if (out.empty()) return absl::InvalidArgumentError("no PEM certificate");
  return out;
}

absl::StatusOr<Pkey> ParseKey(const std::string& pem) {
  Bio bio = MemoryBio(pem);
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM private key");
  }
  return key;
}

absl::Time FromAsn1(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

absl::StatusOr<KeyAndCert> Sign(Cert cert, const Pkey& key, EVP_PKEY* signer) {
  if (X509_sign(cert.get(), signer, EVP_sha256()) == 0) return Internal("signing");
  Bio out(BIO_new(BIO_s_mem()));
  Bio key_out(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(out.get(), cert.get()) != 1 ||
      PEM_write_bio_PrivateKey(key_out.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return Internal("writing PEM");
  }
  return KeyAndCert{BioText(key_out.get()), BioText(out.get())};
}

// A new certificate for a new key: version 3, a random serial, the validity and the subject set;
// issuer, extensions and signature still to do.
absl::StatusOr<std::pair<Cert, Pkey>> NewCert(const std::string& common_name, absl::Time from,
                                              absl::Time until) {
  Pkey key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Internal("making a P-256 key");
  Cert cert(X509_new());
  Bignum serial(BN_new());
  if (cert == nullptr || serial == nullptr || X509_set_version(cert.get(), 2) != 1 ||
      BN_rand(serial.get(), 127, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(from)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(until)) == nullptr ||
      X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    return Internal("making a certificate");
  }
  return std::make_pair(std::move(cert), std::move(key));
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("extension ", OBJ_nid2sn(nid), "=", value, ": ", OpenSslErrors()));
  }
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (added != 1) return Internal("adding an extension");
  return absl::OkStatus();
}

// A DNS name as a certificate may carry it: labels of letters, digits, '-' and '_', dots between.
bool IsDnsName(const std::string& name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return name.find("..") == std::string::npos;
}

}  // namespace

absl::StatusOr<KeyAndCert> MakeCa(const std::string& common_name, absl::Time now,
                                  absl::Duration validity) {
  auto made = NewCert(common_name, now - absl::Minutes(1), now + validity);
  if (!made.ok()) return made.status();
  auto& [cert, key] = *made;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1) {
    return Internal("setting the issuer");
  }
  for (const auto& [nid, value] : std::vector<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
           {NID_key_usage, "critical,keyCertSign,cRLSign"},
           {NID_subject_key_identifier, "hash"}}) {
    if (absl::Status s = AddExtension(cert.get(), cert.get(), nid, value); !s.ok()) return s;
  }
  return Sign(std::move(cert), key, key.get());
}

absl::StatusOr<KeyAndCert> IssueServing(const KeyAndCert& ca, const std::vector<std::string>& names,
                                        absl::Time now, absl::Duration validity) {
  if (names.empty()) return absl::InvalidArgumentError("a serving certificate needs a name");
  std::vector<std::string> alt;
  for (const std::string& name : names) {
    if (common::IpAddress::Parse(name).has_value() && name.find(':') == std::string::npos &&
        std::count(name.begin(), name.end(), '.') != 3) {
      // 127.1 resolves, but a certificate holds the full form; say so rather than guess.
      return absl::InvalidArgumentError(absl::StrCat("\"", name, "\": write the address in full"));
    }
    if (common::IpAddress::Parse(name).has_value()) {
      alt.push_back(absl::StrCat("IP:", name));
    } else if (IsDnsName(name)) {
      alt.push_back(absl::StrCat("DNS:", name));
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", name, "\" is neither a DNS name nor an IP address"));
    }
  }
  absl::StatusOr<Cert> ca_cert = ParseCert(ca.cert_pem);
  if (!ca_cert.ok()) return absl::InvalidArgumentError("the CA's certificate: not PEM");
  absl::StatusOr<Pkey> ca_key = ParseKey(ca.key_pem);
  if (!ca_key.ok()) return absl::InvalidArgumentError("the CA's key: not PEM");
  const absl::Time ca_until = FromAsn1(X509_get0_notAfter(ca_cert->get()));
  auto made = NewCert(names.front(), now - absl::Minutes(1), std::min(now + validity, ca_until));
  if (!made.ok()) return made.status();
  auto& [cert, key] = *made;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert->get())) != 1) {
    return Internal("setting the issuer");
  }
  for (const auto& [nid, value] :
       std::vector<std::pair<int, std::string>>{{NID_basic_constraints, "critical,CA:FALSE"},
                                                {NID_key_usage, "critical,digitalSignature"},
                                                {NID_ext_key_usage, "serverAuth"},
                                                {NID_authority_key_identifier, "keyid:always"},
                                                {NID_subject_alt_name, absl::StrJoin(alt, ",")}}) {
    if (absl::Status s = AddExtension(cert.get(), ca_cert->get(), nid, value); !s.ok()) return s;
  }
  return Sign(std::move(cert), key, ca_key->get());
}

namespace {

CertInfo Describe(X509* cert) {
  CertInfo info;
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn)) > 0) {
    info.subject = cn;
  }
  if (Bignum serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)); serial) {
    char* hex = BN_bn2hex(serial.get());
    if (hex != nullptr) info.serial = hex;
    OPENSSL_free(hex);
  }
  info.not_before = FromAsn1(X509_get0_notBefore(cert));
  info.not_after = FromAsn1(X509_get0_notAfter(cert));
  info.is_ca = X509_check_ca(cert) != 0;
  Names names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type == GEN_DNS) {
      const ASN1_IA5STRING* s = name->d.dNSName;
      info.names.emplace_back(reinterpret_cast<const char*>(s->data), s->length);
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      if ((ip->length == 4 || ip->length == 16) &&
          inet_ntop(ip->length == 4 ? AF_INET : AF_INET6, ip->data, text, sizeof(text)) !=
              nullptr) {
        info.names.emplace_back(text);
      }
    }
  }
  return info;
}

}  // namespace

absl::StatusOr<CertInfo> ReadCert(const std::string& pem) {
  absl::StatusOr<Cert> cert = ParseCert(pem);
  if (!cert.ok()) return cert.status();
  return Describe(cert->get());
}

absl::StatusOr<std::vector<CertInfo>> ReadBundle(const std::string& pem) {
  absl::StatusOr<std::vector<Cert>> certs = ParseCerts(pem);
  if (!certs.ok()) return certs.status();
  std::vector<CertInfo> out;
  for (const Cert& c : *certs) out.push_back(Describe(c.get()));
  return out;
}

absl::Status Verify(const std::string& leaf_pem, const std::string& bundle_pem,
                    const std::string& host, absl::Time at) {
  absl::StatusOr<Cert> leaf = ParseCert(leaf_pem);
  if (!leaf.ok()) return leaf.status();
  absl::StatusOr<std::vector<Cert>> roots = ParseCerts(bundle_pem);
  if (!roots.ok()) return roots.status();
  Store store(X509_STORE_new());
  for (const Cert& root : *roots) X509_STORE_add_cert(store.get(), root.get());
  StoreCtx ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf->get(), nullptr) != 1) {
    return Internal("starting a verification");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(at));
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  if (!host.empty()) {
    const bool ip = common::IpAddress::Parse(host).has_value();
    const int set = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                       : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1) return absl::InvalidArgumentError(absl::StrCat("bad host \"", host, "\""));
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError(
        X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  }
  return absl::OkStatus();
}

bool KeyMatches(const std::string& key_pem, const std::string& cert_pem) {
  absl::StatusOr<Cert> cert = ParseCert(cert_pem);
  absl::StatusOr<Pkey> key = ParseKey(key_pem);
  if (!cert.ok() || !key.ok()) return false;
  const bool match = X509_check_private_key(cert->get(), key->get()) == 1;
  ERR_clear_error();
  return match;
}

}  // namespace stampede::controller
