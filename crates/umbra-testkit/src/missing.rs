//! A test whose outside part (an engine, a tool, a package) is missing: a loud skip, or under
//! `CI=true` a failure, since CI must run every test.

/// Panics under `CI=true` naming `what` is missing; otherwise prints a loud SKIPPED line on
/// stderr, and the caller skips.
pub fn skip_unless_ci(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {what}: CI must run this test"
    );
    eprintln!("\n!!!!!!!! SKIPPED: {what}; NOT tested !!!!!!!!\n");
}
