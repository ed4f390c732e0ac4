//! Plans, applied changes and the resources of a namespace as people read them: the text
//! `e4k eventgrid plan` prints, the line per applied resource of `setup` and `destroy`, and the
//! list `show` prints ([`resources`]).

use std::io;

use serde::Serialize;
use serde_json::Value;

use super::apply::Applied;
use super::model::ResourceKind;
use super::plan::{Action, Current, Plan};

/// `<kind label> <name>`, e.g. `topic space factory`.
#[must_use]
pub fn label(kind: ResourceKind, name: &str) -> String {
    format!("{} {name}", kind.label())
}

/// A JSON value on one line, cut to 120 characters.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        format!("{}…", text.chars().take(117).collect::<String>())
    } else {
        text
    }
}

/// Writes the plan: a line per change with its fields (no-ops left out), the resources the
/// spec does not manage, and the summary.
///
/// # Errors
/// When `w` fails.
pub fn write_plan(w: &mut dyn io::Write, plan: &Plan) -> io::Result<()> {
    for change in &plan.changes {
        let (mark, verb) = match change.action {
            Action::Create => ("+", "create"),
            Action::Update => ("~", "update"),
            Action::Replace => ("-/+", "replace (delete, then create)"),
            Action::Delete => ("-", "delete"),
            Action::NoOp => continue,
        };
        writeln!(w, "{mark} {}: {verb}", label(change.kind, &change.name))?;
        for field in &change.fields {
            match (&field.from, &field.to) {
                (None, Some(to)) => writeln!(w, "    {}: {}", field.path, short(to))?,
                (Some(from), Some(to)) => {
                    writeln!(w, "    {}: {} -> {}", field.path, short(from), short(to))?;
                }
                (Some(from), None) => writeln!(w, "    {}: {} -> (none)", field.path, short(from))?,
                (None, None) => {}
            }
        }
    }
    for (kind, name) in &plan.unmanaged {
        writeln!(
            w,
            "? {}: not in the spec (kept; --prune deletes it)",
            label(*kind, name)
        )?;
    }
    let s = &plan.summary;
    writeln!(
        w,
        "Plan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
        s.create, s.update, s.replace, s.delete, s.no_op
    )
}

/// What was done to one resource: `created topic space factory`.
#[must_use]
pub fn applied_line(item: &Applied) -> String {
    let verb = match item.action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Replace => "replaced",
        Action::Delete => "deleted",
        Action::NoOp => "unchanged",
    };
    format!("{verb} {}", label(item.kind, &item.name))
}

/// One resource of a namespace, as `e4k eventgrid show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownResource {
    /// Its type.
    pub kind: ResourceKind,
    /// Its name.
    pub name: String,
    /// `properties.provisioningState`, when ARM reports one.
    pub provisioning_state: Option<String>,
}

/// The child resources of the namespace, then its role assignments, as ARM returned them.
#[must_use]
pub fn resources(current: &Current) -> Vec<ShownResource> {
    let state = |v: &Value| {
        v.pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut resources = Vec::new();
    // Role assignments are read when the spec has `roleAssignments` (they live under the
    // namespace's scope in Microsoft.Authorization, not under the namespace).
    let role_assignments = (&ResourceKind::RoleAssignment, &current.role_assignments);
    for (kind, list) in current
        .children
        .iter()
        .chain(std::iter::once(role_assignments))
    {
        for r in list {
            resources.push(ShownResource {
                kind: *kind,
                name: r
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                provisioning_state: state(r),
            });
        }
    }
    resources
}
