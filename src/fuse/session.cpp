/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "session.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <fmt/core.h>

#include "cgroup/names.hpp"
#include "cgroup/resolver.hpp"
#include "charge.hpp"
#include "common/escape.hpp"
#include "common/log.hpp"
#include "common/mountinfo.hpp"
#include "common/sched.hpp"
#include "common/thread.hpp"
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

/*
 * The threads that read /dev/fuse and run the callbacks. Thread-bound:
 * start() and stop() from the main thread.
 *
 * They are stopped with a flag of ours (`ending`), not fuse_session_exit():
 * libfuse drops a request it has read once the session is marked ended, and
 * nobody would answer it (a caller's close, answered EIO a moment before,
 * hung until the connection ended). The session is marked ended only once
 * no thread reads any more.
 */
struct SessionThreads {
	fuse_session *se = nullptr;
	PayloadPool *payloads = nullptr;
	std::atomic<bool> *ending = nullptr; /* Filesystem::reading_ends */
	int ended_fd = -1;		     /* eventfd: a session thread ended */
	std::atomic<unsigned> running{0};
	std::atomic<bool> failed{false};
	std::vector<pthread_t> ids;
	std::vector<std::jthread> threads;

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
		}
		struct fuse_buf buf = {};
		while (current_read_buffer && !ending->load() && !fuse_session_exited(se)) {
			buf.mem = PayloadPool::read_area(current_read_buffer);
			int res = fuse_session_receive_buf(se, &buf);
			if (res == -EINTR || res == -EAGAIN)
				continue;
			if (res <= 0) {
				if (res < 0) {
					/* ECONNABORTED: fusectl abort or a kernel timeout; the shutdown says so. */
					if (res != -ECONNABORTED)
						log::error("reading /dev/fuse: {}",
							   std::strerror(-res));
					failed = true;
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

	/* Start n threads (with every signal blocked; each unblocks wake_signal). */
	bool start(unsigned n)
	{
		for (unsigned i = 0; i < n; i++) {
			running++;
			std::jthread &t = threads.emplace_back();
			if (int err = start_thread(t, [this] { loop(); })) {
				threads.pop_back();
				running--;
				log::error("cannot start a session thread: {}", std::strerror(err));
				return false;
			}
			ids.push_back(t.native_handle());
		}
		return true;
	}

	/*
	 * Wake threads blocked in read(2) until every one has seen the flag. A
	 * thread whose read returns a request rather than EINTR serves it first.
	 */
	void stop()
	{
		ending->store(true);
		while (running.load() > 0) {
			for (size_t i = 0; i < threads.size(); i++)
				(void)pthread_kill(ids[i], wake_signal);
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, nullptr);
		}
		for (auto &t : threads)
			if (t.joinable())
				t.join();
		fuse_session_exit(se); /* no thread reads: now libfuse may know */
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

/*
 * After an unclean shutdown, with the mount detached: answer what still
 * comes on `fd` until the connection ends (the mount's last file closed) or
 * timeout_ns passes. A close (FLUSH), and the release of a file, succeed;
 * anything else fails EIO. No libfuse here: its session is stopped, and it
 * would report the connection's end (ECONNABORTED) as an error.
 */
void answer_last_closes(int fd, int64_t timeout_ns)
{
	std::vector<char> buf(PayloadPool::max_payload + 64 * 1024);
	int64_t until = monotonic_ns() + timeout_ns;
	while (monotonic_ns() < until) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (p.revents & (POLLERR | POLLHUP))
			return;
		ssize_t n = read(fd, buf.data(), buf.size());
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			return; /* ENODEV, ECONNABORTED: the connection ended */
		}
		if (static_cast<size_t>(n) < sizeof(fuse_in_header))
			continue;
		fuse_in_header in;
		std::memcpy(&in, buf.data(), sizeof(in));
		if (in.opcode == FUSE_FORGET || in.opcode == FUSE_BATCH_FORGET ||
		    in.opcode == FUSE_INTERRUPT)
			continue; /* no answer wanted */
		bool ok = in.opcode == FUSE_FLUSH || in.opcode == FUSE_RELEASE ||
			  in.opcode == FUSE_RELEASEDIR;
		fuse_out_header out = {};
		out.len = sizeof(out);
		out.error = ok ? 0 : -EIO;
		out.unique = in.unique;
		(void)!write(fd, &out, sizeof(out));
	}
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
			  "timeout is {} s",
			  wanted, lowered, kernel);
		return lowered;
	}
	return wanted;
}

