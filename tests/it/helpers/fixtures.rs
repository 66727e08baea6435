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

/// A recorded (or hand-made) HTTP answer in `curl -i` layout, as the fake solver sends it: its
/// own status line, headers and body.
pub fn recorded_http(relative: &str) -> crate::helpers::fake_solver::Action {
    let path = fixture_path(&format!("flaresolverr/{relative}"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {relative}: {e}"));
    // The fake closes each connection after one answer, so it says so, as a server must.
    let line_end = bytes.windows(2).position(|w| w == b"\r\n").expect("a status line") + 2;
    let mut answer = bytes[..line_end].to_vec();
    answer.extend_from_slice(b"connection: close\r\n");
    answer.extend_from_slice(&bytes[line_end..]);
    crate::helpers::fake_solver::Action::Raw(answer)
}
