//! Raw serde types for the `MqttBridgeConnector` and `MqttBridgeTopicMap` custom resources.
//!
//! These types mirror the YAML as written, before defaults are applied: every field is an
//! `Option`, integers are `i64` so that out-of-range values (a QoS of 7, `bridgeInstances: 0`)
//! reach validation instead of failing the parse, and each mapping remembers in [`Keys`] how
//! its keys were spelled (for aliases), where they are (line and column) and which keys are
//! unknown. Unknown keys therefore do not stop the parse: validation reports all of them.
//!
//! The field tables follow `docs/bridge.md` §1.2–1.4. Both API versions share these types;
//! spellings that belong to one version only are accepted in either and flagged by validation.
//! `spec` is a union of the connector and topic-map fields, because serde cannot pick a type
//! from `kind` without buffering the document (which would lose line numbers); validation
//! reports fields that do not belong to the document's kind.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::parse::track;
use super::report::Location;

/// `apiVersion` of the Azure IoT MQ preview ("E4K", October 2023).
pub const API_V1ALPHA4: &str = "az-edge.com/v1alpha4";
/// `apiVersion` of the Azure IoT Operations preview (November 2023).
pub const API_V1BETA1: &str = "mq.iotoperations.azure.com/v1beta1";
/// `kind` of the connector resource.
pub const KIND_CONNECTOR: &str = "MqttBridgeConnector";
/// `kind` of the topic map resource.
pub const KIND_TOPIC_MAP: &str = "MqttBridgeTopicMap";

/// How the keys of one YAML mapping were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    /// Location of the mapping's first key, standing in for the mapping itself.
    pub location: Option<Location>,
    /// Known keys in document order.
    pub known: Vec<KnownKey>,
    /// Keys that are not part of the schema, with their locations.
    pub unknown: Vec<(String, Option<Location>)>,
}

/// One known key of a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    /// The field's canonical key: the first spelling in its table, e.g. `clientK8sSecret`.
    pub field: &'static str,
    /// The key as written, e.g. `secretName`.
    pub spelled: String,
    /// Where the key is.
    pub location: Option<Location>,
    /// The key sets a field that an earlier key (an alias) already set.
    pub repeats_field: bool,
}

impl Keys {
    /// The first key that sets `field` (given by its canonical key).
    pub fn get(&self, field: &str) -> Option<&KnownKey> {
        self.known.iter().find(|key| key.field == field)
    }

    /// The key `field` was written with, falling back to the canonical key.
    pub fn spelling<'a>(&'a self, field: &'a str) -> &'a str {
        self.get(field).map_or(field, |key| key.spelled.as_str())
    }

    /// Where the key for `field` is, or where the mapping is when the key is absent.
    pub fn location_of(&self, field: &str) -> Option<Location> {
        self.get(field)
            .and_then(|key| key.location)
            .or(self.location)
    }

    fn record(&mut self, field: &'static str, spelled: String, location: Option<Location>) {
        let repeats_field = self.get(field).is_some();
        self.location = self.location.or(location);
        self.known.push(KnownKey {
            field,
            spelled,
            location,
            repeats_field,
        });
    }
}

/// A raw type that can list the [`Keys`] of itself and of the mappings nested in it.
pub trait Walk {
    /// Calls `visit(path, keys, fields)` for this mapping and every mapping below it, where
    /// `path` is the YAML path (`spec.routes[2]`) and `fields` the keys the schema allows.
    fn walk(&self, path: &str, visit: &mut dyn FnMut(&str, &Keys, &'static [&'static str]));
}

macro_rules! walk_leaf {
    ($($ty:ty),*) => {
        $(impl Walk for $ty {
            fn walk(&self, _: &str, _: &mut dyn FnMut(&str, &Keys, &'static [&'static str])) {}
        })*
    };
}
walk_leaf!(String, i64, bool, IgnoredAny, BTreeMap<String, String>);

