//! Cancellation of a polled operation or a retry wait, and operation timeouts.

use super::*;

#[tokio::test]
async fn cancellation_stops_a_polled_operation() {
    let emulator = emulator(|c| c.lro_delay = Duration::from_secs(60)).await;
    let cancel = CancellationToken::new();
    let mut config = config(&emulator.base_url());
    config.min_poll_interval = Duration::from_millis(50);
    let arm = client_with(config, "t", cancel.clone());
    let trigger = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        Instant::now()
    });
    let error = arm.put(NS, PREVIEW, &namespace_body()).await.unwrap_err();
    let cancelled_at = trigger.await.unwrap();
    assert!(matches!(error, Error::Cancelled), "{error:?}");
    assert!(cancelled_at.elapsed() < Duration::from_millis(200));
    assert!(arm.stats().polls >= 2, "{:?}", arm.stats());

    // A cancelled token ends the next call before it is sent.
    let requests = arm.stats().requests;
    assert!(matches!(arm.get(NS, PREVIEW).await, Err(Error::Cancelled)));
    assert_eq!(arm.stats().requests, requests);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn cancellation_interrupts_a_retry_wait() {
    let emulator = emulator(|c| {
        c.faults = FaultConfig {
            rate_429: 1.0,
            retry_after_secs: 30,
            ..FaultConfig::default()
        };
    })
    .await;
    let cancel = CancellationToken::new();
    let mut config = config(&emulator.base_url());
    config.max_retry_after = Duration::from_secs(60);
    let arm = client_with(config, "t", cancel.clone());
    let started = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
    });
    assert!(matches!(arm.get(NS, PREVIEW).await, Err(Error::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(arm.stats().throttled, 1);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn operations_time_out() {
    let emulator = emulator(|c| c.lro_delay = Duration::from_secs(60)).await;
    let mut config = config(&emulator.base_url());
    config.operation_timeout = Duration::from_millis(100);
    let arm = client_with(config, "t", CancellationToken::new());
    match arm.put(NS, PREVIEW, &namespace_body()).await.unwrap_err() {
        Error::OperationTimeout { resource, timeout } => {
            assert_eq!(resource, NS);
            assert_eq!(timeout, Duration::from_millis(100));
        }
        other => panic!("{other:?}"),
    }
    emulator.shutdown().await.unwrap();
}
