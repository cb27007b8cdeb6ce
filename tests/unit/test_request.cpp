/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuse/request: IoRequest's state machine without a FUSE session: answered
 * exactly once, whoever comes first (the worker, an interrupt, a timeout);
 * an interrupt while queued answers EINTR and the request never runs; a
 * completion that comes after an interrupt or a timeout is dropped; the
 * errno a caller sees; the RequestPool's reuse.
 *
 * The seam: this binary defines the four libfuse calls request.cpp makes
 * (fuse_reply_err, fuse_reply_buf, fuse_reply_write,
 * fuse_req_interrupt_func). Defined in the executable, they take the place
 * of libfuse's: they record each reply, and the interrupt handler, which
 * the test calls as libfuse would. To hold a request in the `running`
 * state, pread and fdatasync wait on a gate when called from a thread that
 * asked for it (they go to the system call otherwise).
 */
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "common/errno_util.hpp"
#include "config/image_spec.hpp"
#include "dispatch/clock.hpp"
#include "dispatch/dispatcher.hpp"
#include "fuse/request.hpp"
#include "image/backing_image.hpp"

using namespace cgloopfs;
using namespace std::chrono_literals;
using fuse::IoOp;
using fuse::IoRequest;
using fuse::RequestPool;

namespace {

struct Reply {
	enum class Kind { err, buf, write } kind;
	int err = 0;	  /* Kind::err */
	std::string data; /* Kind::buf */
	size_t count = 0; /* Kind::write */
};

/* What the fake libfuse saw. */
struct FakeFuse {
	std::mutex mutex;
	std::condition_variable cv;
	std::map<fuse_req_t, std::vector<Reply>> replies; /* guarded by mutex */
	std::map<fuse_req_t, std::pair<fuse_interrupt_func_t, void *>>
		handlers; /* guarded by mutex */
	/* The caller's pid fuse_req_ctx() gives (0: unknown, whose interrupts are acted on). */
	fuse_ctx ctx{};

	void add(fuse_req_t req, Reply r)
	{
		std::lock_guard<std::mutex> l(mutex);
		replies[req].push_back(std::move(r));
		cv.notify_all();
	}

	std::vector<Reply> of(fuse_req_t req)
	{
		std::lock_guard<std::mutex> l(mutex);
		return replies[req];
	}

	/* Wait (bounded) until `req` has `n` replies. */
	bool wait_replies(fuse_req_t req, size_t n)
	{
		std::unique_lock<std::mutex> l(mutex);
		return cv.wait_for(l, 5s, [&] { return replies[req].size() >= n; });
	}

	/* The kernel interrupts `req`: libfuse calls the handler registered for it. */
	void interrupt(fuse_req_t req)
	{
		std::pair<fuse_interrupt_func_t, void *> h;
		{
			std::lock_guard<std::mutex> l(mutex);
			h = handlers[req];
		}
		REQUIRE(static_cast<bool>(h.first));
		h.first(req, h.second);
	}
};

FakeFuse fake;

/* Holds pread/fdatasync of the threads that ask for it until opened. */
struct IoGate {
	std::mutex mutex;
	std::condition_variable cv;
	bool open = true; /* guarded by mutex */
	int entered = 0;  /* guarded by mutex */

	void close()
	{
		std::lock_guard<std::mutex> l(mutex);
		open = false;
		entered = 0;
	}
	void release()
	{
		std::lock_guard<std::mutex> l(mutex);
		open = true;
		cv.notify_all();
	}
	/* Wait (bounded) until a gated thread is held. */
	bool wait_entered()
	{
		std::unique_lock<std::mutex> l(mutex);
		return cv.wait_for(l, 5s, [&] { return entered > 0; });
	}
	void pass()
	{
		std::unique_lock<std::mutex> l(mutex);
		entered++;
		cv.notify_all();
		cv.wait_for(l, 20s, [&] { return open; });
	}
};

IoGate gate;
thread_local bool gated = false;
thread_local int fail_errno = 0; /* pread/fdatasync of this thread fail with it */

/* Opens the gate when the test ends, passed or failed, so no thread stays held. */
struct GateGuard {
	GateGuard() = default;
	~GateGuard() { gate.release(); }
	GateGuard(const GateGuard &) = delete;
	GateGuard &operator=(const GateGuard &) = delete;
};

/* A job that makes the worker thread running it wait at the gate in its backing I/O. */
class GateOn final : public dispatch::Job
{
public:
	dispatch::JobOutcome run(dispatch::WorkerContext &) noexcept override
	{
		gated = true;
		done_ = true;
		return {};
	}
	bool cancel(int) noexcept override { return false; }
	bool answered() noexcept override { return false; }
	void release() noexcept override {}

