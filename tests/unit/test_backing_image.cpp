/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * image/backing_image: BackingImage on temporary files. Windows (offset and
 * size limit) with sentinel bytes around them, the end of the window,
 * read-only images, refused opens, O_DIRECT with unaligned requests (also
 * from several threads at once), discard, set_capacity, a failed write
 * reported by the next sync.
 *
 * Every check of the backing file compares all of it with a model, so a
 * byte touched outside the window is caught.
 */
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "common/aligned_buffer.hpp"
#include "config/image_spec.hpp"
#include "image/backing_image.hpp"

using cgloopfs::AlignedBuffer;
using cgloopfs::config::ConfigError;
using cgloopfs::config::ImageSpec;
using cgloopfs::image::BackingImage;

namespace {

/* Byte i of a fresh test file: never 0, so zeroed ranges stand out. */
char pattern(uint64_t i)
{
	return static_cast<char>(1 + (i * 7 + 13) % 250);
}

/* A file made with mkstemp in `dir`, filled with pattern(); unlinked at the end. */
class TempFile
{
public:
	TempFile(const std::string &dir, size_t size)
	{
		std::string templ = dir + "/cgloopfs-unit-XXXXXX";
		std::vector<char> name(templ.begin(), templ.end());
		name.push_back('\0');
		fd_ = mkstemp(name.data());
		REQUIRE_MESSAGE(fd_ >= 0, "mkstemp in " << dir << ": " << std::strerror(errno));
		path_ = name.data();
		std::string data(size, '\0');
		for (size_t i = 0; i < size; i++)
			data[i] = pattern(i);
		REQUIRE(::pwrite(fd_, data.data(), size, 0) == static_cast<ssize_t>(size));
	}

	~TempFile()
	{
		(void)::unlink(path_.c_str());
		(void)::close(fd_);
	}

	TempFile(const TempFile &) = delete;
	TempFile &operator=(const TempFile &) = delete;

	const std::string &path() const { return path_; }

	/* The whole file, read through the page cache. */
	std::string contents() const
	{
		struct stat st;
		REQUIRE(fstat(fd_, &st) == 0);
		std::string data(static_cast<size_t>(st.st_size), '\0');
		REQUIRE(::pread(fd_, data.data(), data.size(), 0) ==
			static_cast<ssize_t>(data.size()));
		return data;
	}

	uint64_t size() const
	{
		struct stat st;
		REQUIRE(fstat(fd_, &st) == 0);
		return static_cast<uint64_t>(st.st_size);
	}

	void resize(uint64_t size) { REQUIRE(ftruncate(fd_, static_cast<off_t>(size)) == 0); }

