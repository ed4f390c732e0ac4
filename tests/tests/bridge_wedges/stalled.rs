//! A session that takes messages and acknowledges none is reported stalled on `/readyz`.

use super::*;

/// A remote that takes the bridge's messages and acknowledges none (answering pings): the
/// session is reported stalled and not ready after a keep-alive, then ready again once a new
/// connection acknowledges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_acknowledges_nothing_is_reported_stalled() {
    let local = Mosquitto::start("allow_anonymous true\n").unwrap();
    let mut remote = ScriptedBroker::start(Script {
        receive_maximum: 10,
        connections: vec![ConnScript {
            session_present: false,
            behaviour: Behaviour::Silent,
        }],
        then: ConnScript::behave(false),
    })
    .await
    .unwrap();
    let bridge = start(&config(local.port(), remote.port()));
    bridge.ready().await;
    let publisher = Publisher::connect(local.port(), "stall-publisher", 1_000, WAIT).await;
    publisher.publish(TOPIC, 0..5).await;
    publisher.wait_acked(5, WAIT).await;
    let stalled = bridge
        .wait_for_within(WAIT, |r| {
            r.connections
                .iter()
                .any(|c| c.broker == "remote" && c.stalled_secs.is_some())
        })
        .await
        .unwrap_or_else(|r| panic!("never reported stalled:\n{r:#?}"));
    assert!(!stalled.ready, "{stalled:#?}");
    let remote_status = stalled
        .connections
        .iter()
        .find(|c| c.broker == "remote")
        .unwrap();
    assert!(remote_status.connected, "{remote_status:#?}");
    assert!(
        remote_status.stalled_secs.unwrap() >= KEEP_ALIVE.as_secs(),
        "{remote_status:#?}"
    );
    // A new connection that acknowledges: everything arrives, ready again.
    assert!(remote.disconnect(0));
    bridge.ready().await;
    let mut arrivals = Arrivals::default();
    let deadline = Instant::now() + WAIT;
    while !arrivals.missing(5).is_empty() {
        assert!(Instant::now() < deadline, "{arrivals:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        arrivals.drain(&mut remote);
    }
    bridge.stop().await;
}
