//! The guard against two independent strict parsers, expat and libxml2 (`xmllint`), on the
//! committed corpus of small documents (`tests/fixtures/wellformed/generate.py`): one verdict
//! each, and every published document parsed again by both.
//!
//! expat is Python's; libxml2 is `xmllint` where the machine has it, else lxml's, from the venv
//! the tests provision ([`crate::helpers::tools`]).

use std::collections::HashMap;
use std::process::Command;

use flarefeed::feed::{self, FeedError, GuardOptions};
use serde::Deserialize;

use crate::helpers::fixtures::fixture;
use crate::helpers::fixtures::fixture_path;

#[derive(Deserialize)]
struct Case {
    name: String,
    doc: String,
    wf: bool,
    /// Why flarefeed refuses this well-formed document on purpose (README).
    deliberate: Option<String>,
    /// Oracles known to accept this malformed document.
    #[serde(default)]
    lax: Vec<String>,
}

/// `{path: [expat_ok, libxml2_ok]}` for every path.
fn oracles(paths: &[String]) -> HashMap<String, (bool, bool)> {
    let output = Command::new(crate::helpers::tools::python())
        .arg(fixture_path("wellformed/oracles.py"))
        .args(paths)
        .output()
        .expect("python3 runs (the oracles need it)");
    assert!(
        output.status.success(),
        "the oracles failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdicts: HashMap<String, (bool, bool)> = serde_json::from_slice(&output.stdout).unwrap();
    verdicts
}

fn verdict(doc: &str) -> Result<(), FeedError> {
    let options = GuardOptions {
        min_items: 0,
        ..GuardOptions::default()
    };
    feed::check(doc, options).map(|_| ())
}

#[test]
fn the_guard_agrees_with_expat_and_libxml2() {
    let cases: Vec<Case> = serde_json::from_str(&fixture("wellformed/cases.json")).unwrap();
    let malformed = cases.iter().filter(|c| !c.wf).count();
    assert!(
        malformed >= 80 && cases.len() - malformed >= 40,
        "the corpus is too small"
    );

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name).to_string_lossy().into_owned();
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut ours = HashMap::new();
    for case in &cases {
        let result = verdict(&case.doc);
        if result.is_ok() {
            let formatted =
                feed::format(&case.doc).unwrap_or_else(|e| panic!("{}: check passed, format failed: {e}", case.name));
            outputs.push((
                case.name.as_str(),
                write(&format!("{}.out.xml", case.name), formatted.as_str()),
            ));
        }
        inputs.push(write(&format!("{}.xml", case.name), &case.doc));
        ours.insert(case.name.as_str(), result);
    }
    let mut all = inputs.clone();
    all.extend(outputs.iter().map(|(_, path)| path.clone()));
    let verdicts = oracles(&all);

    let mut problems = Vec::new();
    for (case, path) in cases.iter().zip(&inputs) {
        let (expat, libxml2) = verdicts[path];
        let ours = &ours[case.name.as_str()];
        let accepted = ours.is_ok();
        match &case.deliberate {
            Some(reason) => {
                let said = ours.as_ref().err().map(ToString::to_string).unwrap_or_default();
                if accepted || !said.contains(reason.as_str()) {
                    problems.push(format!(
                        "{}: meant to be refused for {reason:?}, got {ours:?}",
                        case.name
                    ));
                }
                if !(expat && libxml2) {
                    problems.push(format!(
                        "{}: listed as refused on purpose, but an oracle refuses it too",
                        case.name
                    ));
                }
            }
            None => {
                if accepted != case.wf {
                    problems.push(format!(
                        "{}: the specification says wf={}, flarefeed {ours:?}",
                        case.name, case.wf
                    ));
                }
                for (oracle, ok) in [("expat", expat), ("libxml2", libxml2)] {
                    if ok != accepted && !case.lax.iter().any(|l| l == oracle) {
                        problems.push(format!("{}: {oracle} says {ok}, flarefeed {ours:?}", case.name));
                    }
                }
            }
        }
    }
    for (name, path) in &outputs {
        let (expat, libxml2) = verdicts[path];
        if !(expat && libxml2) {
            problems.push(format!(
                "{name}: the published document fails expat={expat} libxml2={libxml2}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreements:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
