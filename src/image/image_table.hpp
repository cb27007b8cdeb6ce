/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ImageTable: the images of one mount, by name and by inode number. Inode
 * numbers are never reused within a daemon's life, so a handle or a kernel
 * lookup of a removed image can never reach another image.
 * Thread-safe (one shared_mutex; lookups take it shared).
 */
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "backing_image.hpp"

namespace cgloopfs::image {

struct ImageEntry {
	uint64_t ino;
	std::shared_ptr<BackingImage> image;
};

class ImageTable
{
public:
	static constexpr uint64_t root_ino = 1;

	/* Add an image; -EEXIST when the name is taken. Returns its inode number. */
	Result<uint64_t> add(std::shared_ptr<BackingImage> image);
	/* Remove by name; -ENOENT when absent. */
	int remove(const std::string &name);

	std::shared_ptr<BackingImage> find(uint64_t ino) const;
	Result<ImageEntry> lookup(const std::string &name) const;
	/* In name order. */
	std::vector<ImageEntry> list() const;
	size_t count() const;

private:
	mutable std::shared_mutex mutex_;
	std::map<std::string, ImageEntry> by_name_;			/* guarded by mutex_ */
	std::map<uint64_t, std::shared_ptr<BackingImage>> by_ino_; /* guarded by mutex_ */
	uint64_t next_ino_ = root_ino + 1;				/* guarded by mutex_ */
};

} /* namespace cgloopfs::image */
