// SPDX-License-Identifier: GPL-3.0-or-later
#include "common/kube/kube_http.hpp"

#include "common/kube/watch_event.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <istream>
#include <ostream>
#include <stdexcept>

namespace backbone::modules::k8s {
namespace {

struct BioDeleter {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;

BioPtr memory_bio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate of a PEM bundle, in order.
std::vector<X509Ptr> read_certificates(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = memory_bio(pem);
  while (bio) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    out.push_back(std::move(cert));
  }
  ERR_clear_error();  // the end of the bundle reads as an error
  return out;
}

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Registers the socket of a request with its Cancel for the request's life.
class CancelScope {
 public:
  CancelScope(Cancel& cancel, Poco::Net::HTTPClientSession& session) : cancel_(cancel) {
    const int fd = static_cast<int>(session.socket().impl()->sockfd());
    attached_ = cancel_.attach(fd);
  }
  ~CancelScope() { cancel_.detach(); }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;
  bool ok() const { return attached_; }

 private:
  Cancel& cancel_;
  bool attached_ = false;
};

Poco::Timespan millis(int64_t ms) {
  return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms) * 1000);
}

}  // namespace

// ---- Cancel ----

void Cancel::cancel() {
  std::lock_guard lock(mutex_);
  cancelled_ = true;
  // shutdown() (not close()) wakes a thread blocked in recv on this socket;
  // the fd itself stays owned, and is closed, by that thread.
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  cv_.notify_all();
}

bool Cancel::cancelled() const {
  std::lock_guard lock(mutex_);
  return cancelled_;
}

bool Cancel::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, d, [&] { return cancelled_; });
}

bool Cancel::attach(int fd) {
  std::lock_guard lock(mutex_);
  if (cancelled_) return false;
  fd_ = fd;
  return true;
}

void Cancel::detach() {
  std::lock_guard lock(mutex_);
  fd_ = -1;
}

// ---- KubeHttp ----

struct KubeHttp::Tls {
  Poco::Net::Context::Ptr context;
};

struct KubeHttp::TokenCache {
  std::mutex mutex;
  std::string token;
  bool loaded = false;
  ino_t inode = 0;
  off_t size = 0;
  struct timespec mtime {};
};

KubeHttp::KubeHttp(ClusterConfig cluster, Options options)
    : cluster_(std::move(cluster)), options_(options), token_(std::make_unique<TokenCache>()) {
  Poco::URI uri(cluster_.server);
  host_ = uri.getHost();
  port_ = uri.getPort();
  https_ = uri.getScheme() == "https";
  if (!https_) return;

  Poco::Net::initializeSSL();
  tls_ = std::make_unique<Tls>();
  Poco::Net::Context::Params params;
  params.verificationMode = cluster_.insecure_skip_tls_verify ? Poco::Net::Context::VERIFY_NONE
                                                              : Poco::Net::Context::VERIFY_RELAXED;
  params.loadDefaultCAs = cluster_.ca_pem.empty() && !cluster_.insecure_skip_tls_verify;
  params.verificationDepth = 9;
  tls_->context = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, params);
  tls_->context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  // The server name is checked by OpenSSL itself (below), which knows IP
  // SANs; Poco's own check resolves names through DNS.
  tls_->context->enableExtendedCertificateVerification(false);
  SSL_CTX* ctx = tls_->context->sslContext();

  if (!cluster_.ca_pem.empty()) {
    std::vector<X509Ptr> cas = read_certificates(cluster_.ca_pem);
    if (cas.empty()) throw std::runtime_error("the CA bundle holds no PEM certificate");
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (auto& c : cas) {
      if (X509_STORE_add_cert(store, c.get()) != 1) ERR_clear_error();  // duplicates are fine
    }
  }
  if (!cluster_.client_cert_pem.empty()) {
    std::vector<X509Ptr> chain = read_certificates(cluster_.client_cert_pem);
    if (chain.empty()) throw std::runtime_error("the client certificate is not a PEM certificate");
    if (SSL_CTX_use_certificate(ctx, chain.front().get()) != 1) {
      throw std::runtime_error("client certificate refused: " + openssl_error());
    }
    for (size_t i = 1; i < chain.size(); ++i) {
      if (SSL_CTX_add1_chain_cert(ctx, chain[i].get()) != 1) {
        throw std::runtime_error("client certificate chain refused: " + openssl_error());
      }
    }
    BioPtr bio = memory_bio(cluster_.client_key_pem);
    std::unique_ptr<EVP_PKEY, PkeyDeleter> key(
        bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    if (!key) throw std::runtime_error("the client key is not a PEM private key");
    if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      throw std::runtime_error("the client key does not match the client certificate: " +
                               openssl_error());
    }
  }
  if (!cluster_.insecure_skip_tls_verify) {
    std::string name = cluster_.tls_server_name.empty() ? host_ : cluster_.tls_server_name;
    X509_VERIFY_PARAM* param = SSL_CTX_get0_param(ctx);
    unsigned char addr[16];
    const bool is_ip =
        inet_pton(AF_INET, name.c_str(), addr) == 1 || inet_pton(AF_INET6, name.c_str(), addr) == 1;
    const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    if (ok != 1) throw std::runtime_error("cannot verify server name '" + name + "'");
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  }
}

