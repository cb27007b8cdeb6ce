/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ImageTable: the images of one mount, by name and by inode number. Inode
 * numbers are never reused within a daemon's life, so a handle or a kernel
 * lookup of a removed image can never reach another image.
 * Thread-safe (one shared_mutex; lookups take it shared).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_IMAGE
#error "image/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "backing_image.hpp"
#include "common/mutex.hpp"

namespace cgloopfs::image {

struct ImageEntry {
	uint64_t ino;
	std::shared_ptr<BackingImage> image;
};

class ImageTable
{
public:
	static constexpr uint64_t root_ino = 1;

	/*
	 * Add an image; returns its inode number. -EEXIST when the name is
	 * taken; -EBUSY when its window overlaps one of an image on the same
	 * backing file and either of them is writable (*ret_other names it).
	 */
	Result<uint64_t> add(std::shared_ptr<BackingImage> image, std::string *ret_other = nullptr);
	/*
	 * Remove by name: -ENOENT when absent, -EBUSY when it is open and not
	 * `lazy`. Lazily removed images vanish at once and are freed by their
	 * last handle. Returns the entry removed.
	 */
	Result<ImageEntry> remove(const std::string &name, bool lazy);

	/* By inode: attached images, and detached ones that are still open. */
	std::shared_ptr<BackingImage> find(uint64_t ino) const;
	Result<ImageEntry> lookup(const std::string &name) const;
	/* In name order. */
	std::vector<ImageEntry> list() const;
	size_t count() const;

private:
	/* A leaf: nothing is taken under it, and no I/O runs under it. */
	mutable SharedMutex mutex_;
	std::map<std::string, ImageEntry> by_name_ CGL_GUARDED_BY(mutex_);
	std::map<uint64_t, std::shared_ptr<BackingImage>> by_ino_ CGL_GUARDED_BY(mutex_);
	/* Detached while open: still reachable by inode (fstat) until the last close. */
	std::map<uint64_t, std::weak_ptr<BackingImage>> detached_ CGL_GUARDED_BY(mutex_);
	uint64_t next_ino_ CGL_GUARDED_BY(mutex_) = root_ino + 1;
};

/*
 * Add `image` to `table`, or throw config::ConfigError naming the image and
 * the setting that conflicts. Returns its inode number.
 */
uint64_t add_image(ImageTable &table, std::shared_ptr<BackingImage> image);

} /* namespace cgloopfs::image */