	/* Wait (bounded) until a worker thread ran it. */
	bool wait()
	{
		for (int i = 0; i < 500 && !done_; i++)
			std::this_thread::sleep_for(10ms);
		return done_;
	}

private:
	std::atomic<bool> done_{false};
};

/* Captures what is written to stderr (the log) while it lives. */
class CaptureStderr
{
public:
	CaptureStderr()
	{
		char name[] = "/tmp/cgloopfs-request-log-XXXXXX";
		fd_ = mkstemp(name);
		REQUIRE(fd_ >= 0);
		(void)::unlink(name);
		saved_ = ::dup(2);
		REQUIRE(::dup2(fd_, 2) == 2);
	}
	~CaptureStderr()
	{
		(void)::dup2(saved_, 2);
		(void)::close(saved_);
		(void)::close(fd_);
	}
	CaptureStderr(const CaptureStderr &) = delete;
	CaptureStderr &operator=(const CaptureStderr &) = delete;

	std::string text() const
	{
		std::string s;
		char buf[4096];
		ssize_t n;
		for (off_t off = 0; (n = ::pread(fd_, buf, sizeof(buf), off)) > 0; off += n)
			s.append(buf, static_cast<size_t>(n));
		return s;
	}
	size_t lines() const
	{
		std::string s = text();
		return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
	}

private:
	int fd_ = -1;
	int saved_ = -1;
};

fuse_req_t fake_req(uintptr_t n)
{
	return reinterpret_cast<fuse_req_t>(0x10000 + n * 16);
}

/* A temporary backing file of `size` bytes, byte i = i % 251; unlinked at the end. */
class TempImage
{
public:
	explicit TempImage(size_t size)
	{
		char name[] = "/tmp/cgloopfs-request-XXXXXX";
		int fd = mkstemp(name);
		REQUIRE(fd >= 0);
		path_ = name;
		std::string data(size, '\0');
		for (size_t i = 0; i < size; i++)
			data[i] = static_cast<char>(i % 251);
		REQUIRE(::write(fd, data.data(), size) == static_cast<ssize_t>(size));
		::close(fd);
		config::ImageSpec spec;
		spec.name = "req.img";
		spec.path = path_;
		spec.origin = "unit:1";
		image = image::BackingImage::open(spec, false);
		REQUIRE(image);
	}
	~TempImage() { (void)::unlink(path_.c_str()); }
	TempImage(const TempImage &) = delete;
	TempImage &operator=(const TempImage &) = delete;

	std::string bytes(size_t pos, size_t n) const
	{
		std::string s(n, '\0');
		for (size_t i = 0; i < n; i++)
			s[i] = static_cast<char>((pos + i) % 251);
		return s;
	}

	std::shared_ptr<image::BackingImage> image;

private:
	std::string path_;
};

/* A request of `pool`, prepared for `req` and watching interrupts, as ops.cpp does it. */
IoRequest *make_request(RequestPool &pool, fuse_req_t req, IoOp op, image::BackingImage &img,
			uint64_t pos = 0, uint64_t len = 0)
{
	IoRequest *r = pool.get();
	REQUIRE(r);
	/* Not owned: the test keeps the image. */
	r->prepare(req, op, std::shared_ptr<image::BackingImage>(std::shared_ptr<void>(), &img));
	r->pos = pos;
	r->len = len;
	r->watch_interrupts();
	return r;
}

/* Run `r` on a thread of its own whose backing I/O waits at the gate. */
std::thread run_gated(IoRequest *r, dispatch::JobOutcome &out)
{
	gate.close();
	return std::thread([r, &out] {
		gated = true;
		dispatch::WorkerContext ctx;
		out = r->run(ctx);
	});
}

} /* namespace */

