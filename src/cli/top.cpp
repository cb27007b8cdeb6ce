/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl top, the pure part: readings of "stats", the rows of an
 * interval, their order and their layout. The terminal is in top_screen.cpp.
 */
#include "top.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cwchar>
#include <map>
#include <stdexcept>

#include <fmt/core.h>

#include "cli/table.hpp"
#include "common/escape.hpp"

namespace cgloopfs::cli::top {

using nlohmann::json;

/* --------------------------------------------------------------------------
 * Readings and rows
 */

namespace {

uint64_t number(const json &o, const char *key)
{
	auto it = o.find(key);
	if (it == o.end() || it->is_null())
		return 0;
	if (!it->is_number_unsigned() && !it->is_number_integer())
		throw std::runtime_error(
			fmt::format("the daemon's stats: \"{}\" is not a number", key));
	return it->get<uint64_t>();
}

/* A name the daemon may send (unit, machine): "" when absent or not a string. */
std::string text(const json &o, const char *key)
{
	auto it = o.find(key);
	return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

} /* namespace */

Reading parse_reading(const json &stats, double seconds)
{
	Reading r;
	r.seconds = seconds;
	if (!stats.is_object() || !stats.contains("cgroups") || !stats["cgroups"].is_array())
		throw std::runtime_error("the daemon's stats have no \"cgroups\" list");
	for (const auto &c : stats["cgroups"]) {
		if (!c.is_object())
			throw std::runtime_error("the daemon's stats: a cgroup is not an object");
		CgroupReading g;
		g.id = number(c, "cgroup_id");
		g.cgroup = text(c, "cgroup");
		g.unit = text(c, "unit");
		g.machine = text(c, "machine");
		g.reads = number(c, "reads");
		g.writes = number(c, "writes");
		g.bytes_read = number(c, "bytes_read");
		g.bytes_written = number(c, "bytes_written");
		g.queued = number(c, "queued");
		g.in_flight = number(c, "in_flight");
		if (auto it = c.find("latency_buckets"); it != c.end() && it->is_array()) {
			for (const auto &b : *it) {
				if (!b.is_array() || b.size() != 2 || !b[0].is_number_unsigned() ||
				    !b[1].is_number_unsigned())
					throw std::runtime_error(
						"the daemon's stats: a latency bucket is not "
						"[upper, count]");
				g.buckets.emplace_back(b[0].get<uint64_t>(), b[1].get<uint64_t>());
			}
			std::sort(g.buckets.begin(), g.buckets.end());
		}
		r.cgroups.push_back(std::move(g));
	}
	return r;
}

uint64_t bucket_lower(uint64_t upper)
{
	/*
	 * The daemon's histogram (dispatch/stats.hpp) has 4 buckets per power of
	 * two: below 4 one per value, else a bucket whose values have their top
	 * bit at `log` is 2^(log-2) wide, and its upper bound keeps that top bit.
	 */
	if (upper < 4)
		return upper;
	unsigned log = 63 - static_cast<unsigned>(std::countl_zero(upper));
	return upper - (uint64_t{1} << (log - 2)) + 1;
}

std::optional<double> interval_p99_us(const std::vector<std::pair<uint64_t, uint64_t>> &prev,
				      const std::vector<std::pair<uint64_t, uint64_t>> &cur)
{
	std::map<uint64_t, uint64_t> before(prev.begin(), prev.end());
	std::vector<std::pair<uint64_t, uint64_t>> delta;
	uint64_t total = 0;
	for (const auto &[upper, count] : cur) {
		auto it = before.find(upper);
		uint64_t was = it == before.end() ? 0 : it->second;
		if (count > was) {
			delta.emplace_back(upper, count - was);
			total += count - was;
		}
	}
	if (total == 0)
		return std::nullopt;
	auto rank = static_cast<uint64_t>(std::ceil(0.99 * static_cast<double>(total)));
	rank = std::max<uint64_t>(rank, 1);
	uint64_t seen = 0;
	for (const auto &[upper, n] : delta) {
		seen += n;
		if (seen >= rank) {
			uint64_t lo = bucket_lower(upper);
			return static_cast<double>(lo + (upper - lo) / 2) / 1e3;
		}
	}
	return std::nullopt; /* not reached: seen ends at total */
}

namespace {

/* Whether `now` cannot follow `before`: a counter or a bucket went down. */
bool went_down(const CgroupReading &before, const CgroupReading &now)
{
	if (now.reads < before.reads || now.writes < before.writes ||
	    now.bytes_read < before.bytes_read || now.bytes_written < before.bytes_written)
		return true;
	std::map<uint64_t, uint64_t> after(now.buckets.begin(), now.buckets.end());
	for (const auto &[upper, count] : before.buckets) {
		auto it = after.find(upper);
		if (it == after.end() || it->second < count)
			return true;
	}
	return false;
}

} /* namespace */

std::vector<Row> make_rows(const Reading *prev, const Reading &cur)
{
	std::map<uint64_t, const CgroupReading *> before;
	if (prev)
		for (const auto &g : prev->cgroups)
			before[g.id] = &g;
	double dt = prev ? cur.seconds - prev->seconds : 0;
	static const CgroupReading zero;
	std::vector<Row> rows;
	for (const auto &g : cur.cgroups) {
		Row r;
		r.id = g.id;
		r.cgroup = g.cgroup;
		r.unit = g.unit;
		r.machine = g.machine;
		r.queued = g.queued;
		r.in_flight = g.in_flight;
		if (prev && dt > 0) {
			auto it = before.find(g.id);
			const CgroupReading *b = it == before.end() ? &zero : it->second;
			if (went_down(*b, g))
				b = &zero;
			r.rates = true;
			r.reads_per_s = static_cast<double>(g.reads - b->reads) / dt;
			r.writes_per_s = static_cast<double>(g.writes - b->writes) / dt;
			r.read_bytes_per_s = static_cast<double>(g.bytes_read - b->bytes_read) / dt;
			r.written_bytes_per_s =
				static_cast<double>(g.bytes_written - b->bytes_written) / dt;
			r.p99_us = interval_p99_us(b->buckets, g.buckets);
		}
		rows.push_back(std::move(r));
	}
	return rows;
}

/* --------------------------------------------------------------------------
 * Columns and order
 */

const ColumnInfo columns[column_count] = {
	{Column::cgroup, "CGROUP", "cgroup", 'c', false},
	{Column::unit, "UNIT", "unit", 'u', false},
	{Column::machine, "MACHINE", "machine", 'm', false},
	{Column::reads, "R/S", "reads", 'r', true},
	{Column::writes, "W/S", "writes", 'w', true},
	{Column::read, "RMiB/S", "read", 'R', true},
	{Column::written, "WMiB/S", "written", 'W', true},
	{Column::queued, "QUEUED", "queued", 'Q', true},
	{Column::in_flight, "INFLIGHT", "inflight", 'f', true},
	{Column::p99, "P99", "p99", 'p', true},
};

const ColumnInfo &info(Column c)
{
	return columns[static_cast<size_t>(c)];
}

std::string Order::name() const
{
	return io ? "io" : std::string(info(column).name);
}

bool Order::marks(Column c) const
{
	return io ? c == Column::read || c == Column::written : c == column;
}

namespace {

bool same_word(std::string_view a, std::string_view b)
{
	return a.size() == b.size() &&
	       std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
		       return std::tolower(static_cast<unsigned char>(x)) ==
			      std::tolower(static_cast<unsigned char>(y));
	       });
}

/* The orders '<' and '>' step through: the columns left to right, io before the rates. */
std::vector<Order> all_orders()
{
	std::vector<Order> out;
	for (const auto &c : columns) {
		if (c.column == Column::reads)
			out.push_back(Order{});
		out.push_back(Order{false, c.column});
	}
	return out;
}

} /* namespace */

