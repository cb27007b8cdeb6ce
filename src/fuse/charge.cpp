/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "charge.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fuse.h>
#include <linux/futex.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>

#include "cgroup/placement.hpp"
#include "common/clock.hpp"
#include "common/errno_util.hpp"
#include "common/sched.hpp"
#include "request.hpp"

extern char **environ;

namespace cgloopfs::fuse {

/* One slot of the shared file: written by one daemon thread and one host thread. */
struct SlotControl {
	std::atomic<uint32_t> posted;  /* bumped by the daemon: a request is there */
	std::atomic<uint32_t> done;    /* set to `posted` by the host: it is done */
	std::atomic<uint32_t> claim;   /* the answer word (claim_*) */
	std::atomic<uint32_t> ready;   /* 0: no thread yet, 1: a thread serves it, 2: none can */
	std::atomic<uint32_t> taken;   /* set to `posted` by the host when it starts on it */
	std::atomic<uint32_t> waiting; /* 1: a daemon thread waits on `done` (wake it) */
	/* The host thread started for this slot: the futex word it sleeps on, */
	std::atomic<uint32_t> nap;
	/* and 0 while it is awake, else when it went to sleep (HostHeader::naps). */
	std::atomic<uint64_t> asleep;
	/* The request. */
	uint32_t op;
	int32_t mode;
	uint32_t datasync;
	int32_t lost_write_error;
	uint64_t serial, unique, pos, len, size, backing_size;
	/* Where a write's payload is: 0 in the slot's buffer, else 1 + its offset in the arena. */
	uint64_t payload_offset;
	/* The result. */
	int64_t value;
	/* Written by the host before it answers, taken once by the daemon (atomic_ref). */
	uint32_t replied;
	int32_t reply_err;
	int32_t write_error; /* -errno a write of the replica kept for the next sync (0: none) */
	int64_t finished_ns; /* CLOCK_MONOTONIC when the host answered */
};

namespace {

constexpr size_t page = 4096;
/*
 * The descriptors of the host maker and of a host (a worker process): the
 * socket to the daemon, and in a host also /dev/fuse and the shared file.
 */
constexpr int daemon_sock = 3, host_fuse_fd = 4, host_shm_fd = 5;
/* In the maker only: the connection's fusectl directory (HostMaker's connection_dir). */
constexpr int maker_connection_fd = 4;
constexpr long fusectl_magic = 0x65735543; /* FUSE_CTL_SUPER_MAGIC */
/* HostHeader::state: how a host's start went, and whether it is leaving (leave()). */
constexpr uint32_t host_starting = 0, host_serving = 1, host_failed = 2, host_leaving = 3;
/* The header page: how the host's start went. */
struct HostHeader {
	std::atomic<uint32_t> state; /* host_starting, _serving, _failed, _leaving */
	int32_t error;		     /* errno of the failure */
	int32_t failed_dir;	     /* index of the v1 directory it could not join, or -1 */
	/*
	 * The host's queue: any of its threads serves any slot. The daemon
	 * sets a slot's bit when it posts there, a thread clears it when it
	 * takes the request. A post wakes a sleeping thread unless a thread
	 * looking for one (before it sleeps) will take it, or the threads
	 * already serving will as soon as they are done (they drain the
	 * queue before they sleep) and are quick about it, or a thread that
	 * has answered its request and is about to look: a busy cgroup's
	 * requests then cost no futex wake, as a daemon worker thread that
	 * finds its queue full costs none, and a cgroup that reads one
	 * request at a time has them served by one thread, on one CPU.
	 */
	std::atomic<uint64_t> pending;
	std::atomic<uint64_t> threads;	    /* the slots whose thread has started */
	std::atomic<uint64_t> naps;	    /* times a thread went to sleep */
	std::atomic<uint32_t> sleeping;	    /* threads asleep, or about to be */
	std::atomic<uint32_t> busy;	    /* threads serving a request */
	std::atomic<uint32_t> looking;	    /* threads looking for a request before they sleep */
	std::atomic<uint32_t> finishing;    /* threads that answered and will look next */
	std::atomic<int64_t> service_ns;    /* the time a request takes to serve, averaged */
	std::atomic<int64_t> last_start_ns; /* when a thread last took a request */
	/* How long the host is idle before a request (1 ms at most), averaged. */
	std::atomic<int64_t> idle_ns;
	std::atomic<int64_t> last_end_ns; /* when a thread last finished a request */
	/* The daemon's payload arena (Msg::arena): 0 not mapped yet, 1 mapped, 2 cannot be. */
	std::atomic<uint32_t> arena;
	/* The idle delay before the host steps out, set by the daemon (0: as long as a move costs). */
	int64_t idle_delay_ns;
	/*
	 * Set by the daemon: the caller's cpu cgroup is not the daemon's, so
	 * the host's threads look for a request at SCHED_IDLE (wait_a_moment()).
	 */
	uint32_t look_idle;
	/* The caller closed a file the host was not given (ChargeHost::leave_when_idle()). */
	std::atomic<uint32_t> closed;
};
static_assert(sizeof(HostHeader) <= page);
static_assert(sizeof(SlotControl) <= page);
/* Each slot: its control page, then a buffer for a write's payload (page-aligned). */
constexpr size_t slot_stride = page + PayloadPool::max_payload;
constexpr size_t shm_size = page + host_slots * slot_stride;

/* Host side: how long to wait for a dead daemon to show. */
constexpr int64_t wait_step_ns = 100 * 1000000LL;

enum class Msg : uint32_t { image = 1, forget = 2, start = 3, arena = 4 };
struct Message {
	Msg type;
	uint32_t slot;
	uint64_t serial;
	image::ReplicaInfo info;
};

/*
 * A request the host's threads serve faster than this on average does not
 * wake a sleeping thread when others are serving (HostHeader::pending).
 */
constexpr int64_t quick_service_ns = 50000;
/*
 * How long a host thread with nothing to do looks for more before it
 * sleeps (yielding the CPU meanwhile), while requests come that close
 * together. Looking at all brought charge=cgroup from about 0.6x of
 * charge=none to about 0.8x in bench/run.py's four fio jobs; 5 µs does
 * as well as 50 µs there (random 4 KiB writes from four callers: 1.02x
 * and 1.03x against 1.02x and 1.07x of charge=none, outside a cpu cgroup). Longer is harmful:
 * the looking is CPU time of the caller's cpu cgroup, and a caller of
 * high CPU weight (10x, random reads from four callers) whose worker
 * looked for 50 µs kept the daemon's session threads off the CPU, which
 * every cgroup's requests pass through: another cgroup's light reads had
 * a p99 of 6.8-11 ms against 1.0-2.1 ms with 5 µs, and the caller itself
 * 0.70x of charge=none against 0.80x.
 */
constexpr int64_t spin_before_sleep_ns = 5000;

int futex_wait(std::atomic<uint32_t> *word, uint32_t val, int64_t timeout_ns)
{
	struct timespec ts = {static_cast<time_t>(timeout_ns / 1000000000),
			      static_cast<long>(timeout_ns % 1000000000)};
	return static_cast<int>(syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT,
					val, timeout_ns >= 0 ? &ts : nullptr, nullptr, 0));
}

void futex_wake(std::atomic<uint32_t> *word, int count = INT_MAX)
{
	syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, count, nullptr, nullptr,
		0);
}

SlotControl *slot_at(char *shm, unsigned slot)
{
	return reinterpret_cast<SlotControl *>(shm + page + slot * slot_stride);
}

/* The slot's buffer for a write's payload: the page after its control. */
char *slot_buffer(char *shm, unsigned slot)
{
	return shm + page + slot * slot_stride + page;
}

/*
 * Wake the host thread that went to sleep last: its buffer and its CPU's
 * caches are the warmest. (All sleeping on one futex word, the one that
 * had slept longest was woken: a cgroup reading one request at a time had
 * them served by the host's threads in turn, each copy through a buffer
 * and a cache gone cold; measured, 8 in 10 requests.) Nobody asleep: the
 * threads awake take what is posted before they sleep.
 */
void wake_one(char *shm)
{
	auto *hdr = reinterpret_cast<HostHeader *>(shm);
	for (;;) {
		SlotControl *last = nullptr;
		uint64_t last_nap = 0;
		for (uint64_t t = hdr->threads.load(std::memory_order_acquire); t != 0;
		     t &= t - 1) {
			SlotControl *c = slot_at(shm, static_cast<unsigned>(std::countr_zero(t)));
			uint64_t n = c->asleep.load(std::memory_order_seq_cst);
			if (n > last_nap) {
				last = c;
				last_nap = n;
			}
		}
		if (!last)
			return;
		/* Lost: it woke by itself (then it looks at the queue) or slept again. */
		if (last->asleep.compare_exchange_strong(last_nap, 0, std::memory_order_seq_cst)) {
			last->nap.fetch_add(1, std::memory_order_seq_cst);
			futex_wake(&last->nap, 1);
			return;
		}
	}
}

