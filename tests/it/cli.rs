//! The real `flarefeed` binary, as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::helpers::fixtures::{fixture, fixture_path};
use crate::helpers::flarefeed_async;

pub fn flarefeed() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flarefeed"))
}

fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = flarefeed()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn format_file_and_stdin_agree() {
    let path = fixture_path("feeds/rich.xml");
    let from_file = flarefeed().arg("format").arg(&path).output().unwrap();
    assert!(from_file.status.success());
    assert_eq!(text(&from_file.stdout), fixture("feeds/rich.formatted.xml"));
    let from_stdin = run_with_stdin(&["format"], fixture("feeds/rich.xml").as_bytes());
    assert_eq!(from_stdin.stdout, from_file.stdout);
    let from_dash = run_with_stdin(&["format", "-"], fixture("feeds/rich.xml").as_bytes());
    assert_eq!(from_dash.stdout, from_file.stdout);
}

#[test]
fn format_refuses_broken_xml_with_one_line() {
    let out = run_with_stdin(&["format"], b"<rss><channel></rss>");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not well-formed XML: line 1"), "{err}");
}

#[test]
fn check_prints_kind_and_items() {
    let out = flarefeed()
        .arg("check")
        .arg(fixture_path("feeds/rich.xml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "rss 2.0, 2 items\n");
    let gbk = flarefeed()
        .arg("check")
        .arg(fixture_path("feeds/gbk.xml"))
        .output()
        .unwrap();
    assert_eq!(text(&gbk.stdout), "rss 2.0, 1 item\n");
}

#[test]
fn check_refuses_with_the_reason() {
    let out = flarefeed()
        .arg("check")
        .arg(fixture_path("pages/cloudflare-challenge.html"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Cloudflare challenge page, not the feed"),
        "{}",
        text(&out.stderr)
    );
    let few = flarefeed()
        .args(["check", "--min-items", "3"])
        .arg(fixture_path("feeds/rich.xml"))
        .output()
        .unwrap();
    assert_eq!(few.status.code(), Some(1));
    assert!(text(&few.stderr).contains("fewer than min_items = 3"));
}

#[test]
fn every_command_has_help() {
    for args in [
        &["--help"][..],
        &["format", "--help"],
        &["check", "--help"],
        &["run", "--help"],
    ] {
        let out = flarefeed().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: flarefeed"), "{args:?}");
    }
    let missing = flarefeed().args(["check", "/nonexistent/feed.xml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("/nonexistent/feed.xml"));
}

#[tokio::test]
async fn refresh_url_needs_no_configuration() {
    use crate::helpers::fake_solver::FakeSolver;
    use crate::helpers::{FEED_URL, formatted_rss, rss_page};
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let checkout = tempfile::tempdir().unwrap();
    let out = flarefeed_async(checkout.path())
        .args(["refresh", "--url", FEED_URL])
        .env("FLAREFEED_SOLVER_URL", &fake.url)
        .output()
        .await
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("news-example-test-rss-xml  updated  rss 2.0, 2 items,"),
        "{stdout}"
    );
    let written = std::fs::read_to_string(checkout.path().join("public/news-example-test-rss-xml.xml")).unwrap();
    assert_eq!(written, formatted_rss("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert!(
        checkout
            .path()
            .join("public/status/news-example-test-rss-xml.json")
            .exists()
    );
    // The session is named for this deployment: its folder, `public`.
    let prefix = flarefeed::config::default_session_prefix(&flarefeed::config::StoreConfig::default());
    assert_eq!(
        fake.commands(),
        [
            format!("sessions.create@{prefix}-news-example-test-rss-xml"),
            format!("request.get@{prefix}-news-example-test-rss-xml")
        ]
    );

    let named = flarefeed_async(checkout.path())
        .args(["refresh", "--url", FEED_URL, "--name", "mine"])
        .env("FLAREFEED_SOLVER_URL", &fake.url)
        .output()
        .await
        .unwrap();
    assert!(named.status.success());
    assert!(checkout.path().join("public/mine.xml").exists());
}

#[tokio::test]
async fn refresh_and_status_with_a_config_file_and_s3() {
    use crate::helpers::fake_solver::{FakeSolver, error_reply};
    use crate::helpers::s3_server::{S3Endpoint, S3Server};
    use crate::helpers::{FEED_URL, rss_page};
    let fake = FakeSolver::start().await;
    let s3 = S3Server::start().await;
    fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("flarefeed.toml");
    std::fs::write(
        &config,
        format!(
            "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\nbucket = \"{}\"\nendpoint = \"{}\"\npath_style = true\nprefix = \"p/\"\n\
             [[feeds]]\nname = \"news\"\nurl = \"{FEED_URL}\"\n[[feeds]]\nname = \"other\"\nurl = \"https://other.example.test/feed\"\n",
            fake.url,
            crate::helpers::s3_server::BUCKET,
            s3.endpoint
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut command = flarefeed_async(work.path());
        command.args(args).arg("--config").arg(&config).envs(s3.env());
        command
    };

    let one = run(&["refresh", "news"]).output().await.unwrap();
    assert!(one.status.success(), "{}{}", text(&one.stdout), text(&one.stderr));
    assert!(
        text(&one.stdout).contains("-> s3://feeds-bucket/p/news.xml"),
        "{}",
        text(&one.stdout)
    );
    assert_eq!(s3.puts_of("p/news.xml"), 1);

    fake.then(error_reply(
        "Error: Error solving the challenge. Cloudflare has blocked this request. Probably your IP is banned",
    ));
    let all = run(&["refresh"]).output().await.unwrap();
    assert_eq!(all.status.code(), Some(1));
    let lines = text(&all.stdout);
    assert!(lines.contains("news  failed at solver"), "{lines}");
    assert!(lines.contains("other  failed at solver"), "{lines}");

    let unknown = run(&["refresh", "nope"]).output().await.unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("configured: news, other"),
        "{}",
        text(&unknown.stderr)
    );

    let table = run(&["status"]).output().await.unwrap();
    let table = text(&table.stdout);
    assert!(
        table.starts_with("FEED   STATE    LAST SUCCESS  LAST ATTEMPT"),
        "{table}"
    );
    assert!(table.contains("Cloudflare blocked FlareSolverr"), "{table}");
    // Issue 19: relative times, the backoff's end, and no colour through a pipe.
    assert!(
        table.contains("s ago") && table.contains("backing off until"),
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "{table:?}");
    // Cut to the width it is given, the whole error still under --json.
    let narrow = run(&["status"]).env("COLUMNS", "80").output().await.unwrap();
    let narrow = text(&narrow.stdout);
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    assert!(narrow.contains('…'), "{narrow}");
    // On a terminal (a pty from `script`): the state in colour, unless NO_COLOR.
    for no_color in [false, true] {
        let binary = env!("CARGO_BIN_EXE_flarefeed");
        let mut command = tokio::process::Command::new("script");
        command
            .args([
                "-qec",
                &format!("'{binary}' status --config '{}'", config.display()),
                "/dev/null",
            ])
            .current_dir(work.path())
            .envs(s3.env())
            .env("TERM", "xterm")
            .env("COLUMNS", "120")
            .env_remove("NO_COLOR");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let screen = text(&command.output().await.unwrap().stdout);
        assert_eq!(
            screen.contains("\u{1b}[31mfailing"),
            !no_color,
            "NO_COLOR={no_color}: {screen:?}"
        );
        let visible = screen.replace("\u{1b}[31m", "").replace("\u{1b}[0m", "");
        assert!(
            visible.lines().all(|l| l.trim_end_matches('\r').chars().count() <= 120),
            "{screen}"
        );
    }
    let json = run(&["status", "--json"]).output().await.unwrap();
    let records: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(records[0]["feed"], "news");
    assert_eq!(records[0]["consecutive_failures"], 1);
    assert_eq!(records[1]["outcome"], "failed");
}

#[tokio::test]
async fn refresh_without_any_configuration_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = flarefeed_async(dir.path()).arg("refresh").output().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("pass --config FILE"),
        "{}",
        text(&out.stderr)
    );
    // Issue 19: every source is named, FLAREFEED_CONFIG_URL included, here and in --help.
    assert!(
        text(&out.stderr).contains("FLAREFEED_CONFIG_URL"),
        "{}",
        text(&out.stderr)
    );
    let help = flarefeed_async(dir.path())
        .args(["refresh", "--help"])
        .output()
        .await
        .unwrap();
    let help = text(&help.stdout);
    assert!(
        help.contains("FLAREFEED_CONFIG_URL") && help.contains("--max-timeout") && help.contains("--min-items"),
        "{help}"
    );
}

/// Issue 19's diagnoses, each by its message: missing S3 credentials are not an unreachable
/// endpoint; two `--url` feeds of one host get names of their own; with `--url` the hints name
/// the flags that change what they ask.
#[tokio::test]
async fn diagnoses_say_what_to_check() {
    use crate::helpers::fake_solver::FakeSolver;
    use crate::helpers::{FEED_URL, rss_page};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    std::fs::write(
        &config,
        "[store]\nbucket = \"my-bucket\"\nendpoint = \"http://127.0.0.1:9\"\npath_style = true\n[[feeds]]\nname = \"a\"\nurl = \"https://a.example.test/feed\"\n",
    )
    .unwrap();
    let out = flarefeed_async(dir.path())
        .args(["status", "--config"])
        .arg(&config)
        .env("HOME", dir.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .await
        .unwrap();
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        said.contains("no AWS credentials were found") && said.contains("AWS_ACCESS_KEY_ID"),
        "{said}"
    );
    assert!(!said.contains("cannot reach"), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "one line: {said}");

    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    fake.page(
        "https://news.example.test/other.xml",
        rss_page("Mon, 01 Jan 2024 00:00:00 GMT"),
    );
    for url in [FEED_URL, "https://news.example.test/other.xml"] {
        let out = flarefeed_async(dir.path())
            .args(["refresh", "--url", url])
            .env("FLAREFEED_SOLVER_URL", &fake.url)
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    assert!(dir.path().join("public/news-example-test-rss-xml.xml").exists());
    assert!(dir.path().join("public/news-example-test-other-xml.xml").exists());

    // rss_page has two items: --min-items 5 refuses it, and the message names the flag.
    let out = flarefeed_async(dir.path())
        .args(["refresh", "--url", FEED_URL, "--min-items", "5", "--max-timeout", "30"])
        .env("FLAREFEED_SOLVER_URL", &fake.url)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("--min-items with --url"),
        "{}",
        text(&out.stdout)
    );
    let sent = fake.log().last().unwrap()["maxTimeout"].clone();
    assert_eq!(sent, 30_000, "--max-timeout is sent as maxTimeout");
}

/// A solver url with credentials and a feed url with a token: neither secret may reach the
/// output, the logs (at debug) or the status record, though the refresh fails and says why.
#[tokio::test]
async fn secrets_in_urls_never_reach_output_logs_or_status() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let checkout = tempfile::tempdir().unwrap();
    let out = flarefeed_async(checkout.path())
        .args([
            "refresh",
            "--url",
            "https://news.example.test/rss.xml?token=feed-s3cret",
        ])
        .env(
            "FLAREFEED_SOLVER_URL",
            format!("http://op:solver-s3cret@127.0.0.1:{port}/v1"),
        )
        .env("RUST_LOG", "debug")
        .output()
        .await
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success());
    assert!(
        said.contains("cannot reach FlareSolverr at http://…@127.0.0.1"),
        "{said}"
    );
    let status_dir = checkout.path().join("public/status");
    let mut records = String::new();
    for entry in std::fs::read_dir(&status_dir).unwrap() {
        records.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    assert!(records.contains("rss.xml?…"), "{records}");
    for secret in ["solver-s3cret", "feed-s3cret"] {
        assert!(!said.contains(secret), "{secret} in the output:\n{said}");
        assert!(!records.contains(secret), "{secret} in the status record:\n{records}");
    }
}

/// `refresh --url` in `dir` against `fake`, with the CLI's default logging (no RUST_LOG).
fn refresh_url(dir: &std::path::Path, fake: &crate::helpers::fake_solver::FakeSolver) -> tokio::process::Command {
    let mut command = flarefeed_async(dir);
    command
        .args(["refresh", "--url", crate::helpers::FEED_URL])
        .env("FLAREFEED_SOLVER_URL", &fake.url)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    command
}

/// SGR sequences: colour and style, not cursor movement.
fn has_colour(text: &str) -> bool {
    text.split('\u{1b}').skip(1).any(|rest| {
        rest.strip_prefix('[')
            .map(|seq| seq.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';'))
            .is_some_and(|after| after.starts_with('m'))
    })
}

/// Through a pipe (cron, a log file): no escape codes at all, and a failure said once, on the
/// outcome line, not again in a log line.
#[tokio::test]
async fn refresh_through_a_pipe_is_plain_text_and_says_a_failure_once() {
    use crate::helpers::fake_solver::{FakeSolver, error_reply};
    let fake = FakeSolver::start().await;
    fake.then(error_reply(
        "Error: Error solving the challenge. Cloudflare has blocked this request.",
    ));
    let dir = tempfile::tempdir().unwrap();
    let out = refresh_url(dir.path(), &fake).output().await.unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !stdout.contains('\u{1b}') && !stderr.contains('\u{1b}'),
        "{stdout}{stderr:?}"
    );
    assert!(!stderr.contains('\r'), "a spinner was drawn into a pipe: {stderr:?}");
    let said = format!("{stdout}{stderr}");
    assert_eq!(said.matches("Cloudflare blocked FlareSolverr").count(), 1, "{said}");
    assert!(
        stdout.starts_with("news-example-test-rss-xml  failed at solver"),
        "{stdout}"
    );
    // The stages still log at info.
    assert!(stderr.contains("solver answered"), "{stderr}");
}