	void overwrite(const std::string &data)
	{
		REQUIRE(::pwrite(fd_, data.data(), data.size(), 0) ==
			static_cast<ssize_t>(data.size()));
	}

private:
	std::string path_;
	int fd_ = -1;
};

ImageSpec spec_for(const std::string &path, uint64_t offset = 0, uint64_t size_limit = 0)
{
	ImageSpec s;
	s.name = "test.img";
	s.path = path;
	s.offset = offset;
	s.size_limit = size_limit;
	s.origin = "unit:1";
	return s;
}

std::shared_ptr<BackingImage> open_image(const ImageSpec &spec, bool force_read_only = false)
{
	std::shared_ptr<BackingImage> img;
	try {
		img = BackingImage::open(spec, force_read_only);
	} catch (const ConfigError &e) {
		FAIL("open refused: " << e.what());
	}
	REQUIRE(img);
	return img;
}

/* The message open() refuses `spec` with; fails the test if it opens. */
std::string open_error(const ImageSpec &spec)
{
	try {
		(void)BackingImage::open(spec, false);
		FAIL_CHECK("opened: " << spec.path);
	} catch (const ConfigError &e) {
		return e.what();
	}
	return "";
}

bool contains(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

/* "" when equal; else where the first difference is (no 64 KiB dumps in the log). */
std::string difference(const std::string &got, const std::string &want)
{
	if (got.size() != want.size())
		return "size " + std::to_string(got.size()) + ", want " +
		       std::to_string(want.size());
	auto m = std::mismatch(got.begin(), got.end(), want.begin());
	if (m.first == got.end())
		return "";
	return "byte " + std::to_string(m.first - got.begin()) + " is " +
	       std::to_string(static_cast<unsigned char>(*m.first)) + ", want " +
	       std::to_string(static_cast<unsigned char>(*m.second));
}

std::string read_at(BackingImage &img, uint64_t pos, size_t len)
{
	AlignedBuffer buf;
	auto r = img.read(pos, len, buf);
	REQUIRE_MESSAGE(r.ok(), "read error " << r.error());
	return std::string(r->data(), r->size());
}

/* Written byte count, or the negative errno. */
int64_t write_at(BackingImage &img, uint64_t pos, const std::string &data)
{
	AlignedBuffer scratch;
	auto r = img.write(pos, std::span<const char>(data.data(), data.size()), scratch);
	return r.ok() ? static_cast<int64_t>(*r) : r.error();
}

int fallocate_at(BackingImage &img, int mode, uint64_t pos, uint64_t len)
{
	AlignedBuffer scratch;
	return img.fallocate(mode, pos, len, scratch);
}

std::string random_bytes(std::mt19937_64 &rng, size_t n)
{
	std::string s(n, '\0');
	for (auto &c : s)
		c = static_cast<char>(rng() % 255 + 1);
	return s;
}

/* Can `dir` hold a file opened with O_DIRECT? */
bool supports_o_direct(const std::string &dir)
{
	TempFile probe(dir, 4096);
	int fd = ::open(probe.path().c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		return false;
	(void)::close(fd);
	return true;
}

/* The directories to run direct-I/O tests in: ext4 (/tmp here) and tmpfs (/dev/shm). */
std::vector<std::string> direct_io_dirs()
{
	std::vector<std::string> dirs;
	for (const char *d : {"/tmp", "/dev/shm"}) {
		struct stat st;
		if (stat(d, &st) == 0 && S_ISDIR(st.st_mode) && supports_o_direct(d))
			dirs.emplace_back(d);
	}
	return dirs;
}

/* Zero [pos, pos + len) of `model` (a std::string). */
void zero_model(std::string &model, uint64_t pos, uint64_t len)
{
	std::fill(model.begin() + static_cast<std::ptrdiff_t>(pos),
		  model.begin() + static_cast<std::ptrdiff_t>(pos + len), '\0');
}

/*
 * Random reads and writes of random lengths at random (mostly unaligned)
 * positions, in and past the window, against a model of the whole file.
 */
void random_io(BackingImage &img, TempFile &file, uint64_t offset, unsigned seed, int ops)
{
	std::mt19937_64 rng(seed);
	std::string model = file.contents();
	const uint64_t size = img.size();
	for (int op = 0; op < ops; op++) {
		uint64_t pos = rng() % (size + 600);
		size_t len = 1 + rng() % 9000;
		if (rng() % 5 == 0)
			pos = pos / 512 * 512; /* sometimes aligned */
		CAPTURE(op);
		CAPTURE(pos);
		CAPTURE(len);
		uint64_t expect = pos >= size ? 0 : std::min<uint64_t>(len, size - pos);
		if (rng() % 2) {
			std::string data = random_bytes(rng, len);
			int64_t r = write_at(img, pos, data);
			if (expect == 0) {
				CHECK(r == -ENOSPC);
			} else {
				REQUIRE(r == static_cast<int64_t>(expect));
				model.replace(offset + pos, expect, data.substr(0, expect));
			}
		} else {
			std::string got = read_at(img, pos, len);
			REQUIRE(got.size() == expect);
			REQUIRE(difference(got, model.substr(offset + pos, expect)) == "");
		}
	}
	REQUIRE(difference(file.contents(), model) == "");
}

} /* namespace */

TEST_CASE("a window: reads and writes at an offset, sentinels outside unchanged")
{
	TempFile file("/tmp", 65536);
	auto img = open_image(spec_for(file.path(), 4096, 8192));
	CHECK(img->size() == 8192);
	CHECK(img->name() == "test.img");
	CHECK_FALSE(img->read_only());
	std::string model = file.contents();

	CHECK(difference(read_at(*img, 0, 100), model.substr(4096, 100)) == "");
	CHECK(difference(read_at(*img, 8000, 192), model.substr(4096 + 8000, 192)) == "");

	CHECK(write_at(*img, 0, "AAAA") == 4);
	model.replace(4096, 4, "AAAA");
	CHECK(write_at(*img, 1234, std::string(3000, 'B')) == 3000);
	model.replace(4096 + 1234, 3000, std::string(3000, 'B'));
	CHECK(write_at(*img, 8191, "C") == 1);
	model.replace(4096 + 8191, 1, "C");
	CHECK(difference(file.contents(), model) == "");
	CHECK(difference(read_at(*img, 0, 8192), model.substr(4096, 8192)) == "");
	/* The bytes just outside the window are the originals. */
	CHECK(model[4095] == pattern(4095));
	CHECK(model[4096 + 8192] == pattern(4096 + 8192));
}

TEST_CASE("the end of the window: short writes, ENOSPC, empty reads")
{
	TempFile file("/tmp", 65536);
	auto img = open_image(spec_for(file.path(), 4096, 8192));
	std::string model = file.contents();

	/* A write crossing the end: only what fits, the rest of the file untouched. */
	CHECK(write_at(*img, 8190, std::string(10, 'x')) == 2);
	model.replace(4096 + 8190, 2, "xx");
	CHECK(difference(file.contents(), model) == "");

	CHECK(write_at(*img, 8192, "y") == -ENOSPC);
	CHECK(write_at(*img, 9000, "y") == -ENOSPC);
	CHECK(write_at(*img, UINT64_MAX, "y") == -ENOSPC);
	CHECK(write_at(*img, UINT64_MAX - 1, "yy") == -ENOSPC);
	CHECK(write_at(*img, 100, "") == 0);
	CHECK(difference(file.contents(), model) == "");
	CHECK(file.size() == 65536); /* never extended */

	CHECK(read_at(*img, 8100, 1000).size() == 92);
	CHECK(read_at(*img, 8192, 10).empty());
	CHECK(read_at(*img, 1 << 30, 10).empty());
	CHECK(read_at(*img, UINT64_MAX, 10).empty());
	CHECK(read_at(*img, UINT64_MAX - 5, 10).empty());
	CHECK(read_at(*img, 0, 0).empty());
}

TEST_CASE("a window to the end of the file, rounded down to 512 bytes")
{
	TempFile file("/tmp", 10000);
	auto img = open_image(spec_for(file.path(), 1000));
	CHECK(img->size() == 8704);
	std::string model = file.contents();
	CHECK(write_at(*img, 8700, std::string(100, 'z')) == 4);
	model.replace(1000 + 8700, 4, "zzzz");
	CHECK(write_at(*img, 8704, "z") == -ENOSPC);
	/* The 296 bytes past the exported end stay as they were. */
	CHECK(difference(file.contents(), model) == "");
	CHECK(difference(read_at(*img, 0, 20000), model.substr(1000, 8704)) == "");
}

TEST_CASE("random unaligned I/O through the page cache")
{
	TempFile file("/tmp", 70000);
	auto img = open_image(spec_for(file.path(), 777, 50001));
	CHECK(img->size() == 49664);
	random_io(*img, file, 777, 1, 400);
}

TEST_CASE("read_only: writes and discards fail with EROFS, reads work")
{
	TempFile file("/tmp", 8192);
	ImageSpec spec = spec_for(file.path());
	spec.read_only = true;
	spec.discard = true;
	spec.mode = 0666;
	auto img = open_image(spec);
	CHECK(img->read_only());
	CHECK(write_at(*img, 0, "x") == -EROFS);
	CHECK(write_at(*img, 0, "") == -EROFS);
	CHECK(fallocate_at(*img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 512) == -EROFS);
	CHECK(fallocate_at(*img, FALLOC_FL_ZERO_RANGE, 0, 512) == -EROFS);
	CHECK(fallocate_at(*img, 0, 0, 512) == -EROFS);
	CHECK(read_at(*img, 0, 16) == file.contents().substr(0, 16));
	/* The exported mode loses its write bits. */
	CHECK((img->attr().mode & 0222) == 0);
	CHECK((img->attr().mode & 0444) == 0444);

	/* -o ro makes every image read-only, whatever the spec says. */
	auto forced = open_image(spec_for(file.path()), true);
	CHECK(forced->read_only());
	CHECK(forced->spec().read_only);
	CHECK(write_at(*forced, 0, "x") == -EROFS);
	std::string unchanged(8192, '\0');
	for (size_t i = 0; i < unchanged.size(); i++)
		unchanged[i] = pattern(i);
	CHECK(difference(file.contents(), unchanged) == "");
}

TEST_CASE("attr: size, mode, owner and block size")
{
	TempFile file("/tmp", 5000);
	REQUIRE(chmod(file.path().c_str(), 0751) == 0);
	ImageSpec spec = spec_for(file.path());
	spec.block_size = 4096;
	auto img = open_image(spec);
	auto a = img->attr();
	CHECK(a.size == 4608);
	CHECK(a.mode == 0640); /* the file's rw bits only */
	CHECK(a.uid == getuid());
	CHECK(a.gid == getgid());
	CHECK(a.block_size == 4096);

	spec.mode = 0600;
	spec.uid = 1234;
	spec.gid = 5678;
	a = open_image(spec)->attr();
	CHECK(a.mode == 0600);
	CHECK(a.uid == 1234);
	CHECK(a.gid == 5678);

	struct stat st;
	REQUIRE(stat(file.path().c_str(), &st) == 0);
	CHECK(img->backing_ino() == st.st_ino);
	CHECK(img->backing_dev() == st.st_dev);
	CHECK(img->sync(false) == 0);
	CHECK(img->sync(true) == 0);
}

TEST_CASE("refused opens name the image and the setting")
{
	SUBCASE("a missing file")
	{
		std::string msg = open_error(spec_for("/tmp/cgloopfs-unit-no-such-file/x.img"));
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "path"));
		CHECK(contains(msg, "unit:1"));
		CHECK(contains(msg, std::strerror(ENOENT)));
	}
	SUBCASE("a directory")
	{
		std::string msg = open_error(spec_for("/tmp"));
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "path"));
		CHECK(contains(msg, "directory"));
	}
	SUBCASE("a FIFO (and opening it must not block)")
	{
		TempFile holder("/tmp", 0);
		std::string fifo = holder.path() + ".fifo";
		REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
		std::string msg = open_error(spec_for(fifo));
		(void)::unlink(fifo.c_str());
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "path"));
		CHECK(contains(msg, "regular file"));
	}
	SUBCASE("a character device")
	{
		std::string msg = open_error(spec_for("/dev/null"));
		CHECK(contains(msg, "path"));
		CHECK(contains(msg, "regular file"));
	}
	SUBCASE("an offset past the end")
	{
		TempFile file("/tmp", 4096);
		std::string msg = open_error(spec_for(file.path(), 8192));
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "offset"));
		CHECK(contains(msg, "8192"));
	}
	SUBCASE("an offset exactly at the end")
	{
		TempFile file("/tmp", 4096);
		std::string msg = open_error(spec_for(file.path(), 4096));
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "offset"));
	}
	SUBCASE("size 0: a file smaller than 512 bytes")
	{
		TempFile file("/tmp", 511);
		std::string msg = open_error(spec_for(file.path()));
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "size"));
	}
	SUBCASE("size 0: an empty file")
	{
		TempFile file("/tmp", 0);
		std::string msg = open_error(spec_for(file.path()));
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "size"));
	}
	SUBCASE("size 0: less than 512 bytes after the offset")
	{
		TempFile file("/tmp", 4096);
		std::string msg = open_error(spec_for(file.path(), 3700));
		CHECK(contains(msg, "size"));
	}
	SUBCASE("size 0: a size_limit under 512")
	{
		TempFile file("/tmp", 4096);
		std::string msg = open_error(spec_for(file.path(), 0, 100));
		CHECK(contains(msg, "size"));
	}
	SUBCASE("direct_io on a file system without O_DIRECT")
	{
		/*
		 * procfs has no O_DIRECT. Its files are regular, so the refusal
		 * must come from direct_io itself.
		 */
		ImageSpec spec = spec_for("/proc/version");
		spec.direct_io = true;
		spec.read_only = true;
		std::string msg = open_error(spec);
		CHECK(contains(msg, "image \"test.img\""));
		CHECK(contains(msg, "direct_io"));
	}
}

