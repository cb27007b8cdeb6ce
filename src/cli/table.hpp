/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Plain text tables for cgloopctl: columns padded to their widest cell,
 * numbers right-aligned. Not thread-safe; a value type.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CLI
#error "cli/ is not a layer below this one (see src/meson.build)"
#endif

#include <string>
#include <vector>

namespace cgloopfs::cli {

class Table
{
public:
	struct Column {
		std::string header;
		bool right; /* right-align (numbers) */
	};

	explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
	void add_row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
	std::string render(bool headings = true) const;

private:
	std::vector<Column> columns_;
	std::vector<std::vector<std::string>> rows_;
};

/* "4.0MiB", "512B". */
std::string human_bytes(double bytes);
/* "850us", "12.3ms", "1.50s". */
std::string human_us(double us);
/* "3s", "2m05s", "1h02m". */
std::string human_age(double seconds);

} /* namespace cgloopfs::cli */
