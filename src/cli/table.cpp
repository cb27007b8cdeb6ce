/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "table.hpp"

#include <algorithm>

#include <fmt/core.h>

namespace cgloopfs::cli {

namespace {

/*
 * The columns a cell takes: its characters (cells are escaped for a
 * terminal, so valid UTF-8 with no controls), not its bytes.
 */
size_t display_width(const std::string &s)
{
	size_t n = 0;
	for (char c : s)
		n += (static_cast<unsigned char>(c) & 0xc0) != 0x80;
	return n;
}

std::string pad(const std::string &s, size_t width, bool right)
{
	size_t w = display_width(s);
	std::string fill(width > w ? width - w : 0, ' ');
	return right ? fill + s : s + fill;
}

} /* namespace */

std::string Table::render(bool headings) const
{
	std::vector<size_t> width(columns_.size(), 0);
	if (headings)
		for (size_t i = 0; i < columns_.size(); i++)
			width[i] = display_width(columns_[i].header);
	for (const auto &row : rows_)
		for (size_t i = 0; i < row.size() && i < width.size(); i++)
			width[i] = std::max(width[i], display_width(row[i]));
	auto line = [&](const std::vector<std::string> &cells) {
		std::string s;
		for (size_t i = 0; i < columns_.size(); i++) {
			const std::string &c = i < cells.size() ? cells[i] : std::string();
			bool last = i + 1 == columns_.size();
			s += last && !columns_[i].right ? c : pad(c, width[i], columns_[i].right);
			if (!last)
				s += "  ";
		}
		return s + "\n";
	};
	std::string out;
	if (headings) {
		std::vector<std::string> h;
		for (const auto &c : columns_)
			h.push_back(c.header);
		out += line(h);
	}
	for (const auto &row : rows_)
		out += line(row);
	return out;
}

std::string human_bytes(double bytes)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	int u = 0;
	while (bytes >= 1024 && u < 5) {
		bytes /= 1024;
		u++;
	}
	return u == 0 ? fmt::format("{:.0f}B", bytes) : fmt::format("{:.1f}{}", bytes, units[u]);
}

std::string human_us(double us)
{
	if (us < 1000)
		return fmt::format("{:.0f}us", us);
	if (us < 1000000)
		return fmt::format("{:.1f}ms", us / 1000);
	return fmt::format("{:.2f}s", us / 1000000);
}

std::string human_age(double s)
{
	long t = static_cast<long>(s);
	if (t < 60)
		return fmt::format("{}s", t);
	if (t < 3600)
		return fmt::format("{}m{:02}s", t / 60, t % 60);
	return fmt::format("{}h{:02}m", t / 3600, (t / 60) % 60);
}

} /* namespace cgloopfs::cli */
