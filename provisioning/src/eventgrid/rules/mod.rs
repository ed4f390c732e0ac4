//! Event Grid's syntax rules, shared by the spec validation here and by the emulator.
//!
//! - [`check_query`]: the client group query language (`attributes.x = "y"`, `IN [...]`,
//!   `and`/`or`, parentheses); [`Query`] and [`evaluate`] tell whether a client belongs to a
//!   group (the emulator's data plane uses them).
//! - [`check_template`]: topic space templates (MQTT filters with `${client.authenticationName}`
//!   and `${client.attributes.<key>}` variables, at most 8 segments).

mod query;
mod template;

pub use query::{Query, check_query, evaluate};
pub use template::check_template;