/* The libfuse calls of request.cpp, replaced (see the top of the file). */
extern "C" int fuse_reply_err(fuse_req_t req, int err)
{
	fake.add(req, Reply{Reply::Kind::err, err, {}, 0});
	std::lock_guard<std::mutex> l(fake.mutex);
	fake.handlers.erase(req); /* libfuse forgets the handler of an answered request */
	return 0;
}

extern "C" int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	fake.add(req, Reply{Reply::Kind::buf, 0, std::string(buf, size), 0});
	std::lock_guard<std::mutex> l(fake.mutex);
	fake.handlers.erase(req);
	return 0;
}

extern "C" int fuse_reply_write(fuse_req_t req, size_t count)
{
	fake.add(req, Reply{Reply::Kind::write, 0, {}, count});
	std::lock_guard<std::mutex> l(fake.mutex);
	fake.handlers.erase(req);
	return 0;
}

extern "C" const fuse_ctx *fuse_req_ctx(fuse_req_t)
{
	return &fake.ctx;
}

extern "C" void fuse_req_interrupt_func(fuse_req_t req, fuse_interrupt_func_t func, void *data)
{
	std::lock_guard<std::mutex> l(fake.mutex);
	fake.handlers[req] = {func, data};
}

/* The backing file's I/O, held at the gate on threads that asked for it. */
extern "C" ssize_t pread64(int fd, void *buf, size_t n, off64_t off)
{
	if (gated)
		gate.pass();
	if (fail_errno) {
		errno = fail_errno;
		return -1;
	}
	return syscall(SYS_pread64, fd, buf, n, off);
}

extern "C" int fdatasync(int fd)
{
	if (gated)
		gate.pass();
	if (fail_errno) {
		errno = fail_errno;
		return -1;
	}
	return static_cast<int>(syscall(SYS_fdatasync, fd));
}

TEST_CASE("a read is answered once, with the bytes, and the request goes back to its pool")
{
	TempImage t(64 * 1024);
	RequestPool pool(4);
	fuse_req_t req = fake_req(1);
	IoRequest *r = make_request(pool, req, IoOp::read, *t.image, 1000, 3000);
	dispatch::WorkerContext ctx;
	dispatch::JobOutcome out = r->run(ctx);
	CHECK(out.kind == dispatch::JobKind::read);
	CHECK(out.bytes == 3000);
	CHECK_FALSE(out.failed);
	auto replies = fake.of(req);
	REQUIRE(replies.size() == 1);
	CHECK(replies[0].kind == Reply::Kind::buf);
	CHECK(replies[0].data == t.bytes(1000, 3000));
	CHECK(r->answered());
	CHECK_FALSE(r->cancel(EIO)); /* too late: answered */
	CHECK(fake.of(req).size() == 1);
	r->release();
	CHECK(pool.get() == r); /* reused, not allocated */
	pool.put(r);
}

TEST_CASE("a large read is answered whole; a read past the end is empty")
{
	TempImage t(256 * 1024);
	RequestPool pool(4);
	dispatch::WorkerContext ctx;
	fuse_req_t big = fake_req(2), past = fake_req(3);
	IoRequest *r = make_request(pool, big, IoOp::read, *t.image, 4096 + 7, 64 * 1024);
	CHECK(r->run(ctx).bytes == 64 * 1024);
	r->release();
	r = make_request(pool, past, IoOp::read, *t.image, 256 * 1024, 4096);
	CHECK(r->run(ctx).bytes == 0);
	r->release();
	REQUIRE(fake.of(big).size() == 1);
	CHECK(fake.of(big)[0].data == t.bytes(4096 + 7, 64 * 1024));
	REQUIRE(fake.of(past).size() == 1);
	CHECK(fake.of(past)[0].kind == Reply::Kind::buf);
	CHECK(fake.of(past)[0].data.empty());
}

