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
 * Caveats: requests the kernel sends without a caller (pid 0: RELEASE,
 * writeback of shared mappings) use the root queue; a caller in another pid
 * namespace is seen as pid 0 too.
 */
#include <config.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <sys/prctl.h>
#include <unistd.h>

#include "common/log.hpp"
#include "config/mount_options.hpp"
#include "config/source.hpp"
#include "control/protocol.hpp"
#include "control/server.hpp"
#include "daemon/control_commands.hpp"
#include "daemon/lock_notice.hpp"
#include "daemon/mount_point.hpp"
#include "fuse/session.hpp"
#include "image/image_table.hpp"

using namespace cgloopfs;

int main(int argc, char **argv)
{
	log::init("cgloopfs");
	config::MountOptions opts;
	try {
		opts = config::parse_command_line(argc, argv);
	} catch (const config::UsageError &e) {
		log::error("{}", e.what());
		std::fputs("Try 'cgloopfs --help' for more information.\n", stderr);
		return 2;
	}
	if (opts.show_help) {
		std::fputs(config::help_text("cgloopfs").c_str(), stdout);
		return EXIT_SUCCESS;
	}
	if (opts.show_version) {
		std::printf("cgloopfs %s\n", CGLOOPFS_VERSION);
		return EXIT_SUCCESS;
	}
	if (opts.debug)
		log::set_max_level(log::Level::debug);

	/*
	 * Memory reclaim must not wait on I/O that needs this daemon (its files
	 * may back a loop device or swap): PF_MEMALLOC_NOIO|PF_LOCAL_THROTTLE,
	 * inherited by every thread made from here on. Needs CAP_SYS_RESOURCE.
	 */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
		log::debug("prctl(PR_SET_IO_FLUSHER): {}, running without it", std::strerror(errno));

	image::ImageTable table;
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
		return EXIT_FAILURE;
	} catch (const std::exception &e) {
		log::error("{}", e.what());
		return EXIT_FAILURE;
	}

	/* A dead mount of a killed daemon is cleared; a live one refused. */
	std::string why;
	auto real = daemon::prepare_mount_point(opts.mountpoint, &why);
	if (!real) {
		log::error("{}", why);
		return EXIT_FAILURE;
	}
	opts.mountpoint = *real;
	/* The control socket is bound before mounting: a conflict leaves nothing mounted. */
	std::string socket_path = opts.control.empty()
					  ? control::default_socket_path(CGLOOPFS_RUNSTATEDIR,
									 opts.mountpoint, getuid())
					  : opts.control;
	fuse::Filesystem *serving = nullptr;
	control::ControlServer server(socket_path, getuid(),
				      [&serving](const control::Request &r, const control::Peer &p) {
					      return daemon::handle_control(r, p, *serving);
				      });
	if (server.bind_socket(&why) < 0) {
		log::error("{}", why);
		return EXIT_FAILURE;
	}

	fuse::SessionHooks hooks;
	hooks.on_ready = [&](fuse::Filesystem &fs) {
		serving = &fs;
		fs.control_path = socket_path;
		std::string err;
		if (server.start(&err) < 0) {
			log::error("{}", err);
			return false;
		}
		return true;
	};
	hooks.on_stop = [&] { server.stop(); };
	return fuse::run_session(opts, table, hooks);
}
