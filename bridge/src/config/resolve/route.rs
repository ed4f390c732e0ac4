//! One resolved route of a topic map: direction, QoS, topics and shared subscription.

use serde::Serialize;

use crate::config::topic::TopicFilter;

/// Which way a route forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// From the local broker to the remote broker (`local-to-remote`).
    LocalToRemote,
    /// From the remote broker to the local broker (`remote-to-local`).
    RemoteToLocal,
}

impl Direction {
    /// The CRD spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::LocalToRemote => "local-to-remote",
            Direction::RemoteToLocal => "remote-to-local",
        }
    }
}

/// MQTT quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(into = "u8")]
pub enum QoS {
    /// QoS 0.
    AtMostOnce,
    /// QoS 1.
    AtLeastOnce,
    /// QoS 2.
    ExactlyOnce,
}

impl From<QoS> for u8 {
    fn from(qos: QoS) -> u8 {
        match qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        }
    }
}

/// One route of a topic map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Route name, unique within the connector.
    pub name: String,
    /// `metadata.name` of the topic map that holds the route.
    pub topic_map: String,
    /// Which way it forwards.
    pub direction: Direction,
    /// Topic filter on the source broker (never a `$share/` filter).
    pub source: TopicFilter,
    /// Static topic on the target broker; `None` keeps each message's own topic.
    pub target: Option<String>,
    /// QoS of the subscription and of the publish.
    pub qos: QoS,
    /// Shared subscription on the source broker.
    pub shared_subscription: Option<SharedSubscription>,
}

impl Route {
    /// The filter to subscribe to on the source broker: `$share/<group>/<source>` with a
    /// shared subscription, the plain source otherwise.
    pub fn subscription_filter(&self) -> String {
        match &self.shared_subscription {
            Some(shared) => format!("$share/{}/{}", shared.group_name, self.source),
            None => self.source.to_string(),
        }
    }

    /// The topic a message received on `topic` is published to.
    pub fn target_topic<'a>(&'a self, topic: &'a str) -> &'a str {
        self.target.as_deref().unwrap_or(topic)
    }
}

/// A route's shared subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedSubscription {
    /// Share group name (no `/`, `+` or `#`).
    pub group_name: String,
    /// Minimum number of member sessions over all instances; at least 1.
    pub group_minimum_share_number: u32,
}

impl SharedSubscription {
    /// Members each instance runs so that the group has at least the minimum.
    pub fn members_per_instance(&self, instances: u32) -> u32 {
        self.group_minimum_share_number.div_ceil(instances.max(1))
    }
}
