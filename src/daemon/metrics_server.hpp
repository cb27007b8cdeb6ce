/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * MetricsServer: the Prometheus endpoint of -o metrics=ADDRESS:PORT, on
 * prometheus-cpp's Exposer (civetweb). A scrape builds the families from
 * the dispatcher's statistics at that moment (metrics/exposition.hpp): the
 * data path does no work for it. Only GET /metrics is served; any other
 * path is 404, any other method 405; there is no document root.
 *
 * check() runs before the mount (no thread: safe before fuse_daemonize's
 * fork), so a bad address or a port in use stops the daemon before it
 * mounts; start() then serves on civetweb's threads, stop() ends them.
 * Main program code (logs). start()/stop() from one thread; the scrapes
 * run on civetweb's threads and read only thread-safe state.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DAEMON
#error "daemon/ is not a layer below this one (see src/meson.build)"
#endif

#include <memory>
#include <string>

#include "fuse/ops.hpp"

namespace prometheus {
class Collectable;
class Exposer;
} /* namespace prometheus */

namespace cgloopfs::daemon {

class MetricsServer
{
public:
	/* `address`: the option's value ("127.0.0.1:9477", "[::1]:9477"); "" is off. */
	explicit MetricsServer(std::string address);
	~MetricsServer();
	MetricsServer(const MetricsServer &) = delete;
	MetricsServer &operator=(const MetricsServer &) = delete;

	bool enabled() const { return !address_.empty(); }
	/*
	 * Can the address be served (bound now, and by the HTTP server)? 0, or
	 * -errno with *ret_why set to one line naming the option.
	 */
	int check(std::string *ret_why) const;
	/* Serve the figures of `fs`; 0, or -errno with *ret_why set. */
	int start(fuse::Filesystem &fs, std::string *ret_why);
	/* Stop serving (waits for a scrape in progress). */
	void stop();

private:
	std::string address_;
	std::shared_ptr<prometheus::Collectable> collectable_;
	std::unique_ptr<prometheus::Exposer> exposer_;
};

} /* namespace cgloopfs::daemon */
