//! The routes of a topic map: direction, source, target, QoS and shared subscription,
//! with Event Grid's topic limits.

use std::collections::HashMap;

use crate::config::crd::{Keys, RawRoute, RawSharedSubscription, join};
use crate::config::report::show;
use crate::config::resolve::{Direction, EVENT_GRID_MAX_SESSIONS, QoS, Route, SharedSubscription};
use crate::config::topic::{
    EVENT_GRID_MAX_LEVELS, EVENT_GRID_MAX_TOPIC_BYTES, TopicError, TopicFilter, check_topic_name,
};

use super::{Ctx, PlacedRoute};

/// Resolves `spec.routes[index]` of topic map `map`, reporting every problem; `None` when the
/// route cannot be used. Duplicate names are checked against `names` when given.
pub(crate) fn route(
    index: usize,
    raw: &RawRoute,
    map: &str,
    names: Option<&mut HashMap<String, String>>,
    ctx: &mut Ctx<'_>,
) -> Option<PlacedRoute> {
    let parent = format!("spec.routes[{index}]");
    let keys = &raw.keys;
    let direction = match raw.direction.as_deref() {
        Some("local-to-remote") => Some(Direction::LocalToRemote),
        Some("remote-to-local") => Some(Direction::RemoteToLocal),
        None => {
            ctx.error(
                &parent,
                keys,
                "direction",
                "`direction` is missing; use local-to-remote or remote-to-local".to_owned(),
            );
            None
        }
        Some(other) => {
            ctx.error(
                &parent,
                keys,
                "direction",
                format!(
                    "direction `{}` is not valid; use local-to-remote or remote-to-local",
                    show(other)
                ),
            );
            None
        }
    };
    let name = route_name(&parent, raw, names, ctx);
    let source = route_source(&parent, raw, direction, ctx);
    let target = route_target(&parent, raw, direction, ctx);
    let qos = route_qos(&parent, raw, direction, ctx);
    let shared_subscription = match &raw.shared_subscription {
        None => Some(None),
        Some(shared) => {
            shared_subscription(&join(&parent, "sharedSubscription"), shared, ctx).map(Some)
        }
    };
    Some(PlacedRoute {
        source_site: ctx.site(&parent, keys, "source"),
        route: Route {
            name: name?,
            topic_map: map.to_owned(),
            direction: direction?,
            source: source?,
            target: target?,
            qos: qos?,
            shared_subscription: shared_subscription?,
        },
    })
}

fn route_name(
    parent: &str,
    raw: &RawRoute,
    names: Option<&mut HashMap<String, String>>,
    ctx: &mut Ctx<'_>,
) -> Option<String> {
    let Some(name) = raw.name.as_deref().filter(|name| !name.is_empty()) else {
        ctx.error(
            parent,
            &raw.keys,
            "name",
            "`name` is missing; name the route (it is part of client IDs)".to_owned(),
        );
        return None;
    };
    let site = ctx.site(parent, &raw.keys, "name");
    if let Some(names) = names {
        if let Some(first) = names.get(name) {
            ctx.report.error(
                &site,
                format!(
                    "route name `{}` is already used by {first}; route names must be unique \
                     per connector",
                    show(name)
                ),
            );
            return None;
        }
        names.insert(name.to_owned(), site.path());
    }
    Some(name.to_owned())
}

fn route_source(
    parent: &str,
    raw: &RawRoute,
    direction: Option<Direction>,
    ctx: &mut Ctx<'_>,
) -> Option<TopicFilter> {
    let Some(source) = raw.source.as_deref() else {
        ctx.error(
            parent,
            &raw.keys,
            "source",
            "`source` is missing; set the topic filter to subscribe to".to_owned(),
        );
        return None;
    };
    let filter = TopicFilter::parse(source);
    let message = match &filter {
        Ok(filter) if filter.is_shared() => format!(
            "source `{}` is a shared subscription; put the plain topic filter in source and use \
             sharedSubscription instead",
            show(source)
        ),
        Ok(filter) => {
            // Event Grid sees the source of a remote-to-local route, and the topics of a
            // local-to-remote route that keeps each message's topic.
            let on_event_grid = match direction {
                Some(Direction::RemoteToLocal) => true,
                Some(Direction::LocalToRemote) => raw.target.is_none(),
                None => false,
            };
            if on_event_grid {
                event_grid_limits(parent, &raw.keys, "source", source, ctx);
            }
            return Some(filter.clone());
        }
        Err(reason) => format!(
            "source `{}` is not a valid topic filter: {reason}",
            show(source)
        ),
    };
    ctx.error(parent, &raw.keys, "source", message);
    None
}

