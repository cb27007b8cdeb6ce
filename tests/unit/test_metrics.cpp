/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * metrics/exposition: the families made from a stats document, the latency
 * buckets, what is left out, label values (escapes, invalid UTF-8) and the
 * text format.
 */
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <prometheus/check_names.h>

#include <doctest/doctest.h>

#include "control/json_text.hpp"
#include "control/protocol.hpp"
#include "metrics/exposition.hpp"

using namespace cgloopfs;
using nlohmann::json;
using prometheus::MetricFamily;

namespace {

const MetricFamily &family(const std::vector<MetricFamily> &fs, const std::string &name)
{
	for (const auto &f : fs)
		if (f.name == name)
			return f;
	FAIL("no family " << name);
	throw std::logic_error("unreachable");
}

std::string label(const prometheus::ClientMetric &m, const std::string &name)
{
	for (const auto &l : m.label)
		if (l.name == name)
			return l.value;
	return "(none)";
}

/* The samples of family `name` for cgroup `cgroup` (and op, when given). */
std::vector<const prometheus::ClientMetric *> samples(const std::vector<MetricFamily> &fs,
						      const std::string &name,
						      const std::string &cgroup,
						      const std::string &op = "")
{
	std::vector<const prometheus::ClientMetric *> out;
	for (const auto &m : family(fs, name).metric)
		if (label(m, "cgroup") == cgroup && (op.empty() || label(m, "op") == op))
			out.push_back(&m);
	return out;
}

json cgroup(const std::string &path, bool worker, double idle)
{
	return {{"cgroup", path},
		{"cgroup_id", 1},
		{"worker", worker},
		{"queued", worker ? 2 : 0},
		{"in_flight", worker ? 1 : 0},
		{"reads", 10},
		{"writes", 5},
		{"syncs", 1},
		{"discards", 0},
		{"others", 0},
		{"bytes_read", 40960},
		{"bytes_written", 1048576},
		{"errors", 1},
		{"timeouts", 2},
		{"interrupted", 3},
		{"latency_buckets", json::array()},
		{"latency_sum_ns", 0},
		{"idle_seconds", idle}};
}

} /* namespace */

TEST_CASE("families: per cgroup, per mount and per image; every name valid")
{
	json doc = {{"mountpoint", "/srv/m"},
		    {"cgroups", json::array({cgroup("(root queue)", true, 0),
					     cgroup("/a.slice/x", true, 1000)})},
		    {"workers", 1},
		    {"workers_created", 4},
		    {"workers_reaped", 3},
		    {"root_fallbacks", 7},
		    {"spawn_failures", 0},
		    {"timeouts", 2},
		    {"interrupted", 3},
		    {"queued_write_bytes", 3 << 20},
		    {"max_queued_write_bytes", 256 << 20},
		    {"images", json::array({{{"name", "disk.img"}, {"size", 4096}, {"open", 2}}})}};
	auto fs = metrics::families(doc);
	for (const auto &f : fs) {
		CAPTURE(f.name);
		CHECK(prometheus::CheckMetricName(f.name));
		CHECK(f.name.rfind("cgloopfs_", 0) == 0);
		CHECK_FALSE(f.help.empty());
		CHECK(f.help.find('\n') == std::string::npos);
		for (const auto &m : f.metric) {
			CHECK(label(m, "mountpoint") == "/srv/m");
			for (const auto &l : m.label)
				CHECK(prometheus::CheckLabelName(l.name));
		}
	}
	auto reads = samples(fs, "cgloopfs_cgroup_requests_total", "/a.slice/x", "read");
	REQUIRE(reads.size() == 1);
	CHECK(reads[0]->counter.value == 10);
	CHECK(label(*reads[0], "unit") == "-"); /* not in the document: "-" */
	CHECK(label(*reads[0], "machine") == "-");
	CHECK(samples(fs, "cgloopfs_cgroup_requests_total", "/a.slice/x").size() == 5);
	CHECK(samples(fs, "cgloopfs_cgroup_bytes_total", "/a.slice/x", "write")[0]->counter.value ==
	      1048576);
	CHECK(samples(fs, "cgloopfs_cgroup_timeouts_total", "/a.slice/x")[0]->counter.value == 2);
	CHECK(samples(fs, "cgloopfs_cgroup_interrupts_total", "/a.slice/x")[0]->counter.value == 3);
	CHECK(samples(fs, "cgloopfs_cgroup_queued_requests", "/a.slice/x")[0]->gauge.value == 2);
	CHECK(samples(fs, "cgloopfs_cgroup_in_flight_requests", "/a.slice/x")[0]->gauge.value == 1);
	CHECK(samples(fs, "cgloopfs_cgroup_worker", "(root queue)")[0]->gauge.value == 1);
	CHECK(family(fs, "cgloopfs_cgroup_request_duration_seconds").type ==
	      prometheus::MetricType::Histogram);

	CHECK(family(fs, "cgloopfs_workers").metric[0].gauge.value == 1);
	CHECK(family(fs, "cgloopfs_root_fallbacks_total").metric[0].counter.value == 7);
	CHECK(family(fs, "cgloopfs_workers_reaped_total").metric[0].counter.value == 3);
	CHECK(family(fs, "cgloopfs_queued_write_bytes").metric[0].gauge.value == 3 << 20);
	CHECK(family(fs, "cgloopfs_cgroups_tracked").metric[0].gauge.value == 2);
	CHECK(family(fs, "cgloopfs_cgroups_exported").metric[0].gauge.value == 2);
	const auto &img = family(fs, "cgloopfs_image_size_bytes").metric;
	REQUIRE(img.size() == 1);
	CHECK(label(img[0], "image") == "disk.img");
	CHECK(img[0].gauge.value == 4096);
	CHECK(family(fs, "cgloopfs_image_open_handles").metric[0].gauge.value == 2);

	/* Given names are used. */
	doc["cgroups"][1]["unit"] = "x.service";
	doc["cgroups"][1]["machine"] = "";
	fs = metrics::families(doc);
	reads = samples(fs, "cgloopfs_cgroup_requests_total", "/a.slice/x", "read");
	CHECK(label(*reads[0], "unit") == "x.service");
	CHECK(label(*reads[0], "machine") == "-");
}