TEST_CASE("a write crossing the end is short; one past the end fails ENOSPC, unlogged")
{
	TempImage t(8192);
	CaptureStderr log;
	RequestPool pool(4);
	dispatch::WorkerContext ctx;
	std::string data(4096, 'w');
	fuse_req_t cross = fake_req(4), past = fake_req(5);
	IoRequest *r = make_request(pool, cross, IoOp::write, *t.image, 8192 - 100, 4096);
	REQUIRE(r->payload.reserve(4096));
	std::memcpy(r->payload.data(), data.data(), 4096);
	dispatch::JobOutcome out = r->run(ctx);
	r->release();
	CHECK(out.kind == dispatch::JobKind::write);
	CHECK(out.bytes == 100);
	REQUIRE(fake.of(cross).size() == 1);
	CHECK(fake.of(cross)[0].kind == Reply::Kind::write);
	CHECK(fake.of(cross)[0].count == 100);

	r = make_request(pool, past, IoOp::write, *t.image, 8192, 4096);
	REQUIRE(r->payload.reserve(4096));
	out = r->run(ctx);
	r->release();
	CHECK(out.failed);
	REQUIRE(fake.of(past).size() == 1);
	CHECK(fake.of(past)[0].kind == Reply::Kind::err);
	CHECK(fake.of(past)[0].err == ENOSPC);
	CHECK(log.lines() == 0); /* the caller's error */
}

TEST_CASE("a backing failure is answered once, mapped to EIO (or passed through), logged once")
{
	TempImage t(8192);
	RequestPool pool(4);
	dispatch::WorkerContext ctx;
	CaptureStderr log;
	struct Case {
		IoOp op;
		int err, want;
	} cases[] = {{IoOp::read, EIO, EIO},	    {IoOp::read, EBADF, EIO},
		     {IoOp::read, ENOMEM, ENOMEM},  {IoOp::fsync, EIO, EIO},
		     {IoOp::fsync, ENOSPC, ENOSPC}, {IoOp::fsync, EDQUOT, EDQUOT}};
	uintptr_t n = 100;
	size_t logged = 0;
	for (const Case &c : cases) {
		CAPTURE(static_cast<int>(c.op));
		CAPTURE(c.err);
		fuse_req_t req = fake_req(n++);
		IoRequest *r = make_request(pool, req, c.op, *t.image, 0, 100);
		r->datasync = true;
		fail_errno = c.err;
		dispatch::JobOutcome out = r->run(ctx);
		fail_errno = 0;
		r->release();
		CHECK(out.failed);
		REQUIRE(fake.of(req).size() == 1);
		CHECK(fake.of(req)[0].kind == Reply::Kind::err);
		CHECK(fake.of(req)[0].err == c.want);
		CHECK(log.lines() == ++logged); /* the backing store's: one line each */
	}
	CHECK(log.text().find("image \"req.img\": read at 0: Input/output error") !=
	      std::string::npos);
}

TEST_CASE("fsync and a refused discard answer through the same path")
{
	TempImage t(8192);
	RequestPool pool(4);
	dispatch::WorkerContext ctx;
	fuse_req_t sync = fake_req(6), discard = fake_req(7);
	IoRequest *r = make_request(pool, sync, IoOp::fsync, *t.image);
	CHECK(r->run(ctx).kind == dispatch::JobKind::sync);
	r->release();
	REQUIRE(fake.of(sync).size() == 1);
	CHECK(fake.of(sync)[0].kind == Reply::Kind::err);
	CHECK(fake.of(sync)[0].err == 0);

	r = make_request(pool, discard, IoOp::fallocate, *t.image, 0, 4096);
	r->mode = 0x02 | 0x01; /* FALLOC_FL_PUNCH_HOLE | KEEP_SIZE: discard is off */
	dispatch::JobOutcome out = r->run(ctx);
	r->release();
	CHECK(out.kind == dispatch::JobKind::discard);
	CHECK(out.failed);
	REQUIRE(fake.of(discard).size() == 1);
	CHECK(fake.of(discard)[0].err == EOPNOTSUPP);
}

