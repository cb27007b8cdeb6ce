/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopfs: serve loop-style images as files, each request served by a
 * worker of the caller's cgroup.
 *
 *   cgloopfs [-f] [-d] [-o OPTIONS] SOURCE MOUNTPOINT
 *
 * SOURCE is an image file, a directory of images or a TOML manifest. All of
 * it is validated, and every backing file opened, before anything is
 * mounted: bad input leaves nothing behind. Also run by mount(8) as the
 * helper of type fuse.cgloopfs (through mount.fuse3).
 *
 * Caveats: a request is served by the worker of its caller's cgroup only
 * when it carries the caller's pid. With cache=direct (the default) and the
 * writeback cache kept off, reads, writes, fsync and fallocate do. Those
 * the kernel sends without a caller (pid 0: writeback of MAP_SHARED pages;
 * also a caller in another pid namespace) or whose caller has no cgroup of
 * its own (the root cgroup, or it could not be resolved) go to the worker
 * of the cgroup that opened the file (fuse/ops.cpp), and to the root queue
 * only when the opener had none either. RELEASE, also pid 0, does no I/O:
 * it is answered at once. dispatch=single serves everything from one queue.
 */
#include <config.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include <sys/prctl.h>
#include <unistd.h>

#include "common/log.hpp"
#include "config/mount_options.hpp"
#include "config/source.hpp"
#include "control/protocol.hpp"
#include "control/server.hpp"
#include "daemon/control_commands.hpp"
#include "daemon/lock_notice.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/mount_point.hpp"
#include "fuse/charge.hpp"
#include "fuse/session.hpp"
#include "image/image_table.hpp"

using namespace cgloopfs;

namespace {

/* The options, or the exit code when there is nothing more to do (help, version, bad usage). */
std::optional<int> parse_options(int argc, char **argv, config::MountOptions *ret_opts)
{
	try {
		*ret_opts = config::parse_command_line(argc, argv);
	} catch (const config::UsageError &e) {
		log::error("{}", e.what());
		std::fputs("Try 'cgloopfs --help' for more information.\n", stderr);
		return 2;
	}
	if (ret_opts->show_help) {
		std::fputs(config::help_text("cgloopfs").c_str(), stdout);
		return EXIT_SUCCESS;
	}
	if (ret_opts->show_version) {
		std::printf("cgloopfs %s\n", CGLOOPFS_VERSION);
		return EXIT_SUCCESS;
	}
	return std::nullopt;
}

/* Every image of SOURCE validated and its backing file opened; false (logged) on the first bad one. */
bool load_images(const config::MountOptions &opts, image::ImageTable &table)
{
	try {
		auto specs = config::load_source(opts.source);
		config::check_unique_names(specs);
		for (const auto &spec : specs) {
			auto img = image::BackingImage::open(spec, opts.read_only, opts.lock);
			image::add_image(table, img);
			daemon::note_lock_state(*img);
		}
	} catch (const config::ConfigError &e) {
		log::error("{}", e.what());
		return false;
	} catch (const std::exception &e) {
		log::error("{}", e.what());
		return false;
	}
	return true;
}

/* Bind the control socket, then mount and serve with it; the exit code. */
int serve(const config::MountOptions &opts, image::ImageTable &table)
{
	/* The control socket is bound before mounting: a conflict leaves nothing mounted. */
	std::string socket_path = opts.control.empty()
					  ? control::default_socket_path(CGLOOPFS_RUNSTATEDIR,
									 opts.mountpoint, getuid())
					  : opts.control;
	fuse::Filesystem *serving = nullptr;
	control::ControlServer server(
		socket_path, getuid(),
		[&serving](const control::Request &r, const control::Peer &p) {
			return daemon::handle_control(r, p, *serving);
		});
	std::string why;
	if (server.bind_socket(&why) < 0) {
		log::error("{}", why);
		return EXIT_FAILURE;
	}
	/* The metrics address too: a port in use is refused before mounting. */
	daemon::MetricsServer metrics(opts.metrics);
	if (metrics.enabled() && metrics.check(&why) < 0) {
		log::error("{}", why);
		return EXIT_FAILURE;
	}

	fuse::SessionHooks hooks;
	hooks.on_ready = [&](fuse::Filesystem &fs) {
		serving = &fs;
		fs.control_path = socket_path;
		std::string err;
		if (server.start(&err) < 0 || metrics.start(fs, &err) < 0) {
			log::error("{}", err);
			return false;
		}
		return true;
	};
	hooks.on_stop = [&] {
		metrics.stop();
		server.stop();
	};
	return fuse::run_session(opts, table, hooks);
}

} /* namespace */

int main(int argc, char **argv)
{
	/* The maker of charged workers' host processes (fuse/charge.hpp), started by the daemon. */
	if (fuse::is_charge_maker(argc, argv))
		fuse::charge_maker_main(argc == 3 ? argv[2] : nullptr);

	log::init("cgloopfs");
	config::MountOptions opts;
	if (auto done = parse_options(argc, argv, &opts))
		return *done;
	if (opts.debug)
		log::set_max_level(log::Level::debug);

	/*
	 * Memory reclaim must not wait on I/O that needs this daemon (its files
	 * may back a loop device or swap): PF_MEMALLOC_NOIO|PF_LOCAL_THROTTLE,
	 * inherited by every thread made from here on. Needs CAP_SYS_RESOURCE.
	 */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
		log::debug("prctl(PR_SET_IO_FLUSHER): {}, running without it",
			   std::strerror(errno));

	/*
	 * The mount point first: a dead mount of a killed daemon is cleared, a
	 * live one refused, before any image is opened (and locked), so that a
	 * second daemon on a served mount point hears about the mount point,
	 * not about the first daemon's image locks.
	 */
	std::string why;
	auto real = daemon::prepare_mount_point(opts.mountpoint, &why);
	if (!real) {
		log::error("{}", why);
		return EXIT_FAILURE;
	}
	opts.mountpoint = *real;

	image::ImageTable table;
	if (!load_images(opts, table))
		return EXIT_FAILURE;
	return serve(opts, table);
}