/// On a terminal (a pty from `script`): coloured logs unless NO_COLOR, and a spinner with the
/// feed and the time while the solver works, cleared before the outcome line.
#[tokio::test]
async fn on_a_terminal_logs_are_coloured_unless_no_color_and_a_spinner_runs() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    use crate::helpers::{FEED_URL, rss_page};
    for no_color in [false, true] {
        let fake = FakeSolver::start().await;
        fake.then(Action::Delay(
            std::time::Duration::from_millis(700),
            Box::new(rss_page("Mon, 01 Jan 2024 00:00:00 GMT")),
        ));
        let dir = tempfile::tempdir().unwrap();
        let binary = env!("CARGO_BIN_EXE_flarefeed");
        let mut command = tokio::process::Command::new("script");
        command
            .args(["-qec", &format!("'{binary}' refresh --url '{FEED_URL}'"), "/dev/null"])
            .current_dir(dir.path())
            .env("FLAREFEED_SOLVER_URL", &fake.url)
            .envs(crate::helpers::SOLVER_ONLY)
            .env("TERM", "xterm")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR");
        if no_color {
            command.env("NO_COLOR", "1");
        }
        let out = command.output().await.unwrap();
        let screen = text(&out.stdout);
        assert!(out.status.success(), "{screen}");
        assert_eq!(has_colour(&screen), !no_color, "NO_COLOR={no_color}: {screen:?}");
        assert!(
            screen.contains("⠋ news-example-test-rss-xml  0.0 s"),
            "no spinner: {screen:?}"
        );
        assert!(
            screen.contains("\r\u{1b}[2K"),
            "the spinner is never cleared: {screen:?}"
        );
        assert!(
            screen.contains("news-example-test-rss-xml  updated  rss 2.0, 2 items"),
            "{screen:?}"
        );
    }
}

