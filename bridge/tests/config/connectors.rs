//! Problems of an `MqttBridgeConnector`: one test per problem with its exact message and path.

use super::*;

problem_tests! {
    protocol_v3_with_a_service_account_token_is_a_warning:
        connector_replacing("  bridgeInstances: 1\n", "  protocol: v3\n")
        => [warning(
            &conn("spec.localBrokerConnection"),
            "localBrokerConnection authenticates with a Kubernetes service account token \
             (K8S-SAT), which needs MQTT 5 enhanced authentication: with protocol v3 the bridge \
             connects without credentials; set protocol: v5 or authentication.basic"
        )];

    protocol_v3_with_basic_authentication_is_valid:
        connector_replacing(
            "  bridgeInstances: 1\n",
            "  protocol: v3\n  localBrokerConnection:\n    endpoint: localhost:1883\n    \
             authentication:\n      basic:\n        anonymous: true\n",
        )
        => [];

    unknown_protocol_is_an_error:
        connector_replacing("  bridgeInstances: 1\n", "  protocol: v4\n")
        => [error(
            &conn("spec.protocol"),
            "protocol `v4` is not valid; use v5 (MQTT 5) or v3 (MQTT 3.1.1)"
        )];

    zero_bridge_instances_is_an_error:
        connector_replacing("bridgeInstances: 1", "bridgeInstances: 0")
        => [error(
            &conn("spec.bridgeInstances"),
            "bridgeInstances is 0; it must be between 1 and 100"
        )];

    invalid_log_level_is_an_error:
        connector_replacing("  bridgeInstances: 1\n", "  logLevel: verbose\n")
        => [error(
            &conn("spec.logLevel"),
            "logLevel `verbose` is not valid; use debug or info"
        )];
}

problem_tests! {
    missing_remote_connection_is_an_error:
        connector_until("  remoteBrokerConnection")
        => [error(
        &conn("spec.remoteBrokerConnection"),
        "`remoteBrokerConnection` is missing; set its endpoint, tls and authentication"
    )];
}

problem_tests! {
    missing_remote_endpoint_is_an_error:
        connector_replacing(
            "    endpoint: example.westeurope-1.ts.eventgrid.azure.net:8883\n",
            "",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.endpoint"),
            "`endpoint` is missing; set it to the Event Grid MQTT hostname and port 8883"
        )];

    invalid_endpoint_is_an_error:
        connector_replacing(
            "example.westeurope-1.ts.eventgrid.azure.net:8883",
            "mqtts://example:8883",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.endpoint"),
            "endpoint `mqtts://example:8883` is not valid: remove the `mqtts://` prefix; use \
             host:port, e.g. example.westeurope-1.ts.eventgrid.azure.net:8883"
        )];

    invalid_local_endpoint_is_an_error:
        connector_replacing(
            "  bridgeInstances: 1\n",
            "  localBrokerConnection:\n    endpoint: 'broker:99999'\n",
        )
        => [error(
            &conn("spec.localBrokerConnection.endpoint"),
            "endpoint `broker:99999` is not valid: port `99999` is not a number between 1 and \
             65535; use host:port, e.g. aio-mq-dmqtt-frontend:1883"
        )];
}

#[test]
fn invalid_endpoint_override_is_an_error() {
    let mut options = no_files();
    options.remote_endpoint = Some("::1:8883".into());
    assert_eq!(
        summarize(&report(&with_connector(CONNECTOR), &options)),
        [error(
            "options.remote_endpoint",
            "endpoint `::1:8883` is not valid: put an IPv6 address in brackets, e.g. \
             [::1]:8883; use host:port, e.g. example.westeurope-1.ts.eventgrid.azure.net:8883"
        )]
    );
}

problem_tests! {
    invalid_remote_transport_is_an_error:
        connector_replacing(
            "    endpoint: example",
            "    protocol: quic\n    endpoint: example",
        )
        .replace("az-edge.com/v1alpha4", "mq.iotoperations.azure.com/v1beta1")
        .replace("clientK8sSecret", "secretName")
        => [error(
            &conn("spec.remoteBrokerConnection.protocol"),
            "protocol `quic` is not valid; use mqtt or webSocket"
        )];

    missing_tls_is_an_error:
        connector_replacing("    tls:\n      tlsEnabled: true\n", "")
        => [error(
            &conn("spec.remoteBrokerConnection.tls"),
            "`tls` is missing; set tls.tlsEnabled: true (Event Grid requires TLS)"
        )];

    missing_tls_enabled_is_an_error:
        connector_replacing(
            "      tlsEnabled: true\n",
            "      trustedCaCertificateName: ca\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.tls.tlsEnabled"),
            "`tlsEnabled` is missing; set it to true (Event Grid requires TLS)"
        )];

    disabled_tls_is_a_warning_and_breaks_x509:
        connector_replacing(
            "tlsEnabled: true\n",
            "tlsEnabled: false\n      trustedCaCertificateName: ca\n",
        )
        => [
            warning(
                &conn("spec.remoteBrokerConnection.tls.tlsEnabled"),
                "TLS is disabled toward the remote broker; Event Grid accepts only TLS on port \
                 8883"
            ),
            warning(
                &conn("spec.remoteBrokerConnection.tls.trustedCaCertificateName"),
                "`trustedCaCertificateName` is ignored because TLS is disabled"
            ),
            error(
                &conn("spec.remoteBrokerConnection.authentication.x509"),
                "x509 authentication needs TLS; set tls.tlsEnabled: true"
            ),
        ];
}

