//! The standard Prometheus process metrics, read from `/proc/self` at each scrape (Linux):
//! what the Go and Python clients export by default and dashboards expect.
//!
//! | Metric | Type |
//! |---|---|
//! | `process_cpu_seconds_total` | counter |
//! | `process_resident_memory_bytes` | gauge |
//! | `process_virtual_memory_bytes` | gauge |
//! | `process_open_fds` | gauge |
//! | `process_max_fds` | gauge |
//! | `process_start_time_seconds` | gauge |
//!
//! `rate(process_cpu_seconds_total[5m]) / rate(e4k_bridge_messages_forwarded_total[5m])`
//! is the CPU the bridge spends per forwarded message (docs/BENCHMARKS.md measures it). A
//! value that cannot be read is left out of the scrape rather than reported as 0.

use procfs::WithCurrentSystemInfo as _;
use procfs::process::{LimitValue, Process};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Reads `/proc/self` when scraped.
#[derive(Debug)]
pub(crate) struct ProcessCollector;

/// Encodes one gauge.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

#[allow(clippy::cast_precision_loss)] // counts and byte sizes far below 2^52
impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(me) = Process::myself() else {
            return Ok(());
        };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second().max(1) as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent in seconds.",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes.",
                Some(&Unit::Bytes),
                stat.rss_bytes().get() as f64,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size in bytes.",
                Some(&Unit::Bytes),
                stat.vsize as f64,
            )?;
            if let Ok(boot) = procfs::boot_time_secs() {
                gauge(
                    &mut encoder,
                    "process_start_time",
                    "Start time of the process since unix epoch in seconds.",
                    Some(&Unit::Seconds),
                    boot as f64 + stat.starttime as f64 / ticks,
                )?;
            }
        }
        if let Ok(fds) = me.fd_count() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                None,
                fds as f64,
            )?;
        }
        if let Ok(limits) = me.limits()
            && let LimitValue::Value(max) = limits.max_open_files.soft_limit
        {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                None,
                max as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::metrics::Metrics;

    /// The value of the sample line `name` in `text`.
    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    }

    #[test]
    fn the_scrape_carries_the_process_metrics_next_to_the_bridges() {
        let metrics = Metrics::new();
        let route = metrics.route("b", "r", "local-to-remote");
        route.received.inc();
        // Burn a little CPU so that the counter is above zero.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert_ne!(x, 1);
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE process_cpu_seconds counter"),
            "{text}"
        );
        assert!(sample(&text, "process_cpu_seconds_total") > 0.0);
        let rss = sample(&text, "process_resident_memory_bytes");
        assert!(rss > 1024.0 * 1024.0, "RSS {rss}");
        assert!(sample(&text, "process_virtual_memory_bytes") >= rss);
        assert!(sample(&text, "process_open_fds") >= 3.0);
        assert!(sample(&text, "process_max_fds") >= sample(&text, "process_open_fds"));
        let started = sample(&text, "process_start_time_seconds");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        assert!(
            started > now - 3600.0 && started <= now + 1.0,
            "{started} vs {now}"
        );
        // The bridge's own families keep their prefix.
        assert!(
            text.contains(
                "e4k_bridge_messages_received_total{bridge=\"b\",route=\"r\",direction=\"local-to-remote\"} 1"
            ),
            "{text}"
        );
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
