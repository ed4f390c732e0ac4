//! The mosquitto ACL file: what each broker username may publish and receive, generated from
//! the control-plane view and the live CUSTOM-JWT clients, and the Entra principals' rights
//! from role assignments.
//!
//! Broker usernames:
//! - `<namespace>/<client resource name>`: a registered (certificate) client, its rights from
//!   the permission bindings of the groups it is in;
//! - `<namespace>/$entra/<principal id>`: a Microsoft Entra principal (`OAUTH2-JWT`), its
//!   rights from its role assignments (EventGrid TopicSpaces Publisher → `write`, Subscriber →
//!   `read`, on the templates of the topic spaces in scope);
//! - `<namespace>/$custom/<n>`: one live CUSTOM-JWT connection, its rights from the bindings of
//!   the groups its token's claims (as attributes) put it in.
//!
//! `$` cannot appear in a client resource name, so the three never collide.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Map;

use super::model::{ClientView, NamespaceView, Permission, View, broker_username, substitute};
use super::session::LiveJwtClient;
use crate::identity::DataRole;

/// The broker username of an Entra principal in `namespace`.
pub(crate) fn entra_username(namespace: &str, principal: &str) -> Option<String> {
    broker_username(namespace, &format!("$entra/{}", principal.to_lowercase()))
}

impl NamespaceView {
    /// Whether `principal` (an `oid`) holds a data role in this namespace.
    pub(crate) fn has_role(&self, principal: &str) -> bool {
        let principal = principal.to_lowercase();
        self.role_grants.iter().any(|g| g.principal == principal)
    }

    /// The topic filters the role assignments of `principal` grant: each template of each
    /// topic space in scope (every one for a namespace-scope assignment), with
    /// `${client.authenticationName}` standing for the principal id; a template with an
    /// attribute variable grants nothing (an Entra principal has no attributes).
    pub(crate) fn role_filters(&self, principal: &str) -> BTreeSet<(Permission, String)> {
        let principal = principal.to_lowercase();
        let client = ClientView::from_token(&principal, Map::new());
        let mut grants = BTreeSet::new();
        for grant in self.role_grants.iter().filter(|g| g.principal == principal) {
            let permission = match grant.role {
                DataRole::Publisher => Permission::Publisher,
                DataRole::Subscriber => Permission::Subscriber,
            };
            let spaces = self
                .topic_spaces
                .iter()
                .filter(|(name, _)| grant.topic_space.as_ref().is_none_or(|ts| ts == *name));
            for (_, templates) in spaces {
                for template in templates {
                    if let Some(filter) = substitute(template, &client) {
                        grants.insert((permission, filter));
                    }
                }
            }
        }
        grants
    }
}

fn section(text: &mut String, user: &str, grants: BTreeSet<(Permission, String)>) {
    let _ = writeln!(text, "\nuser {user}");
    for (permission, filter) in grants {
        let access = match permission {
            Permission::Publisher => "write",
            Permission::Subscriber => "read",
        };
        let _ = writeln!(text, "topic {access} {filter}");
    }
}

