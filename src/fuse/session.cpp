/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "session.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/core.h>
#include <systemd/sd-daemon.h>

#include "cgroup/resolver.hpp"
#include "common/log.hpp"
#include "common/mountinfo.hpp"
#include "common/sched.hpp"
#include "common/unique_fd.hpp"
#include "dispatch/dispatcher.hpp"
#include "ops.hpp"

namespace cgloopfs::fuse {

namespace {

constexpr unsigned session_threads = 4;
constexpr int64_t shutdown_grace_ns = 5LL * 1000000000;
constexpr int wake_signal = SIGUSR1;

void on_wake_signal(int) {}

/* libfuse splits -o on commas and undoes backslash escapes. */
std::string escape_opt(const std::string &s)
{
	std::string out;
	for (char c : s) {
		if (c == ',' || c == '\\')
			out += '\\';
		out += c;
	}
	return out;
}

struct SessionThreads {
	fuse_session *se = nullptr;
	PayloadPool *payloads = nullptr;
	int ended_fd = -1; /* eventfd: a session thread ended */
	std::atomic<unsigned> running{0};
	std::atomic<bool> failed{false};
	std::vector<pthread_t> ids;
	std::vector<std::thread> threads;

	void loop()
	{
		pthread_setname_np(pthread_self(), "cgl-fuse");
		request_short_slice();
		sigset_t wake;
		sigemptyset(&wake);
		sigaddset(&wake, wake_signal);
		pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);

		/*
		 * Requests are read into a PayloadPool buffer; a write callback may
		 * keep it (with its payload) and leave a fresh one in
		 * current_read_buffer.
		 */
		current_read_buffer = payloads->get_for_reading();
		if (!current_read_buffer) {
			log::error("reading /dev/fuse: {}", std::strerror(ENOMEM));
			failed = true;
			fuse_session_exit(se);
		}
		struct fuse_buf buf {};
		while (current_read_buffer && !fuse_session_exited(se)) {
			buf.mem = PayloadPool::read_area(current_read_buffer);
			int res = fuse_session_receive_buf(se, &buf);
			if (res == -EINTR || res == -EAGAIN)
				continue;
			if (res <= 0) {
				if (res < 0) {
					/* ECONNABORTED: fusectl abort or a kernel timeout; the shutdown says so. */
					if (res != -ECONNABORTED)
						log::error("reading /dev/fuse: {}", std::strerror(-res));
					failed = true;
					fuse_session_exit(se);
				}
				break;
			}
			fuse_session_process_buf(se, &buf);
		}
		payloads->put(current_read_buffer);
		current_read_buffer = nullptr;
		sigprocmask(SIG_BLOCK, &wake, nullptr);
		running--;
		uint64_t one = 1;
		(void)!::write(ended_fd, &one, sizeof(one));
	}

	bool start(unsigned n)
	{
		for (unsigned i = 0; i < n; i++) {
			try {
				running++;
				threads.emplace_back([this] { loop(); });
				ids.push_back(threads.back().native_handle());
			} catch (const std::system_error &e) {
				running--;
				log::error("cannot start a session thread: {}", e.what());
				return false;
			}
		}
		return true;
	}

	/* Wake threads blocked in read(2) until every one has seen the exit flag. */
	void stop()
	{
		fuse_session_exit(se);
		while (running.load() > 0) {
			for (size_t i = 0; i < threads.size(); i++)
				(void)pthread_kill(ids[i], wake_signal);
			struct timespec ts {0, 20 * 1000000};
			nanosleep(&ts, nullptr);
		}
		for (auto &t : threads)
			if (t.joinable())
				t.join();
	}
};

void notify(const std::string &state)
{
	(void)sd_notify(0, state.c_str());
}

/* How often STATUS= is brought up to date while systemd listens. */
constexpr int status_interval_ms = 3000;

std::string plural(size_t n, std::string_view one, std::string_view many)
{
	return fmt::format("{} {}", n, n == 1 ? one : many);
}

/* systemctl status shows this: the images served and the live cgroup workers. */
std::string status_line(const image::ImageTable &table, const dispatch::Dispatcher &dispatcher,
			const std::string &mountpoint)
{
	size_t live = 0, busy = 0;
	for (const auto &w : dispatcher.workers()) {
		if (w.root)
			continue;
		live++;
		if (w.state == dispatch::WorkerState::active)
			busy++;
	}
	return fmt::format("STATUS=Serving {} on {}; {} live, {} busy",
			   plural(table.count(), "image", "images"), mountpoint,
			   plural(live, "cgroup worker", "cgroup workers"), busy);
}

/* A sysctl of the kernel's FUSE request timeouts, in seconds (0: none or unknown). */
unsigned kernel_fuse_timeout(const char *name)
{
	std::string path = std::string("/proc/sys/fs/fuse/") + name;
	FILE *f = std::fopen(path.c_str(), "re");
	if (!f)
		return 0;
	unsigned v = 0;
	if (std::fscanf(f, "%u", &v) != 1)
		v = 0;
	std::fclose(f);
	return v;
}

/*
 * Our request timeout: the option, but at most half the kernel's own (the
 * kernel aborts the whole connection when a request outlives that).
 */
int64_t request_timeout_s(unsigned wanted)
{
	unsigned kernel = kernel_fuse_timeout("default_request_timeout");
	unsigned kmax = kernel_fuse_timeout("max_request_timeout");
	if (kmax && (!kernel || kmax < kernel))
		kernel = kmax;
	if (kernel && wanted > kernel / 2) {
		unsigned lowered = std::max(1u, kernel / 2);
		log::info("request_timeout lowered from {} to {} s: the kernel's FUSE request "
			  "timeout is {} s", wanted, lowered, kernel);
		return lowered;
	}
	return wanted;
}

} /* namespace */