TEST_CASE("interrupted while queued: answered EINTR at once, never runs")
{
	TempImage t(8192);
	std::string before = t.bytes(0, 10);
	RequestPool pool(4);
	fuse_req_t req = fake_req(8);
	IoRequest *r = make_request(pool, req, IoOp::write, *t.image, 0, 10);
	REQUIRE(r->payload.reserve(10));
	std::memset(r->payload.data(), 'x', 10);
	fake.interrupt(req);
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].err == EINTR);
	CHECK(r->answered());
	dispatch::WorkerContext ctx;
	dispatch::JobOutcome out = r->run(ctx);
	CHECK(out.kind == dispatch::JobKind::other); /* did not run */
	CHECK(out.bytes == 0);
	CHECK(fake.of(req).size() == 1);
	CHECK_FALSE(r->cancel(EIO));
	r->release();
	auto back = t.image->read(0, 10, ctx.data);
	REQUIRE(back.ok());
	CHECK(std::string(back->data(), back->size()) == before); /* the write never landed */
}

TEST_CASE("a caller that is not dying is not answered at its interrupt, but once it dies")
{
	TempImage t(8192);
	std::string before = t.bytes(0, 10);
	RequestPool pool(4);
	/* The caller: a child that waits (no signal pending: a caught one, a freeze). */
	pid_t child = fork();
	REQUIRE(child >= 0);
	if (child == 0) {
		pause();
		_exit(0);
	}
	fake.ctx.pid = child;
	fuse_req_t req = fake_req(111);
	IoRequest *r = make_request(pool, req, IoOp::write, *t.image, 0, 10);
	REQUIRE(r->payload.reserve(10));
	std::memset(r->payload.data(), 'x', 10);
	fake.interrupt(req);
	CHECK(fake.of(req).empty());
	CHECK_FALSE(r->answered());
	pool.recheck_signalled(); /* the reaper's tick: still alive, still waiting */
	CHECK(fake.of(req).empty());
	/* Killed (a zombie until reaped): the next tick answers the queued write. */
	REQUIRE(kill(child, SIGKILL) == 0);
	for (int i = 0; i < 500 && !r->answered(); i++) {
		std::this_thread::sleep_for(2ms);
		pool.recheck_signalled();
	}
	fake.ctx.pid = 0;
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].err == EINTR);
	dispatch::WorkerContext ctx;
	(void)r->run(ctx); /* does not run: answered */
	CHECK(fake.of(req).size() == 1);
	r->release();
	(void)waitpid(child, nullptr, 0);
	auto back = t.image->read(0, 10, ctx.data);
	REQUIRE(back.ok());
	CHECK(std::string(back->data(), back->size()) == before); /* the write never landed */
}

TEST_CASE("a caller that is not dying keeps its running read, which completes")
{
	TempImage t(8192);
	RequestPool pool(4);
	GateGuard guard;
	fake.ctx.pid = getpid(); /* alive, nothing pending */
	fuse_req_t req = fake_req(112);
	IoRequest *r = make_request(pool, req, IoOp::read, *t.image, 0, 100);
	dispatch::JobOutcome out;
	std::thread th = run_gated(r, out);
	fake.interrupt(req);
	pool.recheck_signalled();
	fake.ctx.pid = 0;
	CHECK(fake.of(req).empty());
	gate.release();
	th.join();
	r->release();
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].kind == Reply::Kind::buf);
	CHECK(fake.of(req)[0].data.size() == 100);
}