/// The mosquitto ACL file for the whole view and the live CUSTOM-JWT clients.
///
/// One `user` section per enabled client of an enabled namespace, per principal with a role
/// assignment there and per live CUSTOM-JWT client, with `topic write F` for each filter a
/// Publisher binding (or role) grants and `topic read F` for each a Subscriber one grants.
/// mosquitto matches `write` against the topic of each PUBLISH (so `+`/`#` in F act as
/// wildcards), checks a SUBSCRIBE filter against `read` entries, and checks `read` again for
/// every message it delivers.
pub(crate) fn acl_file(view: &View, live: &[(String, LiveJwtClient)]) -> String {
    let mut text = String::from(
        "# Written by e4k-emulator from the Event Grid control-plane state; rewritten on change.\n\
         # Anonymous clients (none reach the broker through the front end) get nothing.\n",
    );
    for namespace in view.namespaces.iter().filter(|ns| ns.enabled) {
        for client in namespace.clients.iter().filter(|c| c.enabled) {
            if let Some(user) = broker_username(&namespace.name, &client.name) {
                section(&mut text, &user, namespace.grants(client));
            }
        }
        let principals: BTreeSet<&str> = namespace
            .role_grants
            .iter()
            .map(|g| g.principal.as_str())
            .collect();
        for principal in principals {
            if let Some(user) = entra_username(&namespace.name, principal) {
                section(&mut text, &user, namespace.role_filters(principal));
            }
        }
    }
    for (user, live) in live {
        let namespace = view
            .namespaces
            .iter()
            .find(|ns| ns.enabled && ns.name == live.namespace);
        if let Some(namespace) = namespace {
            section(&mut text, user, namespace.grants(&live.client));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::seed_state;
    use super::*;
    use crate::ResourceKind;
    use crate::identity::roles;
    use serde_json::json;

    #[test]
    fn acl_follows_groups_all_and_template_variables() {
        let acl = acl_file(&View::from_state(&seed_state(), 0), &[]);
        let section = |user: &str| -> Vec<String> {
            let start = acl.find(&format!("user {user}\n")).unwrap();
            acl[start..]
                .lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            section("e4k-seed/mosquitto"),
            [
                "topic write clients/mosquitto/+",
                "topic write command/#",
                "topic write factory/telemetry/#",
                "topic write rooms/12/x",
                "topic read command/#",
                "topic read factory/telemetry/#",
            ]
        );
        // Not a commander: no command publishing, no telemetry subscription; the room
        // template is skipped because the attribute is missing.
        assert_eq!(
            section("e4k-seed/mqttbridge"),
            [
                "topic write clients/mqttbridge/+",
                "topic write factory/telemetry/#",
                "topic read command/#",
            ]
        );
        assert!(
            !acl.contains("user e4k-seed/off"),
            "disabled clients get nothing"
        );
    }

    #[test]
    fn resources_in_creation_or_a_disabled_namespace_do_not_count() {
        let mut state = seed_state();
        let entry = state.namespaces.values_mut().next().unwrap();
        entry
            .children
            .get_mut(&ResourceKind::PermissionBinding)
            .unwrap()
            .get_mut("cmd-pub-command")
            .unwrap()["properties"]["provisioningState"] = json!("Creating");
        let acl = acl_file(&View::from_state(&state, 0), &[]);
        assert!(!acl.contains(
            "user e4k-seed/mosquitto\ntopic write clients/mosquitto/+\ntopic write command/#"
        ));
        let entry = state.namespaces.values_mut().next().unwrap();
        entry.doc["properties"]["topicSpacesConfiguration"]["state"] = json!("Disabled");
        let acl = acl_file(&View::from_state(&state, 0), &[]);
        assert!(!acl.contains("user "), "{acl}");
    }
    #[test]
    fn role_assignments_and_live_jwt_clients_get_sections() {
        let mut state = seed_state();
        let ns_id =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.EventGrid/namespaces/e4k-seed";
        state
            .namespaces
            .values_mut()
            .for_each(|e| e.doc["id"] = json!(ns_id));
        roles::assign(&mut state, "r1", "P-1", DataRole::Publisher, ns_id).unwrap();
        let telemetry = format!("{ns_id}/topicSpaces/telemetry");
        roles::assign(&mut state, "r2", "p-2", DataRole::Subscriber, &telemetry).unwrap();
        let view = View::from_state(&state, 0);
        let live = [(
            "e4k-seed/$custom/1".to_owned(),
            LiveJwtClient {
                namespace: "e4k-seed".into(),
                client: ClientView::from_token(
                    "d1",
                    json!({ "commander": "true", "room": 7 })
                        .as_object()
                        .cloned()
                        .unwrap(),
                ),
            },
        )];
        let acl = acl_file(&view, &live);
        let section = |user: &str| -> Vec<&str> {
            let start = acl.find(&format!("user {user}\n")).unwrap();
            acl[start..]
                .lines()
                .skip(1)
                .take_while(|l| !l.is_empty())
                .collect()
        };
        // Namespace scope: every topic space; the authentication name is the principal id;
        // attribute templates grant nothing.
        assert_eq!(
            section("e4k-seed/$entra/p-1"),
            [
                "topic write clients/p-1/+",
                "topic write command/#",
                "topic write factory/telemetry/#",
            ]
        );
        assert_eq!(
            section("e4k-seed/$entra/p-2"),
            ["topic read factory/telemetry/#"]
        );
        // Claims are attributes: a commander, in room 7.
        assert_eq!(
            section("e4k-seed/$custom/1"),
            [
                "topic write clients/d1/+",
                "topic write command/#",
                "topic write factory/telemetry/#",
                "topic write rooms/7/x",
                "topic read command/#",
                "topic read factory/telemetry/#",
            ]
        );
        assert_eq!(entra_username("ns", "a b"), None);
    }
}
