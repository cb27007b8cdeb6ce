/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * IoRequest: one FUSE read, write, fsync or fallocate, taken out of the
 * libfuse callback so a worker can serve it after the callback has
 * returned: a small write's payload is copied, a large one's buffer is
 * adopted (PayloadPool). It owns its fuse_req_t and answers it
 * exactly once: from run() on the worker, or from cancel() (interrupt while
 * queued, shutdown), whichever comes first; the other one then does nothing.
 *
 * Objects come from a RequestPool and go back to it; their payload buffers
 * keep their capacity, so the hot path does not allocate.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_FUSE
#error "fuse/ is not a layer below this one (see src/meson.build)"
#endif

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include <fuse_lowlevel.h>

#include "charge.hpp"
#include "common/mutex.hpp"
#include "dispatch/job.hpp"
#include "image/backing_image.hpp"
#include "payload_pool.hpp"

namespace cgloopfs::fuse {

class RequestPool;

/* flush: a close(2); only a host process does something (it steps out of the caller's cgroups). */
enum class IoOp : uint8_t { read, write, fsync, fallocate, flush };

/* One operation on an image, as the daemon or a charged worker (charge.hpp) does it. */
struct IoParams {
	IoOp op = IoOp::read;
	uint64_t pos = 0;
	uint64_t len = 0;
	int mode = 0;		       /* fallocate */
	bool datasync = false;	       /* fsync */
	int lost_write_error = 0;      /* fsync by a replica: the daemon's kept write error */
	const char *payload = nullptr; /* write: `len` bytes */
};

/* What one operation came to: bytes done (a read's are `data`), or -errno. */
struct IoResult {
	int64_t value = 0;
	std::span<const char> data;
};

/*
 * Do `p` on `img`: a read's bytes land in `data`. Exceptions become
 * -errno. On a replica (BackingImage::replica()), fsync reports
 * p.lost_write_error instead of the image's own.
 */
IoResult perform_io(image::BackingImage &img, const IoParams &p, AlignedBuffer &data,
		    AlignedBuffer &scratch) noexcept;

/* Was a failed `op` the caller's own doing (not logged)? */
bool failure_is_callers(IoOp op, int err);
const char *op_name(IoOp op);

class IoRequest final : public dispatch::Job
{
public:
	explicit IoRequest(RequestPool &pool) : pool_(pool) {}

	/* Bind to a FUSE request; the image outlives the request (its file is open). */
	void prepare(fuse_req_t req, IoOp op, std::shared_ptr<image::BackingImage> image)
		CGL_EXCLUDES(mutex_);

	/* Keep the payload in the session thread's buffer `base` (a parked one of `pool`). */
	void adopt_payload(PayloadPool &pool, char *base);
	/* The write data: `len` bytes, in the adopted buffer or in `payload`. */
	const char *payload_data() const
	{
		return parked_ ? PayloadPool::write_payload(parked_) : payload.data();
	}

	dispatch::JobOutcome run(dispatch::WorkerContext &ctx) noexcept
		CGL_EXCLUDES(mutex_) override;
	bool cancel(int err) noexcept CGL_EXCLUDES(mutex_) override;
	/* Lock-free (called under a worker's mutex): reads state_ without mutex_. */
	bool answered() noexcept CGL_NO_THREAD_SAFETY_ANALYSIS override;
	void release() noexcept CGL_EXCLUDES(mutex_) override;
	/* A flush: answered done 20 ms after it was submitted, if its host has not. */
	int64_t done_after_ns() const noexcept override;
	/* charge=cgroup's fast path (Job::post): reads and writes the host does at once. */
	bool post(dispatch::Host &host, unsigned slot) noexcept CGL_EXCLUDES(mutex_) override;
	dispatch::JobOutcome collect(dispatch::Host &host, unsigned slot,
				     dispatch::WorkerContext &ctx, bool lost) noexcept
		CGL_EXCLUDES(mutex_) override;

	/*
	 * Register for FUSE interrupts: a request interrupted while queued is
	 * answered EINTR. Call after prepare(), before submitting; reads req_
	 * without mutex_, as only the preparing thread knows the request yet.
	 */
	void watch_interrupts() CGL_NO_THREAD_SAFETY_ANALYSIS;
	/*
	 * A caller that got an interrupt but was not dying (on_interrupt()):
	 * if it is dying now, act on the interrupt as if it came now. The
	 * reaper calls it on each tick (RequestPool::recheck_signalled()).
	 */
	void recheck_signalled() noexcept CGL_EXCLUDES(mutex_);

	uint64_t pos = 0;
	uint64_t len = 0;
	int mode = 0;	       /* fallocate */
	bool datasync = false; /* fsync */
	uint64_t unique = 0;   /* the kernel's id of the request (0: unknown, not charged) */
	AlignedBuffer payload; /* write data, `len` bytes, when not adopted */

private:
	/*
	 * prepare() -> queued -> run() takes it: running -> answered by run();
	 * queued or running -> answered by cancel() or an interrupt (a running
	 * read; a running write, fsync or fallocate is only marked, see
	 * on_interrupt()); whoever moves it to `answered` replies, the others
	 * do nothing. release() -> idle.
	 */
	enum class State : uint8_t { idle, queued, running, answered };