#[tokio::test]
async fn refresh_json_prints_one_parsable_report_per_feed() {
    use crate::helpers::fake_solver::{FakeSolver, error_reply};
    use crate::helpers::{FEED_URL, rss_page};
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let dir = tempfile::tempdir().unwrap();
    let out = refresh_url(dir.path(), &fake).arg("--json").output().await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["feed"], "news-example-test-rss-xml");
    assert_eq!(lines[0]["outcome"], "updated");
    assert_eq!(lines[0]["items"], 2);

    fake.then(error_reply(
        "Error: Error solving the challenge. Timeout after 60.0 seconds.",
    ));
    let failed = refresh_url(dir.path(), &fake).arg("--json").output().await.unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(
        (report["outcome"].as_str(), report["stage"].as_str()),
        (Some("failed"), Some("solver"))
    );
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("could not solve the challenge")
    );
}

/// `status` without a configuration reads what `refresh --url` wrote, in ./public/.
#[tokio::test]
async fn status_without_configuration_reads_the_default_folder() {
    use crate::helpers::fake_solver::FakeSolver;
    use crate::helpers::{FEED_URL, rss_page};
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let dir = tempfile::tempdir().unwrap();

    let empty = flarefeed_async(dir.path()).arg("status").output().await.unwrap();
    assert_eq!(empty.status.code(), Some(1));
    let said = text(&empty.stderr);
    assert!(
        said.contains("pass --config FILE") && said.contains("no status records"),
        "{said}"
    );

    assert!(refresh_url(dir.path(), &fake).output().await.unwrap().status.success());
    assert!(
        refresh_url(dir.path(), &fake)
            .args(["--name", "second"])
            .output()
            .await
            .unwrap()
            .status
            .success()
    );
    let table = flarefeed_async(dir.path()).arg("status").output().await.unwrap();
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let feeds: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(feeds, ["news-example-test-rss-xml", "second"], "{table}");
    let json = flarefeed_async(dir.path())
        .args(["status", "--json"])
        .output()
        .await
        .unwrap();
    let records: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(records[0]["outcome"], "updated");
}