bool send_blob(int sock, const void *data, size_t len, const int *fds, size_t nfds)
{
	struct iovec iov = {const_cast<void *>(data), len};
	struct msghdr mh = {};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	alignas(struct cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))] = {};
	if (nfds > 0) {
		mh.msg_control = ctl;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == static_cast<ssize_t>(len);
}

/* A message of exactly `len` bytes, and its descriptors (up to 4, into `fds`). */
ssize_t recv_blob_fds(int sock, void *data, size_t len, int *fds, size_t &nfds)
{
	struct iovec iov = {data, len};
	struct msghdr mh = {};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	alignas(struct cmsghdr) char ctl[CMSG_SPACE(4 * sizeof(int))] = {};
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); n > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (nfds < 4)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		}
	}
	return n;
}

bool recv_blob(int sock, void *data, size_t len, UniqueFd &fd)
{
	int fds[4];
	size_t nfds = 0;
	ssize_t n = recv_blob_fds(sock, data, len, fds, nfds);
	for (size_t i = 0; i < nfds; i++) {
		if (i == 0)
			fd.reset(fds[0]);
		else
			close(fds[i]);
	}
	return n == static_cast<ssize_t>(len);
}

/* Every live host, for forget_everywhere(). */
struct Registry {
	std::mutex mutex;
	std::unordered_set<ChargeHost *> hosts;
};
Registry &registry()
{
	static Registry *r = new Registry(); /* never destroyed: images may die at exit */
	return *r;
}

} /* namespace */

SlotControl *ChargeHost::control(unsigned slot) const
{
	return slot_at(shm_, slot);
}

char *ChargeHost::buffer(unsigned slot) const
{
	return slot_buffer(shm_, slot);
}

bool ChargeHost::dying() const noexcept
{
	/*
	 * Killed while a thread of it waits in a request of a stalled backing
	 * store (a FUSE or network file system: uninterruptible once sent), a
	 * process cannot finish exiting, so its pidfd stays quiet; but its main
	 * thread has exited (state Z). The pid is not reused meanwhile.
	 */
	char path[64];
	std::snprintf(path, sizeof(path), "/proc/%d/stat", pid_);
	FILE *f = std::fopen(path, "re");
	if (!f)
		return poll_dead();
	char buf[512] = {};
	size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
	std::fclose(f);
	const char *paren = std::strrchr(buf, ')');
	if (n == 0 || !paren || paren[1] != ' ')
		return poll_dead();
	if (paren[2] == 'Z' || paren[2] == 'X')
		dead_.store(true, std::memory_order_relaxed);
	return poll_dead();
}

bool ChargeHost::dead() const noexcept
{
	if (dead_.load(std::memory_order_relaxed))
		return true;
	/*
	 * Asked per request: the pidfd is polled at most every 5 ms. A host
	 * that died meanwhile is found by the request posted to it, which
	 * sees it not taken and is served here.
	 */
	int64_t now = monotonic_ns();
	if (now - last_poll_ns_.load(std::memory_order_relaxed) < 5 * 1000000LL)
		return false;
	last_poll_ns_.store(now, std::memory_order_relaxed);
	return poll_dead();
}

bool ChargeHost::poll_dead() const noexcept
{
	if (dead_.load(std::memory_order_relaxed))
		return true;
	struct pollfd p = {pidfd_.get(), POLLIN, 0};
	if (poll(&p, 1, 0) > 0) {
		dead_.store(true, std::memory_order_relaxed);
		return true;
	}
	return false;
}

/*
 * The host maker's side of a spawn: what it is sent (with the descriptors
 * of the cgroup v2 directory, the shared file and the host's socket), and
 * what it answers (with the new host's pidfd).
 */
struct SpawnRequest {
	uint32_t dirs;		       /* v1 directories, NUL-terminated, one after another */
	char paths[32 * PATH_MAX / 8]; /* at most this much of them */
};
struct SpawnReply {
	int32_t pid;   /* 0: not made */
	int32_t error; /* errno of clone3 */
};

HostMaker::HostMaker(int fuse_fd, const PayloadPool &payloads, int64_t idle_delay_ns,
		     std::string connection_dir, ino_t connection_ino, unsigned long connection_id)
	: fuse_fd_(fuse_fd), payloads_(payloads), idle_delay_ns_(idle_delay_ns),
	  cpu_group_(
		  cgroup::cpu_group(cgroup::placement_of(getpid()).value_or(cgroup::Placement{}))),
	  connection_dir_(std::move(connection_dir)), connection_ino_(connection_ino),
	  connection_id_(connection_id)
{
}

HostMaker::~HostMaker()
{
	MutexLocker l(mutex_);
	socket_.reset(); /* it leaves when its socket closes */
	if (pidfd_) {
		struct pollfd p = {pidfd_.get(), POLLIN, 0};
		if (poll(&p, 1, 1000) <= 0)
			syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
		siginfo_t si = {};
		(void)waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &si,
			     WEXITED);
	}
}

bool HostMaker::start_locked(std::string &error)
{
	if (socket_ && pidfd_) {
		struct pollfd p = {pidfd_.get(), POLLIN, 0};
		if (poll(&p, 1, 0) == 0)
			return true;
		/* It died (killed by hand?): collect it and make another. */
		siginfo_t si = {};
		(void)waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &si,
			     WEXITED | WNOHANG);
	}
	socket_.reset();
	pidfd_.reset();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		error = fmt::format("socketpair: {}", std::strerror(errno));
		return false;
	}
	UniqueFd ours(sv[0]), theirs(sv[1]);
	/* The connection's fusectl directory, if it is still the one noted at mount. */
	UniqueFd conn;
	if (!connection_dir_.empty()) {
		conn.reset(open(connection_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		struct stat st;
		if (conn && (fstat(conn.get(), &st) != 0 || st.st_ino != connection_ino_))
			conn.reset();
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, theirs.get(), daemon_sock);
	if (conn)
		posix_spawn_file_actions_adddup2(&fa, conn.get(), maker_connection_fd);
	char arg0[] = "cgloopfs-hosts", arg1[] = "--charge-maker";
	/* Where fusectl is not mounted: the connection's name, for a mount of its own. */
	std::string id = fmt::format("{}", connection_id_);
	char *argv[] = {arg0, arg1, conn || connection_id_ == 0 ? nullptr : id.data(), nullptr};
	pid_t pid = 0;
	/* This program (the daemon's /proc/self/exe is the child's until it execs). */
	int err = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err != 0) {
		error = fmt::format("cannot start the host maker: {}", std::strerror(err));
		return false;
	}
	pidfd_.reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
	socket_ = std::move(ours);
	return true;
}

