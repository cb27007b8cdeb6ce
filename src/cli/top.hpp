/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cgloopctl top: per cgroup, the I/O of the last interval, live, like
 * systemd-cgtop and iotop. Two readings of the daemon's "stats" (cumulative
 * counters and latency histograms per cgroup) a moment apart give the rates
 * and the p99 latency of the requests in between.
 *
 * The pure part (readings, rows, order, layout) is here for the unit tests;
 * the terminal and the loop are in cli/top_screen.cpp. Reentrant; values only.
 */
#pragma once

#ifndef CGLOOPFS_LAYER_CLI
#error "cli/ is not a layer below this one (see src/meson.build)"
#endif

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/options.hpp"

namespace cgloopfs::cli::top {

/* One cgroup in one reading of "stats": counters since its statistics began. */
struct CgroupReading {
	uint64_t id = 0;
	std::string cgroup, unit, machine; /* as the daemon sent them; unit, machine may be "" */
	uint64_t reads = 0, writes = 0, bytes_read = 0, bytes_written = 0;
	uint64_t queued = 0, in_flight = 0;
	/* The histogram's non-empty buckets, [upper bound in ns, requests], ascending. */
	std::vector<std::pair<uint64_t, uint64_t>> buckets;
};

struct Reading {
	double seconds = 0; /* when it was taken, on a monotonic clock */
	std::vector<CgroupReading> cgroups;
};

/* The "stats" result, taken at `seconds`. Throws std::runtime_error if malformed. */
Reading parse_reading(const nlohmann::json &stats, double seconds);

/* One line of the view: a cgroup over the interval between two readings. */
struct Row {
	uint64_t id = 0;
	std::string cgroup, unit, machine; /* raw; escaped when shown */
	bool rates = false;		   /* false: no interval yet, the figures below are 0 */
	double reads_per_s = 0, writes_per_s = 0;
	double read_bytes_per_s = 0, written_bytes_per_s = 0;
	uint64_t queued = 0, in_flight = 0; /* now */
	std::optional<double> p99_us;	    /* none: no request finished in the interval */
};

/*
 * The rows for `cur`, with rates over the interval since `prev` (none: the
 * first reading, rows without rates). A cgroup not in `prev` (by id), or
 * whose counters or histogram went down (its statistics began again),
 * counts from zero.
 */
std::vector<Row> make_rows(const Reading *prev, const Reading &cur);

/*
 * The p99 of the requests between two histograms ([upper ns, count] pairs,
 * ascending): the middle of the bucket the 99th percentile falls in, as the
 * daemon reports its own quantiles (within 12.5%), in microseconds. None
 * when no request finished in between. `prev` may be empty (from zero).
 */
std::optional<double> interval_p99_us(const std::vector<std::pair<uint64_t, uint64_t>> &prev,
				      const std::vector<std::pair<uint64_t, uint64_t>> &cur);

/* The lowest latency (ns) of the histogram bucket whose upper bound is `upper`. */
uint64_t bucket_lower(uint64_t upper);

/* The columns, left to right. */
enum class Column { cgroup, unit, machine, reads, writes, read, written, queued, in_flight, p99 };
inline constexpr size_t column_count = 10;

struct ColumnInfo {
	Column column;
	std::string_view header; /* "R/S" */
	std::string_view name;	 /* --order's word: "reads" */
	char key;		 /* the key that sorts by it */
	bool numeric;		 /* right-aligned, sorted largest first */
};
extern const ColumnInfo columns[column_count];
const ColumnInfo &info(Column c);

/* An order: a column, or "io" (bytes read + written per second, the default). */
struct Order {
	bool io = true;
	Column column = Column::read; /* when !io */

	std::string name() const;
	bool marks(Column c) const; /* whether c's header is marked as the sort column */
	bool operator==(const Order &) const = default;
};

/* --order's word (a column's name or header, any case, or "io"); none if unknown. */
std::optional<Order> parse_order(std::string_view word);
/* The order a key selects; none if the key selects none. */
std::optional<Order> order_for_key(char key);
/* The next order to the right (+1) or left (-1), for the '<' and '>' keys. */
Order step_order(Order order, int step);
/* "io, cgroup, unit, ...": the words --order takes. */
std::string order_words();

void sort_rows(std::vector<Row> &rows, const Order &order);

/* A cell as shown: text escaped (escape_for_terminal), "-" for none. */
std::string cell(const Row &row, Column c);

/* Terminal columns `s` (valid UTF-8, escaped) takes: wcwidth per character, 1 if unknown. */
size_t display_width(std::string_view s);
/* `s` cut to `width` terminal columns, ending in "..." when cut (or keeping its end). */
std::string fit(std::string_view s, size_t width, bool keep_end = false);

/* Widths of the columns for `rows`; with `max_width` > 0 the text columns give way. */
std::vector<size_t> layout(const std::vector<Row> &rows, size_t max_width);

/*
 * The header and row lines (no newline), padded to `widths`. With `ansi` the
 * headers of the sort column are bold and underlined.
 */
std::string header_line(const std::vector<size_t> &widths, const Order &order, bool ansi);
std::string row_line(const Row &row, const std::vector<size_t> &widths);

/* The sums of the rows with rates: "total R/S ...". */
std::string totals_line(const std::vector<Row> &rows);

/* One JSON object per interval (--json): cgroups in order, names exact. */
nlohmann::json rows_json(const std::vector<Row> &rows, const Order &order, double interval);

/* top's options, checked: usage errors are thrown as UsageError. */
struct Options {
	double delay = 1.0;	 /* seconds between readings */
	uint64_t iterations = 0; /* 0: until quit */
	bool batch = false;
	bool json = false;
	Order order;
};
Options parse_options(const Invocation &inv);

/* The top command's options and handler, for the table of verbs. */
std::vector<OptSpec> option_specs();
int run(const Invocation &inv, const std::string &socket);

} /* namespace cgloopfs::cli::top */