/*
 * Every thread starts with signals blocked; the main thread takes SIGTERM,
 * SIGINT and SIGHUP by signalfd. Faults and abort stay deliverable.
 */
void block_signals()
{
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	sigdelset(&all, SIGTRAP);
	pthread_sigmask(SIG_SETMASK, &all, nullptr);
	struct sigaction sa = {};
	sa.sa_handler = on_wake_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: read(2) on /dev/fuse must return EINTR */
	sigaction(wake_signal, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);
}

bool check_mount_point(const std::string &mountpoint)
{
	struct stat mst;
	if (stat(mountpoint.c_str(), &mst) < 0) {
		log::error("mount point \"{}\": {}", mountpoint, std::strerror(errno));
		return false;
	}
	if (!S_ISDIR(mst.st_mode)) {
		log::error("mount point \"{}\": not a directory", mountpoint);
		return false;
	}
	return true;
}

/* libfuse's command line: its mount options (ours were taken out by the parser). */
std::vector<std::string> fuse_command_line(const config::MountOptions &opts)
{
	std::string fuse_opts =
		"fsname=" + escape_opt(opts.source) + ",subtype=cgloopfs,nosuid,nodev";
	/* Other users are let in only with the kernel checking modes and owners. */
	if (opts.allow_other)
		fuse_opts += ",allow_other,default_permissions";
	else if (opts.default_permissions)
		fuse_opts += ",default_permissions";
	if (opts.read_only)
		fuse_opts += ",ro";
	for (const auto &o : opts.fuse_options) {
		fuse_opts += ',';
		fuse_opts += escape_opt(o);
	}
	std::vector<std::string> args = {"cgloopfs", "-o", fuse_opts};
	if (opts.debug)
		args.push_back("-d");
	return args;
}

dispatch::Config dispatch_config(const config::MountOptions &opts)
{
	dispatch::Config dc;
	dc.mode = opts.dispatch == config::DispatchMode::single ? dispatch::Mode::single
								: dispatch::Mode::cgroup;
	dc.idle_timeout_ns = static_cast<int64_t>(opts.idle_timeout) * 1000000000;
	dc.max_workers = opts.max_workers;
	dc.worker_depth = opts.worker_depth;
	dc.request_timeout_ns = request_timeout_s(opts.request_timeout) * 1000000000LL;
	return dc;
}

/* Once per episode (the reaper notices), never per request. */
void log_spawn_trouble(const dispatch::SpawnTrouble &t)
{
	if (t.failing)
		log::warning(
			"cannot start a worker thread (cgroup \"{}\": {}) [unit {}, machine {}]: "
			"cgroups without a worker are served by the root queue until threads "
			"can be started again",
			escape_for_terminal(t.path), std::strerror(t.error),
			escape_for_terminal(t.unit), escape_for_terminal(t.machine));
	else
		log::notice("worker threads start again, after {} failed attempt(s)", t.failures);
}

/* st_dev of the files of our mount at `mountpoint` (0: not found). */
dev_t mount_device(const std::vector<MountEntry> &mounts, const std::string &mountpoint)
{
	dev_t dev = 0;
	for (const auto &m : mounts)
		if (m.mountpoint == mountpoint && m.fstype == "fuse.cgloopfs")
			dev = makedev(m.major, m.minor);
	return dev;
}

/*
 * The connection's fusectl directory (<fusectl>/N, N its kernel device
 * number), and its inode number, noted while the mount is surely ours: once it
 * is gone, N is free for the next FUSE mount, whose directory has another inode.
 */
struct ControlDir {
	std::string path;
	ino_t ino = 0;
};

ControlDir control_dir(const std::vector<MountEntry> &mounts, dev_t dev)
{
	for (const auto &m : mounts) {
		if (m.fstype != "fusectl")
			continue;
		auto path = fmt::format("{}/{}", m.mountpoint, (major(dev) << 20) | minor(dev));
		struct stat st;
		if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
			return {path, st.st_ino};
	}
	return {};
}

/*
 * End the connection as we go, where fusectl is mounted (systemd mounts it at
 * /sys/fs/fuse/connections). The kernel ends it at the last close of
 * /dev/fuse, but ours may not be the last: a worker process killed while a
 * thread of it waited in the backing store keeps its descriptors through that
 * thread until the store moves, and with them the connection, with no one to
 * read it; every request on a file still open would wait for that store.
 * Through the directory noted at mount only, and opened before its abort file:
 * were ours gone, its files would be gone with it.
 */