TEST_CASE("direct_io: unaligned reads and writes")
{
	auto dirs = direct_io_dirs();
	/* These machines have O_DIRECT on ext4 and on tmpfs (Linux 6.6+): no skip. */
	REQUIRE_MESSAGE(!dirs.empty(), "neither /tmp nor /dev/shm supports O_DIRECT");
	for (const auto &dir : dirs) {
		CAPTURE(dir);
		/* A file whose last block is partial, windows aligned and not. */
		TempFile file(dir, 66536);
		struct Window {
			uint64_t offset, size_limit;
		};
		unsigned seed = 10;
		for (Window w : {Window{0, 0}, Window{1000, 40000}, Window{4096, 0}, Window{513, 0},
				 Window{0, 4608}}) {
			CAPTURE(w.offset);
			CAPTURE(w.size_limit);
			ImageSpec spec = spec_for(file.path(), w.offset, w.size_limit);
			spec.direct_io = true;
			auto img = open_image(spec);
			CHECK(img->direct_io());
			random_io(*img, file, w.offset, seed++, 300);
		}
	}
}

TEST_CASE("direct_io: odd offsets and lengths across block boundaries")
{
	for (const auto &dir : direct_io_dirs()) {
		CAPTURE(dir);
		TempFile file(dir, 3 * 4096 + 1000);
		ImageSpec spec = spec_for(file.path());
		spec.direct_io = true;
		auto img = open_image(spec);
		CHECK(img->size() == 3 * 4096 + 512);
		std::string model = file.contents();
		struct Op {
			uint64_t pos;
			size_t len;
		};
		char fill = 'a';
		for (Op op : {Op{1, 1}, Op{511, 2}, Op{4095, 2}, Op{4095, 4098}, Op{3, 8190},
			      Op{4096, 4096}, Op{8192, 4608}, Op{12287, 513}, Op{12799, 1},
			      Op{0, 12800}, Op{100, 5}}) {
			CAPTURE(op.pos);
			CAPTURE(op.len);
			std::string data(op.len, fill++);
			REQUIRE(write_at(*img, op.pos, data) == static_cast<int64_t>(op.len));
			model.replace(op.pos, op.len, data);
			CHECK(read_at(*img, op.pos, op.len) == data);
			/* A little around it too, clamped at the end of the window. */
			uint64_t from = op.pos > 7 ? op.pos - 7 : 0;
			uint64_t n = std::min<uint64_t>(op.len + 14, img->size() - from);
			CHECK(difference(read_at(*img, from, op.len + 14), model.substr(from, n)) ==
			      "");
		}
		CHECK(difference(file.contents(), model) == "");

		/* An aligned write from an aligned buffer takes the direct path. */
		AlignedBuffer src, scratch;
		REQUIRE(src.reserve(4096));
		std::memset(src.data(), 'Q', 4096);
		auto r = img->write(4096, std::span<const char>(src.data(), 4096), scratch);
		REQUIRE(r.ok());
		CHECK(*r == 4096);
		model.replace(4096, 4096, std::string(4096, 'Q'));
		CHECK(difference(file.contents(), model) == "");
	}
}

