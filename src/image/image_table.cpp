/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "image_table.hpp"

#include <mutex>

namespace cgloopfs::image {

Result<uint64_t> ImageTable::add(std::shared_ptr<BackingImage> image)
{
	std::unique_lock lock(mutex_);
	if (by_name_.count(image->name()))
		return Errno{-EEXIST};
	uint64_t ino = next_ino_++;
	std::string name = image->name();
	by_ino_.emplace(ino, image);
	by_name_.emplace(std::move(name), ImageEntry{ino, std::move(image)});
	return ino;
}

int ImageTable::remove(const std::string &name)
{
	std::unique_lock lock(mutex_);
	auto it = by_name_.find(name);
	if (it == by_name_.end())
		return -ENOENT;
	by_ino_.erase(it->second.ino);
	by_name_.erase(it);
	return 0;
}

std::shared_ptr<BackingImage> ImageTable::find(uint64_t ino) const
{
	std::shared_lock lock(mutex_);
	auto it = by_ino_.find(ino);
	return it == by_ino_.end() ? nullptr : it->second;
}

Result<ImageEntry> ImageTable::lookup(const std::string &name) const
{
	std::shared_lock lock(mutex_);
	auto it = by_name_.find(name);
	if (it == by_name_.end())
		return Errno{-ENOENT};
	return it->second;
}

std::vector<ImageEntry> ImageTable::list() const
{
	std::shared_lock lock(mutex_);
	std::vector<ImageEntry> out;
	out.reserve(by_name_.size());
	for (const auto &[name, e] : by_name_)
		out.push_back(e);
	return out;
}

size_t ImageTable::count() const
{
	std::shared_lock lock(mutex_);
	return by_name_.size();
}

} /* namespace cgloopfs::image */
