/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "request.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <new>

#include "common/clock.hpp"
#include "common/log.hpp"

namespace cgloopfs::fuse {

int errno_for_caller(int err)
{
	switch (err) {
	case EOPNOTSUPP:
	case ENOSPC:
	case EDQUOT:
	case EROFS:
	case EFBIG:
	case EINVAL:
	case ENOMEM:
	case EINTR:
	case EPERM:
		return err;
	default:
		return EIO;
	}
}

void IoRequest::prepare(fuse_req_t req, IoOp op, image::BackingImage *image)
{
	std::lock_guard<std::mutex> l(mutex_);
	req_ = req;
	op_ = op;
	image_ = image;
	state_ = State::queued;
	interrupted_ns.store(0, std::memory_order_relaxed);
	pos = len = 0;
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
	std::unique_lock<std::mutex> l(self->mutex_);
	/*
	 * A request still queued never starts: it is answered now, so an
	 * interrupted write never reaches the backing file. So is a running
	 * read, whose result can be dropped. A running write, fsync or discard
	 * usually ends soon and its caller should see how it ended: it is only
	 * marked, and the dispatcher answers it EINTR if it is still running a
	 * second later (a caller stuck on a stalled backing store can be
	 * killed). req_ is compared because this object may serve another
	 * request by now.
	 */
	if (self->req_ != req)
		return;
	bool queued = self->state_ == State::queued;
	bool running = self->state_ == State::running;
	if (running && self->op_ != IoOp::read) {
		self->interrupted_ns.store(monotonic_ns(), std::memory_order_relaxed);
		return;
	}
	if (!queued && !running)
		return;
	self->state_ = State::answered;
	l.unlock();
	fuse_reply_err(req, EINTR);
}

void IoRequest::watch_interrupts()
{
	fuse_req_interrupt_func(req_, &IoRequest::on_interrupt, this);
}

bool IoRequest::claim_answer()
{
	std::lock_guard<std::mutex> l(mutex_);
	if (state_ == State::answered)
		return false;
	state_ = State::answered;
	return true;
}

bool IoRequest::answer_error(int err)
{
	if (!claim_answer())
		return false;
	fuse_reply_err(req_, err);
	return true;
}

bool IoRequest::cancel(int err) noexcept
{
	return answer_error(err);
}

bool IoRequest::answered() noexcept
{
	std::lock_guard<std::mutex> l(mutex_);
	return state_ == State::answered;
}

void IoRequest::release() noexcept
{
	{
		std::lock_guard<std::mutex> l(mutex_);
		req_ = nullptr;
		state_ = State::idle;
		image_ = nullptr;
	}
	if (parked_) {
		parked_pool_->put_parked(parked_);
		parked_ = nullptr;
		parked_pool_ = nullptr;
	}
	pool_.put(this);
}

namespace {

log::RateLimit io_error_limit(10, 5);

void log_io_error(const image::BackingImage &img, const char *what, uint64_t pos, int err)
{
	if (!io_error_limit.allow())
		return;
	/* Say how many were held back since the last line, so the log still counts them. */
	unsigned held = io_error_limit.suppressed_since_last();
	if (held > 0)
		log::warning("image \"{}\": {} at {}: {} ({} similar message(s) suppressed)",
			     img.name(), what, pos, std::strerror(err), held);
	else
		log::warning("image \"{}\": {} at {}: {}", img.name(), what, pos,
			     std::strerror(err));
}

} /* namespace */

bool IoRequest::mapped_read(dispatch::WorkerContext &ctx, dispatch::JobOutcome &out)
{
	auto bytes = image_->mapped_range(pos, len);
	if (!bytes)
		return false;
	ctx.answering();
	if (claim_answer()) {
		/* The kernel copies straight from the backing file's pages to the caller. */
		int r = fuse_reply_buf(req_, bytes->data(), bytes->size());
		if (r == 0) {
			out.bytes = bytes->size();
		} else if (r != -ENOENT) { /* ENOENT: the caller went away (interrupted) */
			out.failed = true;
			log_io_error(*image_, "read", pos, -r);
		}
	}
	return true;
}

dispatch::JobOutcome IoRequest::run(dispatch::WorkerContext &ctx) noexcept
{
	dispatch::JobOutcome out;
	{
		std::lock_guard<std::mutex> l(mutex_);
		if (state_ != State::queued)
			return out; /* answered already (interrupted or cancelled) */
		state_ = State::running;
	}
	image::BackingImage &img = *image_;
	try {
		switch (op_) {
		case IoOp::read: {
			out.kind = dispatch::JobKind::read;
			if (len >= mapped_read_min && mapped_read(ctx, out))
				break;
			auto r = img.read(pos, len, ctx.data);
			if (!r.ok()) {
				out.failed = true;
				log_io_error(img, "read", pos, -r.error());
				ctx.answering();
				answer_error(errno_for_caller(-r.error()));
				break;
			}
			out.bytes = r->size();
			ctx.answering();
			if (claim_answer())
				fuse_reply_buf(req_, r->data(), r->size());
			break;
		}
		case IoOp::write: {
			out.kind = dispatch::JobKind::write;
			auto r = img.write(pos, std::span<const char>(payload_data(), len), ctx.scratch);
			if (!r.ok()) {
				out.failed = true;
				if (r.error() != -ENOSPC && r.error() != -EROFS)
					log_io_error(img, "write", pos, -r.error());
				ctx.answering();
				answer_error(errno_for_caller(-r.error()));
				break;
			}
			out.bytes = *r;
			ctx.answering();
			if (claim_answer())
				fuse_reply_write(req_, *r);
			break;
		}
		case IoOp::fsync: {
			out.kind = dispatch::JobKind::sync;
			int r = img.sync(datasync);
			if (r < 0) {
				out.failed = true;
				log_io_error(img, "fsync", 0, -r);
			}
			ctx.answering();
			answer_error(r < 0 ? errno_for_caller(-r) : 0);
			break;
		}
		case IoOp::fallocate: {
			out.kind = dispatch::JobKind::discard;
			int r = img.fallocate(mode, pos, len, ctx.scratch);
			out.failed = r < 0;
			if (r < 0 && r != -EOPNOTSUPP && r != -EINVAL && r != -ENOSPC &&
			    r != -EROFS)
				log_io_error(img, "fallocate", pos, -r);
			ctx.answering();
			answer_error(r < 0 ? errno_for_caller(-r) : 0);
			break;
		}
		}
	} catch (const std::bad_alloc &) {
		out.failed = true;
		answer_error(ENOMEM);
	} catch (...) {
		out.failed = true;
		log::error("image \"{}\": unexpected exception in a request", img.name());
		answer_error(EIO);
	}
	return out;
}

RequestPool::~RequestPool()
{
	for (IoRequest *r : free_)
		delete r;
}

IoRequest *RequestPool::get() noexcept
{
	{
		std::lock_guard<std::mutex> l(mutex_);
		if (!free_.empty()) {
			IoRequest *r = free_.back();
			free_.pop_back();
			return r;
		}
	}
	return new (std::nothrow) IoRequest(*this);
}

void RequestPool::put(IoRequest *r) noexcept
{
	{
		std::lock_guard<std::mutex> l(mutex_);
		if (free_.size() < max_cached_) {
			try {
				free_.push_back(r);
				return;
			} catch (...) {
			}
		}
	}
	delete r;
}

} /* namespace cgloopfs::fuse */
