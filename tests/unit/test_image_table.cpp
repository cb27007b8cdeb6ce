/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * image/image_table: add, lookup, find, list and remove on images of real
 * temporary files. Inode numbers are never reused; a name is taken once;
 * windows of one backing file may not overlap unless both are read-only;
 * an open image is removed only lazily, stays reachable by inode until its
 * last close, and then goes; add_image's messages; many threads at once.
 */
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include "config/image_spec.hpp"
#include "image/backing_image.hpp"
#include "image/image_table.hpp"

using cgloopfs::config::ConfigError;
using cgloopfs::config::ImageSpec;
using cgloopfs::image::BackingImage;
using cgloopfs::image::ImageEntry;
using cgloopfs::image::ImageTable;

namespace {

constexpr uint64_t MiB = 1 << 20;

/* A sparse temporary file of `size` bytes; unlinked at the end. */
class TempFile
{
public:
	explicit TempFile(uint64_t size)
	{
		char name[] = "/tmp/cgloopfs-unit-table-XXXXXX";
		int fd = mkstemp(name);
		REQUIRE_MESSAGE(fd >= 0, "mkstemp: " << std::strerror(errno));
		path_ = name;
		bool sized = ftruncate(fd, static_cast<off_t>(size)) == 0;
		::close(fd);
		REQUIRE(sized);
	}
	~TempFile() { (void)::unlink(path_.c_str()); }
	TempFile(const TempFile &) = delete;
	TempFile &operator=(const TempFile &) = delete;

	const std::string &path() const { return path_; }

private:
	std::string path_;
};

std::shared_ptr<BackingImage> image(const std::string &name, const TempFile &file,
				    uint64_t offset = 0, uint64_t size_limit = 0,
				    bool read_only = false)
{
	ImageSpec s;
	s.name = name;
	s.path = file.path();
	s.offset = offset;
	s.size_limit = size_limit;
	s.read_only = read_only;
	s.origin = "unit:1";
	std::shared_ptr<BackingImage> img;
	try {
		img = BackingImage::open(s, false);
	} catch (const ConfigError &e) {
		FAIL("open refused: " << e.what());
	}
	REQUIRE(img);
	return img;
}

/* The names listed, in the order list() gives them. */
std::vector<std::string> names(const ImageTable &t)
{
	std::vector<std::string> out;
	for (const auto &e : t.list())
		out.push_back(e.image->name());
	return out;
}

} /* namespace */

TEST_CASE("ImageTable: empty")
{
	ImageTable t;
	CHECK(t.count() == 0);
	CHECK(t.list().empty());
	CHECK(t.find(ImageTable::root_ino) == nullptr);
	CHECK(t.find(2) == nullptr);
	CHECK(t.lookup("x").error() == -ENOENT);
	CHECK(t.remove("x", false).error() == -ENOENT);
	CHECK(t.remove("x", true).error() == -ENOENT);
}

TEST_CASE("ImageTable: add, lookup, find, list in name order")
{
	TempFile a(MiB), b(MiB), c(MiB);
	ImageTable t;
	auto ia = image("b.img", a), ib = image("a.img", b), ic = image("c.img", c);
	auto ra = t.add(ia), rb = t.add(ib), rc = t.add(ic);
	REQUIRE(ra.ok());
	REQUIRE(rb.ok());
	REQUIRE(rc.ok());
	/* Numbers after the root's, all different. */
	CHECK(*ra > ImageTable::root_ino);
	CHECK(*rb > ImageTable::root_ino);
	CHECK(*rc > ImageTable::root_ino);
	CHECK(std::set<uint64_t>{*ra, *rb, *rc}.size() == 3);
	CHECK(t.count() == 3);
	CHECK(names(t) == std::vector<std::string>{"a.img", "b.img", "c.img"});
	CHECK(t.find(*ra) == ia);
	CHECK(t.find(*rb) == ib);
	auto e = t.lookup("c.img");
	REQUIRE(e.ok());
	CHECK(e->ino == *rc);
	CHECK(e->image == ic);
	CHECK(t.find(ImageTable::root_ino) == nullptr);
	CHECK(t.lookup("C.IMG").error() == -ENOENT);
}

TEST_CASE("ImageTable: a name is taken once")
{
	TempFile a(MiB), b(MiB);
	ImageTable t;
	REQUIRE(t.add(image("x.img", a)).ok());
	std::string other = "unchanged";
	CHECK(t.add(image("x.img", b), &other).error() == -EEXIST);
	CHECK(other == "unchanged");
	CHECK(t.count() == 1);
}

TEST_CASE("ImageTable: windows of one file may overlap only when both are read-only")
{
	TempFile f(4 * MiB);
	ImageTable t;
	REQUIRE(t.add(image("lo.img", f, 0, MiB)).ok());
	/* Beside it: fine. */
	REQUIRE(t.add(image("hi.img", f, MiB, MiB)).ok());
	std::string other;
	/* Inside lo.img's window, writable: refused, naming it. */
	CHECK(t.add(image("over.img", f, MiB - 1024, 512), &other).error() == -EBUSY);
	CHECK(other == "lo.img");
	/* No size limit reaches to the end: overlaps hi.img. */
	other.clear();
	CHECK(t.add(image("tail.img", f, 1536 * 1024), &other).error() == -EBUSY);
	CHECK(other == "hi.img");
	/* Read-only over a writable window: still refused (its bytes may change under it). */
	CHECK(t.add(image("ro.img", f, 0, MiB, true)).error() == -EBUSY);
	CHECK(t.count() == 2);

	/* Two read-only windows of another region may overlap. */
	REQUIRE(t.add(image("ro1.img", f, 2 * MiB, MiB, true)).ok());
	REQUIRE(t.add(image("ro2.img", f, 2 * MiB + 4096, MiB, true)).ok());
	CHECK(t.count() == 4);
	/* Another file at the same offsets: no conflict. */
	TempFile g(4 * MiB);
	CHECK(t.add(image("g.img", g, 0, MiB)).ok());
}