std::shared_ptr<ChargeHost> HostMaker::spawn(pid_t caller, std::string &error)
{
	auto place = cgroup::placement_of(caller);
	if (!place || place->v2_dir.empty()) {
		error = "its cgroup v2 directory was not found";
		return nullptr;
	}
	UniqueFd cgroup_fd(open(place->v2_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
	if (!cgroup_fd) {
		error = fmt::format("\"{}\": {}", place->v2_dir, std::strerror(errno));
		return nullptr;
	}
	SpawnRequest req = {};
	size_t used = 0;
	for (const auto &d : place->v1_dirs) {
		if (used + d.size() + 1 > sizeof(req.paths)) {
			error = "too many cgroup v1 hierarchies";
			return nullptr;
		}
		std::memcpy(req.paths + used, d.c_str(), d.size() + 1);
		used += d.size() + 1;
		req.dirs++;
	}

	std::shared_ptr<ChargeHost> host(new ChargeHost());
	host->payloads_ = &payloads_;
	UniqueFd memfd(static_cast<int>(syscall(SYS_memfd_create, "cgloopfs-host", MFD_CLOEXEC)));
	if (!memfd || ftruncate(memfd.get(), static_cast<off_t>(shm_size)) < 0) {
		error = fmt::format("shared memory: {}", std::strerror(errno));
		return nullptr;
	}
	void *p = mmap(nullptr, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       memfd.get(), 0);
	if (p == MAP_FAILED) {
		error = fmt::format("shared memory: {}", std::strerror(errno));
		return nullptr;
	}
	host->shm_ = static_cast<char *>(p);
	host->shm_len_ = shm_size;
	auto *hdr = reinterpret_cast<HostHeader *>(host->shm_);
	hdr->failed_dir = -1;
	hdr->idle_delay_ns = idle_delay_ns_;
	hdr->look_idle = cgroup::cpu_group(*place) != cpu_group_ ? 1 : 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		error = fmt::format("socketpair: {}", std::strerror(errno));
		return nullptr;
	}
	host->socket_.reset(sv[0]);
	UniqueFd theirs(sv[1]);

	SpawnReply reply = {};
	UniqueFd pidfd;
	{
		/* One spawn at a time: the maker is single-threaded. */
		MutexLocker l(mutex_);
		if (!start_locked(error))
			return nullptr;
		int fds[4] = {cgroup_fd.get(), memfd.get(), theirs.get(), fuse_fd_};
		if (!send_blob(socket_.get(), &req, sizeof(req), fds, 4) ||
		    !recv_blob(socket_.get(), &reply, sizeof(reply), pidfd)) {
			error = "the host maker does not answer";
			socket_.reset(); /* made again next time */
			return nullptr;
		}
	}
	theirs.reset();
	if (reply.pid <= 0 || !pidfd) {
		error = fmt::format("cannot make a process in \"{}\": {}", place->v2_dir,
				    std::strerror(reply.error));
		return nullptr;
	}
	host->pid_ = reply.pid;
	host->pidfd_ = std::move(pidfd);

	/* Wait until it serves, failed, or died (5 s at most). */
	for (int i = 0; i < 50; i++) {
		uint32_t st = hdr->state.load();
		if (st != host_starting || host->poll_dead())
			break;
		futex_wait(&hdr->state, host_starting, wait_step_ns);
	}
	if (hdr->state.load() != host_serving) {
		int err = hdr->error;
		if (hdr->state.load() == host_starting && !host->poll_dead())
			error = "it did not start within 5 s";
		else if (hdr->failed_dir >= 0 &&
			 static_cast<size_t>(hdr->failed_dir) < place->v1_dirs.size())
			error = fmt::format("cannot join \"{}\": {}",
					    place->v1_dirs[static_cast<size_t>(hdr->failed_dir)],
					    std::strerror(err));
		else if (hdr->state.load() == host_failed && err == EAGAIN)
			error = fmt::format(
				"no room for its threads under the pids.max of \"{}\" or a parent",
				place->v2_dir);
		else
			error = fmt::format("it did not start: {}",
					    err ? std::strerror(err) : "it exited");
		return nullptr; /* the destructor ends it */
	}
	{
		static std::once_flag hooked;
		std::call_once(hooked, [] {
			image::BackingImage::on_destroy(&ChargeHost::forget_everywhere);
		});
	}
	{
		std::lock_guard<std::mutex> l(registry().mutex);
		registry().hosts.insert(host.get());
	}
	return host;
}

ChargeHost::~ChargeHost()
{
	{
		std::lock_guard<std::mutex> l(registry().mutex);
		registry().hosts.erase(this);
	}
	/*
	 * Nothing is posted to it any more (posted jobs hold it): it leaves
	 * when its socket closes, and is killed so that it need not be waited
	 * for (the reaper thread that destroys it answers other cgroups'
	 * timeouts; a frozen cgroup's host ends only when thawed). Its parent,
	 * the host maker, collects it.
	 */
	socket_.reset();
	if (pidfd_)
		syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
	if (shm_)
		munmap(shm_, shm_len_);
}

void ChargeHost::forget_everywhere(uint64_t serial)
{
	std::lock_guard<std::mutex> l(registry().mutex);
	for (ChargeHost *h : registry().hosts)
		h->send_forget(serial);
}

void ChargeHost::send_forget(uint64_t serial)
{
	MutexLocker l(mutex_);
	if (images_.erase(serial) == 0)
		return;
	Message m = {};
	m.type = Msg::forget;
	m.serial = serial;
	(void)send_blob(socket_.get(), &m, sizeof(m), nullptr, 0);
}

bool ChargeHost::send_image(const image::BackingImage &img)
{
	if (images_.count(img.serial()))
		return true;
	Message m = {};
	m.type = Msg::image;
	m.serial = img.serial();
	std::vector<int> fds;
	m.info = img.replica_info(fds);
	if (!send_blob(socket_.get(), &m, sizeof(m), fds.data(), fds.size()))
		return false;
	images_.insert(img.serial());
	return true;
}

bool ChargeHost::start_slot(unsigned slot)
{
	if (started_ & (uint64_t{1} << slot))
		return true;
	Message m = {};
	m.type = Msg::start;
	m.slot = slot;
	if (!send_blob(socket_.get(), &m, sizeof(m), nullptr, 0))
		return false;
	started_ |= uint64_t{1} << slot;
	return true;
}

bool ChargeHost::send_arena()
{
	if (arena_sent_ || !payloads_ || payloads_->arena_fd() < 0)
		return true;
	Message m = {};
	m.type = Msg::arena;
	int fd = payloads_->arena_fd();
	if (!send_blob(socket_.get(), &m, sizeof(m), &fd, 1))
		return false;
	arena_sent_ = true;
	return true;
}

bool ChargeHost::prepare(unsigned slot, const image::BackingImage &img)
{
	if (slot >= host_slots || dead())
		return false;
	{
		MutexLocker l(mutex_);
		if (!start_slot(slot) || !send_arena() || !send_image(img))
			return false;
	}
	SlotControl *c = control(slot);
	/* A new slot's thread reports in (or that it could not be made) at once. */
	for (int i = 0; i < 50; i++) {
		uint32_t r = c->ready.load(std::memory_order_acquire);
		if (r == 1)
			return true;
		if (r == 2 || poll_dead())
			return false;
		futex_wait(&c->ready, 0, wait_step_ns);
	}
	return false;
}

bool ChargeHost::slot_ready(unsigned slot) const noexcept
{
	return slot < host_slots && control(slot)->ready.load(std::memory_order_acquire) == 1;
}

std::atomic<uint32_t> *ChargeHost::open_claim(unsigned slot)
{
	SlotControl *c = control(slot);
	c->claim.store(claim_open, std::memory_order_relaxed);
	return &c->claim;
}

void ChargeHost::post(unsigned slot, const image::BackingImage &img, const IoParams &p,
		      uint64_t unique)
{
	SlotControl *c = control(slot);
	c->op = static_cast<uint32_t>(p.op);
	c->mode = p.mode;
	c->datasync = p.datasync;
	c->lost_write_error = p.lost_write_error;
	c->serial = img.serial();
	c->unique = unique;
	c->pos = p.pos;
	c->len = p.len;
	c->size = img.size();
	c->backing_size = img.backing_size_now();
	c->value = 0;
	c->replied = 0;
	c->reply_err = 0;
	c->write_error = 0;
	c->finished_ns = 0;
	c->payload_offset = 0;
	if (p.op == IoOp::write && p.len > 0) {
		/*
		 * Where the kernel put it, if the host sees that: prepare() sent it
		 * the arena; until the host has mapped it (or if it cannot), copied.
		 */
		uint64_t off;
		auto *hdr = reinterpret_cast<HostHeader *>(shm_);
		if (payloads_ && hdr->arena.load(std::memory_order_acquire) == 1 &&
		    payloads_->arena_offset(p.payload, p.len, off))
			c->payload_offset = off + 1;
		else
			std::memcpy(buffer(slot), p.payload, p.len);
	}
	uint32_t seq = seq_[slot].load(std::memory_order_relaxed) + 1;
	seq_[slot].store(seq, std::memory_order_release);
	c->posted.store(seq, std::memory_order_release);
	auto *hdr = reinterpret_cast<HostHeader *>(shm_);
	/* Sequentially consistent, against the host thread's going to sleep (host_thread()). */
	uint64_t pending = hdr->pending.fetch_or(uint64_t{1} << slot, std::memory_order_seq_cst) |
			   (uint64_t{1} << slot);
	auto wanted = static_cast<unsigned>(std::popcount(pending));
	/* Threads looking for a request, or about to, take one each (host_thread()). */
	unsigned looking = hdr->looking.load(std::memory_order_seq_cst);
	if (looking + hdr->finishing.load(std::memory_order_seq_cst) >= wanted)
		return;
	if (hdr->sleeping.load(std::memory_order_seq_cst) == 0)
		return; /* every thread is awake: they take it before they sleep */
	/*
	 * As many threads serve quick requests, one of them begun just now
	 * (a thread stuck on its request is not counted on): each takes one
	 * of these next.
	 */
	if (hdr->service_ns.load(std::memory_order_relaxed) < quick_service_ns &&
	    hdr->busy.load(std::memory_order_seq_cst) + looking >= wanted &&
	    monotonic_ns() - hdr->last_start_ns.load(std::memory_order_relaxed) < quick_service_ns)
		return;
	wake_one(shm_);
}

void ChargeHost::leave_when_idle() noexcept
{
	auto *hdr = reinterpret_cast<HostHeader *>(shm_);
	hdr->closed.store(1, std::memory_order_seq_cst);
	wake_one(shm_);
}

void ChargeHost::nudge(unsigned slot) noexcept
{
	/* A thread that was to take it is slow about it: wake another. */
	auto *hdr = reinterpret_cast<HostHeader *>(shm_);
	if (hdr->pending.load(std::memory_order_seq_cst) & (uint64_t{1} << slot))
		wake_one(shm_);
}

bool ChargeHost::taken(unsigned slot) const noexcept
{
	auto *hdr = reinterpret_cast<const HostHeader *>(shm_);
	return !(hdr->pending.load(std::memory_order_acquire) & (uint64_t{1} << slot));
}

bool ChargeHost::retired() const noexcept
{
	auto *hdr = reinterpret_cast<const HostHeader *>(shm_);
	return hdr->state.load(std::memory_order_seq_cst) == host_leaving;
}

bool ChargeHost::refused(unsigned slot) const noexcept
{
	/*
	 * A thread that takes a request looks at the state after (serve_slot()),
	 * and gives it back once the host is leaving: one seen not taken by
	 * then is never served there.
	 */
	return retired() &&
	       control(slot)->taken.load(std::memory_order_seq_cst) !=
		       seq_[slot].load(std::memory_order_acquire) &&
	       !finished(slot);
}

bool ChargeHost::finished(unsigned slot) const noexcept
{
	return control(slot)->done.load(std::memory_order_acquire) ==
	       seq_[slot].load(std::memory_order_acquire);
}

bool ChargeHost::answering(unsigned slot) const noexcept
{
	return control(slot)->claim.load(std::memory_order_acquire) != claim_open;
}

ChargeHost::Answer ChargeHost::result(unsigned slot, bool lost) const
{
	const SlotControl *c = control(slot);
	Answer a;
	if (lost && !finished(slot)) {
		/* Not taken: nothing was done, the daemon may do it. */
		a.started = c->taken.load(std::memory_order_acquire) ==
			    seq_[slot].load(std::memory_order_relaxed);
		return a;
	}
	a.completed = true;
	a.value = c->value;
	a.replied = c->replied != 0;
	a.reply_err = c->reply_err;
	a.write_error = take_slot_write_error(slot);
	a.finished_ns = c->finished_ns;
	return a;
}

int ChargeHost::take_slot_write_error(unsigned slot) const
{
	/* Taken once: by the collector, or by an fsync's sweep (take_write_errors) first. */
	return std::atomic_ref<int32_t>(control(slot)->write_error).exchange(0);
}

int ChargeHost::take_write_errors(uint64_t serial)
{
	int first = 0;
	std::lock_guard<std::mutex> l(registry().mutex);
	for (ChargeHost *h : registry().hosts) {
		uint64_t started;
		{
			MutexLocker hl(h->mutex_);
			started = h->started_;
		}
		for (unsigned s = 0; started != 0; s++, started >>= 1) {
			if (!(started & 1) || h->control(s)->serial != serial)
				continue;
			if (int e = h->take_slot_write_error(s); e != 0 && first == 0)
				first = e;
		}
	}
	return first;
}

ChargeHost::Answer ChargeHost::wait(unsigned slot)
{
	SlotControl *c = control(slot);
	uint32_t seq = seq_[slot].load(std::memory_order_relaxed);
	for (;;) {
		uint32_t d = c->done.load(std::memory_order_acquire);
		if (d == seq)
			break;
		/* Announced first: the host wakes only a waiter (posted jobs have none). */
		c->waiting.store(1, std::memory_order_seq_cst);
		if (c->done.load(std::memory_order_seq_cst) == seq)
			break;
		/* Only after a wait that timed out: reading /proc costs more than the I/O. */
		if (futex_wait(&c->done, d, wait_step_ns) < 0 && errno == ETIMEDOUT &&
		    (refused(slot) || dying())) {
			c->waiting.store(0, std::memory_order_relaxed);
			return result(slot, true);
		}
	}
	c->waiting.store(0, std::memory_order_relaxed);
	return result(slot, false);
}

/* ---- the host process ---- */

bool is_charge_maker(int argc, char **argv)
{
	return (argc == 2 || argc == 3) && std::strcmp(argv[1], "--charge-maker") == 0;
}

namespace {

/*
 * Stepping out of the caller's cgroups while idle, and back in before the
 * next request: a container's cgroups can then be removed the moment its
 * last process exits (runc removes them at once, and on cgroup v2 does not
 * retry). The host moves itself (writes "0" to the cgroup.procs files it
 * opened at birth): in, to the caller's cgroup v2 and v1 directories; out,
 * to the host maker's (the daemon's).
 *
 * When: at once when the caller closes a file (serve_flush(): an exit
 * closes every file, and waits for the answer, so a container's last
 * process does not finish exiting before the host is out), or as soon as
 * the requests being served then are done; otherwise after an idle delay.
 * Where closes are sent (cache=direct: HostMaker's idle_delay_ns), the delay
 * is 20 ms: a cgroup whose requests come less than that apart (a reader at
 * 50 or more requests a second) is not moved for each, which would add a
 * move in (0.2-1 ms here) to each request's latency. Where they are not
 * (cache=kernel), it is as long as a move in and out costs (2x the last
 * moves in, averaged; at least 0.2 ms, at most 5 ms): a sequential stream,
 * whose next 1 MiB request comes a few tenths of a millisecond after the
 * last, stays in, and a host whose requests are further apart spends at
 * most as long moving as waiting. A move costs about 0.1 ms per hierarchy
 * on a hybrid host (7 to 10 of them), one write on a pure v2 one.
 */
constexpr int64_t min_step_out_after_ns = 200000;
constexpr int64_t max_step_out_after_ns = 5000000;

struct Stepper {
	std::vector<int> in, out; /* cgroup.procs files, opened for writing */
	/* The cgroups whose pids.max bounds it when in (cgroup::pids_limits) */
	std::vector<std::string> pids_dirs;
	std::mutex mutex;
	bool inside = true;	   /* under mutex */
	bool leaving = false;	   /* out for good (leave()); under mutex */
	unsigned busy = 0;	   /* requests being served; under mutex */
	bool closing = false;	   /* a close came while busy: out when idle; under mutex */
	int64_t idle_delay_ns = 0; /* HostHeader::idle_delay_ns; set before the threads start */
	std::atomic<int64_t> last_done_ns{0};
	std::atomic<int64_t> move_in_ns{0}; /* what a move in took, averaged */

	/* How long the host waits, idle, before it steps out. */
	int64_t step_out_after() const
	{
		if (idle_delay_ns > 0)
			return idle_delay_ns;
		return std::clamp<int64_t>(2 * move_in_ns.load(std::memory_order_relaxed),
					   min_step_out_after_ns, max_step_out_after_ns);
	}
};

/*
 * The host's read buffers, shared by its threads, the last one given back
 * taken first. Any of the host's threads may take the next request, so
 * with a buffer each, a cgroup reading one request at a time had its
 * 1 MiB copied through a different, cache-cold buffer whenever another
 * thread took it (see wake_one()); with the pool it is the same, warm one,
 * and the memory charged to the cgroup is a buffer per read in progress.
 */
class BufferPool
{
public:
	BufferPool() { free_.reserve(host_slots); }
	AlignedBuffer take()
	{
		std::lock_guard<std::mutex> l(mutex_);
		if (free_.empty())
			return {};
		AlignedBuffer b = std::move(free_.back());
		free_.pop_back();
		return b;
	}
	/* At most one a host thread: the room reserved is never outgrown. */
	void give(AlignedBuffer &&b)
	{
		std::lock_guard<std::mutex> l(mutex_);
		free_.push_back(std::move(b));
	}

private:
	std::mutex mutex_;
	std::vector<AlignedBuffer> free_;
};

struct HostState {
	char *shm = nullptr;
	HostHeader *header = nullptr;
	int fuse_fd = host_fuse_fd;
	std::mutex mutex;
	std::condition_variable arrived;
	std::unordered_map<uint64_t, std::shared_ptr<image::BackingImage>> images;
	/* The daemon's payload arena, mapped read-only (Msg::arena): set once, size first. */
	std::atomic<const char *> arena{nullptr};
	size_t arena_size = 0;
	Stepper step;
	BufferPool buffers;
	/* Looks at SCHED_IDLE (HostHeader::look_idle, and CAP_SYS_NICE kept to come back). */
	bool look_idle = false;
};

/* Move this process into the cgroup of the cgroup.procs file `fd`. */
bool move_one(int fd)
{
	ssize_t n;
	do
		n = write(fd, "0", 1);
	while (n < 0 && errno == EINTR);
	return n == 1;
}

/* Move this process into the cgroups of `fds` (all of them, or false). */
bool move_to(const std::vector<int> &fds)
{
	return std::all_of(fds.begin(), fds.end(), move_one);
}

/* Out into the cgroups of `fds`: as many of them as it can (those not open are skipped). */
void move_out(const std::vector<int> &fds)
{
	for (int fd : fds)
		if (fd >= 0)
			(void)move_one(fd);
}

/* This process's threads (each counts against a pids.max it moves into); 1 if unknown. */
unsigned thread_count()
{
	char buf[512];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return 1;
	buf[n] = '\0';
	/* num_threads is the 18th field after the command, which ends at the last ')'. */
	const char *p = std::strrchr(buf, ')');
	for (int field = 0; p && field < 18; field++)
		p = std::strchr(p + 1, ' ');
	long v = p ? std::strtol(p + 1, nullptr, 10) : 0;
	return v > 0 ? static_cast<unsigned>(v) : 1;
}

/*
 * A request begins: be inside the caller's cgroups. False when the host
 * cannot get back in (the cgroup is being removed, its pids.max is full):
 * it then leaves, and the daemon serves the request.
 */
bool begin_request(Stepper &st)
{
	std::lock_guard<std::mutex> l(st.mutex);
	st.busy++;
	if (st.leaving)
		return false; /* out for good: another thread leaves (leave()) */
	if (st.inside)
		return true;
	/*
	 * Under a pids.max it goes in only leaving the cgroup room for as many
	 * tasks again as it brings: the kernel would let a move in over the
	 * limit, and a container's next fork must not fail for our threads.
	 */
	unsigned threads = thread_count();
	if (!st.pids_dirs.empty() && !cgroup::pids_room(st.pids_dirs, 2 * threads))
		return false;
	int64_t t0 = monotonic_ns();
	bool in = move_to(st.in);
	int64_t took = monotonic_ns() - t0;
	/* Others came in meanwhile: it does not stay where it takes their room. */
	if (!in || !cgroup::pids_room(st.pids_dirs, threads)) {
		/* Out again before it leaves: not counted there while it does. */
		move_out(st.out);
		return false;
	}
	int64_t avg = st.move_in_ns.load(std::memory_order_relaxed);
	st.move_in_ns.store(avg == 0 ? took : avg + (took - avg) / 4, std::memory_order_relaxed);
	st.inside = true;
	return true;
}

/* Out of the caller's cgroups (under st.mutex). */
void step_out_locked(Stepper &st)
{
	st.closing = false;
	if (!st.inside || st.out.empty())
		return;
	/* Half out is no worse than in: what did move stays out until the next request. */
	st.inside = false;
	move_out(st.out);
}

/*
 * A request is done; true when it was the last one in the works (the host
 * is idle). Then out at once if the caller closed a file meanwhile.
 */
bool end_request(Stepper &st, int64_t now)
{
	std::lock_guard<std::mutex> l(st.mutex);
	st.last_done_ns.store(now, std::memory_order_relaxed);
	if (--st.busy != 0)
		return false;
	if (st.closing)
		step_out_locked(st);
	return true;
}

/*
 * The idle delay since the host went idle: step out, unless it has served
 * meanwhile (then the thread that went idle after that steps out later).
 * `now` (a close): whatever the delay; if it serves, as soon as it is idle.
 */
void step_out_if_idle(Stepper &st, bool now = false)
{
	std::lock_guard<std::mutex> l(st.mutex);
	if (st.busy != 0) {
		st.closing |= now; /* end_request() steps out */
		return;
	}
	if (now ||
	    monotonic_ns() - st.last_done_ns.load(std::memory_order_relaxed) >= st.step_out_after())
		step_out_locked(st);
}

SlotControl *slot_control(HostState &h, unsigned slot)
{
	return slot_at(h.shm, slot);
}

std::shared_ptr<image::BackingImage> find_image(HostState &h, uint64_t serial)
{
	std::unique_lock<std::mutex> l(h.mutex);
	/* The daemon sends an image before the first request on it: it is on its way. */
	h.arrived.wait_for(l, std::chrono::seconds(5), [&] { return h.images.count(serial) > 0; });
	auto it = h.images.find(serial);
	return it == h.images.end() ? nullptr : it->second;
}

/* Where the payload of the write posted to `c` is (nullptr: not in the arena). */
const char *arena_payload(HostState &h, const SlotControl &c)
{
	/* The daemon points into the arena only once the host has it (HostHeader::arena). */
	const char *arena = h.arena.load(std::memory_order_acquire);
	uint64_t off = c.payload_offset - 1;
	if (!arena || off > h.arena_size || c.len > h.arena_size - off)
		return nullptr;
	return arena + off;
}

/* Answer the kernel: the header, then a read's data or a write's count. */
int answer(HostState &h, const SlotControl &c, const IoResult &r)
{
	struct fuse_out_header out = {};
	struct fuse_write_out wout = {};
	struct iovec iov[2] = {{&out, sizeof(out)}, {nullptr, 0}};
	int n = 1;
	out.unique = c.unique;
	if (r.value < 0) {
		out.error = -errno_for_caller(static_cast<int>(-r.value));
	} else if (static_cast<IoOp>(c.op) == IoOp::read) {
		iov[1] = {const_cast<char *>(r.data.data()), r.data.size()};
		n = 2;
	} else if (static_cast<IoOp>(c.op) == IoOp::write) {
		wout.size = static_cast<uint32_t>(r.value);
		iov[1] = {&wout, sizeof(wout)};
		n = 2;
	}
	out.len = static_cast<uint32_t>(sizeof(out) + iov[1].iov_len);
	ssize_t w;
	do
		w = writev(h.fuse_fd, iov, n);
	while (w < 0 && errno == EINTR);
	/* ENOENT: the request was interrupted and is gone. */
	return w < 0 && errno != ENOENT ? -errno : 0;
}

[[noreturn]] void leave(HostState &h);

/* The slot's request is done: tell the daemon, and wake it if it waits. */
void mark_done(SlotControl &c, uint32_t seen)
{
	c.done.store(seen, std::memory_order_seq_cst);
	if (c.waiting.load(std::memory_order_seq_cst) != 0)
		futex_wake(&c.done);
}

/*
 * A close(2) by the caller (IoOp::flush): out of its cgroups at once (or,
 * if other requests are being served, once they are), then answered (its
 * process may be exiting: the last one of a container, whose cgroups its
 * runtime removes next). Not a request served inside the cgroups: it does
 * not step in.
 */
void serve_flush(HostState &h, SlotControl &c, uint32_t seen)
{
	step_out_if_idle(h.step, true);
	uint32_t open = claim_open;
	bool mine = c.claim.compare_exchange_strong(open, claim_worker, std::memory_order_acq_rel);
	c.value = 0;
	c.reply_err = mine ? answer(h, c, IoResult{0, {}}) : 0;
	c.replied = mine;
	c.finished_ns = monotonic_ns();
	mark_done(c, seen);
}

/*
 * Serve the request posted to `slot`, taken off the queue. True when it
 * left the host idle (the thread then steps out later).
 */
bool serve_slot(HostState &h, unsigned slot, AlignedBuffer &scratch, bool &finishing)
{
	SlotControl *c = slot_control(h, slot);
	char *buf = slot_buffer(h.shm, slot);
	uint32_t seen = c->posted.load(std::memory_order_acquire);
	/*
	 * Take it, then look whether the host is leaving; leave() sets that,
	 * then looks at what was taken (both sequentially consistent: one of
	 * the two sees the other). Leaving: give it back; the daemon does it,
	 * seeing it not taken.
	 */
	uint32_t before = c->taken.load(std::memory_order_relaxed);
	c->taken.store(seen, std::memory_order_seq_cst);
	if (h.header->state.load(std::memory_order_seq_cst) == host_leaving) {
		c->taken.store(before, std::memory_order_seq_cst);
		return false;
	}
	if (static_cast<IoOp>(c->op) == IoOp::flush) {
		serve_flush(h, *c, seen);
		return false;
	}
	if (!begin_request(h.step)) {
		/* Cannot get back into the cgroups: give it back, and go. */
		c->taken.store(before, std::memory_order_seq_cst);
		leave(h);
	}
	int64_t start = monotonic_ns();
	h.header->last_start_ns.store(start, std::memory_order_relaxed);
	IoResult r{-EIO, {}};
	/* Only a read needs one (a write or fallocate uses the thread's scratch). */
	const bool reading = static_cast<IoOp>(c->op) == IoOp::read;
	AlignedBuffer data;
	if (reading)
		data = h.buffers.take();
	auto img = find_image(h, c->serial);
	if (img) {
		img->set_sizes(c->size, c->backing_size);
		IoParams p;
		p.op = static_cast<IoOp>(c->op);
		p.pos = c->pos;
		p.len = c->len;
		p.mode = c->mode;
		p.datasync = c->datasync != 0;
		p.lost_write_error = c->lost_write_error;
		p.payload = buf;
		if (c->payload_offset != 0)
			p.payload = arena_payload(h, *c);
		r = p.payload ? perform_io(*img, p, data, scratch) : IoResult{-EIO, {}};
		/* The daemon keeps lost writes' errors, for every process's fsync. */
		c->write_error = img->take_write_error();
	}
	uint32_t open = claim_open;
	bool mine = c->claim.compare_exchange_strong(open, claim_worker, std::memory_order_acq_rel);
	c->value = r.value;
	c->reply_err = mine ? answer(h, *c, r) : 0;
	/*
	 * The caller may send its next request now: this thread takes it when
	 * its bookkeeping is done, unless another is looking already. Counted
	 * as finishing, not to be woken for (ChargeHost::post()).
	 */
	h.header->finishing.fetch_add(1, std::memory_order_seq_cst);
	finishing = true;
	/* Given back at once, for the same reason. */
	if (reading)
		h.buffers.give(std::move(data));
	c->replied = mine;
	int64_t end = monotonic_ns();
	c->finished_ns = end;
	h.header->last_end_ns.store(end, std::memory_order_relaxed);
	/* Averaged over about the last eight requests; threads race on it, harmlessly. */
	int64_t avg = h.header->service_ns.load(std::memory_order_relaxed);
	h.header->service_ns.store(avg + (end - start - avg) / 8, std::memory_order_relaxed);
	img.reset();
	bool idle = end_request(h.step, end);
	mark_done(*c, seen);
	return idle;
}

/*
 * Up to spin_before_sleep for `word` to become nonzero, yielding the CPU
 * meanwhile. A yield lets run only the tasks of the yielder's own cpu
 * cgroup: where the caller's is not the daemon's (look_idle), the session
 * thread that is to post the next request would wait for the look to end,
 * so the look is made at SCHED_IDLE, where the caller's group weighs next
 * to nothing against it (bench/run.py, random 4 KiB reads and writes from
 * four callers in a v1 cpu cgroup: 0.92x and 0.93x of charge=none, against
 * 0.87x and 0.87x with the yield alone, which found nothing twice as often:
 * 0.34 futex wakes per request against 0.16 outside a cpu cgroup). Where
 * both are in one cpu cgroup the two policy changes cost more than they
 * bring (random reads: 0.89x against 1.01x), so there it yields alone.
 */
bool wait_a_moment(const std::atomic<uint64_t> &word, bool look_idle)
{
	bool idle = look_idle && enter_idle_policy();
	int64_t until = monotonic_ns() + spin_before_sleep_ns;
	bool found = false;
	do {
		if (word.load(std::memory_order_acquire) != 0) {
			found = true;
			break;
		}
		sched_yield();
	} while (monotonic_ns() < until);
	/*
	 * Never serve at SCHED_IDLE: the cgroup's requests would wait for
	 * every other task's. Held CAP_SYS_NICE makes this fail only if
	 * something took it; then the process ends, and the daemon serves
	 * its requests again (as for a worker process killed).
	 */
	if (idle && !leave_idle_policy())
		_exit(4);
	return found;
}

/*
 * A thread of the host, started with `slot` (the daemon starts one per slot
 * it uses, so there are always as many threads as requests posted): it
 * serves whatever slot is posted, until the queue is empty, then sleeps.
 */
void host_thread(HostState &h, unsigned slot)
{
	HostHeader *hdr = h.header;
	AlignedBuffer scratch;
	/* As the daemon's I/O threads: a lone request wakes to run before bulk copies. */
	request_short_slice();
	SlotControl *mine = slot_control(h, slot);
	hdr->threads.fetch_or(uint64_t{1} << slot, std::memory_order_seq_cst);
	mine->ready.store(1, std::memory_order_release);
	futex_wake(&mine->ready);
	bool may_step_out = false; /* this thread left the host idle: it steps out later */
	bool finishing = false;	   /* counted in HostHeader::finishing */
	/*
	 * When this thread last went to sleep (SlotControl::asleep), and
	 * whether it sleeps again in that place: it woke by itself (its step
	 * out), took nothing, and is not to become the one woken next.
	 */
	uint64_t my_nap = 0;
	bool keep_place = false;
	auto stop_finishing = [&] {
		if (finishing)
			hdr->finishing.fetch_sub(1, std::memory_order_seq_cst);
		finishing = false;
	};
	for (;;) {
		uint64_t pending = hdr->pending.load(std::memory_order_acquire);
		if (pending != 0) {
			uint64_t bit = pending & -pending;
			if (!(hdr->pending.fetch_and(~bit, std::memory_order_acq_rel) & bit))
				continue; /* another thread took it */
			if (hdr->busy.fetch_add(1, std::memory_order_seq_cst) == 0) {
				/*
				 * How long the host was idle before this request,
				 * averaged over about the last eight such (threads
				 * race on it, harmlessly); 0 when it was busy.
				 */
				int64_t idle = std::min<int64_t>(
					monotonic_ns() -
						hdr->last_end_ns.load(std::memory_order_relaxed),
					1000000);
				int64_t avg = hdr->idle_ns.load(std::memory_order_relaxed);
				hdr->idle_ns.store(avg + (idle - avg) / 8,
						   std::memory_order_relaxed);
			} else {
				int64_t avg = hdr->idle_ns.load(std::memory_order_relaxed);
				hdr->idle_ns.store(avg - avg / 8, std::memory_order_relaxed);
			}
			/* A finishing thread stops counting as one once it has a request. */
			stop_finishing();
			may_step_out = serve_slot(h, static_cast<unsigned>(std::countr_zero(bit)),
						  scratch, finishing);
			/* Then the queue is looked at again (a post may have counted on us). */
			hdr->busy.fetch_sub(1, std::memory_order_seq_cst);
			continue;
		}
		/*
		 * Look again for a while before sleeping, giving the CPU to
		 * whoever wants it meanwhile: a busy cgroup's next request
		 * usually comes within that, and taking it costs no futex
		 * wake (an IPI on a virtual machine) on either side. Only
		 * while requests come that soon (the host is idle for less
		 * than four such moments before one, on average): a cgroup
		 * whose requests are far apart would pay for it with nothing.
		 */
		bool look_first = !keep_place && hdr->idle_ns.load(std::memory_order_relaxed) <
							 4 * spin_before_sleep_ns;
		if (look_first) {
			/* Counted as looking, then no longer as finishing. */
			hdr->looking.fetch_add(1, std::memory_order_seq_cst);
			stop_finishing();
			if (wait_a_moment(hdr->pending, h.look_idle)) {
				hdr->looking.fetch_sub(1, std::memory_order_seq_cst);
				continue;
			}
		}
		/*
		 * Asleep (to be found by wake_one()), counted as sleeping, then
		 * no longer as looking or finishing, before the last look: a
		 * post sees one or the other, or the request.
		 */
		uint32_t w = mine->nap.load(std::memory_order_seq_cst);
		if (!keep_place)
			my_nap = hdr->naps.fetch_add(1, std::memory_order_seq_cst) + 1;
		mine->asleep.store(my_nap, std::memory_order_seq_cst);
		bool timed_out = false;
		hdr->sleeping.fetch_add(1, std::memory_order_seq_cst);
		if (look_first)
			hdr->looking.fetch_sub(1, std::memory_order_seq_cst);
		stop_finishing();
		if (hdr->pending.load(std::memory_order_seq_cst) == 0) {
			/* Woken for a close the daemon could not post (leave_when_idle()). */
			if (hdr->closed.load(std::memory_order_seq_cst) != 0 &&
			    hdr->closed.exchange(0, std::memory_order_seq_cst) != 0)
				step_out_if_idle(h.step, true);
			if (may_step_out) {
				/* Once: a wait per idle spell, not a poll. */
				may_step_out = false;
				int r = futex_wait(&mine->nap, w, h.step.step_out_after());
				if (r < 0 && errno == ETIMEDOUT) {
					step_out_if_idle(h.step);
					timed_out = true;
				}
			} else {
				futex_wait(&mine->nap, w, -1);
			}
		}
		/* Awake: whoever wakes a thread now wakes another. */
		keep_place = mine->asleep.exchange(0, std::memory_order_seq_cst) != 0 && timed_out;
		hdr->sleeping.fetch_sub(1, std::memory_order_seq_cst);
	}
}

/*
 * The other processes of the host's cgroup v2, watched through pidfds: the
 * host never outlives them, so a container's cgroups can be removed the
 * moment its last process exits. Learnt from events (a pidfd becomes
 * readable when its process exits), then cgroup.procs is read again for
 * members that came meanwhile.
 */
class Members
{
public:
	void start()
	{
		auto place = cgroup::placement_of(getpid());
		if (place && !place->v2_dir.empty())
			procs_ = place->v2_dir + "/cgroup.procs";
		rescan();
	}

	/* Wait until a message is on `sock` (true) or no member is left (false). */
	bool wait_for_message(int sock)
	{
		for (;;) {
			if (procs_.empty())
				break; /* not watched (no v2 path): only the socket */
			if (fds_.empty())
				return false;
			std::vector<struct pollfd> p;
			p.push_back({sock, POLLIN, 0});
			for (const auto &fd : fds_)
				p.push_back({fd.get(), POLLIN, 0});
			int n = poll(p.data(), p.size(), -1);
			if (n < 0 && errno == EINTR)
				continue;
			bool gone = false;
			for (size_t i = 1; i < p.size(); i++)
				gone |= (p[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
			if (gone)
				rescan();
			if (p[0].revents)
				return true;
			if (fds_.empty())
				return false;
		}
		struct pollfd p = {sock, POLLIN, 0};
		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
		return true;
	}

private:
	void rescan()
	{
		fds_.clear();
		if (procs_.empty())
			return;
		FILE *f = std::fopen(procs_.c_str(), "re");
		if (!f)
			return; /* the cgroup is being removed: nobody left */
		long pid;
		pid_t self = getpid();
		while (std::fscanf(f, "%ld", &pid) == 1 && fds_.size() < max_watched) {
			if (pid == self)
				continue;
			int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
			if (fd >= 0)
				fds_.emplace_back(fd);
		}
		std::fclose(f);
	}

	/* A cgroup of thousands of processes: watching some of them is enough, */
	/* as the cgroup is read again whenever one of them exits. */
	static constexpr size_t max_watched = 64;
	std::string procs_;
	std::vector<UniqueFd> fds_;
};

/*
 * The daemon is gone (or let us go, and has nothing of ours in flight): end.
 * /dev/fuse goes first. Threads stuck in backing I/O keep the process, and
 * with it its descriptors, until the I/O returns; with the device still open
 * the connection would live on with no one to read it, and every request on
 * a file still open would wait for that store. Without us it ends, and they
 * fail (ENOTCONN) as on any FUSE file system whose daemon is gone. Replaced,
 * not closed: a slot thread answering meanwhile writes to /dev/null, not to
 * whatever file took the number.
 */
[[noreturn]] void let_go_of_the_connection()
{
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, host_fuse_fd) < 0)
		close(host_fuse_fd);
	_exit(0);
}

/* Waits up to `ms` for the daemon to close our socket: true if it did (or is gone). */
bool daemon_gone(int ms)
{
	struct pollfd p = {daemon_sock, POLLRDHUP, 0};
	return poll(&p, 1, ms) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL));
}

