/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "request.hpp"

#include <cerrno>
#include <cstring>
#include <new>

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
	pos = len = 0;
	mode = 0;
	datasync = false;
}

void IoRequest::on_interrupt(fuse_req_t req, void *data)
{
	auto *self = static_cast<IoRequest *>(data);
	std::unique_lock<std::mutex> l(self->mutex_);
	/*
	 * Only a request still queued, or a read (whose result can be dropped),
	 * is answered early; a write that started runs to its end. req_ is
	 * compared because this object may already serve another request.
	 */
	if (self->req_ != req)
		return;
	bool queued = self->state_ == State::queued;
	bool running_read = self->state_ == State::running && self->op_ == IoOp::read;
	if (!queued && !running_read)
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

void IoRequest::answer_error(int err)
{
	if (claim_answer())
		fuse_reply_err(req_, err);
}

void IoRequest::cancel(int err) noexcept
{
	answer_error(err);
}

void IoRequest::release() noexcept
{
	{
		std::lock_guard<std::mutex> l(mutex_);
		req_ = nullptr;
		state_ = State::idle;
		image_ = nullptr;
	}
	pool_.put(this);
}

namespace {

log::RateLimit io_error_limit(10, 5);

void log_io_error(const image::BackingImage &img, const char *what, uint64_t pos, int err)
{
	if (io_error_limit.allow())
		log::warning("image \"{}\": {} at {}: {}", img.name(), what, pos,
			     std::strerror(err));
}

} /* namespace */

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
			auto r = img.write(pos, std::span<const char>(payload.data(), len), ctx.scratch);
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