TEST_CASE("ImageTable: remove; inode numbers are never reused")
{
	TempFile a(MiB);
	ImageTable t;
	auto first = t.add(image("x.img", a));
	REQUIRE(first.ok());
	auto removed = t.remove("x.img", false);
	REQUIRE(removed.ok());
	CHECK(removed->ino == *first);
	CHECK(removed->image->name() == "x.img");
	CHECK(t.count() == 0);
	CHECK(t.find(*first) == nullptr);
	CHECK(t.lookup("x.img").error() == -ENOENT);
	/* The same name again: a new number, the old one still leads nowhere. */
	auto again = t.add(image("x.img", a));
	REQUIRE(again.ok());
	CHECK(*again != *first);
	CHECK(t.find(*first) == nullptr);
	std::set<uint64_t> seen{*first, *again};
	for (int i = 0; i < 50; i++) {
		REQUIRE(t.remove("x.img", false).ok());
		auto r = t.add(image("x.img", a));
		REQUIRE(r.ok());
		CHECK(seen.insert(*r).second);
	}
}

TEST_CASE("ImageTable: an open image is removed only lazily, and lives until its last close")
{
	TempFile a(MiB);
	ImageTable t;
	auto ino = t.add(image("x.img", a));
	REQUIRE(ino.ok());
	std::weak_ptr<BackingImage> weak;
	{
		auto img = t.find(*ino);
		REQUIRE(img);
		weak = img;
		img->opened();
		img->opened();
		CHECK(t.remove("x.img", false).error() == -EBUSY);
		CHECK(t.count() == 1);
		auto r = t.remove("x.img", true);
		REQUIRE(r.ok());
		/* Gone by name at once... */
		CHECK(t.count() == 0);
		CHECK(t.lookup("x.img").error() == -ENOENT);
		CHECK(names(t).empty());
		/* ...but still reachable by inode (fstat on an open handle). */
		CHECK(t.find(*ino) == img);
		/* Its name is free: a new image takes it, with another number. */
		auto other = t.add(image("x.img", a));
		REQUIRE(other.ok());
		CHECK(*other != *ino);
		CHECK(t.find(*ino) == img);
		CHECK(t.find(*other) != img);
		img->closed();
		img->closed();
		/* The table holds it weakly: the handles' references keep it. */
	}
	CHECK(weak.expired());
	CHECK(t.find(*ino) == nullptr);
}

TEST_CASE("add_image: messages name the image and the setting")
{
	TempFile f(2 * MiB);
	ImageTable t;
	CHECK(add_image(t, image("a.img", f, 0, MiB)) > ImageTable::root_ino);
	try {
		add_image(t, image("a.img", f, MiB, MiB));
		FAIL("a duplicate name was added");
	} catch (const ConfigError &e) {
		std::string msg = e.what();
		CHECK(msg.find("a.img") != std::string::npos);
		CHECK(msg.find("already attached") != std::string::npos);
	}
	try {
		add_image(t, image("b.img", f, 512, MiB));
		FAIL("an overlapping window was added");
	} catch (const ConfigError &e) {
		std::string msg = e.what();
		CHECK(msg.find("b.img") != std::string::npos);
		CHECK(msg.find("\"a.img\"") != std::string::npos);
		CHECK(msg.find(f.path()) != std::string::npos);
	}
	CHECK(t.count() == 1);
}

TEST_CASE("ImageTable: many threads at once")
{
	/*
	 * Writers add and remove their own names while readers list and look
	 * up: every number is handed out once and the table ends empty.
	 */
	constexpr int writers = 4, rounds = 200;
	std::vector<std::unique_ptr<TempFile>> files;
	std::vector<std::shared_ptr<BackingImage>> images;
	for (int w = 0; w < writers; w++) {
		files.push_back(std::make_unique<TempFile>(MiB));
		images.push_back(image("w" + std::to_string(w) + ".img", *files.back()));
	}
	ImageTable t;
	std::atomic<bool> stop{false};
	std::atomic<int> failures{0};
	std::vector<std::vector<uint64_t>> inos(writers);
	std::vector<std::thread> threads;
	for (int w = 0; w < writers; w++)
		threads.emplace_back([&, w] {
			for (int i = 0; i < rounds; i++) {
				auto r = t.add(images[static_cast<size_t>(w)]);
				if (!r.ok()) {
					failures++;
					continue;
				}
				inos[static_cast<size_t>(w)].push_back(*r);
				if (t.find(*r) != images[static_cast<size_t>(w)])
					failures++;
				if (!t.remove(images[static_cast<size_t>(w)]->name(), false).ok())
					failures++;
			}
		});
	std::thread reader([&] {
		while (!stop) {
			for (const auto &e : t.list())
				if (!e.image || e.ino <= ImageTable::root_ino)
					failures++;
			(void)t.lookup("w0.img");
			if (t.count() > static_cast<size_t>(writers))
				failures++;
		}
	});
	for (auto &th : threads)
		th.join();
	stop = true;
	reader.join();
	CHECK(failures == 0);
	CHECK(t.count() == 0);
	std::set<uint64_t> all;
	size_t total = 0;
	for (const auto &v : inos) {
		all.insert(v.begin(), v.end());
		total += v.size();
	}
	CHECK(total == static_cast<size_t>(writers * rounds));
	CHECK(all.size() == total);
}