/// Defines a raw mapping type: a struct of optional fields, each with its accepted spellings
/// (the first one is canonical), plus the [`Keys`] record, a `Deserialize` impl that collects
/// unknown keys instead of failing, and a [`Walk`] impl.
macro_rules! raw_mapping {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field:ident: $ty:ty = [$canonical:literal $(, $alias:literal)*]
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: Option<$ty>,
            )*
            /// How this mapping's keys were written.
            pub keys: Keys,
        }

        impl $name {
            /// Every key this mapping accepts, aliases included.
            pub const FIELDS: &'static [&'static str] = &[$($canonical $(, $alias)*),*];
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct MappingVisitor;

                impl<'de> Visitor<'de> for MappingVisitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a mapping")
                    }

                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<Spanned<String>>()? {
                            let location = Location::from_saphyr(key.referenced);
                            let spelled = key.value;
                            match spelled.as_str() {
                                $(
                                    $canonical $(| $alias)* => {
                                        let value: $ty = track(&spelled, map.next_value())?;
                                        out.keys.record($canonical, spelled, location);
                                        if out.$field.is_none() {
                                            out.$field = Some(value);
                                        }
                                    }
                                )*
                                _ => {
                                    track(&spelled, map.next_value::<IgnoredAny>())?;
                                    out.keys.location = out.keys.location.or(location);
                                    out.keys.unknown.push((spelled, location));
                                }
                            }
                        }
                        Ok(out)
                    }
                }

                deserializer.deserialize_map(MappingVisitor)
            }
        }

        impl Walk for $name {
            fn walk(
                &self,
                path: &str,
                visit: &mut dyn FnMut(&str, &Keys, &'static [&'static str]),
            ) {
                visit(path, &self.keys, Self::FIELDS);
                $(
                    if let Some(value) = &self.$field {
                        value.walk(&join(path, self.keys.spelling($canonical)), visit);
                    }
                )*
            }
        }
    };
}

/// Joins a YAML path and a key: `join("spec", "routes") == "spec.routes"`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A YAML sequence whose element index is recorded when an element fails to parse.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawList<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for RawList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqVisitor<T> {
            type Value = RawList<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawList<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = track(items.len(), seq.next_element())? {
                    items.push(item);
                }
                Ok(RawList(items))
            }
        }

        deserializer.deserialize_seq(SeqVisitor(std::marker::PhantomData))
    }
}

impl<T: Walk> Walk for RawList<T> {
    fn walk(&self, path: &str, visit: &mut dyn FnMut(&str, &Keys, &'static [&'static str])) {
        for (index, item) in self.0.iter().enumerate() {
            item.walk(&format!("{path}[{index}]"), visit);
        }
    }
}

raw_mapping! {
    /// One YAML document: a Kubernetes resource.
    pub struct RawDocument {
        /// `apiVersion`, e.g. `az-edge.com/v1alpha4`.
        api_version: String = ["apiVersion"],
        /// `kind`, e.g. `MqttBridgeConnector`.
        kind: String = ["kind"],
        /// `metadata`; only `name` is used.
        metadata: RawMetadata = ["metadata"],
        /// `spec`: the connector or topic-map fields.
        spec: RawSpec = ["spec"],
        /// `status`, written by the operator; ignored.
        status: IgnoredAny = ["status"],
    }
}

raw_mapping! {
    /// `metadata`. Keys other than `name` and `annotations` are Kubernetes bookkeeping and are
    /// ignored without a warning, so that `kubectl get -o yaml` output can be used as is.
    pub struct RawMetadata {
        /// The resource name; topic maps refer to a connector by it.
        name: String = ["name"],
        /// Annotations; e4k reads its own (`e4k.dev/…`) and ignores the others.
        annotations: BTreeMap<String, String> = ["annotations"],
    }
}

raw_mapping! {
    /// `spec` of either kind (see the module doc for why it is a union).
    pub struct RawSpec {
        /// Connector: `v5` or `v3`.
        protocol: String = ["protocol"],
        /// Connector: the operator's container image; informational, ignored.
        image: IgnoredAny = ["image"],
        /// Connector: number of bridge instances.
        bridge_instances: i64 = ["bridgeInstances"],
        /// Connector: prefix of every client ID.
        client_id_prefix: String = ["clientIdPrefix"],
        /// Connector: `debug` or `info`.
        log_level: String = ["logLevel"],
        /// Connector (ARM only): pod tolerations; ignored.
        node_tolerations: IgnoredAny = ["nodeTolerations"],
        /// Connector: the remote (Event Grid) broker.
        remote_broker_connection: RawRemoteConnection = ["remoteBrokerConnection"],
        /// Connector: the local broker.
        local_broker_connection: RawLocalConnection = ["localBrokerConnection"],
        /// Topic map: name of the connector the routes belong to.
        mqtt_bridge_connector_ref: String = ["mqttBridgeConnectorRef"],
        /// Topic map: the routes.
        routes: RawList<RawRoute> = ["routes"],
    }
}

impl RawSpec {
    /// `spec` keys of an `MqttBridgeConnector`.
    pub const CONNECTOR_FIELDS: &'static [&'static str] = &[
        "protocol",
        "image",
        "bridgeInstances",
        "clientIdPrefix",
        "logLevel",
        "nodeTolerations",
        "remoteBrokerConnection",
        "localBrokerConnection",
    ];
    /// `spec` keys of an `MqttBridgeTopicMap`.
    pub const TOPIC_MAP_FIELDS: &'static [&'static str] = &["mqttBridgeConnectorRef", "routes"];
}

