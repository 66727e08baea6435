//! Fixtures shared by the test modules.

use std::path::PathBuf;

pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

pub fn fixture(relative: &str) -> String {
    std::fs::read_to_string(fixture_path(relative)).unwrap_or_else(|e| panic!("fixture {relative}: {e}"))
}

/// A recorded FlareSolverr reply, parsed.
pub fn recorded(relative: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(&format!("flaresolverr/{relative}"))).unwrap()
}

/// `solution.response` of a recorded reply, as a string.
pub fn recorded_response(relative: &str) -> String {
    recorded(relative)["solution"]["response"]
        .as_str()
        .expect("a string response")
        .to_string()
}