TEST_CASE("direct_io: concurrent unaligned writes to one block all land")
{
	for (const auto &dir : direct_io_dirs()) {
		CAPTURE(dir);
		TempFile file(dir, 4 * 4096);
		ImageSpec spec = spec_for(file.path());
		spec.direct_io = true;
		auto img = open_image(spec);
		std::string before = file.contents();

		/* Thread t owns bytes 4096 + i with i % threads == t: one byte per write. */
		const int threads = 8;
		std::vector<std::thread> pool;
		std::vector<int> errors(threads, 0);
		for (int t = 0; t < threads; t++)
			pool.emplace_back([&, t] {
				AlignedBuffer scratch;
				for (int i = t; i < 4096; i += threads) {
					char c = static_cast<char>('A' + t);
					auto r = img->write(4096 + static_cast<uint64_t>(i),
							    std::span<const char>(&c, 1), scratch);
					if (!r.ok() || *r != 1)
						errors[t]++;
				}
			});
		for (auto &th : pool)
			th.join();
		for (int t = 0; t < threads; t++)
			CHECK(errors[t] == 0);

		std::string expect = before;
		for (int i = 0; i < 4096; i++)
			expect[4096 + i] = static_cast<char>('A' + i % threads);
		CHECK(difference(file.contents(), expect) == "");
	}
}

