/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The Prometheus metrics of a mount, made from its statistics document (the
 * JSON of the `stats` control verb): the one place that names the families
 * and their labels, so the daemon's /metrics endpoint (metrics=ADDRESS:PORT)
 * and `cgloopctl stats --format=prometheus` (node_exporter's textfile
 * collector) show the same series. Pure functions; reentrant; no logging.
 *
 * Per cgroup (labels mountpoint, cgroup, unit, machine): requests and bytes
 * by operation, errors, timeouts, interrupts, the latency histogram, queued
 * and in-flight requests, whether it has a worker. Per mount: workers,
 * worker creations, reaps and spawn failures, root-queue fallbacks,
 * timeouts, interrupts, queued write memory, statistics entries. Per image
 * (label image): size and open handles.
 *
 * Cardinality is bounded: the daemon keeps at most max_stats cgroups, and a
 * cgroup whose worker was reaped and that has been idle for
 * export_idle_seconds is left out (its figures stay in `cgloopctl stats`).
 */
#pragma once

#ifndef CGLOOPFS_LAYER_METRICS
#error "metrics/ is not a layer below this one (see src/meson.build)"
#endif

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/metric_family.h>

#include <nlohmann/json.hpp>

namespace cgloopfs::metrics {

/* A cgroup with no worker idle this long (seconds) is not exported. */
inline constexpr double export_idle_seconds = 300;

/*
 * The bounds (seconds) of the exported latency histogram, +Inf after the
 * last. The daemon's histogram is finer (4 buckets per power of two of
 * nanoseconds); each of its buckets is counted under the first bound at or
 * above its upper end, so a request counted under `le` took at most `le`.
 */
inline constexpr std::array<double, 17> latency_bounds = {
	50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
	50e-3, 100e-3, 250e-3, 500e-3, 1,    2.5,    5,	   10,
};

/*
 * A label value as exported: the text itself when it is valid UTF-8;
 * otherwise each invalid byte sequence becomes U+FFFD, exactly as the
 * control protocol's JSON shows it (so both outputs agree). The exposition
 * format's own escapes (backslash, double quote, newline) are the
 * serializer's.
 */
std::string label_value(std::string_view raw);

/*
 * The families of a statistics document. Cgroups whose labels come out the
 * same (unnamed ones, "?", or paths that differ only in invalid UTF-8) are
 * added up into one series. Throws nlohmann::json::exception on a document
 * of the wrong shape.
 */
std::vector<prometheus::MetricFamily> families(const nlohmann::json &stats);

/* The text exposition format (version 0.0.4) of `families`. */
std::string text_format(const std::vector<prometheus::MetricFamily> &families);

} /* namespace cgloopfs::metrics */