/// `Some(None)` when there is no target, `None` when the target is invalid.
fn route_target(
    parent: &str,
    raw: &RawRoute,
    direction: Option<Direction>,
    ctx: &mut Ctx<'_>,
) -> Option<Option<String>> {
    let Some(target) = raw.target.as_deref() else {
        return Some(None);
    };
    let message = match check_topic_name(target) {
        Ok(()) => {
            if direction == Some(Direction::LocalToRemote) {
                event_grid_limits(parent, &raw.keys, "target", target, ctx);
            }
            return Some(Some(target.to_owned()));
        }
        Err(TopicError::Wildcard) => format!(
            "target `{}` contains a wildcard; a target is a single topic: remove `+` and `#`, \
             or omit target to keep each message's own topic",
            show(target)
        ),
        Err(reason) => format!("target `{}` is not a valid topic: {reason}", show(target)),
    };
    ctx.error(parent, &raw.keys, "target", message);
    None
}

fn route_qos(
    parent: &str,
    raw: &RawRoute,
    direction: Option<Direction>,
    ctx: &mut Ctx<'_>,
) -> Option<QoS> {
    let qos = match raw.qos {
        None | Some(1) => QoS::AtLeastOnce,
        Some(0) => QoS::AtMostOnce,
        Some(2) => QoS::ExactlyOnce,
        Some(other) => {
            ctx.error(
                parent,
                &raw.keys,
                "qos",
                format!("qos {other} is not valid; use 0, 1 or 2"),
            );
            return None;
        }
    };
    if qos == QoS::ExactlyOnce {
        match direction {
            Some(Direction::LocalToRemote) => {
                ctx.error(
                    parent,
                    &raw.keys,
                    "qos",
                    "qos 2 is not supported by Event Grid; use qos 1".to_owned(),
                );
                return None;
            }
            Some(Direction::RemoteToLocal) => ctx.warning(
                parent,
                &raw.keys,
                "qos",
                "Event Grid delivers at most QoS 1, so qos 2 adds nothing on this route; use qos 1"
                    .to_owned(),
            ),
            None => {}
        }
    }
    Some(qos)
}

/// Reports a topic or filter that Event Grid would refuse.
fn event_grid_limits(parent: &str, keys: &Keys, field: &str, topic: &str, ctx: &mut Ctx<'_>) {
    let levels = topic.split('/').count();
    if levels > EVENT_GRID_MAX_LEVELS {
        ctx.error(
            parent,
            keys,
            field,
            format!(
                "`{}` has {levels} topic levels; Event Grid allows at most 8",
                show(topic)
            ),
        );
    }
    if topic.len() > EVENT_GRID_MAX_TOPIC_BYTES {
        ctx.error(
            parent,
            keys,
            field,
            format!(
                "`{}` is {} bytes long; Event Grid allows at most 256",
                show(topic),
                topic.len()
            ),
        );
    }
}

fn shared_subscription(
    parent: &str,
    raw: &RawSharedSubscription,
    ctx: &mut Ctx<'_>,
) -> Option<SharedSubscription> {
    let group_name = match raw.group_name.as_deref() {
        None => {
            ctx.error(
                parent,
                &raw.keys,
                "groupName",
                "`groupName` is missing; name the shared subscription group".to_owned(),
            );
            None
        }
        Some(name) if name.is_empty() || name.contains(['/', '+', '#', '\0']) => {
            ctx.error(
                parent,
                &raw.keys,
                "groupName",
                format!(
                    "groupName `{}` is not valid; it must be non-empty and contain no `/`, `+` \
                     or `#`",
                    show(name)
                ),
            );
            None
        }
        Some(name) => Some(name.to_owned()),
    };
    let minimum = match raw.group_minimum_share_number {
        None => {
            ctx.error(
                parent,
                &raw.keys,
                "groupMinimumShareNumber",
                "`groupMinimumShareNumber` is missing; set how many sessions share the \
                 subscription (at least 1)"
                    .to_owned(),
            );
            None
        }
        Some(n) => match u32::try_from(n) {
            Ok(n) if (1..=EVENT_GRID_MAX_SESSIONS).contains(&n) => Some(n),
            _ => {
                ctx.error(
                    parent,
                    &raw.keys,
                    "groupMinimumShareNumber",
                    format!("groupMinimumShareNumber is {n}; it must be between 1 and 100"),
                );
                None
            }
        },
    };
    Some(SharedSubscription {
        group_name: group_name?,
        group_minimum_share_number: minimum?,
    })
}