TEST_CASE("families: a reaped cgroup idle for 5 minutes is left out")
{
	json doc = {{"cgroups",
		     json::array({cgroup("/busy", true, 10000), cgroup("/recent", false, 299),
				  cgroup("/old", false, 300)})}};
	auto fs = metrics::families(doc);
	CHECK(samples(fs, "cgloopfs_cgroup_errors_total", "/busy").size() == 1);
	CHECK(samples(fs, "cgloopfs_cgroup_errors_total", "/recent").size() == 1);
	CHECK(samples(fs, "cgloopfs_cgroup_errors_total", "/old").empty());
	CHECK(samples(fs, "cgloopfs_cgroup_worker", "/recent")[0]->gauge.value == 0);
	CHECK(family(fs, "cgloopfs_cgroups_tracked").metric[0].gauge.value == 3);
	CHECK(family(fs, "cgloopfs_cgroups_exported").metric[0].gauge.value == 2);
}

TEST_CASE("families: the latency histogram from the fine buckets")
{
	json c = cgroup("/a", true, 0);
	c["latency_buckets"] = json::array({
		json::array({3, 1}),	      /* 3 ns */
		json::array({49151, 2}),      /* up to 49.2 us: le 50us */
		json::array({50000, 1}),      /* (not a real bucket end) exactly 50 us: le 50us */
		json::array({57343, 4}),      /* up to 57.3 us: le 100us */
		json::array({2147483647, 5}), /* ~2.1 s: le 2.5 */
		json::array({20000000000ULL, 6}), /* 20 s: +Inf only */
	});
	c["latency_sum_ns"] = 1500000000;
	auto fs = metrics::families({{"cgroups", json::array({c})}});
	auto h = samples(fs, "cgloopfs_cgroup_request_duration_seconds", "/a");
	REQUIRE(h.size() == 1);
	const auto &hist = h[0]->histogram;
	REQUIRE(hist.bucket.size() == metrics::latency_bounds.size() + 1);
	CHECK(hist.sample_count == 19);
	CHECK(hist.sample_sum == doctest::Approx(1.5));
	auto cumulative = [&](double le) {
		for (const auto &b : hist.bucket)
			if (b.upper_bound == le)
				return b.cumulative_count;
		FAIL("no bucket " << le);
		return uint64_t{0};
	};
	CHECK(cumulative(50e-6) == 4);
	CHECK(cumulative(100e-6) == 8);
	CHECK(cumulative(1) == 8);
	CHECK(cumulative(2.5) == 13);
	CHECK(cumulative(10) == 13);
	CHECK(cumulative(std::numeric_limits<double>::infinity()) == 19);
	/* Cumulative, in order. */
	for (size_t i = 1; i < hist.bucket.size(); i++) {
		CHECK(hist.bucket[i - 1].upper_bound < hist.bucket[i].upper_bound);
		CHECK(hist.bucket[i - 1].cumulative_count <= hist.bucket[i].cumulative_count);
	}
}