TEST_CASE("direct_io: concurrent writes straddling block boundaries all land")
{
	for (const auto &dir : direct_io_dirs()) {
		CAPTURE(dir);
		TempFile file(dir, 8 * 4096);
		ImageSpec spec = spec_for(file.path());
		spec.direct_io = true;
		auto img = open_image(spec);
		std::string expect = file.contents();

		/* Chunks of 5 bytes, dealt round-robin: neighbours belong to other threads. */
		const int threads = 6;
		const uint64_t chunk = 5, first = 500, count = 6000;
		std::vector<std::thread> pool;
		std::vector<int> errors(threads, 0);
		for (int t = 0; t < threads; t++)
			pool.emplace_back([&, t] {
				AlignedBuffer scratch;
				for (uint64_t k = static_cast<uint64_t>(t); k < count;
				     k += threads) {
					std::string data(chunk, static_cast<char>('a' + t));
					auto r = img->write(
						first + k * chunk,
						std::span<const char>(data.data(), chunk), scratch);
					if (!r.ok() || *r != chunk)
						errors[t]++;
				}
			});
		for (auto &th : pool)
			th.join();
		for (int t = 0; t < threads; t++)
			CHECK(errors[t] == 0);
		for (uint64_t k = 0; k < count; k++)
			for (uint64_t b = 0; b < chunk; b++)
				expect[first + k * chunk + b] =
					static_cast<char>('a' + k % threads);
		CHECK(difference(file.contents(), expect) == "");
	}
}

