//! Options beyond Event Grid's limits (session expiry, keep-alive).

use super::*;

#[test]
fn session_expiry_over_8_hours_is_an_error() {
    let mut options = no_files();
    options.session_expiry = std::time::Duration::from_secs(9 * 3_600);
    assert_eq!(
        summarize(&report(&with_connector(CONNECTOR), &options)),
        [error(
            "options.session_expiry",
            "session expiry of 32400 s exceeds Event Grid's maximum of 28800 s; lower it"
        )]
    );
}

#[test]
fn keep_alive_over_event_grid_limit_is_an_error() {
    let mut options = no_files();
    options.keep_alive = std::time::Duration::from_secs(1_200);
    assert_eq!(
        summarize(&report(&with_connector(CONNECTOR), &options)),
        [error(
            "options.keep_alive",
            "keep-alive of 1200 s exceeds Event Grid's maximum of 1160 s; lower it"
        )]
    );
}