/* Stop taking requests, let the ones taken finish, and go. */
[[noreturn]] void leave(HostState &h)
{
	h.header->state.store(host_leaving, std::memory_order_seq_cst);
	{
		/*
		 * Out of the caller's cgroups first: not counted in them (their
		 * pids.max) while it finishes, and out of the way of their removal.
		 */
		std::lock_guard<std::mutex> l(h.step.mutex);
		h.step.leaving = true; /* and no thread steps back in */
		h.step.inside = false;
		move_out(h.step.out);
	}
	/*
	 * A request taken is finished (its answer may be the only one the
	 * caller gets), however long its backing store takes: the daemon posts
	 * nothing new meanwhile (ChargeHost::retired()). Twice: a slot thread
	 * that took a request just as we looked gives it back (it sees the
	 * state) within a moment; the second pass waits for that. Not once the
	 * daemon is gone: then we let go of the connection at once, as the
	 * process (this thread) is still there to do it; were it to exit, its
	 * threads stuck in the store would keep /dev/fuse open, and with it the
	 * connection, with no one to read it (let_go_of_the_connection()).
	 */
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned s = 0; s < host_slots; s++) {
			SlotControl *c = slot_control(h, s);
			if (c->ready.load() != 1)
				continue;
			for (int i = 0;; i++) {
				uint32_t t = c->taken.load(std::memory_order_seq_cst);
				if (c->done.load(std::memory_order_acquire) == t)
					break;
				/* Every millisecond for a second, then every 50. */
				if (daemon_gone(i < 1000 ? 1 : 50))
					let_go_of_the_connection();
			}
		}
		if (daemon_gone(2))
			let_go_of_the_connection();
	}
	_exit(0);
}