void end_connection(const ControlDir &dir)
{
	if (dir.path.empty())
		return;
	UniqueFd d(open(dir.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	struct stat st;
	if (!d || fstat(d.get(), &st) != 0 || st.st_ino != dir.ino)
		return; /* ended already */
	UniqueFd abort_file(openat(d.get(), "abort", O_WRONLY | O_CLOEXEC));
	if (abort_file && write(abort_file.get(), "1", 1) == 1)
		log::debug("ended the FUSE connection through {}", dir.path);
}

/*
 * One mount's life in three steps, as qemu's FUSE export splits setup,
 * shutdown and delete: mount(), serve(), shut_down(). Thread-bound: all on
 * the main thread, which holds the signals.
 */
class Session
{
public:
	Session(const config::MountOptions &opts, image::ImageTable &table, SessionHooks hooks);
	Session(const Session &) = delete;
	Session &operator=(const Session &) = delete;

	/* Create the libfuse session, mount, and leave the terminal unless -f. */
	bool mount();
	/* Start serving and serve until unmounted or signalled; the exit code so far. */
	int serve();
	/* Stop it all in the order session.hpp gives; the exit code (or _exit). */
	int shut_down(int exit_code);

private:
	bool start();
	void wait_for_end();
	dispatch::CgroupName cgroup_name(pid_t tid) const;
	bool took_signal();
	bool connection_aborted();
	void clear_aborted_mount();
	/* The host process of a new cgroup worker (charge=cgroup), or nullptr. */
	std::shared_ptr<dispatch::Host> make_host(const dispatch::Job &job);

	const config::MountOptions &opts_;
	image::ImageTable &table_;
	SessionHooks hooks_;
	cgroup::Resolver resolver_;
	dispatch::SteadyClock clock_;
	dispatch::Dispatcher dispatcher_;
	Filesystem fs_;
	fuse_session *se_ = nullptr;	   /* set by mount(), destroyed by shut_down() */
	UniqueFd ended_;		   /* eventfd: a session thread ended */
	UniqueFd sigfd_;		   /* signalfd: SIGTERM, SIGINT, SIGHUP */
	std::unique_ptr<HostMaker> hosts_; /* charge=cgroup's host processes; made when mounted */
	std::atomic<bool> charge_failing_{false}; /* hosts cannot be made: logged once */
	ControlDir control_;			  /* the connection's, where fusectl is mounted */
	SessionThreads threads_;
};

Session::Session(const config::MountOptions &opts, image::ImageTable &table, SessionHooks hooks)
	: opts_(opts), table_(table), hooks_(std::move(hooks)),
	  dispatcher_(dispatch_config(opts), clock_,
		      [this](const dispatch::Job &job) { return cgroup_name(job.caller_pid); }),
	  fs_(opts, table, dispatcher_, resolver_)
{
	if (opts.dispatch == config::DispatchMode::cgroup &&
	    resolver_.method() == cgroup::Method::none)
		log::warning("no cgroup v2 hierarchy found: every request uses the root queue");
	dispatcher_.on_spawn_trouble(log_spawn_trouble);
	dispatcher_.on_tick([this] { fs_.pool.recheck_signalled(); });
	if (opts.dispatch == config::DispatchMode::cgroup)
		dispatcher_.host_maker([this](const dispatch::Job &job) { return make_host(job); });
	fs_.root_uid = getuid();
	fs_.root_gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs_.start_time);
}

std::shared_ptr<dispatch::Host> Session::make_host(const dispatch::Job &job)
{
	if (fs_.charge.load() != config::ChargeMode::cgroup || job.caller_pid <= 0 || !hosts_)
		return nullptr;
	std::string error;
	auto host = hosts_->spawn(job.caller_pid, error);
	if (!host) {
		/* Once per episode: the first failure after a success (or ever). */
		if (!charge_failing_.exchange(true))
			log::warning(
				"cannot serve cgroup \"{}\" from a process in its cgroups ({}): "
				"its requests are served by the daemon, not charged to it "
				"(logged once until that works again)",
				resolver_.path(job.caller_pid), error);
		else
			log::debug("charge: cgroup \"{}\": {}", resolver_.path(job.caller_pid),
				   error);
		return nullptr;
	}
	if (charge_failing_.exchange(false))
		log::notice("cgroups are served from processes in them again");
	return host;
}

/* A new worker's cgroup: its path, and its unit and machine (libsystemd, else the path). */
dispatch::CgroupName Session::cgroup_name(pid_t tid) const
{
	std::string path = resolver_.path(tid);
	auto names = cgroup::names_of(tid, path);
	return dispatch::CgroupName(std::move(path), std::move(names.unit),
				    std::move(names.machine));
}

bool Session::mount()
{
	std::vector<std::string> args_s = fuse_command_line(opts_);
	std::vector<char *> argv;
	for (auto &s : args_s)
		argv.push_back(s.data());
	argv.push_back(nullptr);
	fuse_args args = FUSE_ARGS_INIT(static_cast<int>(args_s.size()), argv.data());
	fuse_lowlevel_ops ops = make_ops();
	fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), &fs_);
	fuse_opt_free_args(&args);
	if (!se) {
		log::error("cannot create the FUSE session (bad mount options?)");
		return false;
	}
	if (fuse_session_mount(se, opts_.mountpoint.c_str()) != 0) {
		log::error("cannot mount on \"{}\"", opts_.mountpoint);
		fuse_session_destroy(se);
		return false;
	}
	fs_.session = se;
	auto mounts = parse_mountinfo(read_mountinfo());
	fs_.mount_dev = mount_device(mounts, opts_.mountpoint);
	if (fs_.mount_dev != 0)
		control_ = control_dir(mounts, fs_.mount_dev);
	if (fuse_daemonize(opts_.foreground ? 1 : 0) != 0) {
		fuse_session_unmount(se);
		fuse_session_destroy(se);
		return false;
	}
	if (!opts_.foreground)
		log::use_syslog();
	se_ = se;
	/*
	 * With cache=direct a close steps a host out (op_flush), so an idle one
	 * may stay in its caller's cgroups for a while (charge.cpp: Stepper).
	 */
	if (opts_.dispatch == config::DispatchMode::cgroup)
		hosts_ = std::make_unique<HostMaker>(
			fuse_session_fd(se), fs_.payloads,
			opts_.cache == config::CacheMode::direct ? closes_idle_delay_ns : 0,
			control_.path, control_.ino,
			fs_.mount_dev != 0 ? (major(fs_.mount_dev) << 20) | minor(fs_.mount_dev)
					   : 0);
	return true;
}