raw_mapping! {
    /// `spec.remoteBrokerConnection`.
    pub struct RawRemoteConnection {
        /// `host:port`.
        endpoint: String = ["endpoint"],
        /// `mqtt` or `webSocket` (v1beta1).
        protocol: String = ["protocol"],
        /// TLS settings.
        tls: RawTls = ["tls"],
        /// Exactly one authentication method.
        authentication: RawRemoteAuthentication = ["authentication"],
    }
}

raw_mapping! {
    /// `spec.localBrokerConnection`.
    pub struct RawLocalConnection {
        /// `host:port`.
        endpoint: String = ["endpoint"],
        /// TLS settings.
        tls: RawTls = ["tls"],
        /// Authentication toward the local broker.
        authentication: RawLocalAuthentication = ["authentication"],
    }
}

raw_mapping! {
    /// `tls` of either connection.
    pub struct RawTls {
        /// Whether to use TLS.
        tls_enabled: bool = ["tlsEnabled"],
        /// ConfigMap holding the CA that signed the broker's certificate
        /// (`trustedCaCertificateName` in v1alpha4).
        trusted_ca_certificate: String = [
            "trustedCaCertificateConfigMap",
            "trustedCaCertificateName"
        ],
    }
}

raw_mapping! {
    /// `remoteBrokerConnection.authentication`.
    pub struct RawRemoteAuthentication {
        /// Client certificate from a Kubernetes secret.
        x509: RawX509 = ["x509"],
        /// A Microsoft Entra ID token for an audience (MQTT 5 `OAUTH2-JWT`).
        system_assigned_managed_identity: RawManagedIdentity = ["systemAssignedManagedIdentity"],
        /// Username and password (v1alpha4).
        basic: RawBasic = ["basic"],
    }
}

raw_mapping! {
    /// `localBrokerConnection.authentication`.
    pub struct RawLocalAuthentication {
        /// Kubernetes service account token (SAT).
        kubernetes: RawKubernetes = ["kubernetes"],
        /// Username and password, or anonymous (v1alpha4).
        basic: RawBasic = ["basic"],
    }
}

raw_mapping! {
    /// `authentication.x509`.
    pub struct RawX509 {
        /// Secret with `client_cert.pem`, `client_key.pem` and optionally
        /// `client_intermediate_certs.pem`.
        secret: String = ["clientK8sSecret", "clientCertKeySecret", "secretName"],
    }
}

raw_mapping! {
    /// `authentication.systemAssignedManagedIdentity`.
    pub struct RawManagedIdentity {
        /// The token's audience, e.g. `https://eventgrid.azure.net/`.
        audience: String = ["audience"],
        /// The Azure Arc extension whose identity is used (informational for e4k, which gets
        /// the token through azure_identity).
        extension_name: String = ["extensionName"],
    }
}

raw_mapping! {
    /// `authentication.basic` (v1alpha4).
    pub struct RawBasic {
        /// Connect without credentials.
        anonymous: bool = ["anonymous"],
        /// Secret holding the username and password.
        k8s_secret_name: String = ["k8sSecretName"],
        /// Key of the username in the secret.
        username_key: String = ["usernameKey"],
        /// Key of the password in the secret.
        password_key: String = ["passwordKey"],
    }
}

raw_mapping! {
    /// `authentication.kubernetes`: a service account token file.
    pub struct RawKubernetes {
        /// Directory holding the token.
        secret_path: String = ["secretPath"],
        /// File name of the token in that directory.
        service_account_token_name: String = ["serviceAccountTokenName"],
    }
}

raw_mapping! {
    /// One entry of `spec.routes`.
    pub struct RawRoute {
        /// `local-to-remote` or `remote-to-local`.
        direction: String = ["direction"],
        /// Route name, unique per connector.
        name: String = ["name"],
        /// QoS of the subscription and the publish.
        qos: i64 = ["qos"],
        /// Topic filter on the source broker.
        source: String = ["source"],
        /// Static topic on the target broker.
        target: String = ["target"],
        /// Shared subscription on the source broker.
        shared_subscription: RawSharedSubscription = ["sharedSubscription"],
    }
}

raw_mapping! {
    /// `routes[].sharedSubscription`.
    pub struct RawSharedSubscription {
        /// The `$share/<groupName>/...` group.
        group_name: String = ["groupName"],
        /// Minimum number of subscribing sessions across all instances.
        group_minimum_share_number: i64 = ["groupMinimumShareNumber"],
    }
}

/// The two supported `apiVersion`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// `az-edge.com/v1alpha4`.
    V1alpha4,
    /// `mq.iotoperations.azure.com/v1beta1`.
    V1beta1,
}

impl ApiVersion {
    /// Parses an `apiVersion` string.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            API_V1ALPHA4 => Some(ApiVersion::V1alpha4),
            API_V1BETA1 => Some(ApiVersion::V1beta1),
            _ => None,
        }
    }

    /// The `apiVersion` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1alpha4 => API_V1ALPHA4,
            ApiVersion::V1beta1 => API_V1BETA1,
        }
    }
}