/*
 * Keeps no capability but CAP_SYS_NICE, and that one only with `keep_nice`
 * and if it has it: returns whether it kept it.
 */
bool drop_privileges(bool keep_nice)
{
	/* Not dumpable: the cgroup's other members cannot trace it or read its memory. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/*
	 * It has what it needs open. CAP_SYS_NICE only brings its threads
	 * back from SCHED_IDLE (wait_a_moment()).
	 */
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct caps[2] = {};
	constexpr uint32_t nice = 1U << CAP_SYS_NICE;
	bool kept = keep_nice && syscall(SYS_capget, &hdr, caps) == 0 && (caps[0].effective & nice);
	caps[0] = {};
	caps[1] = {};
	if (kept) {
		caps[0].effective = nice;
		caps[0].permitted = nice;
		if (syscall(SYS_capset, &hdr, caps) == 0)
			return true;
		caps[0] = {};
	}
	syscall(SYS_capset, &hdr, caps);
	return false;
}

} /* namespace */

/* The cgroup.procs files a host steps in and out with, and its pids limits (Stepper). */
struct StepFiles {
	std::vector<int> in, out;
	std::vector<std::string> pids_dirs;
};

[[noreturn]] void charge_worker_main(StepFiles files);

namespace {

/* Is `fd` a directory of fusectl (a connection's)? */
bool is_connection_dir(int fd)
{
	struct stat st;
	struct statfs fs;
	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && fstatfs(fd, &fs) == 0 &&
	       fs.f_type == fusectl_magic;
}

/*
 * The daemon is gone: end its connection, which a host frozen with its
 * caller's cgroup would otherwise keep, every request on the mount waiting
 * until that cgroup is thawed. When the daemon ended it already (every way
 * it exits does), the directory is empty or holds an ended connection.
 */
void end_connection(int dir)
{
	int fd = openat(dir, "abort", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)!write(fd, "1", 1);
	close(fd);
}

/*
 * The connection `name`'s fusectl directory where fusectl is not mounted:
 * mounted in a mount namespace of this process's own, which it leaves at
 * once (the directory stays open; nothing shows on the host). -1 when it
 * cannot (not root).
 */
int open_connection_privately(const char *name)
{
	if (!name || std::strspn(name, "0123456789") != std::strlen(name) || !*name)
		return -1;
	int home = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (home < 0)
		return -1;
	int dir = -1;
	if (unshare(CLONE_NEWNS) == 0) {
		std::string path = fmt::format("/sys/fs/fuse/connections/{}", name);
		if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) == 0 &&
		    mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, nullptr) == 0)
			dir = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		(void)setns(home, CLONE_NEWNS); /* if not, only this process and its hosts see it */
	}
	close(home);
	return dir;
}

} /* namespace */