/// `flarefeed run`: every feed due is refreshed, and Ctrl-C (SIGINT) lets the refreshes in
/// flight finish, then exits 0 with a summary on stdout.
#[tokio::test]
async fn run_refreshes_the_feeds_due_and_stops_cleanly_on_ctrl_c() {
    use crate::helpers::fake_solver::FakeSolver;
    use crate::helpers::{FEED_URL, rss_page};
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    let mut toml = format!(
        "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\ndir = \"out\"\n",
        fake.url
    );
    for name in ["a", "b", "c"] {
        // Every minute: each feed has a slot in the minute before the first tick.
        toml.push_str(&format!(
            "[[feeds]]\nname = \"{name}\"\nurl = \"{FEED_URL}\"\ninterval = \"1m\"\n"
        ));
    }
    std::fs::write(&config, toml).unwrap();
    let child = flarefeed_async(dir.path())
        .args(["run", "--jobs", "2", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let published = |name: &str| dir.path().join(format!("out/{name}.xml")).exists();
    let waited = std::time::Instant::now();
    while !["a", "b", "c"].iter().all(|n| published(n)) {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(20),
            "the feeds were not refreshed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    // The shell's own kill: no procps package needed.
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("run stops after Ctrl-C")
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "updated 3  unchanged 0  failed 0  skipped 0", "{stderr}");
    assert!(stderr.contains("3 feeds, 2 at once"), "{stderr}");
    assert!(
        stderr.contains("3 never refreshed or overdue, refreshed now"),
        "{stderr}"
    );
    // One line per outcome at the default level, not one per stage.
    assert_eq!(stderr.matches("refresh done").count(), 3, "{stderr}");
    assert!(!stderr.contains("solver answered"), "{stderr}");
}

/// A folder deployment of one feed, `news`, through `fake` without sessions.
fn one_feed_config(dir: &std::path::Path, solver: &str) -> std::path::PathBuf {
    use crate::helpers::FEED_URL;
    let config = dir.join("flarefeed.toml");
    let toml = format!(
        "[solver]\nurl = \"{solver}\"\nsession = \"none\"\n[store]\ndir = \"out\"\n[[feeds]]\nname = \"news\"\nurl = \"{FEED_URL}\"\n"
    );
    std::fs::write(&config, toml).unwrap();
    config
}

/// `flarefeed refresh --config <config>` in `dir`, to its end.
async fn refresh_in(dir: &std::path::Path, config: &std::path::Path) -> Output {
    flarefeed_async(dir)
        .args(["refresh", "--config"])
        .arg(config)
        .output()
        .await
        .unwrap()
}

/// `flarefeed refresh --config <config>` in `dir`, left running, its output dropped.
fn refresh_in_background(dir: &std::path::Path, config: &std::path::Path) -> tokio::process::Child {
    flarefeed_async(dir)
        .args(["refresh", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn record(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("out/status/news.json")).unwrap()).unwrap()
}

/// Finding 1: Ctrl-C (or SIGTERM) during `flarefeed refresh` puts the status record back as it
/// was before the claim, noting the interruption, within a second; the next refresh runs at
/// once, and the exit code says what stopped it.
#[tokio::test]
async fn an_interrupted_refresh_leaves_no_claim_behind() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    use crate::helpers::rss_page;
    let fake = FakeSolver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = one_feed_config(dir.path(), &fake.url);
    fake.then(rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let first = refresh_in(dir.path(), &config).await;
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let before = record(dir.path());

    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        fake.then(Action::Hang);
        let child = flarefeed_async(dir.path())
            .args(["refresh", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let asked = fake.log().iter().filter(|c| c["cmd"] == "request.get").count();
        fake.requests_reach(asked + 1).await;
        assert!(record(dir.path())["in_flight"].is_object(), "claimed while it waits");
        let sent = std::time::Instant::now();
        Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().await.unwrap();
        let took = sent.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(took < std::time::Duration::from_secs(1), "SIG{signal}: {took:?}");
        assert_eq!(out.status.code(), Some(code), "SIG{signal}: {stdout}");
        assert!(stdout.contains(&format!("interrupted by SIG{signal}")), "{stdout}");
        let after = record(dir.path());
        assert!(after.get("in_flight").is_none(), "{after}");
        assert_eq!(after["interrupted"]["by"], format!("SIG{signal}"));
        for kept in [
            "last_attempt",
            "last_success",
            "sha256",
            "consecutive_failures",
            "outcome",
        ] {
            assert_eq!(after[kept], before[kept], "{kept}");
        }
    }

    // Not busy: the next refresh runs at once (the same feed again: unchanged).
    fake.then(rss_page("Tue, 02 Jan 2024 00:00:00 GMT"));
    let next = refresh_in(dir.path(), &config).await;
    let stdout = String::from_utf8_lossy(&next.stdout);
    assert!(next.status.success() && stdout.contains("news  unchanged"), "{stdout}");
    assert!(
        record(dir.path()).get("interrupted").is_none(),
        "a finished refresh clears the note"
    );
}

/// Finding 1: a refresh killed outright (SIGKILL, a closed laptop) leaves its claim; a refresh
/// on the same host sees that its process is gone and takes over at once, instead of answering
/// busy for minutes.
#[tokio::test]
async fn a_claim_whose_process_is_gone_is_taken_over_at_once() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    use crate::helpers::rss_page;
    let fake = FakeSolver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = one_feed_config(dir.path(), &fake.url);
    fake.then(Action::Hang);
    let mut killed = refresh_in_background(dir.path(), &config);
    let pid = killed.id().unwrap();
    fake.requests_reach(1).await;
    killed.kill().await.unwrap();
    let left = record(dir.path());
    assert_eq!(left["in_flight"]["holder"]["pid"], pid, "{left}");

    fake.then(rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let next = refresh_in(dir.path(), &config).await;
    let stdout = String::from_utf8_lossy(&next.stdout);
    assert!(next.status.success() && stdout.contains("updated"), "{stdout}");
    assert!(record(dir.path()).get("in_flight").is_none());
}

/// Issue 27, finding 8: a refresh started in another PID namespace on the same host (a
/// container sharing the hostname; here `unshare --pid`) cannot see the holder's process. That
/// is unknown, not gone: it answers busy (exit 75) and never asks the solver beside the holder.
#[tokio::test]
async fn a_claim_held_in_another_pid_namespace_is_not_taken_over() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    let fake = FakeSolver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = one_feed_config(dir.path(), &fake.url);
    fake.then(Action::Hang);
    let mut holder = refresh_in_background(dir.path(), &config);
    fake.requests_reach(1).await;
    let unshared = crate::helpers::flarefeed_async_under(&["unshare", "--pid", "--fork", "--mount-proc"], dir.path())
        .args(["refresh", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("unshare (util-linux) runs, as root");
    let stdout = String::from_utf8_lossy(&unshared.stdout);
    let stderr = String::from_utf8_lossy(&unshared.stderr);
    assert!(
        !stderr.contains("unshare failed"),
        "unshare --pid is refused here: {stderr}"
    );
    assert_eq!(unshared.status.code(), Some(75), "{stdout}{stderr}");
    assert!(stdout.contains("busy"), "{stdout}");
    let asked = fake.log().iter().filter(|c| c["cmd"] == "request.get").count();
    assert_eq!(asked, 1, "the solver was asked beside the holder");
    holder.kill().await.unwrap();
}

/// Issue 18: three ordinary feeds through a FlareBypasser, replayed from a real run, with the
/// default configuration (`session = "reuse"`): all three publish, after one `sessions.create`
/// in all. Its 404 and 503 pages come back "ok" with HTML and are refused at the guard, its
/// timeout is a challenge timeout, and the last good copy stays.
#[tokio::test]
async fn a_flarebypasser_publishes_ordinary_feeds_with_the_default_configuration() {
    use crate::helpers::fake_solver::FakeSolver;
    use crate::helpers::fixtures::recorded_http;
    let fake = FakeSolver::start().await;
    fake.on_command(
        "sessions.create",
        recorded_http("flarebypasser-0.1.52/sessions.create.json"),
    );
    let site = "http://127.0.0.1:18700";
    let feeds = [
        ("rss", "rss.xml", "rss.json"),
        ("atom", "atom.xml", "atom.json"),
        ("appxml", "rss-appxml.xml", "rss-appxml.json"),
        // Served as application/rss+xml without a charset: Chrome showed it as Windows-1252.
        ("zh", "zh.rssxml", "rss-no-charset.json"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    let mut toml = format!("[solver]\nurl = \"{}\"\n[store]\ndir = \"out\"\n", fake.url);
    for (name, path, recording) in feeds {
        toml.push_str(&format!("[[feeds]]\nname = \"{name}\"\nurl = \"{site}/{path}\"\n"));
        fake.page(
            &format!("{site}/{path}"),
            recorded_http(&format!("flarebypasser-0.1.52/{recording}")),
        );
    }
    std::fs::write(&config, toml).unwrap();
    let out = refresh_in(dir.path(), &config).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for (name, _, _) in feeds {
        assert!(stdout.contains(&format!("{name}  updated")), "{stdout}");
    }
    let commands = fake.commands();
    assert_eq!(
        commands.iter().filter(|c| c.starts_with("sessions.")).count(),
        1,
        "{commands:?}"
    );
    let zh = std::fs::read_to_string(dir.path().join("out/zh.xml")).unwrap();
    assert!(
        zh.contains("新闻 — Café “quotes” €") && zh.contains("你好 &amp; ü"),
        "no mojibake:\n{zh}"
    );
    let published = std::fs::read(dir.path().join("out/rss.xml")).unwrap();

    for (recording, says) in [
        ("404.json", "titled \"404 Not Found\""),
        (
            "503.json",
            "the site is failing: the solver returned its error page titled \"503 Service Unavailable\"",
        ),
        ("slow5_2000.json", "could not solve the challenge in time"),
        ("download-x-rss.json", "Chrome downloads rather than shows"),
    ] {
        fake.page(
            &format!("{site}/rss.xml"),
            recorded_http(&format!("flarebypasser-0.1.52/{recording}")),
        );
        let out = flarefeed_async(dir.path())
            .args(["refresh", "rss", "--config"])
            .arg(&config)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{recording}: {stdout}");
        assert!(stdout.contains(says), "{recording}: {stdout}");
        assert_eq!(
            std::fs::read(dir.path().join("out/rss.xml")).unwrap(),
            published,
            "{recording}"
        );
    }
}

/// Issue 19: `flarefeed run` on a terminal (a pty from `script`): a feed never refreshed runs at
/// once, a feed refreshed a moment ago is announced for its next slot, and the live view shows
/// the refresh in flight with its time, and the next feed due.
#[tokio::test]
async fn run_on_a_terminal_shows_what_runs_and_what_comes_next() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    use crate::helpers::{FEED_URL, rss_page};
    let fake = FakeSolver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flarefeed.toml");
    let toml = format!(
        "[solver]\nurl = \"{}\"\nsession = \"none\"\n[store]\ndir = \"out\"\n\
         [[feeds]]\nname = \"fresh\"\nurl = \"{FEED_URL}\"\ninterval = \"1h\"\n\
         [[feeds]]\nname = \"recent\"\nurl = \"https://recent.example.test/feed\"\ninterval = \"1h\"\n",
        fake.url
    );
    std::fs::write(&config, toml).unwrap();
    // `recent` was attempted a moment ago: it waits for its slot.
    std::fs::create_dir_all(dir.path().join("out/status")).unwrap();
    let record = serde_json::json!({
        "feed": "recent", "url": "https://recent.example.test/feed", "outcome": "unchanged",
        "last_attempt": flarefeed::outcome::rfc3339(time::OffsetDateTime::now_utc()),
        "last_success": flarefeed::outcome::rfc3339(time::OffsetDateTime::now_utc()),
        "last_error": null, "consecutive_failures": 0, "items": 2, "bytes": 10, "sha256": "ab",
        "solver_ms": null, "total_ms": null
    });
    std::fs::write(dir.path().join("out/status/recent.json"), record.to_string()).unwrap();
    fake.then(Action::Delay(
        std::time::Duration::from_millis(2500),
        Box::new(rss_page("Mon, 01 Jan 2024 00:00:00 GMT")),
    ));
    let binary = env!("CARGO_BIN_EXE_flarefeed");
    let mut command = tokio::process::Command::new("script");
    command
        .args([
            "-qec",
            &format!("timeout -s INT 4 '{binary}' run --config '{}'", config.display()),
            "/dev/null",
        ])
        .current_dir(dir.path())
        .envs(crate::helpers::SOLVER_ONLY)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    let out = command.output().await.unwrap();
    let screen = text(&out.stdout);
    assert!(
        screen.contains("1 never refreshed or overdue, refreshed now"),
        "{screen:?}"
    );
    assert!(screen.contains("recent next at "), "{screen:?}");
    assert!(
        screen.contains("running: fresh 1 s"),
        "the live view shows the refresh in flight: {screen:?}"
    );
    assert!(screen.contains("| next: "), "{screen:?}");
    assert!(
        screen.contains("updated 1  unchanged 0  failed 0  skipped 0"),
        "{screen:?}"
    );
}

/// Issue 27, finding 14: the binary is position-independent (an ELF of type `ET_DYN`), so the
/// long-lived `flarefeed run` has its own image, C code included, at a random address.
#[test]
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn the_binary_is_position_independent() {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_flarefeed")).unwrap();
    assert_eq!(&binary[..4], b"\x7fELF");
    let e_type = u16::from_le_bytes([binary[16], binary[17]]);
    assert_eq!(e_type, 3, "ET_DYN (3) is a PIE; ET_EXEC (2) loads at a fixed address");
}

/// Issue 27, finding 7, through the binary: `flarefeed run`'s refreshes claim their feed, so
/// a `flarefeed refresh` of the same feed while one is in flight answers busy (exit 75) instead
/// of running beside it.
#[tokio::test]
async fn a_refresh_beside_run_stands_back() {
    use crate::helpers::fake_solver::{Action, FakeSolver};
    let fake = FakeSolver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = one_feed_config(dir.path(), &fake.url);
    fake.then(Action::Hang);
    let mut run = flarefeed_async(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    fake.requests_reach(1).await;
    fake.then(crate::helpers::rss_page("Mon, 01 Jan 2024 00:00:00 GMT"));
    let beside = refresh_in(dir.path(), &config).await;
    let stdout = text(&beside.stdout);
    assert_eq!(beside.status.code(), Some(75), "{stdout}{}", text(&beside.stderr));
    assert!(stdout.contains("busy"), "{stdout}");
    let asked = fake.log().iter().filter(|c| c["cmd"] == "request.get").count();
    assert_eq!(asked, 1, "the refresh asked the solver beside run's");
    run.kill().await.unwrap();
}
