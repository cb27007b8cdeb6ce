/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Charging a cgroup's I/O to that cgroup (charge=cgroup): the host process
 * of a cgroup worker.
 *
 * The kernel bills block I/O, page cache and CPU time to the cgroups of the
 * task doing the work, and memory to the owner of the address space. So a
 * cgroup worker gets a process of its own (ChargeHost): made by clone3()
 * straight into the caller's cgroup v2 (CLONE_INTO_CGROUP: never counted
 * anywhere else), joining the caller's cgroup v1 hierarchies (a hybrid
 * host's blkio, memory, cpu, pids, ...) before it runs anything, and then
 * exec'ing this program as `cgloopfs --charge-worker`. It reads and writes
 * the backing files and answers /dev/fuse itself, so the copies and the I/O
 * are the cgroup's.
 *
 * The daemon keeps everything else: the queue, timeouts, interrupts,
 * statistics, the images (the host gets each image's descriptors over a
 * socket the first time it needs it, and is told when the image is gone),
 * and the state images share (block lock, lost-write errors, sizes).
 *
 * Hand-off, per request, through a shared memory file of slots: the daemon
 * thread that has the request (the session thread that read it, through
 * Worker::try_post, or a worker thread for what must wait: fsync...) writes
 * it into a free slot (a write's payload stays where the kernel put it, in
 * the PayloadPool arena the host maps, or is copied into the slot's
 * buffer: a small one, one beyond the arena's room, or any while the host
 * has not mapped the arena or cannot), bumps the slot's `posted` word and
 * sets the slot's bit in the host's queue. Any of the host's threads (one
 * per slot used) takes it, does the operation on its replica of the image
 * (BackingImage::replica()), takes the slot's answer word, answers the
 * kernel, and bumps `done`; the daemon collects it later, or waits on
 * `done`. A post wakes a sleeping host thread only when no thread looking
 * for work or serving will come to it soon (HostHeader). A flush (a close)
 * is not served inside the caller's cgroups: the host steps out, then
 * answers it (serve_flush()).
 *
 * Answering once: the answer word starts open; the host takes it before
 * answering (claim_worker), the daemon (an interrupt, a timeout) before it
 * answers instead (claim_daemon, see claim_remote()). Whoever loses does
 * not answer. A slot is reused only after its `done`, so a late answer
 * never lands on another request; the kernel's request ids are never
 * reused either. A host that dies has its pending requests answered EIO
 * within wait_step (a second answer to a request it did answer is refused
 * by the kernel, harmlessly), and the worker gets a new host on its next
 * request.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_FUSE
#error "fuse/ is not a layer below this one (see src/meson.build)"
#endif

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include <sys/types.h>

#include "common/mutex.hpp"
#include "common/unique_fd.hpp"
#include "dispatch/job.hpp"
#include "image/backing_image.hpp"
#include "payload_pool.hpp"

namespace cgloopfs::fuse {

struct IoParams;

inline constexpr uint32_t claim_open = 0, claim_worker = 1, claim_daemon = 2;

/* Take a slot's answer word for the daemon: true when nobody had it. */
inline bool claim_remote(std::atomic<uint32_t> &word)
{
	uint32_t open = claim_open;
	return word.compare_exchange_strong(open, claim_daemon, std::memory_order_acq_rel);
}

/* The host's slots: at most worker_depth's maximum. */
inline constexpr unsigned host_slots = 64;
/* A host's idle delay where closes step it out (cache=direct; charge.cpp: Stepper). */
inline constexpr int64_t closes_idle_delay_ns = 20 * 1000000LL;

class PayloadPool;

class ChargeHost final : public dispatch::Host
{
public:
	~ChargeHost() override;
	ChargeHost(const ChargeHost &) = delete;
	ChargeHost &operator=(const ChargeHost &) = delete;

	int pid() const noexcept override { return pid_; }
	bool dead() const noexcept override;
	/* dead(), or killed and unable to finish exiting (a thread stuck in I/O). */
	bool dying() const noexcept override;
	bool finished(unsigned slot) const noexcept override;
	bool answering(unsigned slot) const noexcept override;
	void nudge(unsigned slot) noexcept override;
	bool taken(unsigned slot) const noexcept override;
	bool retired() const noexcept override;
	bool refused(unsigned slot) const noexcept override;
	void leave_when_idle() noexcept override;

	/* How a call went. */
	struct Answer {
		bool completed = false;	 /* false: the host died before it finished */
		bool started = false;	 /* not completed: whether the host had begun it */
		int64_t value = 0;	 /* bytes done, or -errno */
		bool replied = false;	 /* the host answered the kernel */
		int reply_err = 0;	 /* -errno of that answer (a mapped range that shrank) */
		int write_error = 0;	 /* -errno of a failed backing write, for the next sync */
		int64_t finished_ns = 0; /* when the host was done (its CLOCK_MONOTONIC) */
	};

	/*
	 * Make `slot` ready and `img` known to the host. False when it cannot
	 * (no thread for the slot: the cgroup's pids.max; the host is dead):
	 * the caller then runs the request in the daemon.
	 */
	bool prepare(unsigned slot, const image::BackingImage &img) CGL_EXCLUDES(mutex_);
	/* Has `slot` a thread of the host already (prepare() would not wait for one)? Lock-free. */
	bool slot_ready(unsigned slot) const noexcept;
	/* The answer word of `slot`, opened for the next call. */
	std::atomic<uint32_t> *open_claim(unsigned slot);
	/*
	 * Have the host do `p` on `img` (request `unique` of the kernel) in
	 * `slot` (prepared, its claim word open), and return at once.
	 */
	void post(unsigned slot, const image::BackingImage &img, const IoParams &p,
		  uint64_t unique);
	/* Wait until the host has done what was posted to `slot`, or died. */
	Answer wait(unsigned slot);
	/* What the host made of `slot`'s request: finished(), or `lost` (it is dying()). */
	Answer result(unsigned slot, bool lost) const;
	/* post(), then wait(). */
	Answer call(unsigned slot, const image::BackingImage &img, const IoParams &p,
		    uint64_t unique)
	{
		post(slot, img, p, unique);
		return wait(slot);
	}