void charge_maker_main(const char *connection)
{
	/* 3: the socket to the daemon, 4: the connection's fusectl directory, if given. */
	int conn = is_connection_dir(maker_connection_fd) ? maker_connection_fd : -1;
	syscall(SYS_close_range, conn >= 0 ? maker_connection_fd + 1 : daemon_sock + 1, ~0U, 0);
	if (conn < 0)
		conn = open_connection_privately(connection);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Named for ps and top, not "exe" (it was started through /proc/self/exe). */
	prctl(PR_SET_NAME, "cgloopfs-hosts", 0, 0, 0);
	/* Hosts are collected by the kernel as they exit; the daemon watches their pidfds. */
	struct sigaction sa = {};
	sa.sa_handler = SIG_IGN;
	sa.sa_flags = SA_NOCLDWAIT;
	sigaction(SIGCHLD, &sa, nullptr);
	for (;;) {
		SpawnRequest req;
		int fds[4];
		size_t nfds = 0;
		ssize_t n = recv_blob_fds(daemon_sock, &req, sizeof(req), fds, nfds);
		if (n <= 0) { /* the daemon is gone */
			if (conn >= 0)
				end_connection(conn);
			_exit(0);
		}
		if (n != static_cast<ssize_t>(sizeof(req)) || nfds != 4) {
			for (size_t i = 0; i < nfds; i++)
				close(fds[i]);
			SpawnReply bad = {0, EINVAL};
			(void)send_blob(daemon_sock, &bad, sizeof(bad), nullptr, 0);
			continue;
		}
		int cgroup_fd = fds[0], memfd = fds[1], host_sock = fds[2], fuse_fd = fds[3];
		int pidfd = -1;
		struct clone_args args = {};
		args.flags = CLONE_INTO_CGROUP | CLONE_PIDFD;
		args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
		args.exit_signal = SIGCHLD;
		args.cgroup = static_cast<uint64_t>(cgroup_fd);
		long pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid == 0) {
			/* The host: one thread, a copy of this small process; no exec needed. */
			close(daemon_sock);
			if (conn >= 0)
				close(conn);
			void *p = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
			auto *hdr = p == MAP_FAILED ? nullptr : static_cast<HostHeader *>(p);
			/*
			 * Where it steps out to when idle: the maker's cgroups (its
			 * v1 ones are still this process's own, until it joins).
			 */
			StepFiles files;
			auto open_procs = [](const std::string &d) {
				return open((d + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
			};
			auto maker = cgroup::placement_of(getppid());
			auto self = cgroup::placement_of(getpid());
			/*
			 * Only the hierarchies where the caller's cgroup is not the
			 * maker's: a move costs even when it goes nowhere.
			 */
			std::vector<std::string> theirs;
			for (const char *d = req.paths;
			     d < req.paths + sizeof(req.paths) && theirs.size() < req.dirs;
			     d += std::strlen(d) + 1)
				theirs.emplace_back(d);
			auto shared = [&](const std::string &d) {
				return self && std::find(self->v1_dirs.begin(), self->v1_dirs.end(),
							 d) != self->v1_dirs.end();
			};
			bool same_v2 = maker && self && maker->v2_dir == self->v2_dir;
			if (maker && self && !maker->v2_dir.empty()) {
				if (!same_v2)
					files.out.push_back(open_procs(maker->v2_dir));
				for (const auto &d : self->v1_dirs)
					if (std::find(theirs.begin(), theirs.end(), d) ==
					    theirs.end())
						files.out.push_back(open_procs(d));
			}
			/*
			 * Where it comes from, for the pids limits it is counted in
			 * already (cgroup::pids_limits): the maker's v2 cgroup, its
			 * own v1 ones.
			 */
			std::vector<std::string> from;
			if (maker)
				from.push_back(maker->v2_dir);
			if (self)
				from.insert(from.end(), self->v1_dirs.begin(), self->v1_dirs.end());
			if (!same_v2) {
				files.in.push_back(
					openat(cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC));
				/* Made in it (CLONE_INTO_CGROUP checked its pids.max); stepping in is a move. */
				if (self)
					files.pids_dirs = cgroup::pids_limits(self->v2_dir, from);
			}
			/*
			 * It cannot join the caller's v1 cgroup `i` (-1: stay in its
			 * v2 one): out of those it joined (not counted in their
			 * pids.max while it exits), and tell the daemon.
			 */
			auto fail = [&](int32_t i, int error) {
				move_out(files.out);
				if (hdr) {
					hdr->error = error;
					hdr->failed_dir = i;
					hdr->state.store(host_failed);
					futex_wake(&hdr->state);
				}
				_exit(2);
			};
			/*
			 * It serves from threads of its own: one that cannot have a
			 * first one under the cgroup's pids.max would serve nothing,
			 * and only take the cgroup's last task.
			 */
			/*
			 * Itself and a first thread, leaving as much room again
			 * (see begin_request()); made in the cgroup, it counts
			 * there already.
			 */
			constexpr unsigned first_tasks = 2;
			if (!cgroup::pids_room(files.pids_dirs, 2 * first_tasks - 1))
				fail(-1, EAGAIN);
			const char *dir = req.paths;
			for (uint32_t i = 0; i < req.dirs; i++) {
				/*
				 * A v1 pids cgroup lets a process in over its pids.max
				 * (moving is not forking): a host that would make it go
				 * over (itself and a first thread) stays out, as its
				 * fork would have failed on cgroup v2; and if others got
				 * in meanwhile, it leaves.
				 */
				auto at = static_cast<int32_t>(i);
				auto limits = cgroup::pids_limits(dir, from);
				if (!cgroup::pids_room(limits, 2 * first_tasks))
					fail(at, EAGAIN);
				int fd = open_procs(dir);
				if (fd >= 0 && !shared(dir))
					files.in.push_back(fd);
				if (fd < 0 || write(fd, "0", 1) != 1)
					fail(at, errno);
				if (!cgroup::pids_room(limits, 2 * first_tasks - 1))
					fail(at, EAGAIN);
				files.pids_dirs.insert(files.pids_dirs.end(), limits.begin(),
						       limits.end());
				if (shared(dir))
					close(fd); /* nothing to step in and out of there */
				dir += std::strlen(dir) + 1;
			}
			if (p != MAP_FAILED)
				munmap(p, page);
			struct sigaction dfl = {};
			dfl.sa_handler = SIG_DFL;
			sigaction(SIGCHLD, &dfl, nullptr);
			/*
			 * The stepping files go from 6 on: out of the way first (one
			 * may be 3, 4 or 5), then 3, 4 and 5, then them.
			 */
			bool all = true;
			for (auto *v : {&files.in, &files.out})
				for (int &fd : *v) {
					int high = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 256);
					if (fd >= 0)
						close(fd);
					fd = high;
					all &= high >= 0;
				}
			if (!all)
				files.out.clear(); /* cannot step out: stays in, as before */
			if (dup2(host_sock, daemon_sock) < 0 || dup2(fuse_fd, host_fuse_fd) < 0 ||
			    dup2(memfd, host_shm_fd) < 0)
				_exit(2);
			int next = host_shm_fd + 1;
			for (auto *v : {&files.in, &files.out})
				for (int &fd : *v) {
					if (fd < 0)
						continue;
					if (dup2(fd, next) < 0)
						_exit(2);
					close(fd);
					fd = next++;
				}
			charge_worker_main(std::move(files));
		}
		SpawnReply reply = {static_cast<int32_t>(pid > 0 ? pid : 0), pid > 0 ? 0 : errno};
		close(cgroup_fd);
		close(memfd);
		close(host_sock);
		close(fuse_fd);
		(void)send_blob(daemon_sock, &reply, sizeof(reply), pid > 0 ? &pidfd : nullptr,
				pid > 0 ? 1 : 0);
		if (pid > 0)
			close(pidfd);
	}
}

