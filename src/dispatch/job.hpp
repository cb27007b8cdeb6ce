/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Job: one unit of work the dispatcher queues and a worker runs. Knows
 * nothing of FUSE. The owner (the FUSE front) embeds it in a pooled request.
 *
 * Life of a job: submit() -> queued -> run() on a worker thread (which does
 * the I/O and answers the caller) -> release(). cancel() may answer early
 * (interrupt, timeout, shutdown); run() must then not answer again. The
 * dispatcher calls release() exactly once, after run() has returned or
 * instead of it, and never touches the job afterwards. Its public part is
 * what the owner sets and calls; the queue links, times and pins are the
 * dispatcher's own (Job::work_).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DISPATCH
#error "dispatch/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/aligned_buffer.hpp"

namespace cgloopfs::dispatch {

/*
 * Where a worker's jobs are carried out when not on its own threads: a
 * process of the worker's cgroup that the owner made for it (see
 * Dispatcher::HostFn; fuse/charge.hpp). The dispatcher only holds it, shows
 * its pid, and asks the owner for another when it is dead. Thread-safe.
 */
class Host
{
public:
	virtual ~Host() = default;
	virtual int pid() const noexcept = 0;
	/* The process is gone (killed, exited): the worker needs a new one. */
	virtual bool dead() const noexcept = 0;
	/* dead(), or killed and unable to finish exiting; costs a read of /proc: call rarely. */
	virtual bool dying() const noexcept = 0;
	/* The job posted to `slot` (Job::post()) is done there: collect() it. Lock-free. */
	virtual bool finished(unsigned slot) const noexcept = 0;
	/* The caller of the job posted to `slot` has its answer, or is about to. Lock-free. */
	virtual bool answering(unsigned slot) const noexcept = 0;
	/*
	 * The job posted to `slot` has waited a while: if the host has not
	 * taken it yet, wake another of its threads. Lock-free.
	 */
	virtual void nudge(unsigned slot) noexcept { (void)slot; }
	/*
	 * The host takes nothing new: it is leaving (its cgroup emptied) and
	 * only finishes what it has begun. The worker makes a new one for new
	 * jobs. Lock-free.
	 */
	virtual bool retired() const noexcept { return false; }
	/*
	 * retired(), and the job posted to `slot` is neither begun nor done:
	 * the host never will; collect() it as lost, and run it here. Lock-free.
	 */
	virtual bool refused(unsigned slot) const noexcept
	{
		(void)slot;
		return false;
	}
	/* A thread of the host has taken the job posted to `slot` (or it is done). Lock-free. */
	virtual bool taken(unsigned slot) const noexcept
	{
		(void)slot;
		return true;
	}
	/*
	 * The caller closed a file, and the host could not be given the close
	 * (Worker::post_now()): leave the caller's cgroups as soon as nothing
	 * is being served. Lock-free.
	 */
	virtual void leave_when_idle() noexcept {}
};

/*
 * What a job sees of the worker thread running it: per-thread buffers it
 * may use while it runs, the worker's host and this thread's slot in it,
 * and answering(). Thread-bound: one per thread.
 */
class WorkerContext
{
public:
	AlignedBuffer data;    /* read results */
	AlignedBuffer scratch; /* read-modify-write of unaligned direct I/O */
	/* The worker's host while a job runs (nullptr: run it here), and this thread's slot. */
	Host *host = nullptr;
	unsigned slot = 0;

	/*
	 * Called by the job just before it answers: from here on this thread
	 * counts as free, so a caller's next request (which may arrive before
	 * the thread is back in its queue) does not start another thread.
	 */
	void answering() noexcept
	{
		if (finishing_ && !announced_) {
			finishing_->fetch_add(1, std::memory_order_relaxed);
			announced_ = true;
		}
	}

private:
	friend class Worker;
	/* The worker's bookkeeping of this thread; jobs never touch it. */
	std::atomic<unsigned> *finishing_ = nullptr; /* the worker's count */
	bool announced_ = false;
	bool yielding_ = false; /* the thread runs at a lower priority (see yield_cpu) */
};

struct CgroupStats;

/* uncounted: not in the statistics (a close: fuse/ops.cpp's op_flush, no I/O). */
enum class JobKind : uint8_t { read, write, sync, discard, other, uncounted };

/* What a finished job reports for the statistics. */
struct JobOutcome {
	JobKind kind = JobKind::other;
	uint64_t bytes = 0;
	bool failed = false;
	int64_t finished_ns =
		0; /* when it was answered, if not just now (a host's clock reading) */
};

class Job
{
public:
	virtual ~Job() = default;