int Session::serve()
{
	if (!start())
		return EXIT_FAILURE;
	log::info("serving {} image(s) from \"{}\" on \"{}\" (dispatch={})", table_.count(),
		  opts_.source, opts_.mountpoint,
		  opts_.dispatch == config::DispatchMode::cgroup ? "cgroup" : "single");
	wait_for_end();
	return EXIT_SUCCESS;
}

/* The dispatcher, then the hooks' services (control), then the session threads. */
bool Session::start()
{
	ended_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGHUP);
	sigfd_.reset(signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK));
	threads_.se = se_;
	threads_.payloads = &fs_.payloads;
	threads_.ending = &fs_.reading_ends;
	threads_.ended_fd = ended_.get();

	if (!ended_ || !sigfd_ || !dispatcher_.start()) {
		log::error("cannot start the dispatcher: {}", std::strerror(errno));
		return false;
	}
	if (hooks_.on_ready && !hooks_.on_ready(fs_))
		return false;
	return threads_.start(session_threads);
}

/*
 * Wait for a signal or the end of the connection (unmounted, or /dev/fuse
 * failed). Tells systemd READY=1, and keeps STATUS= up to date while it
 * listens (no periodic wake-ups otherwise: sd_notify is a no-op then).
 */
void Session::wait_for_end()
{
	const bool notifying = std::getenv("NOTIFY_SOCKET") != nullptr;
	std::string status = status_line(table_, dispatcher_, opts_.mountpoint);
	notify("READY=1\n" + status);
	struct pollfd pfds[2] = {{sigfd_.get(), POLLIN, 0}, {ended_.get(), POLLIN, 0}};
	for (;;) {
		int n = poll(pfds, 2, notifying ? status_interval_ms : -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0) { /* the status interval passed */
			std::string now = status_line(table_, dispatcher_, opts_.mountpoint);
			if (now != status)
				notify(now);
			status = std::move(now);
			continue;
		}
		if (n < 0) {
			log::error("poll: {}", std::strerror(errno));
			return;
		}
		if ((pfds[0].revents & POLLIN) && took_signal())
			return;
		if (pfds[1].revents & POLLIN)
			return;
	}
}

