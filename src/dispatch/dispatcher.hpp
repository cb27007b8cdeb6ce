/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dispatcher: loop.c's "worker per cgroup" in userspace.
 *
 * submit() keys a job by its caller's cgroup and queues it to that cgroup's
 * Worker, creating the worker on the cgroup's first job. Jobs with no known
 * cgroup, and every job whose worker cannot be made (max_workers reached,
 * thread creation failed), go to the root worker: a job is never failed
 * because dispatch could not make a worker. Workers idle for idle_timeout
 * are reaped (their threads end, their memory is freed); their statistics
 * stay. In DispatchMode::single everything goes to the root worker.
 *
 * A Worker serves its queue FIFO with up to `depth` threads, so one
 * cgroup's parallel requests run in parallel; workers never wait on each
 * other. Reaped workers count against max_workers until their threads are
 * joined, so the threads never exceed max_workers * worker_depth plus the
 * root worker's.
 *
 * When worker creation starts failing, and when it works again, reap()
 * tells the on_spawn_trouble() callback once, so the daemon logs each
 * episode once rather than per request.
 *
 * Thread-safe. The locks of dispatch/ and of the FUSE request path, in the
 * order they may be taken (a lock is only ever taken with none of the later
 * ones held):
 *
 *   1. Dispatcher::mutex_ (shared or exclusive)
 *   2. Worker::mutex_, of one worker at a time
 *   -  leaves, each taken with nothing of ours held, or under 1 and 2
 *      never: Dispatcher::reaper_mutex_, fuse::IoRequest::mutex_,
 *      fuse::RequestPool::mutex_, fuse::PayloadPool::mutex_, the log's
 *      mutex (log::RateLimit)
 *
 * No other lock is taken under 1 or 2: jobs are run, answered (Job::cancel,
 * which replies to FUSE) and released with neither held. Job::answered()
 * is the one job call made under 2, and takes no lock. The FUSE request
 * code replies with none of its own locks held; libfuse may call
 * IoRequest's interrupt handler with its own request lock held, before
 * IoRequest::mutex_. Clang checks what it can (-Wthread-safety: the
 * CGL_GUARDED_BY members and CGL_REQUIRES/CGL_EXCLUDES functions below).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DISPATCH
#error "dispatch/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "clock.hpp"
#include "common/log.hpp"
#include "common/mutex.hpp"
#include "job.hpp"
#include "stats.hpp"

namespace cgloopfs::dispatch {

enum class Mode { cgroup, single };

/*
 * The daemon sets mode, idle_timeout, max_workers, worker_depth and
 * request_timeout from its -o options (fuse/session.cpp's dispatch_config()),
 * whose defaults and ranges live once, in the rows of
 * config/mount_options.cpp; the values here serve code that builds a
 * Dispatcher directly (the unit tests).
 */
struct Config {
	Mode mode = Mode::cgroup;
	int64_t idle_timeout_ns = 60LL * 1000000000;
	unsigned max_workers = 64;
	unsigned worker_depth = 4;
	/* Run a reaper thread (tests with a ManualClock call reap() instead). */
	bool reaper_thread = true;
	/* At most this many statistics entries are kept (oldest idle dropped first). */
	size_t max_stats = 4096;
	/* A job unanswered this long is answered EIO (0: never). */
	int64_t request_timeout_ns = 0;
	/* A running job whose caller was interrupted this long ago is answered EINTR. */
	int64_t interrupt_grace_ns = 1000000000;
};

enum class WorkerState { active, idle };

/* A point-in-time view of one worker, for `cgloopctl workers`. */
struct WorkerInfo {
	uint64_t cgroup_id;
	std::string path;
	std::string unit;    /* "-" when none */
	std::string machine; /* "-" when none */
	bool root;
	WorkerState state;
	size_t queued;
	size_t in_flight;
	size_t threads;
	int pid;      /* of the worker's host process; 0: its threads are the daemon's */
	bool charged; /* served from inside the cgroup (a host process) */
	uint64_t served;
	int64_t last_active_ns;
};

/* Totals of the dispatcher, for `cgloopctl stats`. */
struct DispatchTotals {
	uint64_t workers_created = 0;
	uint64_t workers_reaped = 0;
	uint64_t root_fallbacks = 0; /* jobs of a known cgroup served by the root queue */
	uint64_t spawn_failures = 0;
	uint64_t timeouts = 0;	  /* jobs answered EIO at request_timeout */
	uint64_t interrupted = 0; /* running jobs answered EINTR after an interrupt */
};

/* Worker creation began failing, or works again; see on_spawn_trouble(). */
struct SpawnTrouble {
	bool failing;	   /* true: began failing; false: a worker was made again */
	int error;	   /* errno of the latest failure */
	std::string path;  /* cgroup of the latest failure */
	uint64_t failures; /* creations that failed in this episode so far */
	std::string unit = "-", machine = "-"; /* of that cgroup */
};

class ExpiredJobs;
class Worker;

class Dispatcher
{
public:
	/*
	 * Names a cgroup for display (its path, unit and machine), from a job of
	 * it (called on worker creation, with no lock held).
	 */
	using PathFn = std::function<CgroupName(const Job &)>;
	/*
	 * Makes the host process of a new cgroup worker, from a job of the
	 * cgroup; nullptr: the worker serves on threads of its own, as
	 * without one. Called with no lock held, on worker creation and when
	 * a worker's host died.
	 */
	using HostFn = std::function<std::shared_ptr<Host>(const Job &)>;

