/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Job: one unit of work the dispatcher queues and a worker runs. Knows
 * nothing of FUSE. The owner (the FUSE front) embeds it in a pooled request.
 *
 * Life of a job: submit() -> queued -> run() on a worker thread (which does
 * the I/O and answers the caller) -> release(). cancel() may answer early
 * (interrupt, shutdown); run() must then not answer again. The dispatcher
 * calls release() exactly once, after run() has returned or instead of it,
 * and never touches the job afterwards.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_DISPATCH
#error "dispatch/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <cstdint>

#include "common/aligned_buffer.hpp"

namespace cgloopfs::dispatch {

/* Per-thread buffers a job may use while it runs on that thread. */
struct WorkerContext {
	AlignedBuffer data;    /* read results */
	AlignedBuffer scratch; /* read-modify-write of unaligned direct I/O */

	/*
	 * Called by the job just before it answers: from here on this thread
	 * counts as free, so a caller's next request (which may arrive before
	 * the thread is back in its queue) does not start another thread.
	 */
	void answering()
	{
		if (finishing && !announced) {
			finishing->fetch_add(1, std::memory_order_relaxed);
			announced = true;
		}
	}

	std::atomic<unsigned> *finishing = nullptr; /* the worker's count */
	bool announced = false;
	bool yielding = false; /* the thread runs at a lower priority (see yield_cpu) */
};

enum class JobKind : uint8_t { read, write, sync, discard, other };

/* What a finished job reports for the statistics. */
struct JobOutcome {
	JobKind kind = JobKind::other;
	uint64_t bytes = 0;
	bool failed = false;
};

class Job
{
public:
	virtual ~Job() = default;

	/* Do the work and answer the caller (unless cancel() answered first). */
	virtual JobOutcome run(WorkerContext &ctx) noexcept = 0;
	/*
	 * Answer the caller now with -err if nobody has; any thread, under
	 * worker locks. True when this call answered.
	 */
	virtual bool cancel(int err) noexcept = 0;
	/* Answered already (e.g. interrupted while queued)? */
	virtual bool answered() noexcept = 0;
	/* Give the job back to its owner. */
	virtual void release() noexcept = 0;

	uint64_t cgroup_id = 0; /* 0: unknown, served by the root queue */
	int caller_pid = 0;	/* for naming a new worker's cgroup */
	int64_t submitted_ns = 0;
	/*
	 * When the caller was interrupted while the job ran (0: not): the
	 * dispatcher answers it EINTR if it is still running a while later.
	 */
	std::atomic<int64_t> interrupted_ns{0};

private:
	friend class Worker;
	/* Links, guarded by the serving worker's mutex: the queue uses next_,
	 * the in-flight list next_ and prev_. */
	Job *next_ = nullptr;
	Job *prev_ = nullptr;
	bool expired_ = false; /* dropped from the queue by expire() for its deadline */
};

} /* namespace cgloopfs::dispatch */
