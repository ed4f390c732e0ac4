//! The text of `e4k bridge spool inspect`: how a [`SpoolReport`] reads to a person (one line
//! for the spool, one per queue, one per route). The JSON shape is the report's `Serialize`.

use std::fmt;

use super::inspect::{QueueReport, RouteReport, SpoolReport};

/// `, oldest 12s`, or nothing when the age is unknown.
fn oldest(age_secs: Option<u64>) -> String {
    age_secs
        .map(|a| format!(", oldest {a}s"))
        .unwrap_or_default()
}

impl fmt::Display for SpoolReport {
    /// The report as text, one line per spool, queue and route, each line ending in `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} message(s), {} byte(s) in {} queue(s)",
            self.dir,
            self.messages,
            self.bytes,
            self.queues.len()
        )?;
        for queue in &self.queues {
            write!(f, "{queue}")?;
        }
        Ok(())
    }
}

impl fmt::Display for QueueReport {
    /// The queue's line and its routes' lines, indented under the spool's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  {}: {} message(s), {} byte(s), {} segment(s){}{}",
            self.name,
            self.messages,
            self.bytes,
            self.segments,
            oldest(self.oldest_age_secs),
            if self.torn_tail {
                ", torn last record (cut off at the next start)"
            } else {
                ""
            }
        )?;
        for route in &self.routes {
            writeln!(f, "    {route}")?;
        }
        Ok(())
    }
}

impl fmt::Display for RouteReport {
    /// `route NAME: N message(s), B byte(s)[, oldest Ns]`, without indent or line end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "route {}: {} message(s), {} byte(s){}",
            self.route,
            self.messages,
            self.bytes,
            oldest(self.oldest_age_secs)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_spool_is_one_line() {
        let report = SpoolReport {
            dir: "/var/spool".into(),
            bytes: 0,
            messages: 0,
            queues: Vec::new(),
        };
        assert_eq!(
            report.to_string(),
            "/var/spool: 0 message(s), 0 byte(s) in 0 queue(s)\n"
        );
    }

    #[test]
    fn queues_and_routes_are_indented() {
        let report = SpoolReport {
            dir: "s".into(),
            bytes: 30,
            messages: 3,
            queues: vec![
                QueueReport {
                    name: "b~remote~c".into(),
                    segments: 1,
                    bytes: 30,
                    messages: 3,
                    oldest_age_secs: Some(7),
                    torn_tail: true,
                    routes: vec![RouteReport {
                        route: "up".into(),
                        messages: 3,
                        bytes: 30,
                        oldest_age_secs: Some(7),
                    }],
                },
                QueueReport {
                    name: "b~local~d".into(),
                    segments: 0,
                    bytes: 0,
                    messages: 0,
                    oldest_age_secs: None,
                    torn_tail: false,
                    routes: Vec::new(),
                },
            ],
        };
        assert_eq!(
            report.to_string(),
            "s: 3 message(s), 30 byte(s) in 2 queue(s)\n\
             \x20 b~remote~c: 3 message(s), 30 byte(s), 1 segment(s), oldest 7s, torn last record (cut off at the next start)\n\
             \x20   route up: 3 message(s), 30 byte(s), oldest 7s\n\
             \x20 b~local~d: 0 message(s), 0 byte(s), 0 segment(s)\n"
        );
    }
}