std::optional<Order> parse_order(std::string_view word)
{
	if (same_word(word, "io"))
		return Order{};
	for (const auto &c : columns)
		if (same_word(word, c.name) || same_word(word, c.header))
			return Order{false, c.column};
	return std::nullopt;
}

std::optional<Order> order_for_key(char key)
{
	if (key == 'i')
		return Order{};
	for (const auto &c : columns)
		if (c.key == key)
			return Order{false, c.column};
	return std::nullopt;
}

Order step_order(Order order, int step)
{
	auto all = all_orders();
	auto it = std::find(all.begin(), all.end(), order);
	auto i = static_cast<long>(it - all.begin()) + step;
	i = std::clamp<long>(i, 0, static_cast<long>(all.size()) - 1);
	return all[static_cast<size_t>(i)];
}

std::string order_words()
{
	std::string s;
	for (const auto &o : all_orders())
		s += (s.empty() ? "" : ", ") + o.name();
	return s;
}

namespace {

/* The figure a row is sorted by (numeric orders); -1 for none. */
double figure(const Row &r, const Order &o)
{
	if (o.io)
		return r.read_bytes_per_s + r.written_bytes_per_s;
	switch (o.column) {
	case Column::reads:
		return r.reads_per_s;
	case Column::writes:
		return r.writes_per_s;
	case Column::read:
		return r.read_bytes_per_s;
	case Column::written:
		return r.written_bytes_per_s;
	case Column::queued:
		return static_cast<double>(r.queued);
	case Column::in_flight:
		return static_cast<double>(r.in_flight);
	case Column::p99:
		return r.p99_us ? *r.p99_us : -1;
	default:
		return 0;
	}
}

const std::string &name_of(const Row &r, Column c)
{
	return c == Column::unit ? r.unit : c == Column::machine ? r.machine : r.cgroup;
}

} /* namespace */

