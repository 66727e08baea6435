//! The bad-input corpus (`tests/fixtures/bad/`): every reply is refused with its own reason,
//! nothing panics, and the published feed stays as it was.

use std::collections::BTreeMap;

use flarefeed::refresh::Outcome;
use serde::Deserialize;

use crate::helpers::fake_solver::{ok_reply, raw_reply};
use crate::helpers::fixtures::fixture_path;
use crate::helpers::{FEED_URL, TestApp};
use flarefeed::refresh::RefreshOptions;

#[derive(Debug, Deserialize)]
struct Expected {
    http_status: u16,
    stage: String,
    reason: String,
}

fn manifest() -> BTreeMap<String, Expected> {
    serde_json::from_str(&std::fs::read_to_string(fixture_path("bad/MANIFEST.json")).unwrap()).unwrap()
}

#[test]
fn the_corpus_is_complete_and_listed() {
    let manifest = manifest();
    assert!(manifest.len() >= 30, "only {} bad replies", manifest.len());
    let mut files: Vec<String> = std::fs::read_dir(fixture_path("bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !["MANIFEST.json", "generate.py", "cases.toml"].contains(&n.as_str()))
        .collect();
    files.sort();
    assert_eq!(files, manifest.keys().cloned().collect::<Vec<_>>());
}

#[tokio::test]
async fn every_bad_reply_is_refused_with_its_reason() {
    let h = TestApp::start().await;
    let good = h.publish_good().await;
    let mut failures = Vec::new();
    for (file, expected) in manifest() {
        let body = std::fs::read(fixture_path(&format!("bad/{file}"))).unwrap();
        h.fake.then(raw_reply(expected.http_status, &body));
        let report = h.refresh(RefreshOptions::cli(false)).await;
        match &report.outcome {
            Outcome::Failed { stage, error: reason }
                if stage.to_string() == expected.stage && reason.to_string().contains(&expected.reason) => {}
            other => failures.push(format!(
                "{file}: expected {} / {:?}, got {other:?}",
                expected.stage, expected.reason
            )),
        }
        assert_eq!(h.published().await, good, "{file} changed the published feed");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn an_oversized_reply_is_refused_before_it_is_parsed() {
    let h = TestApp::start().await;
    let good = h.publish_good().await;
    let huge = format!(
        "<rss version=\"2.0\"><channel>{}</channel></rss>",
        "<item><title>x</title></item>".repeat(1_200_000)
    );
    assert!(huge.len() > 32 * 1024 * 1024);
    h.fake.then(ok_reply(FEED_URL, &huge));
    match h.refresh(RefreshOptions::cli(false)).await.outcome {
        Outcome::Failed { stage, error: reason } => {
            assert_eq!(stage.to_string(), "solver");
            assert!(reason.to_string().contains("larger than 33554432 bytes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(h.published().await, good);
}

mod properties {
    use std::time::{Duration, Instant};

    use flarefeed::feed::{self, GuardOptions};
    use proptest::prelude::*;

    use crate::helpers::fixtures::{fixture, recorded_response};

    /// Everything a solver reply goes through; it may refuse, but must not panic or hang.
    fn digest(bytes: &[u8]) {
        let started = Instant::now();
        if let Ok(text) = feed::decode(bytes) {
            let _ = feed::format(&text);
            if let Ok(extracted) = feed::extract(&text) {
                let _ = feed::check(&extracted.text, GuardOptions::default());
                let _ = feed::format(&extracted.text).map(|f| f.fingerprint());
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?} on {} bytes",
            started.elapsed(),
            bytes.len()
        );
    }

    fn seeds() -> Vec<Vec<u8>> {
        vec![
            fixture("feeds/rich.xml").into_bytes(),
            fixture("feeds/atom-xhtml.xml").into_bytes(),
            fixture("feeds/billion-laughs.xml").into_bytes(),
            recorded_response("upstream-3.5.0/rss_nosession.json").into_bytes(),
            recorded_response("upstream-3.5.0/special_appxml_nosession.json").into_bytes(),
            fixture("pages/cloudflare-challenge.html").into_bytes(),
        ]
    }

    /// Deletes, inserts, duplicates or overwrites a stretch of a real reply.
    #[derive(Debug, Clone)]
    enum Mutation {
        Delete(usize, usize),
        Insert(usize, Vec<u8>),
        Duplicate(usize, usize),
        Overwrite(usize, Vec<u8>),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let bytes = prop_oneof![
            prop::collection::vec(any::<u8>(), 1..8),
            prop::sample::select(vec![
                b"<".to_vec(),
                b"&".to_vec(),
                b"]]>".to_vec(),
                b"<!ENTITY a \"b\">".to_vec(),
                b"</".to_vec(),
                b"<![CDATA[".to_vec(),
                b"&#0;".to_vec()
            ]),
        ];
        prop_oneof![
            (any::<usize>(), 1..64usize).prop_map(|(at, n)| Mutation::Delete(at, n)),
            (any::<usize>(), bytes.clone()).prop_map(|(at, b)| Mutation::Insert(at, b)),
            (any::<usize>(), 1..256usize).prop_map(|(at, n)| Mutation::Duplicate(at, n)),
            (any::<usize>(), bytes).prop_map(|(at, b)| Mutation::Overwrite(at, b)),
        ]
    }

    fn apply(mut doc: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
        for m in mutations {
            let len = doc.len().max(1);
            match m {
                Mutation::Delete(at, n) => {
                    let at = at % len;
                    let end = (at + n).min(doc.len());
                    doc.drain(at.min(end)..end);
                }
                Mutation::Insert(at, bytes) => {
                    let at = at % (doc.len() + 1);
                    doc.splice(at..at, bytes.iter().copied());
                }
                Mutation::Duplicate(at, n) => {
                    let at = at % len;
                    let end = (at + n).min(doc.len());
                    let copy = doc[at.min(end)..end].to_vec();
                    doc.splice(end..end, copy);
                }
                Mutation::Overwrite(at, bytes) => {
                    for (i, b) in bytes.iter().enumerate() {
                        if let Some(slot) = doc.get_mut((at + i) % len) {
                            *slot = *b;
                        }
                    }
                }
            }
        }
        doc
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            digest(&bytes);
        }

        #[test]
        fn mutated_real_replies_never_panic(seed in 0..6usize, mutations in prop::collection::vec(mutation(), 1..6)) {
            let doc = apply(seeds()[seed].clone(), &mutations);
            digest(&doc);
        }
    }
}

/// Issue 27, finding 3: a hostile solver's 30 MB reply whose bulk is in a field that only
/// informs (`detail`, `error`, `status`, a non-text `solution.response`) is read without being
/// parsed into a tree: the whole refresh, measured from outside by the peak RSS its parent
/// sees, stays under 2.2 × the reply + 16 MB. A `serde_json::Value` of `[0,0,…]` took 48 times
/// its text (1.4 GB for 30 MB, which killed a 256 MB Lambda).
#[tokio::test]
async fn a_hostile_solver_reply_is_not_parsed_into_a_tree() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    const MB: usize = 1024 * 1024;
    let zeros = |bytes: usize| format!("[{}0]", "0,".repeat(bytes / 2));
    let size = 30 * MB;
    let shapes = [
        ("detail", format!("{{\"detail\":{}}}", zeros(size))),
        ("error", format!("{{\"error\":{}}}", zeros(size))),
        ("status", format!("{{\"status\":{},\"message\":\"\"}}", zeros(size))),
        (
            "response",
            format!(
                "{{\"status\":\"ok\",\"message\":\"\",\"solution\":{{\"url\":\"x\",\"status\":200,\"response\":{}}}}}",
                zeros(size)
            ),
        ),
    ];
    let fake = FakeSolver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    std::fs::write(
        &config,
        format!(
            "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\ndir = \"out\"\n[[feeds]]\nname = \"news\"\nurl = \"{}\"\n",
            fake.url,
            crate::helpers::FEED_URL
        ),
    )
    .unwrap();
    // The peak RSS of the one child of a Python process: getrusage sees no other process.
    const PEAK: &str = "import resource, subprocess, sys\n\
        done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n\
        print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, done.returncode)\n\
        sys.stderr.write(done.stdout.decode(errors='replace'))";
    for (field, reply) in shapes {
        let bytes = reply.len();
        fake.then(Action::Reply(200, reply));
        let out = crate::helpers::flarefeed_async_under(&["python3", "-c", PEAK], dir.path())
            .args(["refresh", "--config"])
            .arg(&config)
            .output()
            .await
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        let refresh = String::from_utf8_lossy(&out.stderr);
        let mut fields = said.split_whitespace();
        let peak: usize = fields.next().unwrap().parse().unwrap();
        assert_eq!(fields.next(), Some("1"), "{field}: the refresh fails: {refresh}");
        let bound = bytes * 22 / 10 + 16 * MB;
        assert!(
            peak < bound,
            "{field}: peak RSS {} MB for a {} MB reply, over {} MB",
            peak / MB,
            bytes / MB,
            bound / MB
        );
        eprintln!(
            "{field}: peak RSS {:.1} MB for a {:.1} MB reply",
            peak as f64 / MB as f64,
            bytes as f64 / MB as f64
        );
    }
}