TEST_CASE("cancelled while queued (timeout, shutdown): answered once, the run is dropped")
{
	TempImage t(8192);
	RequestPool pool(4);
	fuse_req_t req = fake_req(9);
	IoRequest *r = make_request(pool, req, IoOp::read, *t.image, 0, 100);
	CHECK(r->cancel(EIO));
	CHECK_FALSE(r->cancel(EIO));
	dispatch::WorkerContext ctx;
	(void)r->run(ctx);
	r->release();
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].err == EIO);
}

TEST_CASE("a running read interrupted is answered EINTR; its late result is dropped")
{
	TempImage t(8192);
	RequestPool pool(4);
	GateGuard guard;
	fuse_req_t req = fake_req(10);
	IoRequest *r = make_request(pool, req, IoOp::read, *t.image, 0, 100);
	dispatch::JobOutcome out;
	std::thread th = run_gated(r, out);
	REQUIRE(gate.wait_entered());
	fake.interrupt(req);
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].err == EINTR);
	gate.release();
	th.join();
	CHECK(out.kind == dispatch::JobKind::read);
	CHECK(fake.of(req).size() == 1); /* the completion found it answered */
	r->release();
}

TEST_CASE("a running fsync interrupted is only marked: its own completion answers")
{
	TempImage t(8192);
	RequestPool pool(4);
	GateGuard guard;
	fuse_req_t req = fake_req(11);
	IoRequest *r = make_request(pool, req, IoOp::fsync, *t.image);
	r->datasync = true;
	dispatch::JobOutcome out;
	std::thread th = run_gated(r, out);
	REQUIRE(gate.wait_entered());
	fake.interrupt(req);
	CHECK(fake.of(req).empty());
	CHECK_FALSE(r->answered());
	gate.release();
	th.join();
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].err == 0);
	r->release();
}

TEST_CASE("an interrupt meant for the previous request of a reused object is ignored")
{
	TempImage t(8192);
	RequestPool pool(4);
	fuse_req_t old_req = fake_req(12), new_req = fake_req(13);
	IoRequest *r = make_request(pool, old_req, IoOp::fsync, *t.image);
	std::pair<fuse_interrupt_func_t, void *> stale;
	{
		std::lock_guard<std::mutex> l(fake.mutex);
		stale = fake.handlers[old_req];
	}
	dispatch::WorkerContext ctx;
	(void)r->run(ctx);
	r->release();
	IoRequest *again = make_request(pool, new_req, IoOp::fsync, *t.image);
	REQUIRE(again == r);
	stale.first(old_req, stale.second); /* a late interrupt of the old request */
	CHECK(fake.of(old_req).size() == 1);
	CHECK(fake.of(new_req).empty());
	CHECK_FALSE(again->answered());
	(void)again->run(ctx);
	again->release();
	REQUIRE(fake.of(new_req).size() == 1);
	CHECK(fake.of(new_req)[0].err == 0);
}

TEST_CASE("through the dispatcher: a running fsync past request_timeout is answered EIO once, "
	  "and released once when it ends")
{
	TempImage t(8192);
	RequestPool pool(4);
	GateOn gate_on;
	dispatch::ManualClock clock;
	dispatch::Config cfg;
	cfg.reaper_thread = false;
	cfg.worker_depth = 1; /* one thread: the gated one */
	cfg.request_timeout_ns = 10LL * 1000000000;
	CaptureStderr log;
	dispatch::Dispatcher d(cfg, clock, nullptr);
	GateGuard guard;
	REQUIRE(d.start());
	gate.close();
	d.submit(&gate_on);
	REQUIRE(gate_on.wait());
	fuse_req_t req = fake_req(14);
	IoRequest *r = make_request(pool, req, IoOp::fsync, *t.image);
	r->datasync = true;
	d.submit(r);
	REQUIRE(gate.wait_entered());
	d.expire();
	CHECK(fake.of(req).empty()); /* not overdue yet */
	clock.advance_ns(11LL * 1000000000);
	d.expire();
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].err == EIO);
	CHECK(d.totals().timeouts == 1);
	d.expire(); /* answered: not again */
	CHECK(d.totals().timeouts == 1);
	CHECK(log.lines() == 1);
	CHECK(log.text().find("1 request(s) unanswered after 10 s were answered EIO") !=
	      std::string::npos);
	gate.release();
	CHECK(d.shutdown(5LL * 1000000000));
	CHECK(fake.of(req).size() == 1); /* the late completion was dropped */
	CHECK(pool.get() == r);		 /* and the request released, once */
	pool.put(r);
}

