/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "request.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>

#include <fcntl.h>

#include "charge.hpp"
#include "common/clock.hpp"
#include "common/errno_util.hpp"
#include "common/log.hpp"
#include "common/task_signals.hpp"

namespace cgloopfs::fuse {

namespace {

log::RateLimit io_error_limit(10, 5);

} /* namespace */

const char *op_name(IoOp op)
{
	switch (op) {
	case IoOp::read:
		return "read";
	case IoOp::write:
		return "write";
	case IoOp::fsync:
		return "fsync";
	case IoOp::fallocate:
		return "fallocate";
	case IoOp::flush:
		return "flush";
	}
	return "request";
}

/*
 * A failed `op` that is the caller's own doing, which is not logged: a write
 * refused by the image (past the end, read-only), a discard the image does
 * not do or a range it refuses. A read or fsync that fails is the backing
 * store's, always worth a line.
 */
bool failure_is_callers(IoOp op, int err)
{
	switch (op) {
	case IoOp::write:
		return errno_is_callers(err);
	case IoOp::fallocate:
		return errno_is_callers(err) || errno_is_unsupported(err);
	case IoOp::read:
	case IoOp::fsync:
	case IoOp::flush:
		break;
	}
	return false;
}

namespace {

void log_io_error(const image::BackingImage &img, const char *what, uint64_t pos, int err) noexcept
{
	if (!io_error_limit.allow())
		return;
	try {
		/* Say how many were held back since the last line, so the log still counts them. */
		unsigned held = io_error_limit.suppressed_since_last();
		if (held > 0)
			log::warning(
				"image \"{}\": {} at {}: {} ({} similar message(s) suppressed)",
				img.name(), what, pos, std::strerror(err), held);
		else
			log::warning("image \"{}\": {} at {}: {}", img.name(), what, pos,
				     std::strerror(err));
	} catch (...) {
		/* No memory to say it: the caller still gets its answer. */
	}
}

} /* namespace */

void IoRequest::prepare(fuse_req_t req, IoOp op, std::shared_ptr<image::BackingImage> image)
{
	MutexLocker l(mutex_);
	req_ = req;
	gen_++;
	op_ = op;
	image_ = std::move(image);
	state_.store(State::queued, std::memory_order_relaxed);
	pos = len = 0;
	unique = 0;
	mode = 0;
	datasync = false;
}

void IoRequest::adopt_payload(PayloadPool &pool, char *base)
{
	parked_ = base;
	parked_pool_ = &pool;
}

void IoRequest::on_interrupt(fuse_req_t req, void *data)
{
	auto *self = static_cast<IoRequest *>(data);
	/*
	 * The kernel sends an interrupt for any signal that wakes the caller:
	 * one it catches (a timer, SIGCHLD), a stop, the v1 freezer. A regular
	 * file's read or write goes on through those, and a program that
	 * catches a signal does not expect EINTR from it; only a fatal signal
	 * ends the wait. So a caller that is not dying is only noted, and
	 * looked at again on each tick of the reaper (recheck_signalled()): the
	 * kernel sends no second interrupt when a kill follows.
	 */
	const fuse_ctx *ctx = fuse_req_ctx(req);
	int tid = ctx ? static_cast<int>(ctx->pid) : 0;
	bool dying = task_dying(tid);
	MutexLocker l(self->mutex_);
	if (self->req_ != req)
		return;
	if (!dying && self->op_ != IoOp::flush) {
		if (self->signalled_tid_ == 0) {
			self->signalled_tid_ = tid;
			self->pool_.signalled_changed(1);
		}
		return;
	}
	int answer = 0;
	fuse_req_t now = self->interrupt_locked(answer);
	l.unlock();
	if (now)
		fuse_reply_err(now, answer);
}

void IoRequest::recheck_signalled() noexcept
{
	MutexLocker l(mutex_);
	int tid = signalled_tid_;
	uint64_t gen = gen_;
	if (tid == 0)
		return;
	l.unlock();
	bool dying = task_dying(tid);
	l.lock();
	if (!dying || gen_ != gen || signalled_tid_ != tid)
		return;
	signalled_tid_ = 0;
	pool_.signalled_changed(-1);
	int answer = 0;
	fuse_req_t now = interrupt_locked(answer);
	l.unlock();
	if (now)
		fuse_reply_err(now, answer);
}

fuse_req_t IoRequest::interrupt_locked(int &answer)
{
	/*
	 * A request still queued never starts: it is answered now, so an
	 * interrupted write never reaches the backing file. So is a running
	 * read, whose result can be dropped. A running write, fsync or discard
	 * usually ends soon and its caller should see how it ended: it is only
	 * marked, and the dispatcher answers it EINTR if it is still running a
	 * second later (a caller stuck on a stalled backing store can be
	 * killed).
	 */
	State state = state_.load(std::memory_order_relaxed);
	bool queued = state == State::queued;
	bool running = state == State::running;
	/*
	 * A flush has nothing to write: the close succeeds now. (A process
	 * killed while it closes, as by cgroup.kill, whose worker process dies
	 * with it, exits at once.)
	 */
	answer = op_ == IoOp::flush ? 0 : EINTR;
	if (running && op_ != IoOp::read && op_ != IoOp::flush) {
		interrupted_at(monotonic_ns());
		return nullptr;
	}
	if (!queued && !running)
		return nullptr;
	if (remote_claim_ && !claim_remote(*remote_claim_))
		return nullptr; /* its host process answers it, or has */
	state_.store(State::answered, std::memory_order_relaxed);
	return req_;
}

/*
 * Until the job is submitted, only the session thread that prepared it
 * knows it: req_ is read without the lock.
 */
void IoRequest::watch_interrupts()
{
	fuse_req_interrupt_func(req_, &IoRequest::on_interrupt, this);
}

fuse_req_t IoRequest::claim_answer()
{
	MutexLocker l(mutex_);
	if (state_.load(std::memory_order_relaxed) == State::answered)
		return nullptr;
	/* A host process does it: the answer is whoever's takes its slot's word first. */
	if (remote_claim_ && !claim_remote(*remote_claim_))
		return nullptr;
	state_.store(State::answered, std::memory_order_relaxed);
	return req_;
}

bool IoRequest::answer_error(int err)
{
	fuse_req_t req = claim_answer();
	if (!req)
		return false;
	fuse_reply_err(req, err);
	return true;
}

bool IoRequest::cancel(int err) noexcept
{
	return answer_error(err);
}

/* op_ is set before the job is submitted, and stays until release(). */
int64_t IoRequest::done_after_ns() const noexcept CGL_NO_THREAD_SAFETY_ANALYSIS
{
	return op_ == IoOp::flush ? 20 * 1000000LL : 0;
}

/*
 * Called under a worker's mutex, so it takes no lock: `answered` is final
 * until release(), which cannot come while the job is queued or running.
 */
bool IoRequest::answered() noexcept
{
	return state_.load(std::memory_order_relaxed) == State::answered;
}

void IoRequest::release() noexcept
{
	std::shared_ptr<image::BackingImage> image; /* the last reference, maybe: let go unlocked */
	{
		MutexLocker l(mutex_);
		remote_claim_ = nullptr;
		req_ = nullptr;
		state_.store(State::idle, std::memory_order_relaxed);
		if (signalled_tid_ != 0) {
			signalled_tid_ = 0;
			pool_.signalled_changed(-1);
		}
		image = std::move(image_);
	}
	if (parked_) {
		if (parked_lost_)
			parked_pool_->put_parked_lost(parked_);
		else
			parked_pool_->put_parked(parked_);
		parked_ = nullptr;
		parked_pool_ = nullptr;
		parked_lost_ = false;
	}
	pool_.put(this);
}

namespace {

dispatch::JobKind job_kind(IoOp op)
{
	switch (op) {
	case IoOp::read:
		return dispatch::JobKind::read;
	case IoOp::write:
		return dispatch::JobKind::write;
	case IoOp::fsync:
		return dispatch::JobKind::sync;
	case IoOp::fallocate:
		return dispatch::JobKind::discard;
	case IoOp::flush:
		return dispatch::JobKind::uncounted;
	}
	return dispatch::JobKind::other;
}

} /* namespace */

IoResult perform_io(image::BackingImage &img, const IoParams &p, AlignedBuffer &data,
		    AlignedBuffer &scratch) noexcept
{
	try {
		switch (p.op) {
		case IoOp::read: {
			/*
			 * Into a buffer, even large reads: answered from a mapping
			 * of the backing file (a copy less), a read that raced a
			 * truncate made the kernel's copy fault, which ends the
			 * request with EIO, where the loop driver reads zeros.
			 */
			auto r = img.read(p.pos, p.len, data);
			if (!r.ok())
				return {r.error(), {}};
			return {static_cast<int64_t>(r->size()), *r};
		}
		case IoOp::write: {
			auto r = img.write(p.pos, std::span<const char>(p.payload, p.len), scratch);
			return {r.ok() ? static_cast<int64_t>(*r) : r.error(), {}};
		}
		case IoOp::fsync:
			if (img.replica()) {
				int err = img.sync_backing(p.datasync);
				return {err != 0 ? err : p.lost_write_error, {}};
			}
			return {img.sync(p.datasync), {}};
		case IoOp::fallocate:
			return {img.fallocate(p.mode, p.pos, p.len, scratch), {}};
		case IoOp::flush:
			return {0, {}}; /* writes went through already */
		}
		return {-EINVAL, {}};
	} catch (const std::bad_alloc &) {
		return {-ENOMEM, {}};
	} catch (...) {
		try {
			log::error("image \"{}\": unexpected exception in a request", img.name());
		} catch (...) {
		}
		return {-EIO, {}};
	}
}

bool IoRequest::run_hosted(dispatch::WorkerContext &ctx, dispatch::JobOutcome &out) noexcept
{
	/* Only a ChargeHost is ever a worker's host (fuse/session.cpp makes them). */
	auto &host = static_cast<ChargeHost &>(*ctx.host);
	if (!host.prepare(ctx.slot, *image_))
		return false;
	IoParams p = params();
	/* What images of one file share stays here: the block lock, the lost write's error. */
	if (op_ == IoOp::write ||
	    (op_ == IoOp::fallocate && mode != 0 && mode != FALLOC_FL_KEEP_SIZE))
		image_->hold_write_range(guard_, pos, len);
	if (op_ == IoOp::fsync)
		p.lost_write_error = image_->take_write_error();
	{
		MutexLocker l(mutex_);
		if (state_.load(std::memory_order_relaxed) != State::running) {
			l.unlock();
			guard_.reset();
			if (p.lost_write_error != 0)
				image_->note_write_error(p.lost_write_error);
			return true; /* answered meanwhile (an interrupt) */
		}
		remote_claim_ = host.open_claim(ctx.slot);
	}
	ChargeHost::Answer a = host.call(ctx.slot, *image_, p, unique);
	guard_.reset();
	ctx.answering();
	return finish_hosted(a, p.lost_write_error, out);
}

bool IoRequest::post(dispatch::Host &h, unsigned slot) noexcept
{
	/* The rest wait on a worker thread of ours (run_hosted): fsync keeps lost writes' errors. */
	if (unique == 0 || (op_ != IoOp::read && op_ != IoOp::write && op_ != IoOp::flush))
		return false;
	auto &host = static_cast<ChargeHost &>(h);
	/* A flush never waits for a host to start a thread (it may be frozen): answered here. */
	if (op_ == IoOp::flush && !host.slot_ready(slot))
		return false;
	if (!host.prepare(slot, *image_))
		return false;
	/* A write whose blocks another write holds waits on a thread, not here. */
	if (op_ == IoOp::write && !image_->try_hold_write_range(guard_, pos, len))
		return false;
	{
		MutexLocker l(mutex_);
		if (state_.load(std::memory_order_relaxed) != State::queued) {
			l.unlock();
			guard_.reset();
			return false; /* interrupted already: run() finds it answered */
		}
		state_.store(State::running, std::memory_order_relaxed);
		remote_claim_ = host.open_claim(slot);
	}
	host.post(slot, *image_, params(), unique);
	return true;
}

dispatch::JobOutcome IoRequest::collect(dispatch::Host &h, unsigned slot,
					dispatch::WorkerContext &ctx, bool lost) noexcept
{
	auto &host = static_cast<ChargeHost &>(h);
	dispatch::JobOutcome out;
	out.kind = job_kind(op_);
	ChargeHost::Answer a = host.result(slot, lost);
	guard_.reset();
	if (!finish_hosted(a, 0, out))
		complete(ctx, perform_io(*image_, params(), ctx.data, ctx.scratch), out);
	else
		out.finished_ns = a.finished_ns;
	return out;
}

bool IoRequest::finish_hosted(const ChargeHost::Answer &a, int lost_write_error,
			      dispatch::JobOutcome &out) noexcept
{
	fuse_req_t answered_there = nullptr;
	{
		MutexLocker l(mutex_);
		remote_claim_ = nullptr;
		if (a.completed && a.replied &&
		    state_.load(std::memory_order_relaxed) != State::answered) {
			state_.store(State::answered, std::memory_order_relaxed);
			answered_there = req_;
		}
	}
	/* The host answered the kernel: libfuse only forgets the request. */
	if (answered_there)
		fuse_reply_none(answered_there);
	if (!a.completed) {
		if (lost_write_error != 0)
			image_->note_write_error(lost_write_error);
		/* The host left (its cgroup emptied) before it took it: done here. */
		if (!a.started)
			return false;
		/*
		 * The host died under it: EIO (a second answer, if it had
		 * answered, is refused). Killed in the middle of a write, its
		 * thread may still be copying from the payload.
		 */
		parked_lost_ = op_ == IoOp::write;
		out.failed = true;
		answer_error(EIO);
		return true;
	}
	IoResult res{a.value, {}};
	account(res, out);
	int err = a.value < 0 ? static_cast<int>(-a.value) : 0;
	if ((op_ == IoOp::write || op_ == IoOp::fallocate) && err == 0)
		image_->touch();
	if (a.write_error != 0)
		image_->note_write_error(a.write_error);
	if (a.reply_err != 0) {
		/* A mapped range whose file shrank under the copy: the caller got an error. */
		out.failed = true;
		out.bytes = 0;
		log_io_error(*image_, op_name(op_), pos, -a.reply_err);
	}
	return true;
}

IoParams IoRequest::params() const
{
	IoParams p;
	p.op = op_;
	p.pos = pos;
	p.len = len;
	p.mode = mode;
	p.datasync = datasync;
	if (op_ == IoOp::write)
		p.payload = payload_data();
	return p;
}

void IoRequest::account(const IoResult &res, dispatch::JobOutcome &out) noexcept
{
	uint64_t log_pos = op_ == IoOp::fsync ? 0 : pos;
	int err = res.value < 0 ? static_cast<int>(-res.value) : 0;
	if (err != 0) {
		out.failed = true;
		if (!failure_is_callers(op_, err))
			log_io_error(*image_, op_name(op_), log_pos, err);
	} else if (op_ == IoOp::read || op_ == IoOp::write) {
		out.bytes = static_cast<uint64_t>(res.value);
	}
}

void IoRequest::complete(dispatch::WorkerContext &ctx, const IoResult &res,
			 dispatch::JobOutcome &out) noexcept
{
	account(res, out);
	int err = res.value < 0 ? static_cast<int>(-res.value) : 0;
	ctx.answering();
	fuse_req_t req = claim_answer();
	if (!req)
		return; /* answered already (interrupted or timed out) */
	if (err != 0) {
		fuse_reply_err(req, errno_for_caller(err));
		return;
	}
	switch (op_) {
	case IoOp::read:
		if (int r = fuse_reply_buf(req, res.data.data(), res.data.size());
		    r < 0 && r != -ENOENT) { /* ENOENT: the caller went away (interrupted) */
			/* A mapped range whose file shrank under the copy: the caller gets EIO. */
			out.failed = true;
			out.bytes = 0;
			log_io_error(*image_, op_name(op_), pos, -r);
		}
		break;
	case IoOp::write:
		fuse_reply_write(req, static_cast<size_t>(res.value));
		break;
	case IoOp::fsync:
	case IoOp::fallocate:
	case IoOp::flush:
		fuse_reply_err(req, 0);
		break;
	}
}

dispatch::JobOutcome IoRequest::run(dispatch::WorkerContext &ctx) noexcept
{
	dispatch::JobOutcome out;
	out.kind = job_kind(op_);
	{
		MutexLocker l(mutex_);
		/* Answered already (interrupted or cancelled): nothing to run. */
		if (state_.load(std::memory_order_relaxed) != State::queued)
			return dispatch::JobOutcome{};
		state_.store(State::running, std::memory_order_relaxed);
	}
	/* Writes a host did whose collection is still to come: their errors are this fsync's. */
	if (op_ == IoOp::fsync)
		if (int e = ChargeHost::take_write_errors(image_->serial()); e != 0)
			image_->note_write_error(e);
	if (ctx.host && unique != 0 && run_hosted(ctx, out))
		return out;
	complete(ctx, perform_io(*image_, params(), ctx.data, ctx.scratch), out);
	return out;
}

RequestPool::~RequestPool()
{
	for (IoRequest *r : all_)
		delete r;
}

void RequestPool::recheck_signalled() noexcept
{
	if (signalled_.load(std::memory_order_relaxed) <= 0)
		return;
	/* Objects are never deleted while the session runs; the list only grows. */
	std::vector<IoRequest *> all;
	{
		MutexLocker l(mutex_);
		try {
			all = all_;
		} catch (const std::bad_alloc &) {
			return; /* the next tick */
		}
	}
	for (IoRequest *r : all)
		r->recheck_signalled();
}

IoRequest *RequestPool::get() noexcept
{
	MutexLocker l(mutex_);
	if (!free_.empty()) {
		IoRequest *r = free_.back();
		free_.pop_back();
		return r;
	}
	try {
		free_.reserve(objects_ + 1);
		all_.reserve(objects_ + 1);
	} catch (const std::bad_alloc &) {
		return nullptr;
	}
	IoRequest *r = new (std::nothrow) IoRequest(*this);
	if (r) {
		objects_++;
		all_.push_back(r); /* cannot throw: reserved */
	}
	return r;
}

void RequestPool::put(IoRequest *r) noexcept
{
	/*
	 * Never deleted while the session runs: libfuse reads an interrupt's
	 * callback and data under its session lock and calls it after
	 * dropping that lock, so an interrupt racing the answer may still
	 * call IoRequest::on_interrupt on this object after it was released.
	 * A reused object ignores it (it compares req_); a deleted one would
	 * be a use after free. The objects kept are as many as were ever in
	 * flight at once (bounded by what the kernel lets callers have
	 * outstanding); beyond max_cached_ they keep no write buffer.
	 */
	MutexLocker l(mutex_);
	if (free_.size() >= max_cached_)
		r->payload = AlignedBuffer();
	free_.push_back(r); /* cannot throw: get() reserved room for every object */
}

} /* namespace cgloopfs::fuse */