KubeHttp::~KubeHttp() {
  if (tls_) {
    tls_.reset();
    Poco::Net::uninitializeSSL();
  }
}

std::string KubeHttp::bearer() {
  if (!cluster_.token.empty()) return cluster_.token;
  if (cluster_.token_file.empty()) return {};
  std::lock_guard lock(token_->mutex);
  struct stat st {};
  if (::stat(cluster_.token_file.c_str(), &st) != 0) return token_->token;  // mid-rotation
  TokenCache& t = *token_;
  if (t.loaded && st.st_ino == t.inode && st.st_size == t.size &&
      st.st_mtim.tv_sec == t.mtime.tv_sec && st.st_mtim.tv_nsec == t.mtime.tv_nsec) {
    return t.token;
  }
  std::string error;
  std::optional<std::string> text = read_file(cluster_.token_file, error);
  if (!text) return t.token;
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r' || text->back() == ' ')) {
    text->pop_back();
  }
  t.token = std::move(*text);
  t.loaded = true;
  t.inode = st.st_ino;
  t.size = st.st_size;
  t.mtime = st.st_mtim;
  return t.token;
}

namespace {

std::unique_ptr<Poco::Net::HTTPClientSession> make_session(const std::string& host, uint16_t port,
                                                           bool https,
                                                           const Poco::Net::Context::Ptr& ctx) {
  if (https) return std::make_unique<Poco::Net::HTTPSClientSession>(host, port, ctx);
  return std::make_unique<Poco::Net::HTTPClientSession>(host, port);
}

}  // namespace