TEST_CASE("through the dispatcher: a running fsync interrupted is answered EINTR after the grace")
{
	TempImage t(8192);
	RequestPool pool(4);
	GateOn gate_on;
	dispatch::SteadyClock clock;
	dispatch::Config cfg;
	cfg.reaper_thread = false;
	cfg.worker_depth = 1;
	cfg.interrupt_grace_ns = 0;
	dispatch::Dispatcher d(cfg, clock, nullptr);
	GateGuard guard;
	REQUIRE(d.start());
	gate.close();
	d.submit(&gate_on);
	REQUIRE(gate_on.wait());
	fuse_req_t req = fake_req(15);
	IoRequest *r = make_request(pool, req, IoOp::fsync, *t.image);
	r->datasync = true;
	d.submit(r);
	REQUIRE(gate.wait_entered());
	d.expire();
	CHECK(fake.of(req).empty()); /* not interrupted */
	fake.interrupt(req);
	CHECK(fake.of(req).empty()); /* marked only */
	d.expire();
	REQUIRE(fake.of(req).size() == 1);
	CHECK(fake.of(req)[0].err == EINTR);
	CHECK(d.totals().interrupted == 1);
	gate.release();
	CHECK(d.shutdown(5LL * 1000000000));
	CHECK(fake.of(req).size() == 1);
	CHECK(pool.get() == r);
	pool.put(r);
}

TEST_CASE("the errno a caller sees, and the errors that are the caller's")
{
	for (int e : {EOPNOTSUPP, ENOSPC, EDQUOT, EROFS, EFBIG, EINVAL, ENOMEM, EINTR, EPERM}) {
		CAPTURE(e);
		CHECK(errno_for_caller(e) == e);
		CHECK(errno_passes_through(-e));
	}
	for (int e : {EIO, EBADF, EFAULT, ENXIO, ESTALE, ENOENT, EAGAIN, EXDEV}) {
		CAPTURE(e);
		CHECK(errno_for_caller(e) == EIO);
	}
	CHECK(errno_is_callers(ENOSPC));
	CHECK(errno_is_callers(-EROFS));
	CHECK_FALSE(errno_is_callers(EIO));
	CHECK_FALSE(errno_is_callers(EDQUOT));
	CHECK(errno_is_unsupported(EOPNOTSUPP));
	CHECK(errno_is_unsupported(-EINVAL));
	CHECK_FALSE(errno_is_unsupported(ENOSPC));
}

TEST_CASE("RequestPool: returned objects are reused; none is freed while the pool lives")
{
	/*
	 * An interrupt may reach a released object after its answer (libfuse
	 * calls the callback outside its lock): objects over max_cached are
	 * kept, without a write buffer, never deleted before the pool.
	 */
	RequestPool pool(2);
	IoRequest *a = pool.get(), *b = pool.get(), *c = pool.get();
	REQUIRE((a && b && c));
	CHECK(a != b);
	for (IoRequest *r : {a, b, c})
		REQUIRE(r->payload.reserve(4096));
	pool.put(a);
	pool.put(b);
	pool.put(c); /* over max_cached: kept, its buffer dropped */
	IoRequest *x = pool.get(), *y = pool.get(), *z = pool.get();
	CHECK(x == c); /* last in, first out */
	CHECK(x->payload.capacity() == 0);
	CHECK(((y == a && z == b) || (y == b && z == a)));
	CHECK(y->payload.capacity() >= 4096);
	IoRequest *d = pool.get(); /* none left: a new one */
	REQUIRE(d);
	CHECK((d != a && d != b && d != c));
	for (IoRequest *r : {x, y, z, d})
		pool.put(r);
}
