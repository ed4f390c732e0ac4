//! Cross-route checks of one connector.
//!
//! # Overlapping routes
//!
//! Two routes of the same direction whose source filters can match one topic both forward a
//! message on that topic: each has its own subscription, so the broker delivers it to each.
//! That is often intended (the seed's `factory/telemetry/#` plus a copy of the anomalies to
//! `factory/telemetry/alert`), so an overlap is a **warning** — unless the two copies land on
//! the **same target topic**, which is a duplicate no subscriber can tell apart: then it is an
//! **error**. That happens when both routes keep the message's own topic, when both have the
//! same static target, or when one keeps the topic and the other's static target `T` matches
//! both sources (a message published on `T` itself arrives on `T` twice).
//!
//! # Loops
//!
//! A local-to-remote route and a remote-to-local route form a loop when a message one sends
//! can be picked up by the other and sent back to where it started (e.g. both bridge
//! `command/#` and keep the topic). That is a **warning**: the engine's hop limit stops such
//! loops, but each message still crosses twice. With `protocol: v3` it is an **error**: MQTT
//! 3.1.1 carries no user property for the hop count and has no No Local, so nothing would
//! stop it.

use crate::config::build::PlacedRoute;
use crate::config::report::{Report, show};
use crate::config::resolve::{Direction, MqttVersion};

/// Where a route's messages go, for messages.
fn destination(placed: &PlacedRoute) -> String {
    match &placed.route.target {
        Some(target) => format!("`{}`", show(target)),
        None => "its own topic".to_owned(),
    }
}

/// Whether a message matching both routes arrives twice on one target topic.
fn same_target_twice(a: &PlacedRoute, b: &PlacedRoute) -> bool {
    let (a, b) = (&a.route, &b.route);
    match (&a.target, &b.target) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y,
        (Some(t), None) | (None, Some(t)) => a.source.matches(t) && b.source.matches(t),
    }
}

pub(super) fn check_overlaps(routes: &[PlacedRoute], report: &mut Report) {
    for (j, b) in routes.iter().enumerate() {
        for a in &routes[..j] {
            let (ra, rb) = (&a.route, &b.route);
            if ra.direction != rb.direction || !ra.source.overlaps(&rb.source) {
                continue;
            }
            let (name_a, name_b) = (show(&ra.name), show(&rb.name));
            let (source_a, source_b) = (show(ra.source.as_str()), show(rb.source.as_str()));
            if same_target_twice(a, b) {
                let to = match (&ra.target, &rb.target) {
                    (None, None) => "their own topic".to_owned(),
                    (Some(t), _) | (_, Some(t)) => format!("`{}`", show(t)),
                };
                report.error(
                    &b.source_site,
                    format!(
                        "routes `{name_a}` and `{name_b}` both send messages matching \
                         `{source_a}` and `{source_b}` to {to}, so such messages arrive twice; \
                         narrow one source or give the routes different targets"
                    ),
                );
            } else {
                report.warning(
                    &b.source_site,
                    format!(
                        "route `{name_b}` overlaps route `{name_a}`: a message matching both \
                         `{source_b}` and `{source_a}` is forwarded twice (to {} and to {}); \
                         fine if intended",
                        destination(b),
                        destination(a)
                    ),
                );
            }
        }
    }
}

/// Whether a message `out` sends can come back through `back` and match `out` again.
fn loops(out: &PlacedRoute, back: &PlacedRoute) -> bool {
    let (out, back) = (&out.route, &back.route);
    match (&out.target, &back.target) {
        (None, None) => out.source.overlaps(&back.source),
        (Some(t), None) => back.source.matches(t) && out.source.matches(t),
        (None, Some(t)) => out.source.overlaps(&back.source) && out.source.matches(t),
        (Some(t_out), Some(t_back)) => back.source.matches(t_out) && out.source.matches(t_back),
    }
}

pub(super) fn check_loops(routes: &[PlacedRoute], protocol: MqttVersion, report: &mut Report) {
    for (j, b) in routes.iter().enumerate() {
        for a in &routes[..j] {
            if a.route.direction == b.route.direction || !loops(a, b) {
                continue;
            }
            let (out, back) = if a.route.direction == Direction::LocalToRemote {
                (a, b)
            } else {
                (b, a)
            };
            let message = format!(
                "routes `{}` (local-to-remote) and `{}` (remote-to-local) can loop: messages \
                 the first sends to the remote broker match the second, which sends them back; \
                 use distinct topics on each side",
                show(&out.route.name),
                show(&back.route.name)
            );
            match protocol {
                MqttVersion::V5 => report.warning(&b.source_site, message),
                // MQTT 3.1.1 has neither No Local nor user properties for the hop count:
                // nothing would stop the loop.
                MqttVersion::V3 => report.error(
                    &b.source_site,
                    format!(
                        "{message} (with protocol v3 nothing stops such a loop: MQTT 3.1.1 has \
                         neither No Local nor the user property that carries the hop count)"
                    ),
                ),
            }
        }
    }
}