	IoParams params() const;
	/* The one way out of run(): map the errno, log once, answer once. */
	void complete(dispatch::WorkerContext &ctx, const IoResult &res,
		      dispatch::JobOutcome &out) noexcept CGL_EXCLUDES(mutex_);
	/* The errors and statistics of a result, whoever answered it. */
	void account(const IoResult &res, dispatch::JobOutcome &out) noexcept;
	/*
	 * Have the worker's host process do it and answer (charge.hpp). False
	 * when it cannot take it (no slot, the image cannot be passed): run()
	 * then does it here.
	 */
	bool run_hosted(dispatch::WorkerContext &ctx, dispatch::JobOutcome &out) noexcept
		CGL_EXCLUDES(mutex_);
	/*
	 * The daemon's part once the host is done (or died): libfuse's
	 * bookkeeping, statistics, errors kept for fsync. False when the host
	 * never began it (it left): the caller then does it here.
	 */
	bool finish_hosted(const ChargeHost::Answer &a, int lost_write_error,
			   dispatch::JobOutcome &out) noexcept CGL_EXCLUDES(mutex_);

	/* Take the right to answer: the request, or nullptr when someone already has. */
	fuse_req_t claim_answer() CGL_EXCLUDES(mutex_);
	bool answer_error(int err) CGL_EXCLUDES(mutex_);
	static void on_interrupt(fuse_req_t req, void *data);
	/*
	 * The interrupt of a dying caller: the request to answer `answer` now
	 * (with mutex_ released), or nullptr (a running write only marked, or
	 * answered already; see there).
	 */
	fuse_req_t interrupt_locked(int &answer) CGL_REQUIRES(mutex_);

	RequestPool &pool_;
	/*
	 * Guards req_ and state_ against interrupts and cancel() (the reaper).
	 * A leaf (see the lock order in dispatch/dispatcher.hpp): nothing is
	 * taken under it, and no reply is sent with it held; libfuse calls
	 * on_interrupt() with its request lock held, which comes before it.
	 */
	Mutex mutex_;
	fuse_req_t req_ CGL_GUARDED_BY(mutex_) = nullptr;
	uint64_t gen_ CGL_GUARDED_BY(mutex_) = 0; /* prepare()s so far: which request this is */
	/* The caller's thread, interrupted but not dying (0: none; see on_interrupt()). */
	int signalled_tid_ CGL_GUARDED_BY(mutex_) = 0;
	/*
	 * While a host process does the request: its slot's answer word, which
	 * whoever answers first takes (charge.hpp); nullptr otherwise.
	 */
	std::atomic<uint32_t> *remote_claim_ CGL_GUARDED_BY(mutex_) = nullptr;
	/* Written under mutex_; answered() reads it without (it only hints). */
	std::atomic<State> state_ CGL_GUARDED_BY(mutex_){State::idle};
	/* Set by prepare() before the job is submitted, then read-only until release(). */
	IoOp op_ = IoOp::read;
	/* Held until release(): the caller may close (RELEASE) before a host's answer is collected. */
	std::shared_ptr<image::BackingImage> image_;
	/* The block lock a write the host does holds, until the host is done. */
	std::optional<image::BlockRangeLock::Guard> guard_;
	char *parked_ = nullptr;	     /* adopted buffer, or nullptr */
	PayloadPool *parked_pool_ = nullptr; /* where it goes back */
	/* A worker process died under it and may still read it: never reused (put_parked_lost). */
	bool parked_lost_ = false;
};

/*
 * A free list of IoRequests. Thread-safe. Keeps at most `max_cached` idle
 * objects; beyond that returned objects are freed.
 */
class RequestPool
{
public:
	explicit RequestPool(size_t max_cached) : max_cached_(max_cached)
	{
		free_.reserve(max_cached);
	}
	~RequestPool();
	RequestPool(const RequestPool &) = delete;
	RequestPool &operator=(const RequestPool &) = delete;

	/* nullptr on ENOMEM. */
	IoRequest *get() noexcept CGL_EXCLUDES(mutex_);
	void put(IoRequest *r) noexcept CGL_EXCLUDES(mutex_);
	/*
	 * IoRequest::recheck_signalled() on every object, when some caller was
	 * left waiting after an interrupt (else nothing). Off the data path:
	 * the reaper's tick.
	 */
	void recheck_signalled() noexcept CGL_EXCLUDES(mutex_);
	/* Objects noting a caller left waiting after an interrupt: +1 or -1. */
	void signalled_changed(int by) noexcept
	{
		signalled_.fetch_add(by, std::memory_order_relaxed);
	}

private:
	/* A leaf (see dispatch/dispatcher.hpp): nothing is taken under it. */
	Mutex mutex_;
	std::vector<IoRequest *> free_ CGL_GUARDED_BY(mutex_);
	size_t objects_ CGL_GUARDED_BY(mutex_) = 0; /* made so far; free_ has room for all */
	std::vector<IoRequest *> all_ CGL_GUARDED_BY(mutex_); /* every object made */
	std::atomic<int> signalled_{0};
	size_t max_cached_; /* beyond it, released objects drop their write buffer */
};

} /* namespace cgloopfs::fuse */
