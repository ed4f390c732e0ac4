//! Routes that overlap, and routes that loop between the two brokers.

use super::*;

problem_tests! {
    overlapping_routes_to_their_own_topics_are_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: all, source: factory/#}
    - {direction: local-to-remote, name: telemetry, source: factory/telemetry/#}
",
        )
        => [error(
            &route(1, "source"),
            "routes `all` and `telemetry` both send messages matching `factory/#` and \
             `factory/telemetry/#` to their own topic, so such messages arrive twice; narrow one \
             source or give the routes different targets"
        )];

    overlapping_routes_to_one_target_are_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: a, source: 'a/+/c', target: out}
    - {direction: local-to-remote, name: b, source: 'a/b/+', target: out}
",
        )
        => [error(
            &route(1, "source"),
            "routes `a` and `b` both send messages matching `a/+/c` and `a/b/+` to `out`, so \
             such messages arrive twice; narrow one source or give the routes different targets"
        )];

    overlap_whose_target_matches_both_sources_is_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: all, source: factory/#}
    - {direction: local-to-remote, name: alerts, source: 'factory/+', target: factory/alert}
",
        )
        => [error(
            &route(1, "source"),
            "routes `all` and `alerts` both send messages matching `factory/#` and `factory/+` \
             to `factory/alert`, so such messages arrive twice; narrow one source or give the \
             routes different targets"
        )];
}

#[test]
fn routes_of_different_directions_do_not_overlap() {
    let yaml = with_routes(
        "    - {direction: local-to-remote, name: up, source: up/#}
    - {direction: remote-to-local, name: down, source: down/#}
",
    );
    assert_eq!(problems(&yaml), []);
}

/// Routes bridging `command/#` both ways.
const COMMAND_BOTH_WAYS: &str = "    - {direction: remote-to-local, name: down, source: command/#}
    - {direction: local-to-remote, name: up, source: command/#}
";

/// The problem [`COMMAND_BOTH_WAYS`] is.
const UP_DOWN_LOOP: &str = "routes `up` (local-to-remote) and `down` (remote-to-local) can \
                            loop: messages the first sends to the remote broker match the \
                            second, which sends them back; use distinct topics on each side";

#[test]
fn bridging_one_topic_both_ways_is_a_loop_warning() {
    let yaml = with_routes(COMMAND_BOTH_WAYS);
    assert_eq!(
        problems(&yaml),
        [warning(&route(1, "source"), UP_DOWN_LOOP)]
    );
}

#[test]
fn a_loop_is_an_error_with_protocol_v3() {
    let connector = CONNECTOR.replace("  bridgeInstances: 1\n", "  protocol: v3\n")
        + "  localBrokerConnection:\n    authentication:\n      basic:\n        anonymous: true\n";
    let yaml = topic_map(&connector, "map", COMMAND_BOTH_WAYS);
    assert_eq!(
        problems(&yaml),
        [error(
            &route(1, "source"),
            &format!(
                "{UP_DOWN_LOOP} (with protocol v3 nothing stops such a loop: MQTT 3.1.1 has \
                 neither No Local nor the user property that carries the hop count)"
            )
        )]
    );
}

#[test]
fn static_targets_that_lead_back_are_a_loop_warning() {
    let yaml = with_routes(
        "    - {direction: local-to-remote, name: up, source: local/#, target: cloud/in}
    - {direction: remote-to-local, name: down, source: cloud/#, target: local/in}
",
    );
    assert_eq!(problems(&yaml).len(), 1);
    let yaml = yaml.replace("target: local/in", "target: other/in");
    assert_eq!(problems(&yaml), []);
}