void sort_rows(std::vector<Row> &rows, const Order &order)
{
	bool numeric = order.io || info(order.column).numeric;
	std::stable_sort(rows.begin(), rows.end(), [&](const Row &a, const Row &b) {
		if (numeric) {
			double x = figure(a, order), y = figure(b, order);
			if (x != y)
				return x > y;
		} else {
			/* Names first, those without one ("-") last. */
			const auto &x = name_of(a, order.column);
			const auto &y = name_of(b, order.column);
			if (x.empty() != y.empty())
				return y.empty();
			if (x != y)
				return x < y;
		}
		if (a.cgroup != b.cgroup)
			return a.cgroup < b.cgroup;
		return a.id < b.id;
	});
}

/* --------------------------------------------------------------------------
 * Cells and layout
 */

namespace {

std::string rate(const Row &r, double v)
{
	if (!r.rates)
		return "-";
	return v < 10 ? fmt::format("{:.1f}", v) : fmt::format("{:.0f}", v);
}

std::string mib(const Row &r, double bytes)
{
	if (!r.rates)
		return "-";
	return fmt::format("{:.2f}", bytes / (1024.0 * 1024.0));
}

std::string name_cell(const std::string &s)
{
	return s.empty() ? "-" : escape_for_terminal(s);
}

/* The code point at s[i] (valid UTF-8) and its length. */
std::pair<char32_t, size_t> decode(std::string_view s, size_t i)
{
	auto c = static_cast<unsigned char>(s[i]);
	size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if (i + len > s.size())
		return {c, 1};
	char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
	for (size_t k = 1; k < len; k++)
		cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
	return {cp, len};
}

size_t char_width(char32_t cp)
{
	if (cp < 0x80)
		return 1;
	int w = wcwidth(static_cast<wchar_t>(cp));
	return w < 0 ? 1 : static_cast<size_t>(w);
}

/* `s` padded with blanks to `width` columns, on the left when `right`. */
std::string pad(const std::string &s, size_t width, bool right)
{
	size_t w = display_width(s);
	if (w >= width)
		return s;
	std::string fill(width - w, ' ');
	return right ? fill + s : s + fill;
}

} /* namespace */

std::string cell(const Row &r, Column c)
{
	switch (c) {
	case Column::cgroup:
		return name_cell(r.cgroup);
	case Column::unit:
		return name_cell(r.unit);
	case Column::machine:
		return name_cell(r.machine);
	case Column::reads:
		return rate(r, r.reads_per_s);
	case Column::writes:
		return rate(r, r.writes_per_s);
	case Column::read:
		return mib(r, r.read_bytes_per_s);
	case Column::written:
		return mib(r, r.written_bytes_per_s);
	case Column::queued:
		return std::to_string(r.queued);
	case Column::in_flight:
		return std::to_string(r.in_flight);
	case Column::p99:
		return r.p99_us ? human_us(*r.p99_us) : "-";
	}
	return "-";
}

