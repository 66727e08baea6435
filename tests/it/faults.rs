//! Injected faults. Each one ends with an error that names the stage, the right HTTP status or
//! exit status, the last good feed byte-identical, and within a bounded time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flarefeed::config::FeedConfig;
use flarefeed::handler::App;
use flarefeed::solver::{SessionPolicy, SolverSettings};
use serde_json::{Value, json};

use crate::helpers::fake_solver::{Action, FakeSolver, error_reply, ok_reply, pre_wrapped};
use crate::helpers::fixtures::fixture;
use crate::helpers::s3_server::Fault;
use crate::helpers::{Backend, DEMO_URL, TOKEN, TestApp, event, parts, request, rss_page};

/// A bounded time for any fault: the solver's budget below plus the store's timeouts.
const BOUND: Duration = Duration::from_secs(25);

struct Faulty {
    test: TestApp,
    good: Vec<u8>,
}

impl Faulty {
    /// Publishes a good feed, so every fault has a last good copy to keep.
    async fn start() -> Self {
        let test = TestApp::builder()
            .backend(Backend::S3s)
            .feeds(vec![FeedConfig::new("demo", DEMO_URL)])
            .start()
            .await;
        test.fake.page(DEMO_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
        let mut h = Self { test, good: Vec::new() };
        let (status, body, _) = h.refresh(&h.app(&h.test.fake.url)).await;
        assert_eq!(status, 200, "{body}");
        h.good = h.published().await;
        h
    }

    /// The function as deployed: S3 store, the given solver, maxTimeout 1 s.
    fn app(&self, solver_url: &str) -> App {
        let solver = SolverSettings {
            url: solver_url.into(),
            session: SessionPolicy::None,
            max_timeout: Duration::from_secs(1),
            ..SolverSettings::default()
        };
        self.test.app_with_solver(solver, Some(TOKEN))
    }

    /// POST /refresh/demo?force=1 with 15 s left in the Lambda: (status, body, time taken).
    async fn refresh(&self, app: &App) -> (u16, Value, Duration) {
        let mut forced = event("url-refresh.json");
        forced["rawQueryString"] = json!("force=1");
        forced["queryStringParameters"] = json!({"force": "1"});
        let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + 15_000;
        let started = Instant::now();
        let response = app.serve(request(&forced, Some(deadline))).await.unwrap();
        let (status, body, _) = parts(response).await;
        (status, body, started.elapsed())
    }

    /// The feed as S3 serves it.
    async fn published(&self) -> Vec<u8> {
        self.test.published().await
    }

    /// Runs one fault and checks everything a fault must show.
    async fn expect(&self, app: &App, what: &str, stage: &str, words: &str) {
        let (status, body, took) = self.refresh(app).await;
        assert_eq!(status, 502, "{what}: {body}");
        assert_eq!(body["stage"], stage, "{what}: {body}");
        assert!(body["error"].as_str().unwrap().contains(words), "{what}: {body}");
        assert!(took < BOUND, "{what} took {took:?}");
        self.test.s3().set_fault(None);
        assert_eq!(self.published().await, self.good, "{what} changed the published feed");
    }
}

#[tokio::test]
async fn solver_faults() {
    let h = Faulty::start().await;
    let app = h.app(&h.test.fake.url);

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    h.expect(
        &h.app(&format!("http://{closed}/v1")),
        "refused connection",
        "solver",
        "cannot reach FlareSolverr",
    )
    .await;

    h.test.fake.then(Action::Hang);
    h.expect(&app, "never answers", "solver", "did not answer within").await;

    h.test.fake.then(Action::Reply(
        500,
        "<html><h1>500 Internal Server Error</h1>\u{1}\u{2}".into(),
    ));
    h.expect(&app, "500 with garbage", "solver", "not FlareSolverr JSON")
        .await;

    let body = fixture("flaresolverr/upstream-3.5.0/rss_nosession.json");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    h.test.fake.then(Action::Raw(
        [head.as_bytes(), &body.as_bytes()[..body.len() / 3]].concat(),
    ));
    h.expect(&app, "JSON cut off", "solver", "cut off").await;

    let late = error_reply("Error: Error solving the challenge. Timeout after 1.0 seconds.");
    h.test.fake.then(Action::Delay(Duration::from_secs(2), Box::new(late)));
    h.expect(
        &app,
        "slow beyond maxTimeout",
        "solver",
        "could not solve the challenge in time",
    )
    .await;
    assert_eq!(h.test.fake.log().last().unwrap()["maxTimeout"], 1000);

    for (what, page, stage, words) in [
        (
            "challenge page",
            fixture("pages/cloudflare-challenge.html"),
            "guard",
            "Cloudflare challenge page",
        ),
        (
            "block page",
            fixture("pages/cloudflare-block.html"),
            "guard",
            "Cloudflare block page",
        ),
        (
            "Chrome error page",
            fixture("pages/chrome-neterror.html"),
            "guard",
            "Chrome's error page (ERR_CONNECTION_REFUSED)",
        ),
        ("empty response", String::new(), "extract", "empty page"),
        (
            "challenge in Chrome's text view",
            pre_wrapped("Just a moment..."),
            "guard",
            "not well-formed",
        ),
    ] {
        h.test.fake.then(ok_reply(DEMO_URL, &page));
        h.expect(&app, what, stage, words).await;
    }
}

#[tokio::test]
async fn store_faults() {
    let h = Faulty::start().await;
    let app = h.app(&h.test.fake.url);

    h.test.s3().set_fault(Some(Fault::Down));
    h.expect(&app, "S3 down", "status", "cannot reach the S3 endpoint")
        .await;

    h.test.s3().set_fault(Some(Fault::Deny(None)));
    h.expect(&app, "S3 403 on everything", "status", "access denied (AccessDenied)")
        .await;

    // A store that refuses every write is found at the claim, before the solver is asked.
    let asked = h.test.fake.commands().len();
    h.test.s3().set_fault(Some(Fault::Deny(Some(hyper::Method::PUT))));
    h.expect(&app, "S3 403 on PUT", "status", "access denied (AccessDenied)")
        .await;
    assert_eq!(
        h.test.fake.commands().len(),
        asked,
        "the solver was asked after a failed claim"
    );

    h.test.s3().set_fault(Some(Fault::DenyPutOf("demo.xml".into())));
    h.test.fake.then(ok_reply(DEMO_URL, &recorded_changed()));
    h.expect(
        &app,
        "S3 403 on the feed's PUT",
        "store",
        "access denied (AccessDenied)",
    )
    .await;

    h.test.s3().set_fault(Some(Fault::Slow(Duration::from_secs(30))));
    h.expect(&app, "S3 slow", "status", "did not answer in time").await;
}

/// The probe feed with a real change, so a refresh wants to write it.
fn recorded_changed() -> String {
    crate::helpers::fixtures::recorded_response("pypi-3.3.21/rss_nosession.json")
        .replace("Second item", "Second item, changed")
}

#[tokio::test]
async fn a_read_only_folder_fails_at_the_claim_and_keeps_the_feed() {
    use std::os::unix::fs::PermissionsExt;
    let fake = FakeSolver::start().await;
    fake.page(DEMO_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let work = tempfile::tempdir().unwrap();
    let public = work.path().join("public");
    let config = work.path().join("flarefeed.toml");
    std::fs::write(
        &config,
        format!("[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\ndir = \"{}\"\n[[feeds]]\nname = \"demo\"\nurl = \"{DEMO_URL}\"\n", fake.url, public.display()),
    )
    .unwrap();
    let run = || {
        let mut command = crate::helpers::flarefeed_async(work.path());
        command.args(["refresh", "--force", "--config"]).arg(&config);
        command
    };
    assert!(run().output().await.unwrap().status.success());
    let good = std::fs::read(public.join("demo.xml")).unwrap();

    // Root ignores file modes, so the refresh runs as nobody when the tests run as root.
    for dir in [work.path(), public.as_path(), public.join("status").as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    fake.page(DEMO_URL, ok_reply(DEMO_URL, &recorded_changed()));
    let as_root = std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut command = if as_root {
        let mut c = crate::helpers::flarefeed_async(work.path());
        let program = c.as_std().get_program().to_owned();
        c = tokio::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(program)
            .current_dir(work.path());
        c
    } else {
        crate::helpers::flarefeed_async(work.path())
    };
    let started = Instant::now();
    let out = command
        .args(["refresh", "--force", "--config"])
        .arg(&config)
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The claim on the status record is the first write, so that is where it stops.
    assert!(stdout.contains("demo  failed at status"), "{stdout}");
    assert!(stdout.contains("Permission denied"), "{stdout}");
    assert!(started.elapsed() < BOUND);
    assert_eq!(std::fs::read(public.join("demo.xml")).unwrap(), good);
    for dir in [work.path(), public.as_path(), public.join("status").as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
