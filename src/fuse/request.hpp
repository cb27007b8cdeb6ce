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

#include <cstdint>
#include <mutex>
#include <vector>

#include <fuse_lowlevel.h>

#include "dispatch/job.hpp"
#include "image/backing_image.hpp"
#include "payload_pool.hpp"

namespace cgloopfs::fuse {

class RequestPool;

enum class IoOp : uint8_t { read, write, fsync, fallocate };

class IoRequest final : public dispatch::Job
{
public:
	explicit IoRequest(RequestPool &pool) : pool_(pool) {}

	/* Bind to a FUSE request; the image outlives the request (its file is open). */
	void prepare(fuse_req_t req, IoOp op, image::BackingImage *image);

	/* Keep the payload in the session thread's buffer `base` (a parked one of `pool`). */
	void adopt_payload(PayloadPool &pool, char *base);
	/* The write data: `len` bytes, in the adopted buffer or in `payload`. */
	const char *payload_data() const
	{
		return parked_ ? PayloadPool::write_payload(parked_) : payload.data();
	}

	dispatch::JobOutcome run(dispatch::WorkerContext &ctx) noexcept override;
	bool cancel(int err) noexcept override;
	bool answered() noexcept override;
	void release() noexcept override;

	/* Register for FUSE interrupts: a request interrupted while queued is answered EINTR. */
	void watch_interrupts();

	uint64_t pos = 0;
	uint64_t len = 0;
	int mode = 0;	       /* fallocate */
	bool datasync = false; /* fsync */
	AlignedBuffer payload; /* write data, `len` bytes, when not adopted */

private:
	enum class State : uint8_t { idle, queued, running, answered };

	/* Take the right to answer; false when someone already has. */
	bool claim_answer();
	bool answer_error(int err);
	static void on_interrupt(fuse_req_t req, void *data);
	/* Serve a read from the image's mapping; false when read() must serve it. */
	bool mapped_read(dispatch::WorkerContext &ctx, dispatch::JobOutcome &out);

	RequestPool &pool_;
	std::mutex mutex_;		     /* guards req_ and state_ against interrupts */
	fuse_req_t req_ = nullptr;
	State state_ = State::idle;
	IoOp op_ = IoOp::read;
	image::BackingImage *image_ = nullptr;
	char *parked_ = nullptr;	    /* adopted buffer, or nullptr */
	PayloadPool *parked_pool_ = nullptr; /* where it goes back */
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
	IoRequest *get() noexcept;
	void put(IoRequest *r) noexcept;

private:
	std::mutex mutex_;
	std::vector<IoRequest *> free_; /* guarded by mutex_ */
	size_t max_cached_;
};

/*
 * Reads from this size up are answered from the image's mapping of the
 * backing file (one copy, in the kernel); smaller ones are copied through a
 * buffer, which costs less than the mapping's page-table walk.
 */
inline constexpr size_t mapped_read_min = 32 * 1024;

/* The errno FUSE callers see for a backing-store error (loop.c: most become EIO). */
int errno_for_caller(int err);

} /* namespace cgloopfs::fuse */