size_t display_width(std::string_view s)
{
	size_t w = 0;
	for (size_t i = 0; i < s.size();) {
		auto [cp, len] = decode(s, i);
		w += char_width(cp);
		i += len;
	}
	return w;
}

std::string fit(std::string_view s, size_t width, bool keep_end)
{
	if (display_width(s) <= width)
		return std::string(s);
	std::string_view dots = width >= 4 ? "..." : "";
	size_t room = width - dots.size();
	/* The characters, each with its width. */
	std::vector<std::pair<std::string_view, size_t>> chars;
	for (size_t i = 0; i < s.size();) {
		auto [cp, len] = decode(s, i);
		chars.emplace_back(s.substr(i, len), char_width(cp));
		i += len;
	}
	std::string kept;
	size_t used = 0;
	if (keep_end) {
		size_t k = chars.size();
		while (k > 0 && used + chars[k - 1].second <= room)
			used += chars[--k].second;
		for (size_t j = k; j < chars.size(); j++)
			kept += chars[j].first;
		return std::string(dots) + kept;
	}
	for (const auto &[ch, w] : chars) {
		if (used + w > room)
			break;
		kept += ch;
		used += w;
	}
	return kept + std::string(dots);
}

std::vector<size_t> layout(const std::vector<Row> &rows, size_t max_width)
{
	std::vector<size_t> w(column_count);
	for (size_t i = 0; i < column_count; i++)
		w[i] = columns[i].header.size();
	for (const auto &r : rows)
		for (size_t i = 0; i < column_count; i++)
			w[i] = std::max(w[i], display_width(cell(r, columns[i].column)));
	if (max_width == 0)
		return w;
	size_t total = 2 * (column_count - 1);
	for (auto x : w)
		total += x;
	/* The text columns give way: CGROUP first, then UNIT and MACHINE, then all further. */
	const std::pair<Column, size_t> steps[] = {
		{Column::cgroup, 24}, {Column::unit, 16}, {Column::machine, 12},
		{Column::cgroup, 12}, {Column::unit, 8},  {Column::machine, 7},
		{Column::cgroup, 6},  {Column::unit, 4},  {Column::machine, 4},
	};
	for (const auto &[c, floor] : steps) {
		if (total <= max_width)
			break;
		size_t &x = w[static_cast<size_t>(c)];
		if (x <= floor)
			continue;
		size_t cut = std::min(x - floor, total - max_width);
		x -= cut;
		total -= cut;
	}
	return w;
}

std::string header_line(const std::vector<size_t> &widths, const Order &order, bool ansi)
{
	std::string s;
	for (size_t i = 0; i < column_count; i++) {
		const auto &c = columns[i];
		std::string h = pad(std::string(c.header), widths[i], c.numeric);
		if (ansi && order.marks(c.column)) {
			/* Only the name is marked, not its padding. */
			size_t start = c.numeric ? h.size() - c.header.size() : 0;
			h = h.substr(0, start) + "\033[1;4m" + std::string(c.header) +
			    "\033[22;24m" + h.substr(start + c.header.size());
		}
		s += h;
		if (i + 1 < column_count)
			s += "  ";
	}
	return s;
}

std::string row_line(const Row &row, const std::vector<size_t> &widths)
{
	std::string s;
	for (size_t i = 0; i < column_count; i++) {
		const auto &c = columns[i];
		std::string v = cell(row, c.column);
		if (!c.numeric)
			v = fit(v, widths[i], c.column == Column::cgroup);
		s += pad(v, widths[i], c.numeric);
		if (i + 1 < column_count)
			s += "  ";
	}
	return s;
}

