//! Malformed input: YAML and type errors with their place, hostile and oversized input, files
//! on disk.

use super::*;

fn yaml_error(yaml: &str) -> BridgeError {
    RawConfig::parse_str(yaml).unwrap_err()
}

#[test]
fn malformed_yaml_is_a_config_error_with_line_and_column() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: [a/#}\n");
    let BridgeError::Yaml {
        path, line, column, ..
    } = yaml_error(&yaml)
    else {
        panic!("expected a YAML error");
    };
    assert!(path.starts_with("documents[1].spec.routes[0]"), "{path}");
    assert_eq!(line, Some(23));
    assert!(column.is_some());
}

#[test]
fn wrong_type_is_a_config_error_with_its_path() {
    let yaml = with_routes("    - {direction: local-to-remote, name: a, source: a/#, qos: high}\n");
    let error = yaml_error(&yaml);
    let BridgeError::Yaml {
        path, line, column, ..
    } = &error
    else {
        panic!("expected a YAML error, got {error}");
    };
    assert_eq!(path, "documents[1].spec.routes[0].qos");
    assert_eq!((*line, *column), (Some(23), Some(63)));
    assert_eq!(
        error.to_string(),
        "invalid bridge config <input>:23:63: documents[1].spec.routes[0].qos: invalid i64"
    );
}

#[test]
fn hostile_yaml_fails_without_panicking() {
    // "Billion laughs": each level refers ten times to the one before.
    let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb += &format!("l{i}: &l{i} [{refs}]\n");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let documents = "---\na: 1\n".repeat(5_000);
    for input in [&bomb, &deep, &documents] {
        let error = yaml_error(input);
        assert!(matches!(error, BridgeError::Yaml { .. }), "{error}");
    }
    for input in [
        "\u{0}\u{1}\u{2}",
        "kind: [",
        "- - - - -",
        "{",
        "? [a]\n: b",
        "*x",
    ] {
        // Whatever parses must still validate without panicking.
        if let Ok(raw) = RawConfig::parse_str(input) {
            let _ = config::validate(&raw, &no_files());
        }
    }
}

#[test]
fn oversized_input_is_refused() {
    let yaml = format!("# {}\n", "x".repeat(5 * 1024 * 1024));
    assert!(matches!(
        yaml_error(&yaml),
        BridgeError::TooLarge { limit, .. } if limit == 4 * 1024 * 1024
    ));
}

#[test]
fn unreadable_file_is_a_config_error_with_its_path() {
    let missing = Path::new("/nonexistent/bridge.yaml");
    let error = RawConfig::load(missing).unwrap_err();
    assert!(matches!(&error, BridgeError::Read { path, .. } if path == missing));
    assert_eq!(
        error.to_string(),
        "cannot read bridge config /nonexistent/bridge.yaml"
    );
}

#[test]
fn seed_file_loads_from_disk() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates/bridge.yaml");
    let raw = RawConfig::load(&path).unwrap();
    assert_eq!(raw.documents.len(), 2);
    assert_eq!(raw.source_name, path.display().to_string());
}

#[test]
fn managed_identity_and_token_files_resolve_to_jwt_authentication() {
    let entra = topic_map(
        &CONNECTOR.replace(
            "      x509:\n        clientK8sSecret: bridge-client-cert\n",
            "      systemAssignedManagedIdentity: {audience: 'https://eventgrid.azure.net'}\n",
        ),
        "map",
        UP,
    );
    let raw = RawConfig::parse_str(&entra).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap();
    assert_eq!(
        resolved.bridges[0].remote.authentication,
        Authentication::EntraToken {
            audience: "https://eventgrid.azure.net".into()
        }
    );
    // The default audience is Event Grid's.
    let default = entra.replace("{audience: 'https://eventgrid.azure.net'}", "{}");
    let raw = RawConfig::parse_str(&default).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap();
    assert_eq!(
        resolved.bridges[0].remote.authentication,
        Authentication::EntraToken {
            audience: config::EVENT_GRID_AUDIENCE.into()
        }
    );
    let file = entra.replace(
        "  name: bridge\n",
        "  name: bridge\n  annotations:\n    e4k.dev/remote-jwt-token-file: /var/run/secrets/tokens/eventgrid\n",
    );
    let raw = RawConfig::parse_str(&file).unwrap();
    let resolved = config::resolve(&raw, &no_files()).unwrap();
    assert_eq!(
        resolved.bridges[0].remote.authentication,
        Authentication::JwtFile {
            token_file: "/var/run/secrets/tokens/eventgrid".into()
        }
    );
}