bool Session::took_signal()
{
	struct signalfd_siginfo si;
	if (::read(sigfd_.get(), &si, sizeof(si)) != sizeof(si))
		return false;
	log::info("{} received, unmounting \"{}\"", sigabbrev_np(static_cast<int>(si.ssi_signo)),
		  opts_.mountpoint);
	return true;
}

int Session::shut_down(int exit_code)
{
	notify("STOPPING=1\nSTATUS=Stopping: answering the requests in flight, unmounting");
	if (hooks_.on_stop)
		hooks_.on_stop();
	/*
	 * The session threads read on meanwhile. A caller answered EIO can
	 * then close its files and exit: a close waits for FLUSH's answer
	 * (asked for with charge=cgroup, fuse/ops.cpp). What comes now is
	 * served by the stopping dispatcher's root queue while it drains,
	 * then answered EIO; a flush is answered here.
	 */
	bool clean = dispatcher_.shutdown(shutdown_grace_ns);
	bool aborted = connection_aborted();
	if (!clean)
		log::warning("requests stuck in backing I/O were answered with EIO after {} s",
			     shutdown_grace_ns / 1000000000);
	threads_.stop();
	if (threads_.failed)
		exit_code = EXIT_FAILURE;
	if (!clean && !aborted) {
		/*
		 * Their threads (or worker processes) still run and hold the
		 * connection. The mount is detached, the device kept open
		 * (fuse_session_unmount() would close it): the last closes are
		 * answered for one more grace period (the connection ends with
		 * the last of them), then the daemon ends without tearing down.
		 */
		if (fs_.mount_dev != 0 && unmount_dead_mount(opts_.mountpoint, fs_.mount_dev) == 0)
			answer_last_closes(fuse_session_fd(se_), shutdown_grace_ns);
		else
			fuse_session_unmount(se_);
		end_connection(control_);
		_exit(exit_code);
	}
	fuse_session_unmount(se_);
	if (aborted) {
		exit_code = EXIT_FAILURE;
		clear_aborted_mount();
	}
	if (!clean) {
		end_connection(control_);
		_exit(exit_code); /* their threads still run and hold the session */
	}
	fuse_session_destroy(se_);
	se_ = nullptr;
	end_connection(control_); /* held still by a worker process killed while stuck? */
	fs_.close_all_files();
	return exit_code;
}

/*
 * The connection ended but the mount is still there: it was aborted
 * (fusectl abort, a kernel request timeout), not unmounted.
 */
bool Session::connection_aborted()
{
	if (fs_.mount_dev == 0)
		return false;
	struct pollfd pfd = {fuse_session_fd(se_), 0, 0};
	auto entries = parse_mountinfo(read_mountinfo());
	/*
	 * Ours, at our mount point: the device number of an unmounted FUSE
	 * file system is free for the next one mounted anywhere (another
	 * daemon's, a moment later), which is no sign of an abort.
	 */
	const MountEntry *top = top_mount_at(entries, opts_.mountpoint);
	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR) && top &&
	       makedev(top->major, top->minor) == fs_.mount_dev;
}

/* libfuse leaves the dead mount of an aborted connection in place: take it away and say so. */
void Session::clear_aborted_mount()
{
	int r = unmount_dead_mount(opts_.mountpoint, fs_.mount_dev);
	if (r < 0)
		log::error("the FUSE connection of \"{}\" was aborted; its dead mount stays "
			   "(unmount it with: umount -l {}): {}",
			   opts_.mountpoint, opts_.mountpoint, std::strerror(-r));
	else
		log::error("the FUSE connection of \"{}\" was aborted (fusectl abort or a "
			   "kernel request timeout); unmounted it",
			   opts_.mountpoint);
}

} /* namespace */

int run_session(const config::MountOptions &opts, image::ImageTable &table, SessionHooks hooks)
{
	block_signals();
	if (!check_mount_point(opts.mountpoint))
		return EXIT_FAILURE;
	Session session(opts, table, std::move(hooks));
	if (!session.mount())
		return EXIT_FAILURE;
	return session.shut_down(session.serve());
}

} /* namespace cgloopfs::fuse */
