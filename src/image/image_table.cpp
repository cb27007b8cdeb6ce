/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "image_table.hpp"

#include <cstring>
#include <mutex>

#include <fmt/core.h>

namespace cgloopfs::image {

Result<uint64_t> ImageTable::add(std::shared_ptr<BackingImage> image, std::string *ret_other)
{
	ExclusiveLocker lock(mutex_);
	if (by_name_.count(image->name()))
		return Errno{-EEXIST};
	for (const auto &[name, e] : by_name_) {
		if (!image->shares_bytes_with(*e.image))
			continue;
		if (ret_other)
			*ret_other = name;
		return Errno{-EBUSY};
	}
	uint64_t ino = next_ino_++;
	std::string name = image->name();
	by_ino_.emplace(ino, image);
	by_name_.emplace(std::move(name), ImageEntry{ino, std::move(image)});
	return ino;
}

Result<ImageEntry> ImageTable::remove(const std::string &name, bool lazy)
{
	ExclusiveLocker lock(mutex_);
	auto it = by_name_.find(name);
	if (it == by_name_.end())
		return Errno{-ENOENT};
	if (!lazy && it->second.image->open_count() > 0)
		return Errno{-EBUSY};
	ImageEntry e = it->second;
	by_ino_.erase(e.ino);
	by_name_.erase(it);
	for (auto d = detached_.begin(); d != detached_.end();)
		d = d->second.expired() ? detached_.erase(d) : std::next(d);
	if (e.image->open_count() > 0)
		detached_.emplace(e.ino, e.image);
	return e;
}

std::shared_ptr<BackingImage> ImageTable::find(uint64_t ino) const
{
	SharedLocker lock(mutex_);
	auto it = by_ino_.find(ino);
	if (it != by_ino_.end())
		return it->second;
	auto d = detached_.find(ino);
	return d == detached_.end() ? nullptr : d->second.lock();
}

Result<ImageEntry> ImageTable::lookup(const std::string &name) const
{
	SharedLocker lock(mutex_);
	auto it = by_name_.find(name);
	if (it == by_name_.end())
		return Errno{-ENOENT};
	return it->second;
}

std::vector<ImageEntry> ImageTable::list() const
{
	SharedLocker lock(mutex_);
	std::vector<ImageEntry> out;
	out.reserve(by_name_.size());
	for (const auto &[name, e] : by_name_)
		out.push_back(e);
	return out;
}

size_t ImageTable::count() const
{
	SharedLocker lock(mutex_);
	return by_name_.size();
}

uint64_t add_image(ImageTable &table, std::shared_ptr<BackingImage> image)
{
	const auto &spec = image->spec();
	std::string who = config::describe(spec.origin, spec.name);
	std::string other;
	auto r = table.add(image, &other);
	if (r.ok())
		return *r;
	if (r.error() == -EEXIST)
		throw config::ConfigError(fmt::format("{}name: \"{}\" is already attached", who,
						      config::printable(spec.name)));
	if (r.error() == -EBUSY)
		throw config::ConfigError(fmt::format(
			"{}path \"{}\": its window overlaps that of image \"{}\" on the same file, "
			"and one of them is writable",
			who, spec.path, config::printable(other)));
	throw config::ConfigError(
		fmt::format("{}cannot be added: {}", who, std::strerror(-r.error())));
}

} /* namespace cgloopfs::image */