int run_session(const config::MountOptions &opts, image::ImageTable &table, SessionHooks hooks)
{
	/* Every thread starts with signals blocked; the main thread takes them by signalfd. */
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	sigdelset(&all, SIGTRAP);
	pthread_sigmask(SIG_SETMASK, &all, nullptr);
	struct sigaction sa {};
	sa.sa_handler = on_wake_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: read(2) on /dev/fuse must return EINTR */
	sigaction(wake_signal, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);

	struct stat mst;
	if (stat(opts.mountpoint.c_str(), &mst) < 0) {
		log::error("mount point \"{}\": {}", opts.mountpoint, std::strerror(errno));
		return EXIT_FAILURE;
	}
	if (!S_ISDIR(mst.st_mode)) {
		log::error("mount point \"{}\": not a directory", opts.mountpoint);
		return EXIT_FAILURE;
	}

	/* Mount options for libfuse: ours were taken out by the parser. */
	std::string fuse_opts =
		"fsname=" + escape_opt(opts.source) + ",subtype=cgloopfs,nosuid,nodev";
	/* Other users are let in only with the kernel checking modes and owners. */
	if (opts.allow_other)
		fuse_opts += ",allow_other,default_permissions";
	else if (opts.default_permissions)
		fuse_opts += ",default_permissions";
	if (opts.read_only)
		fuse_opts += ",ro";
	for (const auto &o : opts.fuse_options)
		fuse_opts += "," + escape_opt(o);
	std::vector<std::string> args_s = {"cgloopfs", "-o", fuse_opts};
	if (opts.debug)
		args_s.push_back("-d");
	std::vector<char *> argv;
	for (auto &s : args_s)
		argv.push_back(s.data());
	argv.push_back(nullptr);
	fuse_args args = FUSE_ARGS_INIT(static_cast<int>(args_s.size()), argv.data());

	cgroup::Resolver resolver;
	if (opts.dispatch == config::DispatchMode::cgroup && resolver.method() == cgroup::Method::none)
		log::warning("no cgroup v2 hierarchy found: every request uses the root queue");

	dispatch::Config dc;
	dc.mode = opts.dispatch == config::DispatchMode::single ? dispatch::Mode::single
								 : dispatch::Mode::cgroup;
	dc.idle_timeout_ns = static_cast<int64_t>(opts.idle_timeout) * 1000000000;
	dc.max_workers = opts.max_workers;
	dc.worker_depth = opts.worker_depth;
	dc.request_timeout_ns = request_timeout_s(opts.request_timeout) * 1000000000LL;
	dispatch::SteadyClock clock;
	dispatch::Dispatcher dispatcher(dc, clock, [&resolver](const dispatch::Job &job) {
		return resolver.path(job.caller_pid);
	});
	/* Once per episode (the reaper notices), never per request. */
	dispatcher.on_spawn_trouble([](const dispatch::SpawnTrouble &t) {
		if (t.failing)
			log::warning("cannot start a worker thread (cgroup \"{}\": {}): cgroups "
				     "without a worker are served by the root queue until threads "
				     "can be started again",
				     t.path, std::strerror(t.error));
		else
			log::notice("worker threads start again, after {} failed attempt(s)",
				    t.failures);
	});

	Filesystem fs(opts, table, dispatcher, resolver);
	fs.root_uid = getuid();
	fs.root_gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs.start_time);

	fuse_lowlevel_ops ops = make_ops();
	fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
	fuse_opt_free_args(&args);
	if (!se) {
		log::error("cannot create the FUSE session (bad mount options?)");
		return EXIT_FAILURE;
	}
	if (fuse_session_mount(se, opts.mountpoint.c_str()) != 0) {
		log::error("cannot mount on \"{}\"", opts.mountpoint);
		fuse_session_destroy(se);
		return EXIT_FAILURE;
	}
	fs.session = se;
	for (const auto &m : parse_mountinfo(read_mountinfo()))
		if (m.mountpoint == opts.mountpoint && m.fstype == "fuse.cgloopfs")
			fs.mount_dev = makedev(m.major, m.minor);
	if (fuse_daemonize(opts.foreground ? 1 : 0) != 0) {
		fuse_session_unmount(se);
		fuse_session_destroy(se);
		return EXIT_FAILURE;
	}
	if (!opts.foreground)
		log::use_syslog();

	int exit_code = EXIT_SUCCESS;
	UniqueFd ended(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGHUP);
	UniqueFd sigfd(signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK));
	SessionThreads threads;
	threads.se = se;
	threads.payloads = &fs.payloads;
	threads.ended_fd = ended.get();

	bool started = ended && sigfd && dispatcher.start();
	if (!started)
		log::error("cannot start the dispatcher: {}", std::strerror(errno));
	if (started && hooks.on_ready && !hooks.on_ready(fs))
		started = false;
	if (started && !threads.start(session_threads))
		started = false;

	if (started) {
		log::info("serving {} image(s) from \"{}\" on \"{}\" (dispatch={})", table.count(),
			  opts.source, opts.mountpoint,
			  opts.dispatch == config::DispatchMode::cgroup ? "cgroup" : "single");
		/* No periodic wake-ups unless systemd listens (sd_notify is a no-op then). */
		const bool notifying = std::getenv("NOTIFY_SOCKET") != nullptr;
		std::string status = status_line(table, dispatcher, opts.mountpoint);
		notify("READY=1\n" + status);
		struct pollfd pfds[2] = {{sigfd.get(), POLLIN, 0}, {ended.get(), POLLIN, 0}};
		for (;;) {
			int n = poll(pfds, 2, notifying ? status_interval_ms : -1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0) { /* the status interval passed */
				std::string now = status_line(table, dispatcher, opts.mountpoint);
				if (now != status)
					notify(now);
				status = std::move(now);
				continue;
			}
			if (n < 0) {
				log::error("poll: {}", std::strerror(errno));
				break;
			}
			if (pfds[0].revents & POLLIN) {
				struct signalfd_siginfo si;
				if (::read(sigfd.get(), &si, sizeof(si)) == sizeof(si)) {
					log::info("{} received, unmounting \"{}\"",
						  sigabbrev_np(static_cast<int>(si.ssi_signo)),
						  opts.mountpoint);
					break;
				}
			}
			if (pfds[1].revents & POLLIN)
				break; /* unmounted (or /dev/fuse failed) */
		}
	} else {
		exit_code = EXIT_FAILURE;
	}

	notify("STOPPING=1\nSTATUS=Stopping: answering the requests in flight, unmounting");
	if (hooks.on_stop)
		hooks.on_stop();
	threads.stop();
	if (threads.failed)
		exit_code = EXIT_FAILURE;
	bool clean = dispatcher.shutdown(shutdown_grace_ns);
	/*
	 * The connection ended but the mount is still there: it was aborted
	 * (fusectl abort, a kernel request timeout), not unmounted. libfuse leaves
	 * such a dead mount in place; take it away and say so.
	 */
	bool aborted = false;
	if (fs.mount_dev != 0) {
		struct pollfd pfd = {fuse_session_fd(se), 0, 0};
		auto entries = parse_mountinfo(read_mountinfo());
		aborted = poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR) &&
			  has_device(entries, major(fs.mount_dev), minor(fs.mount_dev));
	}
	fuse_session_unmount(se);
	if (aborted) {
		exit_code = EXIT_FAILURE;
		auto entries = parse_mountinfo(read_mountinfo());
		const MountEntry *top = top_mount_at(entries, opts.mountpoint);
		int r = top && makedev(top->major, top->minor) == fs.mount_dev
				? unmount_lazily(opts.mountpoint)
				: -EBUSY;
		if (r < 0)
			log::error("the FUSE connection of \"{}\" was aborted; its dead mount stays "
				   "(unmount it with: umount -l {}): {}",
				   opts.mountpoint, opts.mountpoint, std::strerror(-r));
		else
			log::error("the FUSE connection of \"{}\" was aborted (fusectl abort or a "
				   "kernel request timeout); unmounted it",
				   opts.mountpoint);
	}
	if (!clean) {
		log::warning("requests stuck in backing I/O were answered with EIO after {} s",
			     shutdown_grace_ns / 1000000000);
		/* Their threads still run and hold the session: end without tearing down. */
		_exit(exit_code);
	}
	fuse_session_destroy(se);
	fs.close_all_files();
	return exit_code;
}

} /* namespace cgloopfs::fuse */
