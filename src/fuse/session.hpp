/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Session: the mount and its life, in three steps (as qemu's FUSE export
 * splits setup, shutdown and delete):
 *  - mount: create the libfuse session, mount, detach from the terminal
 *    unless -f;
 *  - serve: start the dispatcher, the hooks' services (the control server)
 *    and the session threads, tell systemd READY=1, and wait for
 *    SIGTERM/SIGINT/SIGHUP or the end of the connection (unmount, abort);
 *  - shut down, in this order:
 *    1. STOPPING=1 to systemd, first: it means "shutdown begins", and the
 *       unit shows so while the requests in flight are answered;
 *    2. the hooks' services (control socket closed and removed): no command
 *       runs on a mount being torn down;
 *    3. the dispatcher: every request in flight is answered, the workers
 *       are joined (after a grace time, stuck requests get EIO); the
 *       session threads read on meanwhile, so the callers answered can
 *       close their files (what comes now is answered at once);
 *    4. the session threads are told to stop (a flag of ours, not
 *       fuse_session_exit(): libfuse drops a request it reads after that),
 *       woken and joined;
 *    5. the unmount (a dead mount left by an aborted connection is taken
 *       away); only now, because the unmount closes /dev/fuse, through
 *       which the answers of step 3 go. When requests were stuck, their
 *       threads (or worker processes) still hold the connection: the mount
 *       is detached, and the last closes answered for one more grace time;
 *    6. the session is destroyed. When requests were stuck, their threads
 *       still hold it: the process ends (_exit) without this step.
 * Thread-bound: run_session() on the main thread.
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
