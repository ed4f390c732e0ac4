//! Seeded fault injection: the same seed gives the same failures.

use e4k_emulator::{EmulatorConfig, FaultConfig};

use crate::seed::NS;
use crate::util::{Arm, STABLE, fast, ns_path, start};

fn faulty(seed: u64) -> EmulatorConfig {
    let faults = FaultConfig {
        rate_429: 0.3,
        rate_5xx: 0.2,
        seed,
        retry_after_secs: 3,
        ..FaultConfig::default()
    };
    EmulatorConfig { faults, ..fast() }
}

/// The statuses of 40 identical GETs.
async fn statuses(config: EmulatorConfig) -> (Vec<u16>, e4k_emulator::Stats) {
    let emulator = start(config).await;
    let arm = Arm::new(&emulator, STABLE);
    let mut statuses = Vec::new();
    for _ in 0..40 {
        let reply = arm.get(&ns_path(NS)).await;
        match reply.status {
            429 => {
                assert_eq!(reply.code(), "TooManyRequests");
                assert_eq!(reply.header("retry-after"), Some("3"));
            }
            503 => {
                assert_eq!(reply.code(), "ServiceUnavailable");
                assert_eq!(reply.header("retry-after"), Some("3"));
            }
            500 => assert_eq!(reply.code(), "InternalServerError"),
            404 => assert_eq!(reply.code(), "ResourceNotFound"),
            other => panic!("unexpected {other}"),
        }
        statuses.push(reply.status);
    }
    let stats = emulator.stats();
    emulator.shutdown().await.unwrap();
    (statuses, stats)
}

#[tokio::test]
async fn faults_are_reproducible_with_a_seed() {
    let (first, stats) = statuses(faulty(42)).await;
    let (second, _) = statuses(faulty(42)).await;
    assert_eq!(first, second);
    let count = |code: u16| first.iter().filter(|s| **s == code).count() as u64;
    assert!(count(429) > 0 && count(404) > 0, "{first:?}");
    assert!(count(500) + count(503) > 0, "{first:?}");
    assert_eq!(stats.throttled, count(429));
    assert_eq!(stats.server_errors, count(500) + count(503));
    let (other, _) = statuses(faulty(7)).await;
    assert_ne!(first, other, "another seed gives another sequence");
}

#[tokio::test]
async fn latency_is_added_to_every_request() {
    let config = EmulatorConfig {
        latency: std::time::Duration::from_millis(50),
        ..fast()
    };
    let emulator = start(config).await;
    let arm = Arm::new(&emulator, STABLE);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        arm.get(&ns_path(NS)).await;
    }
    assert!(started.elapsed() >= std::time::Duration::from_millis(150));
}