	/* Do the work and answer the caller (unless cancel() answered first). */
	virtual JobOutcome run(WorkerContext &ctx) noexcept = 0;
	/*
	 * Answer the caller now with -err if nobody has; any thread, never with
	 * a dispatcher or worker lock held. True when this call answered.
	 */
	virtual bool cancel(int err) noexcept = 0;
	/*
	 * Answered already (e.g. interrupted while queued)? Called under a
	 * worker's mutex: must not block or take a lock.
	 */
	virtual bool answered() noexcept = 0;
	/* Give the job back to its owner. */
	virtual void release() noexcept = 0;
	/*
	 * A job whose caller may be told it is done (cancel(0)) when it is
	 * still running this long after it was submitted; 0: never. A flush:
	 * it only asks a host to step out (fuse/ops.cpp), and a close must not
	 * wait for a frozen or stuck one. Called under a worker's mutex.
	 */
	virtual int64_t done_after_ns() const noexcept { return 0; }

	/*
	 * The fast path of a worker with a host process: hand the job to
	 * `host`'s `slot` and return at once, on the submitting thread; the
	 * host does it and answers the caller. False when it cannot (the
	 * worker then queues it for its threads, which run() it). Called with
	 * no lock held.
	 */
	virtual bool post(Host &, unsigned /* slot */) noexcept { return false; }
	/*
	 * A posted job is finished (Host::finished()), or its host died first
	 * (`lost`): take the host's result, answer the caller if the host did
	 * not (a lost job not yet begun is run here, with `ctx`), and say how
	 * it went. Called once per posted job, with no lock held.
	 */
	virtual JobOutcome collect(Host &, unsigned /* slot */, WorkerContext &,
				   bool /* lost */) noexcept
	{
		return JobOutcome{};
	}

	/*
	 * The caller was interrupted at `now_ns` while the job ran: the
	 * dispatcher answers it EINTR if it is still running interrupt_grace
	 * later. Any thread.
	 */
	void interrupted_at(int64_t now_ns) noexcept
	{
		work_.interrupted_ns.store(now_ns, std::memory_order_relaxed);
	}

	/* Set by the owner before submit(); read by the dispatcher. */
	uint64_t cgroup_id = 0; /* 0: unknown, served by the root queue */
	int caller_pid = 0;	/* for naming a new worker's cgroup */

private:
	friend class Dispatcher;
	friend class Worker;
	friend class ExpiredJobs;

	/*
	 * The dispatcher's bookkeeping of a submitted job, which its owner
	 * never sees. Part of the job so that queueing it allocates nothing.
	 */
	struct Bookkeeping {
		/* Set by submit(), then read by the serving worker. */
		int64_t submitted_ns = 0;
		/* When the caller was interrupted while the job ran (0: not). */
		std::atomic<int64_t> interrupted_ns{0};
		/*
		 * Links, guarded by the serving Worker::mutex_ (the analysis
		 * cannot name another object's mutex): the queue uses next,
		 * the in-flight list next and prev.
		 */
		Job *next = nullptr;
		Job *prev = nullptr;
		/*
		 * Taken out of the worker's hands by expire() or a stuck
		 * stop_and_join(), to be answered after every lock is released
		 * (see ExpiredJobs): the list link and the error to answer
		 * (0: answered already, only release it).
		 */
		Job *expired_next = nullptr;
		int expire_err = 0;
		bool expire_dropped = false; /* out of the queue: released by the expirer */
		/* Whose timeouts or interrupts to count when the expirer answers it (or none). */
		std::shared_ptr<CgroupStats> expire_stats;
		/*
		 * A running job is pinned by its expirer (set under the
		 * worker's mutex) and marked finished by its worker thread;
		 * whichever of the two comes second releases it. 0 when idle.
		 */
		std::atomic<uint8_t> hold{0};
		/*
		 * Posted to a host (Worker::try_post): the host and its slot,
		 * kept until collected; slot -1 otherwise. `collecting`: a
		 * thread collects it now. Guarded by the serving Worker::mutex_.
		 */
		std::shared_ptr<Host> host;
		int slot = -1;
		bool collecting = false;
		/* Being handed over (post() runs): not to be collected yet. */
		std::atomic<bool> posting{false};
	};
	static constexpr uint8_t held_pinned = 1, held_finished = 2;
	Bookkeeping work_;
};

} /* namespace cgloopfs::dispatch */
