/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * image/image_lock: QEMU-style image locks. Two descriptors opened in one
 * process are two open file descriptions, so their OFD locks conflict as
 * those of two processes would: every conflict is tested in-process. A
 * plain descriptor stands for "another process" (QEMU, another cgloopfs).
 */
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "common/unique_fd.hpp"
#include "config/image_spec.hpp"
#include "image/backing_image.hpp"
#include "image/image_lock.hpp"

using cgloopfs::UniqueFd;
using cgloopfs::config::ConfigError;
using cgloopfs::config::ImageSpec;
using cgloopfs::config::LockMode;
using namespace cgloopfs::image;

namespace {

/* A 1 MiB file in /tmp, unlinked at the end. */
class TempImage
{
public:
	TempImage()
	{
		char name[] = "/tmp/cgloopfs-lock-XXXXXX";
		UniqueFd fd(mkstemp(name));
		REQUIRE_MESSAGE(fd, "mkstemp: " << std::strerror(errno));
		REQUIRE(ftruncate(fd.get(), 1 << 20) == 0);
		path_ = name;
	}
	~TempImage() { (void)unlink(path_.c_str()); }
	const std::string &path() const { return path_; }

	/* A new open file description of it: "another process". */
	UniqueFd open_other() const
	{
		UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
		REQUIRE(fd);
		return fd;
	}

private:
	std::string path_;
};

/* The bytes of 100..103 and 200..203 that some description other than `fd` locks. */
std::vector<int> locked_bytes(int fd)
{
	std::vector<int> out;
	for (int base : {100, 200}) {
		for (int i = 0; i < 4; i++) {
			struct flock fl = {};
			fl.l_type = F_WRLCK;
			fl.l_whence = SEEK_SET;
			fl.l_start = base + i;
			fl.l_len = 1;
			REQUIRE(fcntl(fd, F_OFD_GETLK, &fl) == 0);
			if (fl.l_type != F_UNLCK)
				out.push_back(base + i);
		}
	}
	return out;
}

ImageSpec spec_of(const std::string &path, const std::string &name, bool read_only,
		  std::optional<LockMode> lock = std::nullopt)
{
	ImageSpec s;
	s.name = name;
	s.path = path;
	s.read_only = read_only;
	s.lock = lock;
	return s;
}

/* The message of the ConfigError that opening `spec` throws ("" when it opens). */
std::string refusal(const ImageSpec &spec, LockMode default_lock = LockMode::automatic)
{
	try {
		auto img = BackingImage::open(spec, false, default_lock);
	} catch (const ConfigError &e) {
		return e.what();
	}
	return "";
}

} /* namespace */

TEST_CASE("image_lock_bits: like a VM's resizable disk")
{
	CHECK(image_lock_bits(true) == LockBits{perm_consistent_read | perm_write, perm_write});
	CHECK(image_lock_bits(false) == LockBits{perm_consistent_read, perm_write});
	CHECK(std::string(perm_name(perm_write)) == "write");
	CHECK(std::string(perm_name(perm_consistent_read)) == "consistent read");
	CHECK(std::string(perm_name(perm_resize)) == "resize");
}

TEST_CASE("apply_lock_bytes: the bytes QEMU locks, and only those")
{
	TempImage f;
	UniqueFd mine = f.open_other();
	UniqueFd other = f.open_other();
	REQUIRE(apply_lock_bytes(mine.get(), {}, image_lock_bits(true)) == 0);
	CHECK(locked_bytes(other.get()) == std::vector<int>{100, 101, 201});
	CHECK(locked_bytes(mine.get()).empty()); /* a description never conflicts with itself */
	REQUIRE(apply_lock_bytes(mine.get(), image_lock_bits(true), image_lock_bits(false)) == 0);
	CHECK(locked_bytes(other.get()) == std::vector<int>{100, 201});
	REQUIRE(apply_lock_bytes(mine.get(), image_lock_bits(false), {}) == 0);
	CHECK(locked_bytes(other.get()).empty());
}

TEST_CASE("check_lock_bytes: QEMU's rules between two descriptions")
{
	TempImage f;
	UniqueFd a = f.open_other();
	UniqueFd b = f.open_other();
	LockConflict c;

	SUBCASE("a writer keeps out another writer and a reader that refuses writers")
	{
		REQUIRE(apply_lock_bytes(a.get(), {}, image_lock_bits(true)) == 0);
		CHECK(check_lock_bytes(b.get(), image_lock_bits(true), &c) == -EAGAIN);
		CHECK(c.other_holds);
		CHECK(c.bit == perm_write);
		c = {};
		CHECK(check_lock_bytes(b.get(), image_lock_bits(false), &c) == -EAGAIN);
		CHECK(c.other_holds);
		CHECK(c.bit == perm_write);
		/* A reader that shares everything (qemu-io -r) is let in. */
		CHECK(check_lock_bytes(b.get(), LockBits{perm_consistent_read, 0}, &c) == 0);
		/* And the writer does not see itself. */
		CHECK(check_lock_bytes(a.get(), image_lock_bits(true), &c) == 0);
	}
	SUBCASE("readers share; a reader keeps writers out")
	{
		REQUIRE(apply_lock_bytes(a.get(), {}, image_lock_bits(false)) == 0);
		CHECK(check_lock_bytes(b.get(), image_lock_bits(false), &c) == 0);
		CHECK(check_lock_bytes(b.get(), image_lock_bits(true), &c) == -EAGAIN);
		CHECK_FALSE(c.other_holds);
		CHECK(c.bit == perm_write);
	}
	SUBCASE("qemu-io -f raw IMG (holds 100 and 101, refuses nothing)")
	{
		REQUIRE(apply_lock_bytes(a.get(), {},
					 LockBits{perm_consistent_read | perm_write, 0}) == 0);
		CHECK(check_lock_bytes(b.get(), image_lock_bits(true), &c) == -EAGAIN);
		CHECK(c.other_holds);
		CHECK(check_lock_bytes(b.get(), image_lock_bits(false), &c) == -EAGAIN);
	}
	SUBCASE("closing the description drops its locks")
	{
		REQUIRE(apply_lock_bytes(a.get(), {}, image_lock_bits(true)) == 0);
		a.reset();
		CHECK(check_lock_bytes(b.get(), image_lock_bits(true), &c) == 0);
	}
}