TEST_CASE("direct_io: concurrent reads see whole writes of other bytes")
{
	for (const auto &dir : direct_io_dirs()) {
		CAPTURE(dir);
		TempFile file(dir, 4 * 4096);
		ImageSpec spec = spec_for(file.path());
		spec.direct_io = true;
		auto img = open_image(spec);
		std::string original = file.contents();
		/* A writer rewrites bytes 0..99 while a reader reads bytes 100..199. */
		std::atomic<bool> done{false};
		int mismatches = 0;
		std::thread reader([&] {
			AlignedBuffer buf;
			while (!done.load()) {
				auto r = img->read(100, 100, buf);
				if (!r.ok() ||
				    std::string(r->data(), r->size()) != original.substr(100, 100))
					mismatches++;
			}
		});
		for (int i = 0; i < 2000; i++)
			(void)write_at(*img, static_cast<uint64_t>(i % 100), std::string(1, 'w'));
		done = true;
		reader.join();
		CHECK(mismatches == 0);
	}
}

TEST_CASE("discard: punch and zero exactly the range, only inside the window")
{
	std::vector<std::pair<std::string, bool>> variants = {{"/tmp", false}};
	for (const auto &dir : direct_io_dirs())
		variants.emplace_back(dir, true);
	for (const auto &variant : variants) {
		/* Named, not a structured binding: clang 14 cannot capture those (CAPTURE). */
		const std::string &dir = variant.first;
		bool direct = variant.second;
		CAPTURE(dir);
		CAPTURE(direct);
		TempFile file(dir, 65536);
		ImageSpec spec = spec_for(file.path(), 4096, 16384);
		spec.discard = true;
		spec.direct_io = direct;
		auto img = open_image(spec);
		std::string model = file.contents();

		const int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
		CHECK(fallocate_at(*img, punch, 1000, 3000) == 0);
		zero_model(model, 4096 + 1000, 3000);
		CHECK(difference(file.contents(), model) == "");

		CHECK(fallocate_at(*img, FALLOC_FL_ZERO_RANGE, 5001, 99) == 0);
		zero_model(model, 4096 + 5001, 99);
		CHECK(fallocate_at(*img, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 8192, 4096) ==
		      0);
		zero_model(model, 4096 + 8192, 4096);
		/* The whole window, edge to edge. */
		CHECK(fallocate_at(*img, punch, 16383, 1) == 0);
		zero_model(model, 4096 + 16383, 1);
		CHECK(fallocate_at(*img, punch, 0, 1) == 0);
		zero_model(model, 4096, 1);
		CHECK(difference(file.contents(), model) == "");
		CHECK(file.size() == 65536);
		CHECK(read_at(*img, 1000, 3000) == std::string(3000, '\0'));

		/* Outside the window, or crossing its end: refused, nothing touched. */
		CHECK(fallocate_at(*img, punch, 16000, 1000) == -EINVAL);
		CHECK(fallocate_at(*img, punch, 16384, 1) == -EINVAL);
		CHECK(fallocate_at(*img, punch, 20000, 10) == -EINVAL);
		CHECK(fallocate_at(*img, FALLOC_FL_ZERO_RANGE, 16380, 10) == -EINVAL);
		CHECK(fallocate_at(*img, punch, UINT64_MAX - 5, 10) == -EINVAL);
		CHECK(fallocate_at(*img, punch, 100, 0) == -EINVAL);
		CHECK(difference(file.contents(), model) == "");

		/* Modes we do not pass on. */
		CHECK(fallocate_at(*img, FALLOC_FL_PUNCH_HOLE, 0, 512) == -EOPNOTSUPP);
		CHECK(fallocate_at(*img, FALLOC_FL_COLLAPSE_RANGE, 0, 4096) == -EOPNOTSUPP);
		CHECK(fallocate_at(*img, FALLOC_FL_INSERT_RANGE, 0, 4096) == -EOPNOTSUPP);
		CHECK(difference(file.contents(), model) == "");
	}
}

TEST_CASE("discard=false: punch and zero are not supported; reserving works")
{
	TempFile file("/tmp", 65536);
	auto img = open_image(spec_for(file.path(), 4096, 16384));
	std::string model = file.contents();
	CHECK(fallocate_at(*img, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 512) ==
	      -EOPNOTSUPP);
	CHECK(fallocate_at(*img, FALLOC_FL_ZERO_RANGE, 0, 512) == -EOPNOTSUPP);
	CHECK(fallocate_at(*img, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 512) ==
	      -EOPNOTSUPP);
	/* Plain allocation inside the window is fine; past it, ENOSPC. */
	CHECK(fallocate_at(*img, 0, 0, 16384) == 0);
	CHECK(fallocate_at(*img, FALLOC_FL_KEEP_SIZE, 100, 200) == 0);
	CHECK(fallocate_at(*img, 0, 16000, 1000) == -ENOSPC);
	CHECK(fallocate_at(*img, 0, UINT64_MAX, 2) == -ENOSPC);
	CHECK(difference(file.contents(), model) == "");
	CHECK(file.size() == 65536);
}

