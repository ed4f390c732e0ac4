//! The seed's ARM sequence against the emulator, also through throttling and server errors.

use super::*;

#[tokio::test]
async fn seed_sequence_against_the_emulator() {
    let emulator = emulator(|_| {}).await;
    let arm = client(&emulator);
    let writes = seed_sequence(&arm).await;

    let stats = arm.stats();
    let seen = emulator.stats();
    assert_eq!(stats.writes, writes);
    assert_eq!(stats.writes, seen.writes());
    assert_eq!(stats.requests, seen.total());
    assert_eq!(stats.polls, seen.polls);
    assert!(stats.polls >= 8, "{stats:?}");
    assert_eq!((stats.retries, stats.throttled), (0, 0));
    // Lists ask for $top=100 (ARM's largest page), so each of the two lists is one page here;
    // nextLink paging is exercised by `next_links_are_followed_on_the_configured_endpoint`.
    assert_eq!(seen.lists(), 2);
    emulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn seed_sequence_survives_throttling_and_server_errors() {
    let emulator = emulator(|c| {
        // Operations complete at the next request, so the request sequence (and with the seed,
        // which requests fail) is the same in every run: no flaky exhaustion of the 8 attempts.
        c.lro_delay = Duration::ZERO;
        c.faults = FaultConfig {
            rate_429: 0.3,
            rate_5xx: 0.1,
            seed: 4242,
            retry_after_secs: 1, // capped to 20 ms by max_retry_after
            ..FaultConfig::default()
        };
    })
    .await;
    let arm = client(&emulator);
    let started = Instant::now();
    seed_sequence(&arm).await;
    assert!(started.elapsed() < Duration::from_secs(20));

    let stats = arm.stats();
    let seen = emulator.stats();
    assert!(
        stats.throttled > 0 && seen.server_errors > 0,
        "{stats:?} {seen:?}"
    );
    assert_eq!(stats.throttled, seen.throttled);
    assert_eq!(stats.retries, seen.throttled + seen.server_errors);
    assert_eq!(stats.requests, seen.total());
    let calls = stats.requests - stats.retries;
    let max_attempts = u64::from(arm.config().max_attempts);
    assert!(stats.retries <= calls * (max_attempts - 1), "{stats:?}");
    emulator.shutdown().await.unwrap();
}