TEST_CASE("lock_unsupported: the errors of a file system without OFD locks")
{
	CHECK(lock_unsupported(-EINVAL));
	CHECK(lock_unsupported(-ENOLCK));
	CHECK(lock_unsupported(-EOPNOTSUPP));
	CHECK_FALSE(lock_unsupported(-EAGAIN));
	CHECK_FALSE(lock_unsupported(-EBADF));
}

TEST_CASE("BackingImage: holds its locks while it lives")
{
	TempImage f;
	UniqueFd other = f.open_other();
	{
		auto rw = BackingImage::open(spec_of(f.path(), "rw", false), false);
		CHECK(rw->lock_state() == LockState::held);
		CHECK(locked_bytes(other.get()) == std::vector<int>{100, 101, 201});
		{
			/* A second window of the same file in this process: no conflict with itself. */
			auto ro = BackingImage::open(spec_of(f.path(), "ro", true), false);
			CHECK(ro->lock_state() == LockState::held);
			CHECK(locked_bytes(other.get()) == std::vector<int>{100, 101, 201});
		}
		CHECK(locked_bytes(other.get()) == std::vector<int>{100, 101, 201});
	}
	CHECK(locked_bytes(other.get()).empty());

	{
		auto ro = BackingImage::open(spec_of(f.path(), "ro", true), false);
		CHECK(locked_bytes(other.get()) == std::vector<int>{100, 201});
		/* A writer joins and leaves: write comes and goes, the reader's stay. */
		auto rw = BackingImage::open(spec_of(f.path(), "rw", false), false);
		CHECK(locked_bytes(other.get()) == std::vector<int>{100, 101, 201});
		rw.reset();
		CHECK(locked_bytes(other.get()) == std::vector<int>{100, 201});
	}
	CHECK(locked_bytes(other.get()).empty());

	/* -o ro makes a writable spec a reader. */
	auto forced = BackingImage::open(spec_of(f.path(), "x", false), true);
	CHECK(locked_bytes(other.get()) == std::vector<int>{100, 201});
}

TEST_CASE("BackingImage: refuses an image another process holds, and says who")
{
	TempImage f;
	UniqueFd qemu = f.open_other();

	SUBCASE("a writer (qemu-io -f raw IMG)")
	{
		REQUIRE(apply_lock_bytes(qemu.get(), {},
					 LockBits{perm_consistent_read | perm_write, 0}) == 0);
		for (bool ro : {false, true}) {
			std::string msg = refusal(spec_of(f.path(), "disk", ro));
			CAPTURE(msg);
			CHECK(msg.find("image \"disk\": another process has \"" + f.path() +
				       "\" open for writing (perhaps a virtual machine or another "
				       "cgloopfs); use lock=off to override") != std::string::npos);
		}
		/* The refusal left no lock behind: the holder can still refuse writers. */
		UniqueFd probe = f.open_other();
		CHECK(locked_bytes(probe.get()) == std::vector<int>{100, 101});
	}
	SUBCASE("a reader that refuses writers (a read-only VM disk, a read-only cgloopfs)")
	{
		REQUIRE(apply_lock_bytes(qemu.get(), {}, image_lock_bits(false)) == 0);
		std::string msg = refusal(spec_of(f.path(), "disk", false));
		CAPTURE(msg);
		CHECK(msg.find("lets no one else write to it") != std::string::npos);
		CHECK(msg.find("lock=off") != std::string::npos);
		CHECK(refusal(spec_of(f.path(), "disk", true)) == "");
	}
	SUBCASE("lock=off: no check, no lock")
	{
		REQUIRE(apply_lock_bytes(qemu.get(), {}, image_lock_bits(true)) == 0);
		auto img =
			BackingImage::open(spec_of(f.path(), "disk", false, LockMode::off), false);
		CHECK(img->lock_state() == LockState::off);
		CHECK(img->spec().lock == LockMode::off);
		/* -o lock=off for an image that does not say; its own setting wins. */
		auto img2 =
			BackingImage::open(spec_of(f.path(), "d2", false), false, LockMode::off);
		CHECK(img2->lock_state() == LockState::off);
		CHECK(refusal(spec_of(f.path(), "d3", false, LockMode::on), LockMode::off) != "");
		qemu.reset();
		UniqueFd probe = f.open_other();
		CHECK(locked_bytes(probe.get()).empty());
	}
}