TEST_CASE("set_capacity follows the backing file")
{
	TempFile file("/tmp", 8192);
	auto img = open_image(spec_for(file.path()));
	CHECK(img->size() == 8192);

	file.resize(16384);
	CHECK(img->size() == 8192); /* not until asked */
	auto r = img->set_capacity();
	REQUIRE(r.ok());
	CHECK(*r == 16384);
	CHECK(img->size() == 16384);
	CHECK(img->attr().size == 16384);
	CHECK(write_at(*img, 16000, std::string(384, 'g')) == 384);

	file.resize(4000);
	r = img->set_capacity();
	REQUIRE(r.ok());
	CHECK(*r == 3584);
	CHECK(write_at(*img, 3584, "x") == -ENOSPC);
	CHECK(read_at(*img, 3500, 1000).size() == 84);
	CHECK(file.size() == 4000);
}

TEST_CASE("set_capacity with an offset and a size limit")
{
	TempFile file("/tmp", 8192);
	auto img = open_image(spec_for(file.path(), 1024, 10000));
	CHECK(img->size() == 7168);
	file.resize(1 << 20);
	auto r = img->set_capacity();
	REQUIRE(r.ok());
	CHECK(*r == 9728); /* the limit, rounded down to 512 */

	/* Shrunk to before the offset: nothing left, nothing written. */
	file.resize(1000);
	r = img->set_capacity();
	REQUIRE(r.ok());
	CHECK(*r == 0);
	CHECK(read_at(*img, 0, 100).empty());
	CHECK(write_at(*img, 0, "x") == -ENOSPC);
	CHECK(file.size() == 1000);
}

TEST_CASE("a backing file that shrank under the window reads as zeros")
{
	std::vector<std::pair<std::string, bool>> variants = {{"/tmp", false}};
	for (const auto &dir : direct_io_dirs())
		variants.emplace_back(dir, true);
	for (const auto &variant : variants) {
		/* Named, not a structured binding: clang 14 cannot capture those (CAPTURE). */
		const std::string &dir = variant.first;
		bool direct = variant.second;
		CAPTURE(dir);
		CAPTURE(direct);
		TempFile file(dir, 16384);
		ImageSpec spec = spec_for(file.path());
		spec.direct_io = direct;
		auto img = open_image(spec);
		file.resize(8192);
		std::string got = read_at(*img, 8000, 400);
		REQUIRE(got.size() == 400);
		for (size_t i = 0; i < 192; i++)
			CHECK(got[i] == pattern(8000 + i));
		CHECK(got.substr(192) == std::string(208, '\0'));
	}
}

/*
 * Regression (fixed; was: src/image/backing_image.cpp, BackingImage::write_direct, the
 * read-modify-write branch): an unaligned direct-I/O write reads and
 * rewrites whole dio_align_ blocks, including bytes outside the window, and
 * only this image's BlockRangeLock orders it. Two images whose windows share
 * a block of one backing file (partitions at offsets not aligned to the
 * file system's O_DIRECT alignment: 4096 on tmpfs here), or any other writer
 * of the bytes next to the window, lose writes: one image writes back stale
 * bytes of the other's window. DESIGN.md: writes "never touch bytes outside
 * the window".
 */
TEST_CASE("direct_io: two windows sharing a block do not lose each other's writes")
{
	std::string dir;
	for (const auto &d : direct_io_dirs())
		if (d == "/dev/shm")
			dir = d;
	REQUIRE_MESSAGE(!dir.empty(),
			"/dev/shm does not support O_DIRECT (tmpfs has it since Linux 6.6)");
	TempFile file(dir, 4096);
	ImageSpec sa = spec_for(file.path(), 0, 512), sb = spec_for(file.path(), 512, 512);
	sa.name = "a.img";
	sb.name = "b.img";
	sa.direct_io = sb.direct_io = true;
	auto a = open_image(sa), b = open_image(sb);
	int lost = 0;
	for (int round = 0; round < 20 && lost == 0; round++) {
		file.overwrite(std::string(4096, '\0'));
		auto writer = [round](BackingImage &img, char base) {
			AlignedBuffer scratch;
			for (uint64_t i = 0; i < 512; i++) {
				char c = static_cast<char>(base + round);
				(void)img.write(i, std::span<const char>(&c, 1), scratch);
			}
		};
		std::thread ta([&] { writer(*a, 'A'); });
		std::thread tb([&] { writer(*b, 'a'); });
		ta.join();
		tb.join();
		std::string got = file.contents();
		for (size_t i = 0; i < 1024; i++)
			if (got[i] != static_cast<char>((i < 512 ? 'A' : 'a') + round))
				lost++;
	}
	CHECK(lost == 0);
}