TEST_CASE("label_value: exact for UTF-8, U+FFFD for each bad sequence of anything else")
{
	CHECK(metrics::label_value("/a.slice/b\\x2dc.scope") == "/a.slice/b\\x2dc.scope");
	CHECK(metrics::label_value("/caf\xc3\xa9") == "/caf\xc3\xa9");
	CHECK(metrics::label_value("") == "");
	for (std::string raw : {std::string("/a\xff"), std::string("/\xc3"),
				std::string("/x\xe2\x82y\xf0\x9f\x98"), std::string("\xc0\xaf/")}) {
		CAPTURE(raw);
		std::string got = metrics::label_value(raw);
		/* Valid UTF-8 (nlohmann refuses to dump anything else with its strict handler). */
		CHECK_NOTHROW((void)json(got).dump());
		CHECK(got.find("\xef\xbf\xbd") != std::string::npos);
		/* cgloopctl receives the path's exact bytes (PEP 383), and makes the same label. */
		std::string reply = control::ok_reply(json{{"p", raw}});
		std::string received = control::parse_json(reply)["result"]["p"].get<std::string>();
		CHECK(received == raw);
		CHECK(metrics::label_value(received) == got);
	}
}

TEST_CASE("families: cgroups with the same labels become one series, added up")
{
	json a = cgroup("/x\xff", true, 0), b = cgroup("/x\xfe", false, 1),
	     c = cgroup("?", true, 0), d = cgroup("?", true, 0);
	auto fs = metrics::families({{"cgroups", json::array({a, b, c, d})}});
	auto reads = samples(fs, "cgloopfs_cgroup_requests_total", "/x\xef\xbf\xbd", "read");
	REQUIRE(reads.size() == 1);
	CHECK(reads[0]->counter.value == 20);
	CHECK(samples(fs, "cgloopfs_cgroup_worker", "/x\xef\xbf\xbd")[0]->gauge.value == 1);
	CHECK(samples(fs, "cgloopfs_cgroup_queued_requests", "?")[0]->gauge.value == 4);
	CHECK(samples(fs, "cgloopfs_cgroup_request_duration_seconds", "?").size() == 1);
	CHECK(family(fs, "cgloopfs_cgroups_exported").metric[0].gauge.value == 2);
}

TEST_CASE("text_format: label values escaped as the exposition format says")
{
	json doc = {{"mountpoint", "/m"},
		    {"cgroups", json::array({cgroup("/we\"ird\\x\nname", true, 0)})}};
	std::string text = metrics::text_format(metrics::families(doc));
	CHECK(text.find("cgloopfs_cgroup_errors_total{mountpoint=\"/m\",cgroup=\"/"
			"we\\\"ird\\\\x\\nname"
			"\",unit=\"-\",machine=\"-\"} 1\n") != std::string::npos);
	CHECK(text.find("# TYPE cgloopfs_cgroup_request_duration_seconds histogram\n") !=
	      std::string::npos);
	CHECK(text.find("le=\"+Inf\"") != std::string::npos);
	/* No raw newline inside a sample line: every line is a comment or a sample. */
	for (size_t start = 0, end; start < text.size(); start = end + 1) {
		end = text.find('\n', start);
		std::string line = text.substr(start, end - start);
		CAPTURE(line);
		CHECK((line.rfind("# ", 0) == 0 || line.rfind("cgloopfs_", 0) == 0));
	}
}

TEST_CASE("families: an empty or old document gives the families with no cgroup")
{
	auto fs = metrics::families(json::object());
	CHECK(family(fs, "cgloopfs_cgroup_requests_total").metric.empty());
	CHECK(family(fs, "cgloopfs_workers").metric[0].gauge.value == 0);
	CHECK(family(fs, "cgloopfs_image_size_bytes").metric.empty());
	CHECK_THROWS_AS(metrics::families({{"cgroups", json::array({{{"reads", "x"}}})}}),
			json::exception);
}