	Dispatcher(Config config, const Clock &clock, PathFn path_of);
	~Dispatcher();
	Dispatcher(const Dispatcher &) = delete;
	Dispatcher &operator=(const Dispatcher &) = delete;

	/* Start the root worker (and the reaper). False if no thread could start. */
	[[nodiscard]] bool start() CGL_EXCLUDES(mutex_);

	/* Queue `job`; never blocks on I/O and never fails. */
	void submit(Job *job) CGL_EXCLUDES(mutex_);
	/*
	 * Hand `job` to the host process of its cgroup's worker if it can take
	 * it now; false (the job untouched: the caller answers it) otherwise.
	 * Never queued behind other jobs: for what only a host needs to see,
	 * and must not wait on a stalled one (a flush: fuse/ops.cpp).
	 */
	[[nodiscard]] bool submit_hosted(Job *job) CGL_EXCLUDES(mutex_);

	/* Reap workers idle for at least idle_timeout; returns how many. */
	size_t reap() CGL_EXCLUDES(mutex_);

	/*
	 * Answer the jobs past request_timeout (EIO) and the running jobs
	 * interrupted more than interrupt_grace ago (EINTR); queued ones are
	 * dropped from their queue. The reaper thread calls it every 250 ms.
	 */
	void expire() CGL_EXCLUDES(mutex_);

	/*
	 * Stop: no new jobs, every queued job runs, every worker is joined. Jobs
	 * still running after `grace_ns` are cancelled with EIO and their
	 * threads left behind; returns false in that case.
	 */
	bool shutdown(int64_t grace_ns) CGL_EXCLUDES(mutex_);

	std::vector<WorkerInfo> workers() const CGL_EXCLUDES(mutex_);
	std::vector<std::shared_ptr<const CgroupStats>> stats() const CGL_EXCLUDES(mutex_);
	DispatchTotals totals() const CGL_EXCLUDES(mutex_);
	/* A copy of the current settings (set_limits may change them). */
	Config config() const CGL_EXCLUDES(mutex_);
	Mode mode() const { return mode_; } /* fixed for the dispatcher's life */

	/* Change the limits of a running dispatcher (control: `set`). */
	void set_limits(int64_t idle_timeout_ns, unsigned max_workers, unsigned worker_depth)
		CGL_EXCLUDES(mutex_);

	/* Test hook: make the next `n` worker thread creations fail. */
	void fail_next_spawns(unsigned n);

	/*
	 * Set before start(). reap() (the reaper thread) calls `fn`, with no lock
	 * held, when worker creations failed since its last run and no episode
	 * was open (failing), and when workers were made again with no failure
	 * since its last run (recovered): once per episode, not per request.
	 */
	using SpawnTroubleFn = std::function<void(const SpawnTrouble &)>;
	void on_spawn_trouble(SpawnTroubleFn fn) { on_spawn_trouble_ = std::move(fn); }
	/* Set before start(): how cgroup workers get a host process (none: threads only). */
	void host_maker(HostFn fn) { make_host_ = std::move(fn); }
	/*
	 * Set before start(): called by the reaper thread after each expiry
	 * pass (every 250 ms), with no lock held; the owner's own sweeps.
	 */
	using TickFn = std::function<void()>;
	void on_tick(TickFn fn) { on_tick_ = std::move(fn); }

private:
	friend class Worker;

