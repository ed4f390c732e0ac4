//! Document and schema problems: unknown fields, fields of the other kind, missing documents.

use super::*;

#[test]
fn unknown_field_is_an_error_with_path_and_location() {
    let yaml = with_routes(
        "    - direction: local-to-remote\n      name: up\n      source: up/#\n      qoss: 1\n",
    );
    let report = report(&yaml, &no_files());
    assert_eq!(
        summarize(&report),
        [error(
            &route(0, "qoss"),
            "unknown field `qoss`; remove it or use one of: direction, name, qos, source, \
             target, sharedSubscription"
        )]
    );
    let problem: &Problem = &report.problems[0];
    assert_eq!(problem.document, Some(1));
    assert_eq!(problem.resource.as_deref(), Some("MqttBridgeTopicMap/map"));
    assert_eq!(problem.field, "spec.routes[0].qoss");
    let location = problem.location.unwrap();
    assert_eq!((location.line, location.column), (26, 7));
}

#[test]
fn every_unknown_field_is_reported() {
    let yaml = connector_replacing(
        "  bridgeInstances: 1\n",
        "  bridgeInstance: 1\n  colour: red\n",
    )
    .replace("source: up/#}", "source: up/#, extra: 1}");
    let found: Vec<String> = problems(&yaml).into_iter().map(|p| p.1).collect();
    assert_eq!(
        found,
        [
            conn("spec.bridgeInstance"),
            conn("spec.colour"),
            route(0, "extra")
        ]
    );
}

#[test]
fn field_of_the_other_kind_is_an_error() {
    let yaml = connector_replacing(
        "  bridgeInstances: 1\n",
        "  bridgeInstances: 1\n  routes: []\n",
    );
    assert_eq!(
        problems(&yaml),
        [error(
            &conn("spec.routes"),
            "field `routes` belongs to MqttBridgeTopicMap, not MqttBridgeConnector; move it there"
        )]
    );
}

problem_tests! {
    two_aliases_of_one_field_are_an_error:
        connector_replacing(
            "        clientK8sSecret: bridge-client-cert\n",
            "        clientK8sSecret: bridge-client-cert\n        clientCertKeySecret: other\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.x509.clientCertKeySecret"),
            "`clientCertKeySecret` sets the same field as `clientK8sSecret`; keep only one of them"
        )];

    spelling_of_the_other_version_is_a_warning:
        connector_replacing("clientK8sSecret", "secretName")
        => [warning(
            &conn("spec.remoteBrokerConnection.authentication.x509.secretName"),
            "`secretName` is the mq.iotoperations.azure.com/v1beta1 spelling; \
             az-edge.com/v1alpha4 spells it `clientK8sSecret` (accepted anyway)"
        )];

    field_of_the_other_version_is_a_warning:
        connector_replacing(
            "    endpoint: example",
            "    protocol: webSocket\n    endpoint: example",
        )
        => [warning(
            &conn("spec.remoteBrokerConnection.protocol"),
            "`protocol` is not part of az-edge.com/v1alpha4 (it comes from \
             mq.iotoperations.azure.com/v1beta1); accepted anyway"
        )];

    missing_kind_is_an_error:
        with_connector(CONNECTOR) + "---\napiVersion: v1\nmetadata: {name: x}\n"
        => [error(
            "documents[2].kind",
            "`kind` is missing; set MqttBridgeConnector or MqttBridgeTopicMap"
        )];

    other_kinds_are_skipped_with_a_warning:
        with_connector(CONNECTOR)
            + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: b}\n"
        => [warning(
            "documents[2](Secret/s).kind",
            "kind `Secret` is not a bridge resource; document ignored"
        )];

    unsupported_api_version_is_an_error:
        with_connector(&CONNECTOR.replace("az-edge.com/v1alpha4", "az-edge.com/v1"))
        => [
            error(
                &conn("apiVersion"),
                "apiVersion `az-edge.com/v1` is not supported; use az-edge.com/v1alpha4 or \
                 mq.iotoperations.azure.com/v1beta1"
            ),
            error("documents", "no MqttBridgeConnector found; add one"),
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "MqttBridgeConnector `bridge` is not defined in this input (none is defined); \
                 fix the reference"
            ),
        ];

    missing_api_version_is_an_error:
        with_connector(&CONNECTOR.replace("apiVersion: az-edge.com/v1alpha4\n", ""))
        => [
            error(
                &conn("apiVersion"),
                "`apiVersion` is missing; use az-edge.com/v1alpha4 or \
                 mq.iotoperations.azure.com/v1beta1"
            ),
            error("documents", "no MqttBridgeConnector found; add one"),
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "MqttBridgeConnector `bridge` is not defined in this input (none is defined); \
                 fix the reference"
            ),
        ];

    missing_name_is_an_error:
        with_routes(UP)
            .replace("  name: map\n", "  namespace: x\n")
        => [error(
            "documents[1](MqttBridgeTopicMap).metadata.name",
            "`metadata.name` is missing; name the resource"
        )];

    duplicate_connector_is_an_error:
        format!("{CONNECTOR}---\n{}", with_connector(CONNECTOR))
        => [error(
            "documents[1](MqttBridgeConnector/bridge).metadata.name",
            "MqttBridgeConnector `bridge` is defined twice (first in documents[0]); rename one"
        )];
}

#[test]
fn input_without_connector_is_an_error() {
    assert_eq!(
        problems(""),
        [error("documents", "no MqttBridgeConnector found; add one")]
    );
}

problem_tests! {
    topic_map_without_connector_ref_is_an_error:
        with_routes(UP)
            .replace("  mqttBridgeConnectorRef: bridge\n", "")
        => [
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "`mqttBridgeConnectorRef` is missing; set it to the name of an \
                 MqttBridgeConnector"
            ),
            warning(
                CONN,
                "no MqttBridgeTopicMap refers to this connector, so it bridges nothing; add one"
            ),
        ];

    topic_map_referring_to_a_missing_connector_is_an_error:
        with_routes(UP).replace(
            "mqttBridgeConnectorRef: bridge",
            "mqttBridgeConnectorRef: brige",
        )
        => [
            error(
                &format!("{MAP}.spec.mqttBridgeConnectorRef"),
                "MqttBridgeConnector `brige` is not defined in this input (defined: `bridge`); \
                 fix the reference"
            ),
            warning(
                CONN,
                "no MqttBridgeTopicMap refers to this connector, so it bridges nothing; add one"
            ),
        ];

    topic_map_without_routes_is_a_warning:
        with_routes("    []\n")
        => [warning(
            &format!("{MAP}.spec.routes"),
            "the topic map has no routes; add at least one"
        )];
}
