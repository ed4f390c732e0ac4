//! Problems of the routes of an `MqttBridgeTopicMap`: one test per problem with its exact message
//! and path.

use super::*;

problem_tests! {
    missing_direction_is_an_error:
        with_routes("    - {name: up, source: up/#}\n")
        => [error(
            &route(0, "direction"),
            "`direction` is missing; use local-to-remote or remote-to-local"
        )];

    invalid_direction_is_an_error:
        with_routes("    - {direction: both, name: up, source: up/#}\n")
        => [error(
            &route(0, "direction"),
            "direction `both` is not valid; use local-to-remote or remote-to-local"
        )];

    missing_route_name_is_an_error:
        with_routes("    - {direction: local-to-remote, source: up/#}\n")
        => [error(
            &route(0, "name"),
            "`name` is missing; name the route (it is part of client IDs)"
        )];

    duplicate_route_names_are_an_error_across_topic_maps:
        topic_map(
            &with_routes(UP),
            "second",
            "    - {direction: remote-to-local, name: up, source: down/#}\n",
        )
        => [error(
            "documents[2](MqttBridgeTopicMap/second).spec.routes[0].name",
            &format!(
                "route name `up` is already used by {}; route names must be unique per connector",
                route(0, "name")
            )
        )];

    missing_source_is_an_error:
        with_routes("    - {direction: local-to-remote, name: up}\n")
        => [error(
            &route(0, "source"),
            "`source` is missing; set the topic filter to subscribe to"
        )];

    invalid_source_filters_are_errors:
        with_routes(
            "    - {direction: local-to-remote, name: a, source: 'a/#/b'}
    - {direction: local-to-remote, name: b, source: 'a+/b'}
    - {direction: local-to-remote, name: c, source: ''}
    - {direction: local-to-remote, name: d, source: \"a\\0b\"}
",
        )
        => [
            error(
                &route(0, "source"),
                "source `a/#/b` is not a valid topic filter: `#` must be the last level and \
                 stand alone in it"
            ),
            error(
                &route(1, "source"),
                "source `a+/b` is not a valid topic filter: `+` must stand alone in its level"
            ),
            error(
                &route(2, "source"),
                "source `` is not a valid topic filter: it is empty"
            ),
            error(
                &route(3, "source"),
                "source `a\\u{0}b` is not a valid topic filter: it contains a NUL character"
            ),
        ];
}

problem_tests! {
    shared_subscription_in_source_is_an_error:
        with_routes("    - {direction: local-to-remote, name: a, source: $share/g/a/#}\n")
        => [error(
            &route(0, "source"),
            "source `$share/g/a/#` is a shared subscription; put the plain topic filter in \
             source and use sharedSubscription instead"
        )];

    wildcard_target_is_an_error:
        with_routes(
            "    - {direction: local-to-remote, name: a, source: a/#, target: 'factory/+/alert'}\n",
        )
        => [error(
            &route(0, "target"),
            "target `factory/+/alert` contains a wildcard; a target is a single topic: remove \
             `+` and `#`, or omit target to keep each message's own topic"
        )];
}

#[test]
fn empty_target_is_an_error() {
    let yaml =
        with_routes("    - {direction: local-to-remote, name: a, source: a/#, target: ''}\n");
    assert_eq!(
        problems(&yaml),
        [error(
            &route(0, "target"),
            "target `` is not a valid topic: it is empty"
        )]
    );
}

problem_tests! {
    qos_out_of_range_is_an_error:
        with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 3}\n")
        => [error(&route(0, "qos"), "qos 3 is not valid; use 0, 1 or 2")];

    qos_2_toward_event_grid_is_an_error:
        with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 2}\n")
        => [error(
            &route(0, "qos"),
            "qos 2 is not supported by Event Grid; use qos 1"
        )];

    qos_2_from_event_grid_is_a_warning:
        with_routes("    - {direction: remote-to-local, name: a, source: a/#, qos: 2}\n")
        => [warning(
            &route(0, "qos"),
            "Event Grid delivers at most QoS 1, so qos 2 adds nothing on this route; use qos 1"
        )];
}

#[test]
fn qos_0_is_accepted() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 0}\n");
    assert_eq!(resolve_one(&yaml).routes[0].qos, QoS::AtMostOnce);
}

problem_tests! {
    invalid_share_group_name_is_an_error:
        with_shared_subscription("{groupName: 'a/b', groupMinimumShareNumber: 1}")
        => [error(
            &route(0, "sharedSubscription.groupName"),
            "groupName `a/b` is not valid; it must be non-empty and contain no `/`, `+` or `#`"
        )];

    missing_share_group_name_is_an_error:
        with_shared_subscription("{groupMinimumShareNumber: 1}")
        => [error(
            &route(0, "sharedSubscription.groupName"),
            "`groupName` is missing; name the shared subscription group"
        )];

    missing_share_number_is_an_error:
        with_shared_subscription("{groupName: g}")
        => [error(
            &route(0, "sharedSubscription.groupMinimumShareNumber"),
            "`groupMinimumShareNumber` is missing; set how many sessions share the subscription \
             (at least 1)"
        )];

    zero_share_number_is_an_error:
        with_shared_subscription("{groupName: g, groupMinimumShareNumber: 0}")
        => [error(
            &route(0, "sharedSubscription.groupMinimumShareNumber"),
            "groupMinimumShareNumber is 0; it must be between 1 and 100"
        )];

    too_many_sessions_for_event_grid_is_an_error:
        connector_replacing("bridgeInstances: 1", "bridgeInstances: 100").replace(
            "source: up/#}",
            "source: up/#}\n    - {direction: remote-to-local, name: down, source: down/#, \
             sharedSubscription: {groupName: g, groupMinimumShareNumber: 100}}",
        )
        => [error(
            &conn("spec.bridgeInstances"),
            "the bridge would open 200 sessions to the remote broker (100 instances + 100 \
             shared-subscription members), over Event Grid's limit of 100 per authentication \
             name; lower bridgeInstances or groupMinimumShareNumber"
        )];
}

problem_tests! {
    over_long_source_filter_is_an_error:
        with_routes(&format!(
            "    - {{direction: local-to-remote, name: a, source: {}, target: t}}\n",
            "a".repeat(65_536)
        ))
        => [error(
            &route(0, "source"),
            &format!(
                "source `{}` is not a valid topic filter: it is 65536 bytes long; MQTT allows at \
                 most 65535",
                "a".repeat(65_536)
            )
        )];

    too_many_levels_for_event_grid_is_an_error:
        with_routes("    - {direction: remote-to-local, name: a, source: a/b/c/d/e/f/g/h/#}\n")
        => [error(
            &route(0, "source"),
            "`a/b/c/d/e/f/g/h/#` has 9 topic levels; Event Grid allows at most 8"
        )];

    too_long_topic_for_event_grid_is_an_error:
        with_routes(&format!(
            "    - {{direction: local-to-remote, name: a, source: a/#, target: {}}}\n",
            "t".repeat(257)
        ))
        => [error(
            &route(0, "target"),
            &format!("`{}` is 257 bytes long; Event Grid allows at most 256", "t".repeat(257))
        )];
}