void charge_worker_main(StepFiles files)
{
	/*
	 * 3: the socket to the daemon, 4: /dev/fuse, 5: the shared file, then
	 * the cgroup.procs files to step in and out with. Nothing else.
	 */
	auto first_free =
		static_cast<unsigned>(host_shm_fd + 1 + files.in.size() + files.out.size());
	syscall(SYS_close_range, first_free, ~0U, 0);
	prctl(PR_SET_NAME, "cgloopfs-host", 0, 0, 0);
	HostState h;
	h.step.in = std::move(files.in);
	h.step.out = std::move(files.out);
	h.step.pids_dirs = std::move(files.pids_dirs);
	h.step.last_done_ns.store(monotonic_ns());
	void *p = mmap(nullptr, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, host_shm_fd, 0);
	if (p == MAP_FAILED)
		_exit(3);
	h.shm = static_cast<char *>(p);
	auto *hdr = reinterpret_cast<HostHeader *>(h.shm);
	h.header = hdr;
	h.step.idle_delay_ns = hdr->idle_delay_ns;
	h.look_idle = drop_privileges(hdr->look_idle != 0);
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGTERM);
	sigdelset(&all, SIGINT);
	/* Slot threads take no signal; SIGTERM ends the process at once. */
	pthread_sigmask(SIG_SETMASK, &all, nullptr);
	hdr->state.store(host_serving, std::memory_order_release);
	futex_wake(&hdr->state);

	Members members;
	members.start();
	for (;;) {
		if (!members.wait_for_message(daemon_sock))
			leave(h); /* the cgroup's other members are gone */
		Message m;
		int fds[4] = {-1, -1, -1, -1};
		size_t nfds = 0;
		ssize_t n = recv_blob_fds(daemon_sock, &m, sizeof(m), fds, nfds);
		if (n <= 0)
			let_go_of_the_connection(); /* the daemon is gone, or let us go */
		for (size_t i = 2; i < nfds; i++)
			close(fds[i]);
		if (n != static_cast<ssize_t>(sizeof(m)))
			continue;
		switch (m.type) {
		case Msg::image: {
			UniqueFd fd(fds[0]), buffered(nfds > 1 ? fds[1] : -1);
			if (!fd)
				break;
			auto img = image::BackingImage::replica(m.info, std::move(fd),
								std::move(buffered));
			{
				std::lock_guard<std::mutex> l(h.mutex);
				h.images[m.serial] = std::move(img);
			}
			h.arrived.notify_all();
			break;
		}
		case Msg::arena: {
			/* If it cannot be mapped (an address space limit), the daemon copies. */
			UniqueFd fd(fds[0]);
			struct stat st = {};
			void *mapped = MAP_FAILED;
			if (fd && fstat(fd.get(), &st) == 0 && st.st_size > 0)
				mapped = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ,
					      MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
			if (mapped == MAP_FAILED) {
				h.header->arena.store(2, std::memory_order_release);
				break;
			}
			h.arena_size = static_cast<size_t>(st.st_size);
			h.arena.store(static_cast<const char *>(mapped), std::memory_order_release);
			h.header->arena.store(1, std::memory_order_release);
			break;
		}
		case Msg::forget: {
			std::shared_ptr<image::BackingImage> gone;
			std::lock_guard<std::mutex> l(h.mutex);
			auto it = h.images.find(m.serial);
			if (it != h.images.end()) {
				gone = std::move(it->second);
				h.images.erase(it);
			}
			break;
		}
		case Msg::start: {
			if (m.slot >= host_slots)
				break;
			SlotControl *c = slot_control(h, m.slot);
			try {
				std::thread(host_thread, std::ref(h), m.slot).detach();
			} catch (...) {
				/* No thread (the cgroup's pids.max): the daemon serves this slot. */
				c->ready.store(2, std::memory_order_release);
				futex_wake(&c->ready);
			}
			break;
		}
		}
	}
}

} /* namespace cgloopfs::fuse */
