//! Errors: bad requests not retried, throttling beyond the budget, failed operations, refused
//! connections, wrong or empty tokens.

use super::*;

#[tokio::test]
async fn bad_requests_are_not_retried() {
    let emulator = emulator(|c| c.lro_delay = Duration::ZERO).await;
    let arm = client(&emulator);
    arm.put(NS, PREVIEW, &namespace_body()).await.unwrap();
    let before = arm.stats();

    let thumbprints_without_scheme = json!({ "properties": { "clientCertificateAuthentication": {
        "validationScheme": "SubjectMatchesAuthenticationName",
        "allowedThumbprints": ["3A5B9C0D1E2F3A5B9C0D1E2F3A5B9C0D1E2F3A5B"]
    } } });
    let error = arm
        .put(&child("clients", "c1"), STABLE, &thumbprints_without_scheme)
        .await
        .unwrap_err();
    let text = error.to_string();
    let (status, code, _) = arm_error(error);
    assert_eq!((status, code.as_deref()), (400, Some("BadRequest")));
    assert!(
        text.starts_with(&format!("PUT {NS}/clients/c1: HTTP 400 BadRequest: ")),
        "{text}"
    );

    let bad_name = arm
        .put(
            &child("clientGroups", "x"),
            STABLE,
            &json!({ "properties": { "query": "attributes.a = \"b\"" } }),
        )
        .await
        .unwrap_err();
    let (status, code, _) = arm_error(bad_name);
    assert_eq!((status, code.as_deref()), (400, Some("BadRequest")));

    let after = arm.stats();
    assert_eq!(after.retries, before.retries);
    assert_eq!(after.requests, before.requests + 2);
    assert_eq!(after.writes, before.writes + 2);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn throttling_beyond_the_budget_fails_with_429() {
    let emulator = emulator(|c| {
        c.faults = FaultConfig {
            rate_429: 1.0,
            ..FaultConfig::default()
        };
    })
    .await;
    let mut config = config(&emulator.base_url());
    config.max_attempts = 1;
    let arm = client_with(config, "t", CancellationToken::new());
    let (status, code, _) = arm_error(arm.get(NS, PREVIEW).await.unwrap_err());
    assert_eq!((status, code.as_deref()), (429, Some("TooManyRequests")));
    assert_eq!(
        arm.stats(),
        ArmStats {
            requests: 1,
            throttled: 1,
            ..ArmStats::default()
        }
    );

    // With a budget, every attempt is used and the last answer is reported.
    let mut config = self::config(&emulator.base_url());
    config.max_attempts = 3;
    let arm = client_with(config, "t", CancellationToken::new());
    let (status, _, _) = arm_error(
        arm.list(&format!("{NS}/clients"), STABLE)
            .await
            .unwrap_err(),
    );
    assert_eq!(status, 429);
    let stats = arm.stats();
    assert_eq!((stats.requests, stats.retries, stats.throttled), (3, 2, 3));
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn failed_operations_are_reported() {
    let emulator = emulator(|c| {
        c.faults = FaultConfig {
            rate_lro_failure: 1.0,
            ..FaultConfig::default()
        };
    })
    .await;
    let arm = client(&emulator);
    match arm.put(NS, PREVIEW, &namespace_body()).await.unwrap_err() {
        Error::Operation {
            resource,
            status,
            code,
            ..
        } => {
            assert_eq!((resource.as_str(), status.as_str()), (NS, "Failed"));
            assert_eq!(code.as_deref(), Some("InternalServerError"));
        }
        other => panic!("{other:?}"),
    }
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = config(&format!("http://127.0.0.1:{port}"));
    config.max_attempts = 3;
    let arm = client_with(config, "t", CancellationToken::new());
    match arm.get(NS, PREVIEW).await.unwrap_err() {
        Error::Transport {
            method,
            resource,
            reason,
        } => {
            assert_eq!((method.as_str(), resource.as_str()), ("GET", NS));
            assert!(reason.ends_with("(attempt 3 of 3)"), "{reason}");
            assert!(reason.contains("Connection refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let stats = arm.stats();
    assert_eq!((stats.requests, stats.retries), (3, 2));
}

#[tokio::test]
async fn wrong_or_empty_tokens_are_refused() {
    let emulator = emulator(|c| c.token = Some("the-right-token".into())).await;
    let base = emulator.base_url();

    let arm = client_with(config(&base), "the-right-token", CancellationToken::new());
    assert_eq!(arm.get(NS, PREVIEW).await.unwrap(), None);

    let arm = client_with(config(&base), "a-wrong-token", CancellationToken::new());
    let error = arm.get(NS, PREVIEW).await.unwrap_err();
    assert!(!error.to_string().contains("a-wrong-token"));
    let (status, code, _) = arm_error(error);
    assert_eq!(
        (status, code.as_deref()),
        (401, Some("InvalidAuthenticationToken"))
    );
    assert_eq!((arm.stats().requests, arm.stats().retries), (1, 0));
    assert!(!format!("{arm:?}").contains("a-wrong-token"));

    // An empty token is refused before anything is sent.
    let arm = client_with(config(&base), "", CancellationToken::new());
    assert!(matches!(
        arm.get(NS, PREVIEW).await,
        Err(Error::Credential { .. })
    ));
    assert_eq!(arm.stats().requests, 0);
    emulator.shutdown().await.unwrap();
}
