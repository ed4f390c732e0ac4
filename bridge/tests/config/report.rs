//! The report's output: as text and JSON, and in the error of a failed resolve.

use super::*;

#[test]
fn report_renders_as_text_and_json() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: 3}\n");
    let report = report(&yaml, &no_files());
    assert_eq!(
        report.to_string(),
        format!(
            "error: {}: qos 3 is not valid; use 0, 1 or 2\n",
            route(0, "qos")
        )
    );
    assert_eq!(
        report.problems[0].to_string(),
        format!("{}: qos 3 is not valid; use 0, 1 or 2", route(0, "qos"))
    );
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"problems": [{
            "severity": "error",
            "path": route(0, "qos"),
            "document": 1,
            "resource": "MqttBridgeTopicMap/map",
            "field": "spec.routes[0].qos",
            "location": {"line": 23, "column": 58},
            "message": "qos 3 is not valid; use 0, 1 or 2",
        }]})
    );
    assert!(report.has_errors());
    assert_eq!(report.warnings().count(), 0);
}

#[test]
fn resolve_fails_with_the_full_report() {
    let yaml = with_routes(
        "    - {direction: local-to-remote, name: a, source: a/#, qos: 3}
    - {direction: local-to-remote, name: b, source: b/#, target: 'x/#'}
",
    );
    let report = config::resolve(&RawConfig::parse_str(&yaml).unwrap(), &no_files()).unwrap_err();
    assert_eq!(report.errors().count(), 2);
}