std::string totals_line(const std::vector<Row> &rows)
{
	Row sum;
	sum.rates = rows.empty() || rows.front().rates;
	for (const auto &r : rows) {
		sum.reads_per_s += r.reads_per_s;
		sum.writes_per_s += r.writes_per_s;
		sum.read_bytes_per_s += r.read_bytes_per_s;
		sum.written_bytes_per_s += r.written_bytes_per_s;
		sum.queued += r.queued;
		sum.in_flight += r.in_flight;
	}
	return fmt::format("total: {} cgroups  R/S {}  W/S {}  RMiB/S {}  WMiB/S {}  QUEUED {}  "
			   "INFLIGHT {}",
			   rows.size(), cell(sum, Column::reads), cell(sum, Column::writes),
			   cell(sum, Column::read), cell(sum, Column::written), sum.queued,
			   sum.in_flight);
}

json rows_json(const std::vector<Row> &rows, const Order &order, double interval)
{
	json list = json::array();
	auto name = [](const std::string &s) { return s.empty() ? json(nullptr) : json(s); };
	for (const auto &r : rows)
		list.push_back({
			{"cgroup", r.cgroup},
			{"cgroup_id", r.id},
			{"unit", name(r.unit)},
			{"machine", name(r.machine)},
			{"reads_per_s", r.reads_per_s},
			{"writes_per_s", r.writes_per_s},
			{"read_bytes_per_s", r.read_bytes_per_s},
			{"written_bytes_per_s", r.written_bytes_per_s},
			{"queued", r.queued},
			{"in_flight", r.in_flight},
			{"latency_p99_us", r.p99_us ? json(*r.p99_us) : json(nullptr)},
		});
	return {{"interval", interval}, {"order", order.name()}, {"cgroups", list}};
}

/* --------------------------------------------------------------------------
 * Options
 */

namespace {

constexpr double min_delay = 0.01, max_delay = 86400;
constexpr uint64_t max_iterations = 1000000000;

} /* namespace */

Options parse_options(const Invocation &inv)
{
	Options o;
	if (inv.has("delay")) {
		std::string v = inv.get("delay");
		/* Digits with at most one point: no sign, exponent, hex, inf or nan. */
		bool plain = std::count(v.begin(), v.end(), '.') <= 1 &&
			     std::any_of(v.begin(), v.end(),
					 [](unsigned char c) { return c >= '0' && c <= '9'; }) &&
			     std::all_of(v.begin(), v.end(), [](unsigned char c) {
				     return c == '.' || (c >= '0' && c <= '9');
			     });
		double d = plain && v.size() <= 20 ? std::strtod(v.c_str(), nullptr) : NAN;
		if (!plain || !std::isfinite(d) || d < min_delay || d > max_delay)
			throw UsageError(fmt::format(
				"top: --delay: \"{}\" is not a number of seconds from {} to {}",
				escape_for_terminal(v), min_delay, max_delay));
		o.delay = d;
	}
	if (inv.has("iterations")) {
		std::string v = inv.get("iterations");
		bool digits = !v.empty() && v.size() <= 10 &&
			      std::all_of(v.begin(), v.end(),
					  [](unsigned char c) { return c >= '0' && c <= '9'; });
		uint64_t n = digits ? std::strtoull(v.c_str(), nullptr, 10) : 0;
		if (n < 1 || n > max_iterations)
			throw UsageError(fmt::format(
				"top: --iterations: \"{}\" is not a whole number from 1 to {}",
				escape_for_terminal(v), max_iterations));
		o.iterations = n;
	}
	if (inv.has("order")) {
		std::string v = inv.get("order");
		auto order = parse_order(v);
		if (!order)
			throw UsageError(
				fmt::format("top: --order: unknown column \"{}\" (one of: {})",
					    escape_for_terminal(v), order_words()));
		o.order = *order;
	}
	o.json = inv.has("json");
	o.batch = inv.has("batch") || o.json;
	return o;
}

std::vector<OptSpec> option_specs()
{
	return {
		{"delay", 'd', ArgKind::required, "SECONDS",
		 "refresh every SECONDS (default 1; 0.5 too)"},
		{"iterations", 'n', ArgKind::required, "N", "stop after N refreshes"},
		{"batch", 'b', ArgKind::none, "", "print plain tables, one per refresh; no keys"},
		{"order", 'o', ArgKind::required, "COLUMN",
		 "sort by COLUMN (default io: bytes read + written)"},
	};
}

} /* namespace cgloopfs::cli::top */