HttpResponse KubeHttp::request(std::string_view method, const std::string& path,
                               std::string_view body, std::string_view content_type,
                               Cancel& cancel) {
  HttpResponse result;
  const std::string what = std::string(method) + " " + path;
  if (cancel.cancelled()) {
    result.error = what + ": cancelled";
    return result;
  }
  try {
    auto session = make_session(host_, port_, https_, tls_ ? tls_->context : nullptr);
    session->setTimeout(millis(options_.connect_timeout_ms), millis(options_.request_timeout_ms),
                        millis(options_.request_timeout_ms));
    Poco::Net::HTTPRequest request(std::string(method), path, Poco::Net::HTTPMessage::HTTP_1_1);
    request.set("Accept", "application/json");
    request.set("User-Agent", "backbone-k8s/1.0");
    const std::string token = bearer();
    if (!token.empty()) request.set("Authorization", "Bearer " + token);
    if (!body.empty() || method != "GET") {
      request.setContentType(std::string(content_type.empty() ? "application/json" : content_type));
      request.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    std::ostream& out = session->sendRequest(request);
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    CancelScope scope(cancel, *session);
    if (!scope.ok()) {
      result.error = what + ": cancelled";
      return result;
    }
    Poco::Net::HTTPResponse response;
    std::istream& in = session->receiveResponse(response);
    std::string text;
    char buf[16384];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      text.append(buf, static_cast<size_t>(in.gcount()));
      if (text.size() > options_.max_body) {
        result.error =
            what + ": response larger than " + std::to_string(options_.max_body) + " bytes";
        return result;
      }
    }
    if (in.bad()) {
      result.error = what + ": connection broken while reading the response";
      return result;
    }
    result.status = static_cast<int>(response.getStatus());
    result.body = std::move(text);
  } catch (const Poco::Exception& e) {
    result.error = what + ": " + (cancel.cancelled() ? std::string("cancelled") : e.displayText());
  } catch (const std::exception& e) {
    result.error = what + ": " + e.what();
  }
  return result;
}

HttpResponse KubeHttp::stream(const std::string& path, std::chrono::seconds idle_timeout,
                              Cancel& cancel,
                              const std::function<bool(std::string& line)>& on_line) {
  HttpResponse result;
  const std::string what = "GET " + path;
  if (cancel.cancelled()) {
    result.error = what + ": cancelled";
    return result;
  }
  try {
    auto session = make_session(host_, port_, https_, tls_ ? tls_->context : nullptr);
    session->setTimeout(millis(options_.connect_timeout_ms), millis(options_.request_timeout_ms),
                        Poco::Timespan(static_cast<long>(idle_timeout.count()), 0));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.set("Accept", "application/json");
    request.set("User-Agent", "backbone-k8s/1.0");
    const std::string token = bearer();
    if (!token.empty()) request.set("Authorization", "Bearer " + token);
    session->sendRequest(request);
    CancelScope scope(cancel, *session);
    if (!scope.ok()) {
      result.error = what + ": cancelled";
      return result;
    }
    Poco::Net::HTTPResponse response;
    std::istream& in = session->receiveResponse(response);
    result.status = static_cast<int>(response.getStatus());
    if (result.status != 200) {
      char buf[4096];
      while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        result.body.append(buf, static_cast<size_t>(in.gcount()));
        if (result.body.size() > 64 * 1024) break;
      }
      return result;
    }
    LineReader reader(*in.rdbuf(), options_.max_line);
    std::string line;
    for (;;) {
      const LineReader::Result r = reader.next(line);
      if (r == LineReader::Result::kEnd) {
        if (cancel.cancelled()) result.error = what + ": cancelled";
        return result;
      }
      if (r == LineReader::Result::kTooLong) {
        result.error =
            what + ": a watch event is larger than " + std::to_string(options_.max_line) + " bytes";
        return result;
      }
      if (!on_line(line)) return result;
    }
  } catch (const Poco::TimeoutException&) {
    result.error = what + ": no data for " + std::to_string(idle_timeout.count()) + " s";
  } catch (const Poco::Exception& e) {
    result.error = what + ": " + (cancel.cancelled() ? std::string("cancelled") : e.displayText());
  } catch (const std::exception& e) {
    result.error = what + ": " + e.what();
  }
  return result;
}

std::string describe(const HttpResponse& r) {
  if (r.status == 0) return r.error;
  const ApiStatus s = parse_status_body(r.body, r.status);
  std::string text = "HTTP " + std::to_string(r.status);
  if (!s.reason.empty()) text += " " + s.reason;
  if (!s.message.empty()) text += ": " + s.message;
  if (r.status == 401) text += " (is the token valid?)";
  if (r.status == 403) text += " (check the RBAC rules of the broker's service account)";
  return text;
}

}  // namespace backbone::modules::k8s
