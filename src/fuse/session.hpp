/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Session: the mount and its life. Creates the libfuse session, mounts,
 * detaches from the terminal unless -f, runs the session threads, the
 * dispatcher and (later) the control server, tells systemd, and shuts all of
 * it down in order on SIGTERM/SIGINT/SIGHUP or unmount:
 * session threads, then the dispatcher (every request answered), then the
 * unmount, then STOPPING=1. Thread-bound: run() on the main thread.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_FUSE
#error "fuse/ is not a layer below this one (see src/meson.build)"
#endif

#include <functional>
#include <memory>

#include "config/mount_options.hpp"
#include "image/image_table.hpp"

namespace cgloopfs::fuse {

struct Filesystem;

struct SessionHooks {
	/* Start services that need the mount up (control server); false aborts. */
	std::function<bool(Filesystem &)> on_ready;
	/* Stop them (first thing at shutdown). */
	std::function<void()> on_stop;
};

/* Mount and serve until unmounted or signalled; returns the process exit code. */
int run_session(const config::MountOptions &opts, image::ImageTable &table,
		SessionHooks hooks = {});

} /* namespace cgloopfs::fuse */