	/*
	 * Where submit() puts a job of a cgroup with no worker in the map yet.
	 * being_made: another submitter makes the cgroup's worker (making_); wait.
	 */
	enum class Route { queued, refused, root, new_worker, being_made };
	Route route_locked(Job *job) CGL_REQUIRES(mutex_);
	/* Waits on made_cv_; mutex_ is held again on return. */
	void wait_made(ExclusiveLocker &l) CGL_REQUIRES(mutex_);
	/* The cgroup's worker is made (or not): off making_, and its waiters told. */
	void made_locked(uint64_t cgroup_id) CGL_REQUIRES(mutex_);
	/* Answer a job no worker takes (stopping): EIO. Call with no lock held. */
	static void refuse(Job *job) noexcept;
	std::shared_ptr<CgroupStats> stats_for(uint64_t id, const CgroupName &name)
		CGL_REQUIRES(mutex_);
	bool spawn_allowed();
	std::optional<SpawnTrouble> spawn_trouble_locked() CGL_REQUIRES(mutex_);
	void collect_expired_locked(int64_t now_ns, ExpiredJobs &out) CGL_REQUIRES_SHARED(mutex_);
	void reaper_main(std::stop_token stop) CGL_EXCLUDES(mutex_, reaper_mutex_);

	/* Fixed for the dispatcher's life: read without the lock. */
	const Mode mode_;
	const bool reaper_thread_;
	const int64_t request_timeout_ns_;
	const int64_t interrupt_grace_ns_;
	const Clock &clock_;
	PathFn path_of_;

	/*
	 * Shared by submit() looking up a worker and by expire(); exclusive
	 * for everything else. Lock order: first (see above).
	 */
	mutable SharedMutex mutex_;
	Config config_ CGL_GUARDED_BY(mutex_); /* set_limits() changes the limits */
	std::unordered_map<uint64_t, std::unique_ptr<Worker>> workers_ CGL_GUARDED_BY(mutex_);
	std::unordered_map<uint64_t, std::shared_ptr<CgroupStats>> stats_ CGL_GUARDED_BY(mutex_);
	DispatchTotals totals_ CGL_GUARDED_BY(mutex_);
	bool stopping_ CGL_GUARDED_BY(mutex_) = false;
	/* Reaped, threads not yet joined. */
	size_t reaping_ CGL_GUARDED_BY(mutex_) = 0;
	/* Spawn-failure episodes, as reap() last saw them. */
	bool spawn_trouble_ CGL_GUARDED_BY(mutex_) = false;
	uint64_t trouble_seen_failures_ CGL_GUARDED_BY(mutex_) = 0;
	uint64_t trouble_seen_created_ CGL_GUARDED_BY(mutex_) = 0;
	/* spawn_failures when the episode began */
	uint64_t trouble_base_failures_ CGL_GUARDED_BY(mutex_) = 0;
	/* Cgroups whose worker a submitter is making (mutex_ not held): few, one per submitter. */
	std::vector<uint64_t> making_ CGL_GUARDED_BY(mutex_);
	/* Tells the other submitters of those cgroups that making_ changed. */
	std::condition_variable_any made_cv_;
	int last_spawn_error_ CGL_GUARDED_BY(mutex_) = 0;
	CgroupName last_spawn_name_ CGL_GUARDED_BY(mutex_);
	SpawnTroubleFn on_spawn_trouble_; /* set before start(), then constant */
	HostFn make_host_;		  /* set before start(), then constant */
	TickFn on_tick_;		  /* set before start(), then constant */
	std::unique_ptr<Worker> root_;	  /* set by start(); released (leaked) when stuck */
	Worker *root_raw_ = nullptr;	  /* set by start(), then constant: submit() uses it */
	std::atomic<unsigned> depth_;
	std::atomic<int64_t> idle_timeout_ns_;
	std::atomic<unsigned> fail_spawns_{0};
	std::atomic<bool> stopped_{false};
	log::RateLimit timeout_log_{5, 10};

	/*
	 * The reaper's sleep: guards nothing, exists for reaper_cv_ (which
	 * waits on the reaper's stop_token too). A leaf: taken with no lock
	 * held, and nothing is taken under it.
	 */
	Mutex reaper_mutex_;
	std::condition_variable_any reaper_cv_;
	std::jthread reaper_;
};

} /* namespace cgloopfs::dispatch */
