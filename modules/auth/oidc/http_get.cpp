// SPDX-License-Identifier: GPL-3.0-or-later
#include "http_get.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <istream>
#include <memory>

namespace backbone::modules::oidc {
namespace {

constexpr int kMaxRedirects = 3;

using Clock = std::chrono::steady_clock;

// Keeps Poco's (reference-counted) SSL initialization alive during a request.
struct SslScope {
  SslScope() { Poco::Net::initializeSSL(); }
  ~SslScope() { Poco::Net::uninitializeSSL(); }
  SslScope(const SslScope&) = delete;
  SslScope& operator=(const SslScope&) = delete;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

std::string check_url(const std::string& url, bool allow_http) {
  try {
    Poco::URI uri(url);
    const std::string scheme = lower(uri.getScheme());
    if (scheme != "https" && scheme != "http") {
      return "'" + url + "' is not an http(s) URL";
    }
    if (uri.getHost().empty()) return "'" + url + "' has no host";
    if (scheme == "http" && !allow_http) {
      return "'" + url + "' uses plain http (refused unless 'allow_http' is true)";
    }
    if (!uri.getUserInfo().empty()) return "'" + url + "' must not carry user info";
    return {};
  } catch (const Poco::Exception& e) {
    return "'" + url + "' is not a valid URL: " + e.displayText();
  } catch (const std::exception& e) {
    return "'" + url + "' is not a valid URL: " + e.what();
  }
}

HttpResult http_get(const std::string& start_url, const HttpOptions& options) {
  HttpResult result;
  const auto deadline = Clock::now() + std::chrono::milliseconds(options.timeout_ms);
  std::string url = start_url;
  try {
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
      if (std::string why = check_url(url, options.allow_http); !why.empty()) {
        result.error = why;
        return result;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        result.error =
            "GET " + url + ": timed out after " + std::to_string(options.timeout_ms) + " ms";
        return result;
      }
      Poco::URI uri(url);
      std::unique_ptr<SslScope> ssl;
      std::unique_ptr<Poco::Net::HTTPClientSession> session;
      if (lower(uri.getScheme()) == "https") {
        ssl = std::make_unique<SslScope>();
        // VERIFY_STRICT: Poco then checks the host name even for localhost.
        Poco::Net::Context::Ptr context =
            new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, options.ca_file,
                                   Poco::Net::Context::VERIFY_STRICT, 9, true);
        context->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
        session =
            std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), context);
      } else {
        session = std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
      }
      session->setTimeout(Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(left)));
      std::string path = uri.getPathAndQuery();
      if (path.empty()) path = "/";
      Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path,
                                     Poco::Net::HTTPMessage::HTTP_1_1);
      request.set("Accept", "application/json");
      request.set("User-Agent", "backbone-oidc/1.0");
      session->sendRequest(request);
      Poco::Net::HTTPResponse response;
      std::istream& in = session->receiveResponse(response);
      const int status = static_cast<int>(response.getStatus());
      if ((status == 301 || status == 302 || status == 303 || status == 307 || status == 308) &&
          response.has("Location")) {
        url = Poco::URI(uri, response.get("Location")).toString();
        continue;
      }
      if (status != 200) {
        result.error =
            "GET " + url + ": HTTP " + std::to_string(status) + " " + response.getReason();
        return result;
      }
      std::string body;
      char buf[16384];
      while (in) {
        in.read(buf, sizeof buf);
        body.append(buf, static_cast<size_t>(in.gcount()));
        if (body.size() > options.max_body) {
          result.error = "GET " + url + ": response larger than " +
                         std::to_string(options.max_body) + " bytes";
          return result;
        }
        if (Clock::now() > deadline) {
          result.error =
              "GET " + url + ": timed out after " + std::to_string(options.timeout_ms) + " ms";
          return result;
        }
      }
      if (in.bad()) {
        result.error = "GET " + url + ": error while reading the response";
        return result;
      }
      result.ok = true;
      result.body = std::move(body);
      return result;
    }
    result.error =
        "GET " + start_url + ": more than " + std::to_string(kMaxRedirects) + " redirects";
  } catch (const Poco::TimeoutException&) {
    result.error = "GET " + url + ": timed out after " + std::to_string(options.timeout_ms) + " ms";
  } catch (const Poco::Exception& e) {
    result.error = "GET " + url + ": " + e.displayText();
  } catch (const std::exception& e) {
    result.error = "GET " + url + ": " + e.what();
  }
  return result;
}

}  // namespace backbone::modules::oidc
