/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "metrics_server.hpp"

#include <cerrno>
#include <cstring>
#include <exception>
#include <vector>

#include <CivetServer.h>
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <sys/socket.h>

#include <fmt/core.h>

#include "common/log.hpp"
#include "common/unique_fd.hpp"
#include "config/mount_options.hpp"
#include "daemon/control_commands.hpp"
#include "metrics/exposition.hpp"

namespace cgloopfs::daemon {

namespace {

/* civetweb's mg_check_feature() bit for IPv6. */
constexpr unsigned civetweb_ipv6 = 8;
constexpr const char *path = "/metrics";

/* The families of one mount, built at each scrape. */
class Collector final : public prometheus::Collectable
{
public:
	explicit Collector(fuse::Filesystem &fs) : fs_(fs) {}

	std::vector<prometheus::MetricFamily> Collect() const override
	{
		try {
			return metrics::families(stats_document(fs_));
		} catch (const std::exception &e) {
			if (failures_.allow())
				log::warning("metrics: cannot make the figures, serving none: {}",
					     e.what());
			return {};
		}
	}

private:
	fuse::Filesystem &fs_;
	mutable log::RateLimit failures_{1, 60};
};

/*
 * Before civetweb's own handling: anything but GET /metrics is refused
 * here (civetweb would serve /metrics/anything and /metricsx through the
 * Exposer's handler).
 */
int begin_request(mg_connection *conn)
{
	const mg_request_info *ri = mg_get_request_info(conn);
	if (!ri || !ri->local_uri || std::strcmp(ri->local_uri, path) != 0) {
		mg_send_http_error(conn, 404, "Not Found: the metrics are at %s\n", path);
		return 404;
	}
	if (!ri->request_method || std::strcmp(ri->request_method, "GET") != 0) {
		mg_response_header_start(conn, 405);
		mg_response_header_add(conn, "Allow", "GET", -1);
		mg_response_header_add(conn, "Content-Length", "0", -1);
		mg_response_header_add(conn, "Connection", "close", -1);
		mg_response_header_send(conn);
		return 405;
	}
	return 0;
}

/* Quiet: civetweb's messages are about single connections. */
int log_message(const mg_connection *, const char *message)
{
	log::debug("metrics: {}", message);
	return 1;
}

} /* namespace */

MetricsServer::MetricsServer(std::string address) : address_(std::move(address)) {}

MetricsServer::~MetricsServer()
{
	stop();
}

int MetricsServer::check(std::string *ret_why) const
{
	auto refused = [&](int err, const std::string &why) {
		*ret_why = fmt::format("option \"metrics={}\": {}", address_, why);
		return -err;
	};
	std::string why;
	auto a = config::parse_listen_address(address_, &why);
	if (!a)
		return refused(EINVAL, why);
	if (a->family == AF_INET6 && !mg_check_feature(civetweb_ipv6))
		return refused(EAFNOSUPPORT,
			       "the HTTP server of this build (civetweb) has no IPv6; give an "
			       "IPv4 address");
	sockaddr_storage ss = {};
	socklen_t len;
	if (a->family == AF_INET) {
		auto *sin = reinterpret_cast<sockaddr_in *>(&ss);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		(void)inet_pton(AF_INET, a->host.c_str(), &sin->sin_addr);
		len = sizeof(*sin);
	} else {
		auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&ss);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(a->port);
		(void)inet_pton(AF_INET6, a->host.c_str(), &sin6->sin6_addr);
		len = sizeof(*sin6);
	}
	/* Bound and let go: what civetweb does next (with SO_REUSEADDR, as it sets). */
	UniqueFd fd(socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd)
		return refused(errno, fmt::format("socket: {}", std::strerror(errno)));
	int one = 1;
	(void)setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd.get(), reinterpret_cast<sockaddr *>(&ss), len) < 0) {
		int err = errno;
		return refused(err, err == EADDRINUSE
					    ? "the port is in use (another daemon's metrics?)"
					    : std::strerror(err));
	}
	return 0;
}

int MetricsServer::start(fuse::Filesystem &fs, std::string *ret_why)
{
	if (!enabled())
		return 0;
	CivetCallbacks callbacks;
	callbacks.begin_request = begin_request;
	callbacks.log_message = log_message;
	std::vector<std::string> options = {
		"listening_ports",    address_, "num_threads",	     "2",
		"request_timeout_ms", "10000",	"enable_keep_alive", "yes",
	};
	try {
		exposer_ = std::make_unique<prometheus::Exposer>(options, &callbacks);
		collectable_ = std::make_shared<Collector>(fs);
		exposer_->RegisterCollectable(collectable_, path);
	} catch (const std::exception &e) {
		exposer_.reset();
		collectable_.reset();
		*ret_why = fmt::format("option \"metrics={}\": cannot serve there: {}", address_,
				       e.what());
		return -EADDRNOTAVAIL;
	}
	log::info("serving metrics at http://{}{}", address_, path);
	return 0;
}

void MetricsServer::stop()
{
	exposer_.reset(); /* joins civetweb's threads */
	collectable_.reset();
}

} /* namespace cgloopfs::daemon */