/*
 * A backing file of 2^63 - 1 bytes (sparse, on tmpfs) and a window at its
 * very end: the last aligned block of the file is not an off_t, so an
 * O_DIRECT read of it would fail with EINVAL. Every byte of the window reads
 * and writes, buffered and direct; the 511 bytes after it never change.
 */
TEST_CASE("a window ending near 2^63: the last bytes read and write")
{
	std::string dir;
	for (const auto &d : direct_io_dirs())
		if (d == "/dev/shm")
			dir = d;
	REQUIRE_MESSAGE(!dir.empty(),
			"/dev/shm does not support O_DIRECT (tmpfs has it since Linux 6.6)");
	TempFile file(dir, 0);
	file.resize(INT64_MAX);
	const uint64_t offset = (uint64_t{1} << 63) - (uint64_t{1} << 21);
	for (bool direct : {false, true}) {
		CAPTURE(direct);
		ImageSpec spec = spec_for(file.path(), offset, 0);
		spec.direct_io = direct;
		auto img = open_image(spec);
		const uint64_t size = img->size();
		CHECK(size == (uint64_t{1} << 21) - 512);
		std::string data(300, direct ? 'D' : 'B');
		CHECK(write_at(*img, size - 300, data) == 300);
		CHECK(read_at(*img, size - 300, 300) == data);
		CHECK(read_at(*img, size - 1000, 4096).size() == 1000);
		CHECK(write_at(*img, size - 10, std::string(100, 'x')) == 10);
		CHECK(read_at(*img, size - 10, 10) == std::string(10, 'x'));
		CHECK(write_at(*img, size, "y") == -ENOSPC);
		CHECK(read_at(*img, size, 1).empty());
		CHECK(read_at(*img, 0, 512) == std::string(512, '\0'));
	}
	/* Past the window, up to the last byte of the file: never written. */
	int fd = ::open(file.path().c_str(), O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	std::string tail(511, '?');
	CHECK(::pread(fd, tail.data(), tail.size(), INT64_MAX - 511) == 511);
	CHECK(tail == std::string(511, '\0'));
	(void)::close(fd);
	CHECK(file.size() == static_cast<uint64_t>(INT64_MAX));
}

/*
 * A failed write leaves nothing dirty for the backing file's fsync to fail
 * on: sync() reports it itself, once, with the write's error. The write is
 * made to fail with RLIMIT_FSIZE (EFBIG for writes past the limit).
 */
TEST_CASE("sync reports a write that failed since the last sync, once")
{
	for (bool direct : {false, true}) {
		std::string dir = "/tmp";
		if (direct) {
			auto dirs = direct_io_dirs();
			if (dirs.empty())
				continue;
			dir = dirs.front();
		}
		CAPTURE(direct);
		TempFile file(dir, 65536);
		ImageSpec spec = spec_for(file.path());
		spec.direct_io = direct;
		auto img = open_image(spec);
		CHECK(img->sync(false) == 0);

		struct rlimit old = {};
		REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
		auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
		struct rlimit tight = old;
		tight.rlim_cur = 16384;
		REQUIRE(setrlimit(RLIMIT_FSIZE, &tight) == 0);
		int64_t failed = write_at(*img, 32768, std::string(4096, 'w'));
		int64_t fine = write_at(*img, 0, std::string(4096, 'v'));
		REQUIRE(setrlimit(RLIMIT_FSIZE, &old) == 0);
		std::signal(SIGXFSZ, old_handler);

		CHECK(failed == -EFBIG);
		CHECK(fine == 4096);
		CHECK(img->sync(false) == -EFBIG); /* a later good write does not hide it */
		CHECK(img->sync(false) == 0);	   /* reported once */
		CHECK(write_at(*img, 32768, std::string(4096, 'w')) == 4096);
		CHECK(img->sync(true) == 0);
		CHECK(file.contents().substr(32768, 4096) == std::string(4096, 'w'));
	}
}