problem_tests! {
    missing_authentication_is_an_error:
        connector_until("    authentication")
        => [error(
        &conn("spec.remoteBrokerConnection.authentication"),
        "`authentication` is missing; set x509 with the client certificate secret"
    )];
}

problem_tests! {
    authentication_without_method_is_an_error:
        connector_replacing(
            "    authentication:\n      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "    authentication: {}\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication"),
            "`authentication` sets no method; set x509 with the client certificate secret"
        )];

    two_authentication_methods_are_an_error:
        connector_replacing(
            "      x509:\n",
            "      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n      \
             x509:\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication"),
            "`authentication` sets `x509` and `systemAssignedManagedIdentity`; keep exactly one"
        )];

    managed_identity_without_tls_is_an_error:
        connector_replacing(
            "      tlsEnabled: true\n    authentication:\n      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      tlsEnabled: false\n    authentication:\n      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n",
        )
        => [
            warning(
                &conn("spec.remoteBrokerConnection.tls.tlsEnabled"),
                "TLS is disabled toward the remote broker; Event Grid accepts only TLS on port 8883"
            ),
            error(
                &conn("spec.remoteBrokerConnection.authentication.systemAssignedManagedIdentity"),
                "a Microsoft Entra ID token must not cross a plain connection; set \
                 tls.tlsEnabled: true"
            ),
        ];

    managed_identity_with_a_bad_audience_is_an_error:
        connector_replacing(
            "      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      systemAssignedManagedIdentity: {audience: 'eventgrid'}\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.systemAssignedManagedIdentity.audience"),
            "audience `eventgrid` is not a resource URI; Event Grid's is https://eventgrid.azure.net/"
        )];

    managed_identity_over_mqtt_3_is_an_error:
        connector_replacing(
            "      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n",
        ).replace("  bridgeInstances: 1\n", "  bridgeInstances: 1\n  protocol: v3\n")
        => [
            error(
                &conn("spec.protocol"),
                "JWT authentication toward the remote broker needs MQTT 5 (the token is sent as \
                 enhanced authentication); set protocol: v5 or use x509"
            ),
            warning(
                &conn("spec.localBrokerConnection"),
                "localBrokerConnection authenticates with a Kubernetes service account token \
                 (K8S-SAT), which needs MQTT 5 enhanced authentication: with protocol v3 the \
                 bridge connects without credentials; set protocol: v5 or authentication.basic"
            ),
        ];

    a_token_file_annotation_without_managed_identity_is_an_error:
        CONNECTOR
            .replace(
                "  name: bridge\n",
                "  name: bridge\n  annotations:\n    e4k.dev/remote-jwt-token-file: /var/run/token\n",
            )
            .pipe(|c| topic_map(&c, "map", UP))
        => [error(
            &conn("spec.remoteBrokerConnection"),
            "annotation e4k.dev/remote-jwt-token-file replaces the Microsoft Entra token of \
             remoteBrokerConnection.authentication.systemAssignedManagedIdentity with the \
             file's (CUSTOM-JWT); set that authentication method"
        )];

    x509_without_secret_is_an_error:
        connector_replacing(
            "        clientK8sSecret: bridge-client-cert\n",
            "        {}\n",
        )
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.x509"),
            "x509 needs the client certificate secret; set `clientK8sSecret`"
        )];

    secret_name_with_a_path_is_an_error:
        connector_replacing("bridge-client-cert", "../etc")
        => [error(
            &conn("spec.remoteBrokerConnection.authentication.x509.clientK8sSecret"),
            "`../etc` is not a valid Kubernetes name; use lowercase letters, digits, `-` and `.`"
        )];

    basic_without_secret_is_an_error:
        connector_replacing(
            "  bridgeInstances: 1\n",
            "  localBrokerConnection:\n    authentication:\n      basic: {usernameKey: user}\n",
        )
        => [error(
            &conn("spec.localBrokerConnection.authentication.basic.k8sSecretName"),
            "basic needs `k8sSecretName` (or anonymous: true)"
        )];
}
