/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cli/top: the rows of an interval from two readings of "stats" (rates, the
 * interval's p99 from the histograms, cgroups that are new or began again),
 * their order, the layout on a narrow terminal, the options; and
 * common/escape: escape_for_terminal, which every name passes through on its
 * way to the screen. The terminal itself is tested through tmux in
 * tests/integration/cases/test_top.py.
 */
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "cli/options.hpp"
#include "cli/top.hpp"
#include "common/escape.hpp"
#include "dispatch/stats.hpp"

using namespace cgloopfs;
using namespace cgloopfs::cli::top;
using nlohmann::json;

namespace {

using Buckets = std::vector<std::pair<uint64_t, uint64_t>>;

/* The non-empty buckets of `h`, as the daemon sends them. */
Buckets buckets_of(const dispatch::LatencyHistogram &h)
{
	Buckets out;
	for (unsigned b = 0; b < dispatch::LatencyHistogram::buckets; b++)
		if (uint64_t n = h.bucket_count(b))
			out.emplace_back(dispatch::LatencyHistogram::bucket_upper(b), n);
	return out;
}

json cgroup_json(uint64_t id, const std::string &path, uint64_t reads, uint64_t writes,
		 uint64_t bytes_read, uint64_t bytes_written, const Buckets &buckets = {})
{
	json b = json::array();
	for (const auto &[upper, n] : buckets)
		b.push_back(json::array({upper, n}));
	return {{"cgroup", path},      {"cgroup_id", id},	   {"worker", true},
		{"queued", 1},	       {"in_flight", 2},	   {"reads", reads},
		{"writes", writes},    {"bytes_read", bytes_read}, {"bytes_written", bytes_written},
		{"latency_buckets", b}};
}

Reading reading(double t, std::initializer_list<json> cgroups)
{
	json stats = {{"cgroups", json::array()}};
	for (const auto &c : cgroups)
		stats["cgroups"].push_back(c);
	return parse_reading(stats, t);
}

const Row &row_of(const std::vector<Row> &rows, uint64_t id)
{
	auto it = std::find_if(rows.begin(), rows.end(), [&](const Row &r) { return r.id == id; });
	REQUIRE(it != rows.end());
	return *it;
}

/* Arguments that outlive the parse: getopt keeps pointers into the last argv. */
char **argv_of(std::initializer_list<const char *> args)
{
	struct Args {
		std::vector<std::string> strings;
		std::vector<char *> pointers;
	};
	static std::vector<std::unique_ptr<Args>> keep; /* reachable: no leak reported */
	auto &a = *keep.emplace_back(std::make_unique<Args>());
	for (const char *arg : args)
		a.strings.emplace_back(arg);
	for (auto &s : a.strings)
		a.pointers.push_back(s.data());
	a.pointers.push_back(nullptr);
	return a.pointers.data();
}

Options options(std::initializer_list<const char *> args)
{
	return parse_options(cli::parse_command_line(static_cast<int>(args.size()), argv_of(args)));
}

std::string options_error(std::initializer_list<const char *> args)
{
	try {
		(void)options(args);
		FAIL_CHECK("accepted");
	} catch (const cli::UsageError &e) {
		return e.what();
	}
	return "";
}

} /* namespace */

/* --------------------------------------------------------------------------
 * escape_for_terminal
 */

TEST_CASE("escape_for_terminal: printable ASCII and valid UTF-8 stay as they are")
{
	CHECK(escape_for_terminal("") == "");
	CHECK(escape_for_terminal("/system.slice/a b.service") == "/system.slice/a b.service");
	CHECK(escape_for_terminal("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80") ==
	      "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80");
	/* The edges of the valid ranges. */
	CHECK(escape_for_terminal("\xc2\xa0\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80") ==
	      "\xc2\xa0\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80");
	CHECK(escape_for_terminal("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf") ==
	      "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
}

TEST_CASE("escape_for_terminal: controls, DEL and backslash")
{
	CHECK(escape_for_terminal("a\tb\nc\rd") == "a\\tb\\nc\\rd");
	CHECK(escape_for_terminal("\033]0;title\007") == "\\x1b]0;title\\a");
	CHECK(escape_for_terminal("\033[2J") == "\\x1b[2J");
	CHECK(escape_for_terminal(std::string_view("\0\x01\x1f\x7f", 4)) == "\\x00\\x01\\x1f\\x7f");
	CHECK(escape_for_terminal("C:\\x1b") == "C:\\\\x1b");
	/* Distinct inputs stay distinct: a real ESC and its escape's text. */
	CHECK(escape_for_terminal("\033") != escape_for_terminal("\\x1b"));
	/* C1 controls are valid UTF-8, but CSI (U+009B) to some terminals. */
	CHECK(escape_for_terminal("\xc2\x9b"
				  "2J\xc2\x80\xc2\x9f") == "\\xc2\\x9b2J\\xc2\\x80\\xc2\\x9f");
	/* Every byte of the output is printable ASCII or part of valid UTF-8 >= U+00A0. */
	for (int c = 0; c < 0x80; c++) {
		std::string in(1, static_cast<char>(c));
		std::string out = escape_for_terminal(in);
		for (unsigned char o : out)
			CHECK((o >= 0x20 && o < 0x7f));
		CHECK((out == in) == (c >= 0x20 && c < 0x7f && c != '\\'));
	}
}

TEST_CASE("escape_for_terminal: each byte of invalid UTF-8 as \\xNN")
{
	CHECK(escape_for_terminal("\x80") == "\\x80");			 /* stray continuation */
	CHECK(escape_for_terminal("a\xc3") == "a\\xc3");		 /* truncated at the end */
	CHECK(escape_for_terminal("\xc3z") == "\\xc3z");		 /* truncated by ASCII */
	CHECK(escape_for_terminal("\xe6\x97z") == "\\xe6\\x97z");	 /* 3-byte, cut after 2 */
	CHECK(escape_for_terminal("\xc0\xaf") == "\\xc0\\xaf");		 /* overlong '/' */
	CHECK(escape_for_terminal("\xc1\xbf") == "\\xc1\\xbf");		 /* overlong */
	CHECK(escape_for_terminal("\xe0\x80\xaf") == "\\xe0\\x80\\xaf"); /* overlong */
	CHECK(escape_for_terminal("\xf0\x80\x80\xaf") == "\\xf0\\x80\\x80\\xaf");
	CHECK(escape_for_terminal("\xed\xa0\x80") == "\\xed\\xa0\\x80");	  /* surrogate */
	CHECK(escape_for_terminal("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
	CHECK(escape_for_terminal("\xf5\xff\xfe") == "\\xf5\\xff\\xfe");
	/* A valid character right after an invalid byte is kept. */
	CHECK(escape_for_terminal("\xff\xc3\xa9") == "\\xff\xc3\xa9");
	/* An escaped ESC hidden in a bad sequence is still escaped. */
	CHECK(escape_for_terminal("\xe6\033[1m") == "\\xe6\\x1b[1m");
}

TEST_CASE("escape_for_terminal: random bytes never leave a control or bad UTF-8")
{
	std::mt19937 rng(7);
	for (int round = 0; round < 2000; round++) {
		std::string in(rng() % 24, '\0');
		for (auto &c : in)
			c = static_cast<char>(rng() % 256);
		std::string out = escape_for_terminal(in);
		/* Escaping is idempotent on its own output only for plain text. */
		for (size_t i = 0; i < out.size(); i++) {
			auto c = static_cast<unsigned char>(out[i]);
			CHECK(c != 0x7f);
			CHECK(c >= 0x20);
		}
		/* The output is valid UTF-8: escaping it changes only its backslashes. */
		std::string again = escape_for_terminal(out);
		std::string doubled;
		for (char c : out)
			doubled += c == '\\' ? std::string("\\\\") : std::string(1, c);
		CHECK(again == doubled);
	}
}

/* --------------------------------------------------------------------------
 * The interval's p99
 */

TEST_CASE("bucket_lower: the lower bound of every bucket of the daemon's histogram")
{
	using H = dispatch::LatencyHistogram;
	CHECK(bucket_lower(H::bucket_upper(0)) == 0);
	for (unsigned b = 1; b <= H::bucket_of(UINT64_MAX); b++) {
		CAPTURE(b);
		uint64_t upper = H::bucket_upper(b);
		CHECK(bucket_lower(upper) == H::bucket_upper(b - 1) + 1);
		CHECK(H::bucket_of(bucket_lower(upper)) == b);
	}
}

TEST_CASE("interval_p99_us: the p99 of the requests between two readings")
{
	dispatch::LatencyHistogram total, interval;
	/* Before the interval: a thousand fast requests (1 us). */
	for (int i = 0; i < 1000; i++)
		total.record(1000);
	Buckets before = buckets_of(total);
	/* In the interval: 100 requests, 98 of 2 ms and 2 of 50 ms. */
	std::vector<uint64_t> in;
	for (int i = 0; i < 98; i++)
		in.push_back(2000000);
	in.push_back(50000000);
	in.push_back(50000000);
	for (auto ns : in) {
		total.record(ns);
		interval.record(ns);
	}
	auto p99 = interval_p99_us(before, buckets_of(total));
	REQUIRE(p99);
	/* As the daemon computes a quantile of the interval's requests alone. */
	CHECK(*p99 == doctest::Approx(static_cast<double>(interval.quantile(0.99)) / 1e3));
	/* The 99th of 100 is a 50 ms request, within 12.5%. */
	CHECK(std::abs(*p99 - 50000) <= 50000 / 8.0);
	/* The cumulative p99 would hide it behind the earlier fast requests. */
	CHECK(total.quantile(0.99) < 3000000);
	/* No request in between: none. From zero: the whole histogram. */
	CHECK_FALSE(interval_p99_us(before, before));
	CHECK_FALSE(interval_p99_us({}, {}));
	auto all = interval_p99_us({}, buckets_of(total));
	REQUIRE(all);
	CHECK(*all == doctest::Approx(static_cast<double>(total.quantile(0.99)) / 1e3));
}

TEST_CASE("interval_p99_us: random intervals agree with the histogram's own quantile")
{
	std::mt19937_64 rng(11);
	for (int round = 0; round < 50; round++) {
		dispatch::LatencyHistogram total, interval;
		int n_before = static_cast<int>(rng() % 500),
		    n_in = 1 + static_cast<int>(rng() % 500);
		for (int i = 0; i < n_before; i++)
			total.record(rng() % 100000000);
		Buckets before = buckets_of(total);
		for (int i = 0; i < n_in; i++) {
			uint64_t ns = rng() % (rng() % 2 ? 1000000 : 1000000000ULL);
			total.record(ns);
			interval.record(ns);
		}
		auto p99 = interval_p99_us(before, buckets_of(total));
		REQUIRE(p99);
		CHECK(*p99 == doctest::Approx(static_cast<double>(interval.quantile(0.99)) / 1e3));
	}
}

/* --------------------------------------------------------------------------
 * Rows
 */

TEST_CASE("make_rows: rates over the interval, new cgroups and counters that went down")
{
	auto first =
		reading(10.0, {cgroup_json(1, "/a", 100, 0, 100 * 65536, 0, {{1023, 100}}),
			       cgroup_json(2, "/b", 5, 50, 5 * 4096, 50 * 4096, {{2047, 55}}),
			       cgroup_json(3, "/c", 1000, 1000, 1 << 30, 1 << 30, {{4095, 9}})});
	/* Without an earlier reading: no rates, but the queues. */
	auto rows = make_rows(nullptr, first);
	REQUIRE(rows.size() == 3);
	CHECK_FALSE(rows[0].rates);
	CHECK(rows[0].queued == 1);
	CHECK(rows[0].in_flight == 2);
	CHECK(cell(rows[0], Column::reads) == "-");
	CHECK_FALSE(rows[0].p99_us);

	auto second =
		reading(10.5, {cgroup_json(1, "/a", 600, 0, 600 * 65536, 0, {{1023, 600}}),
			       cgroup_json(2, "/b", 5, 150, 5 * 4096, 150 * 4096, {{2047, 155}}),
			       /* /c's statistics began again (fewer reads than before) */
			       cgroup_json(3, "/c", 10, 0, 10 * 4096, 0, {{4095, 10}}),
			       /* /d is new */
			       cgroup_json(4, "/d", 0, 20, 0, 20 * 8192, {{8191, 20}})});
	rows = make_rows(&first, second);
	REQUIRE(rows.size() == 4);
	const Row &a = row_of(rows, 1);
	CHECK(a.rates);
	CHECK(a.reads_per_s == doctest::Approx(1000));
	CHECK(a.writes_per_s == doctest::Approx(0));
	CHECK(a.read_bytes_per_s == doctest::Approx(1000 * 65536.0));
	CHECK(cell(a, Column::read) == "62.50");
	REQUIRE(a.p99_us);
	const Row &b = row_of(rows, 2);
	CHECK(b.reads_per_s == doctest::Approx(0));
	CHECK(b.writes_per_s == doctest::Approx(200));
	CHECK(b.written_bytes_per_s == doctest::Approx(200 * 4096.0));
	const Row &c = row_of(rows, 3);
	CHECK(c.reads_per_s == doctest::Approx(20)); /* from zero: 10 in 0.5 s */
	CHECK(c.written_bytes_per_s == doctest::Approx(0));
	REQUIRE(c.p99_us);
	const Row &d = row_of(rows, 4);
	CHECK(d.writes_per_s == doctest::Approx(40));
	CHECK(d.written_bytes_per_s == doctest::Approx(40 * 8192.0));
	REQUIRE(d.p99_us);
	CHECK(*d.p99_us == doctest::Approx((7168 + (8191 - 7168) / 2) / 1e3)); /* [7168, 8191] */
	/* A cgroup without requests in the interval has no p99. */
	auto third = reading(11.0, {cgroup_json(1, "/a", 600, 0, 600 * 65536, 0, {{1023, 600}})});
	rows = make_rows(&second, third);
	CHECK(rows[0].rates);
	CHECK_FALSE(rows[0].p99_us);
	CHECK(cell(rows[0], Column::p99) == "-");
	CHECK(cell(rows[0], Column::reads) == "0.0");
}

TEST_CASE("make_rows: a histogram that went down alone also starts from zero")
{
	auto first = reading(1.0, {cgroup_json(1, "/a", 10, 0, 10, 0, {{1023, 10}})});
	auto second = reading(2.0, {cgroup_json(1, "/a", 10, 0, 10, 0, {{2047, 3}})});
	auto rows = make_rows(&first, second);
	REQUIRE(rows[0].p99_us);
	CHECK(*rows[0].p99_us ==
	      doctest::Approx((1792 + (2047 - 1792) / 2) / 1e3)); /* [1792, 2047] */
	CHECK(rows[0].reads_per_s == doctest::Approx(10));
}

TEST_CASE("parse_reading: unit and machine when the daemon sends them; bad input refused")
{
	json c = cgroup_json(5, "/machine.slice/x.scope", 1, 2, 3, 4);
	c["unit"] = "x.scope";
	c["machine"] = "vm\033[31m1";
	json plain = cgroup_json(6, "/y", 1, 2, 3, 4);
	plain["unit"] = nullptr;
	auto r = reading(0, {c, plain});
	auto rows = make_rows(nullptr, r);
	CHECK(cell(rows[0], Column::unit) == "x.scope");
	CHECK(cell(rows[0], Column::machine) == "vm\\x1b[31m1");
	CHECK(cell(rows[1], Column::unit) == "-");
	CHECK(cell(rows[1], Column::machine) == "-");
	auto j = rows_json(rows, Order{}, 1.0);
	CHECK(j["cgroups"][0]["machine"] == "vm\033[31m1"); /* exact in JSON */
	CHECK(j["cgroups"][1]["unit"].is_null());
	CHECK(j["order"] == "io");

	CHECK_THROWS(parse_reading(json::object(), 0));
	CHECK_THROWS(parse_reading({{"cgroups", json::array({1})}}, 0));
	json bad = cgroup_json(1, "/a", 1, 1, 1, 1);
	bad["reads"] = "many";
	CHECK_THROWS(parse_reading({{"cgroups", json::array({bad})}}, 0));
	bad = cgroup_json(1, "/a", 1, 1, 1, 1);
	bad["latency_buckets"] = json::array({json::array({1})});
	CHECK_THROWS(parse_reading({{"cgroups", json::array({bad})}}, 0));
}

TEST_CASE("cell: a cgroup path with controls is escaped")
{
	Row r;
	r.cgroup = "/evil\033]0;pwned\007\n";
	CHECK(cell(r, Column::cgroup) == "/evil\\x1b]0;pwned\\a\\n");
}

/* --------------------------------------------------------------------------
 * Order
 */

TEST_CASE("sort_rows: numbers largest first, names A to Z, ties by cgroup")
{
	std::vector<Row> rows(4);
	rows[0].cgroup = "/b";
	rows[0].unit = "z.service";
	rows[0].reads_per_s = 10;
	rows[0].written_bytes_per_s = 5000;
	rows[0].p99_us = 100;
	rows[1].cgroup = "/a";
	rows[1].reads_per_s = 10;
	rows[1].read_bytes_per_s = 1000;
	rows[2].cgroup = "/c";
	rows[2].unit = "a.service";
	rows[2].reads_per_s = 500;
	rows[2].p99_us = 5;
	rows[3].cgroup = "/d";
	rows[3].queued = 7;
	auto order = [&](const Order &o) {
		sort_rows(rows, o);
		std::string s;
		for (const auto &r : rows)
			s += r.cgroup;
		return s;
	};
	CHECK(order(*parse_order("reads")) == "/c/a/b/d");
	CHECK(order(Order{}) == "/b/a/c/d"); /* io: 5000, 1000, 0, 0 */
	CHECK(order(*parse_order("p99")) == "/b/c/a/d");
	CHECK(order(*parse_order("QUEUED")) == "/d/a/b/c");
	CHECK(order(*parse_order("cgroup")) == "/a/b/c/d");
	CHECK(order(*parse_order("unit")) == "/c/b/a/d"); /* no unit ("-") last */
}

TEST_CASE("orders: words, keys and the steps of < and >")
{
	CHECK(parse_order("io") == Order{});
	CHECK(parse_order("R/S") == Order{false, Column::reads});
	CHECK(parse_order("Written") == Order{false, Column::written});
	CHECK(parse_order("inflight") == Order{false, Column::in_flight});
	CHECK_FALSE(parse_order("nope"));
	CHECK_FALSE(parse_order(""));
	CHECK(order_for_key('i') == Order{});
	CHECK(order_for_key('r') == Order{false, Column::reads});
	CHECK(order_for_key('R') == Order{false, Column::read});
	CHECK(order_for_key('W') == Order{false, Column::written});
	CHECK(order_for_key('p') == Order{false, Column::p99});
	CHECK_FALSE(order_for_key('q')); /* quits */
	CHECK_FALSE(order_for_key('x'));
	/* Each key and each word names one order, and every column has both. */
	for (const auto &c : columns) {
		CHECK(order_for_key(c.key) == Order{false, c.column});
		CHECK(parse_order(c.name) == Order{false, c.column});
		CHECK(Order{false, c.column}.marks(c.column));
	}
	CHECK(Order{}.marks(Column::read));
	CHECK(Order{}.marks(Column::written));
	CHECK_FALSE(Order{}.marks(Column::reads));
	CHECK(step_order(Order{}, 1) == Order{false, Column::reads});
	CHECK(step_order(Order{}, -1) == Order{false, Column::machine});
	CHECK(step_order(Order{false, Column::cgroup}, -1) == Order{false, Column::cgroup});
	CHECK(step_order(Order{false, Column::p99}, 1) == Order{false, Column::p99});
	CHECK(order_words() ==
	      "cgroup, unit, machine, io, reads, writes, read, written, queued, inflight, p99");
}

/* --------------------------------------------------------------------------
 * Layout
 */

TEST_CASE("fit and display_width: cut to the columns, keeping the start or the end")
{
	CHECK(display_width("abc") == 3);
	CHECK(display_width("caf\xc3\xa9") == 4);
	CHECK(fit("abcdef", 6) == "abcdef");
	CHECK(fit("abcdefgh", 6) == "abc...");
	CHECK(fit("/a/long/path", 8, true) == ".../path");
	CHECK(fit("abcdef", 3) == "abc");
	CHECK(fit("caf\xc3\xa9-latte", 7) == "caf\xc3\xa9...");
	CHECK(display_width(fit("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5)) == 5);
}

TEST_CASE("layout: the text columns give way on a narrow terminal")
{
	std::vector<Row> rows(1);
	rows[0].cgroup = "/system.slice/" + std::string(80, 'x') + ".service";
	rows[0].unit = std::string(40, 'u') + ".service";
	rows[0].rates = true;
	auto wide = layout(rows, 0);
	CHECK(wide[0] == rows[0].cgroup.size());
	for (size_t width : {200, 120, 100, 80}) {
		CAPTURE(width);
		auto w = layout(rows, width);
		std::string header = header_line(w, Order{}, false);
		std::string line = row_line(rows[0], w);
		CHECK(display_width(header) <= width);
		CHECK(display_width(line) <= width);
		CHECK(display_width(header) == display_width(line));
		/* The end of the path, cut at its start. */
		CHECK(line.rfind("...", 0) == 0);
		CHECK(line.find("x.service  ") != std::string::npos);
		/* The numbers are whole. */
		CHECK(line.find("0.00") != std::string::npos);
	}
	/* The sort column's header is marked only with ansi; widths are unchanged. */
	auto w = layout(rows, 100);
	std::string marked = header_line(w, *parse_order("reads"), true);
	CHECK(marked.find("\033[1;4mR/S\033[22;24m") != std::string::npos);
	CHECK(header_line(w, *parse_order("reads"), false).find('\033') == std::string::npos);
}

/* --------------------------------------------------------------------------
 * Options
 */

TEST_CASE("top's options: values checked with clear messages")
{
	Options o = options({"cgloopctl", "top"});
	CHECK(o.delay == 1.0);
	CHECK(o.iterations == 0);
	CHECK_FALSE(o.batch);
	CHECK(o.order == Order{});
	o = options({"cgloopctl", "top", "-b", "-n", "3", "-d", "0.5", "-o", "writes", "/mnt"});
	CHECK(o.delay == 0.5);
	CHECK(o.iterations == 3);
	CHECK(o.batch);
	CHECK(o.order == Order{false, Column::writes});
	o = options({"cgloopctl", "--json", "top", "--delay=2", "--order=p99"});
	CHECK(o.json);
	CHECK(o.batch); /* JSON is for scripts: no screen */
	CHECK(o.delay == 2.0);

	for (const char *bad : {"0", "0.001", "-1", "abc", "1e3", "inf", "nan", "1.2.3", ".", "",
				"86401", "0x10", " 1"}) {
		CAPTURE(bad);
		std::string e = options_error({"cgloopctl", "top", "-d", bad});
		CHECK(e.find("top: --delay: \"") == 0);
		CHECK(e.find("is not a number of seconds from 0.01 to 86400") != std::string::npos);
	}
	for (const char *bad : {"0", "-1", "x", "1.5", "", "99999999999"}) {
		CAPTURE(bad);
		std::string e = options_error({"cgloopctl", "top", "-n", bad});
		CHECK(e.find("top: --iterations: \"") == 0);
	}
	std::string e = options_error({"cgloopctl", "top", "-o", "size\033[2J"});
	CHECK(e == "top: --order: unknown column \"size\\x1b[2J\" (one of: " + order_words() + ")");
	/* A missing value is not an unknown option. */
	CHECK(options_error({"cgloopctl", "top", "-d"}) == "option \"-d\" needs a value");
	CHECK(options_error({"cgloopctl", "top", "/mnt", "--iterations"}) ==
	      "option \"--iterations\" needs a value");
	CHECK(options({"cgloopctl", "top", "-d", "0.01"}).delay == 0.01);
	CHECK(options({"cgloopctl", "top", "-d", "86400"}).delay == 86400);
	CHECK(options({"cgloopctl", "top", "-n", "1000000000"}).iterations == 1000000000);
}