	/*
	 * The errors of failed writes of image `serial` that hosts did and
	 * the daemon has not collected yet (the callers have them already):
	 * taken, for an fsync to report. The first, or 0.
	 */
	static int take_write_errors(uint64_t serial);

	/* The image of serial `serial` is gone: tell every host that has it. */
	static void forget_everywhere(uint64_t serial);

private:
	friend class HostMaker;
	ChargeHost() = default;
	bool poll_dead() const noexcept; /* dead(), asking the pidfd now */
	int take_slot_write_error(unsigned slot) const;
	bool send_image(const image::BackingImage &img) CGL_REQUIRES(mutex_);
	void send_forget(uint64_t serial) CGL_EXCLUDES(mutex_);
	bool start_slot(unsigned slot) CGL_REQUIRES(mutex_);
	bool send_arena() CGL_REQUIRES(mutex_);
	struct SlotControl *control(unsigned slot) const;
	char *buffer(unsigned slot) const;

	pid_t pid_ = 0;
	UniqueFd pidfd_;
	UniqueFd socket_;     /* SOCK_SEQPACKET to the host: images, forgets, slot starts */
	char *shm_ = nullptr; /* the shared file, mapped */
	size_t shm_len_ = 0;
	mutable std::atomic<bool> dead_{false};
	mutable std::atomic<int64_t> last_poll_ns_{0}; /* dead() polls the pidfd this rarely */
	/* The sequence number of each slot's last post (the shared `posted` is the host's too). */
	std::array<std::atomic<uint32_t>, host_slots> seq_{};

	/* A leaf (see dispatch/dispatcher.hpp), under the host registry's mutex. */
	Mutex mutex_;
	std::unordered_set<uint64_t> images_ CGL_GUARDED_BY(mutex_); /* serials passed */
	uint64_t started_ CGL_GUARDED_BY(mutex_) = 0;		     /* slots asked for */
	const PayloadPool *payloads_ = nullptr; /* whose arena the host maps (send_arena) */
	bool arena_sent_ CGL_GUARDED_BY(mutex_) = false;
};

/*
 * Makes host processes: a small single-threaded copy of this program
 * (`cgloopfs --charge-maker`, started on first use) forks each one straight
 * into its cgroup, which costs far less than forking the daemon and exec'ing
 * (a host costs a clone3, no exec). The hosts are its children; it exits
 * when the daemon does. One per mount; thread-safe.
 */
class HostMaker
{
public:
	/*
	 * Its hosts answer on `fuse_fd`, and read write payloads out of
	 * `payloads`' arena. They step out of their caller's cgroups after
	 * being idle for `idle_delay_ns` (0: as long as a move costs, for
	 * mounts whose closes do not reach them).
	 *
	 * `connection_dir`: the connection's fusectl directory (its inode
	 * `connection_ino`, noted while the mount was surely ours), or "" where
	 * fusectl is not mounted. The maker, which outlives the daemon in the
	 * daemon's cgroups, ends the connection there when the daemon is gone:
	 * a host frozen with its caller's cgroup holds /dev/fuse, and would
	 * keep the connection, with no one to read it, until it is thawed.
	 * Where fusectl is not mounted, the maker mounts it where only it sees
	 * it, and finds the connection by `connection_id` (its directory's
	 * name: the mount's device number; 0: unknown).
	 */
	HostMaker(int fuse_fd, const PayloadPool &payloads, int64_t idle_delay_ns,
		  std::string connection_dir = {}, ino_t connection_ino = 0,
		  unsigned long connection_id = 0);
	~HostMaker();
	HostMaker(const HostMaker &) = delete;
	HostMaker &operator=(const HostMaker &) = delete;

	/*
	 * A host process in the cgroups of process `caller` (v2 and v1), ready
	 * to serve. nullptr when it cannot be made or placed; `error` then
	 * says why (pids.max, a threaded or removed cgroup, no cgroup v2...).
	 */
	std::shared_ptr<ChargeHost> spawn(pid_t caller, std::string &error) CGL_EXCLUDES(mutex_);

private:
	bool start_locked(std::string &error) CGL_REQUIRES(mutex_);

	const int fuse_fd_;
	const PayloadPool &payloads_;
	const int64_t idle_delay_ns_;
	/* The cpu cgroup of the daemon's own threads (cgroup::cpu_group()). */
	const std::string cpu_group_;
	const std::string connection_dir_;
	const ino_t connection_ino_;
	const unsigned long connection_id_;
	Mutex mutex_; /* one spawn at a time; a leaf */
	UniqueFd socket_ CGL_GUARDED_BY(mutex_);
	UniqueFd pidfd_ CGL_GUARDED_BY(mutex_);
};

/* Is this the command line of the host maker? */
bool is_charge_maker(int argc, char **argv);
/*
 * The host maker's main: `cgloopfs --charge-maker [CONNECTION]` (argv[2]:
 * the connection's fusectl name, or nullptr). Never returns.
 */
[[noreturn]] void charge_maker_main(const char *connection);

} /* namespace cgloopfs::fuse */
