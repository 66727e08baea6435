//! The FlareSolverr client against a fake solver on loopback.

use std::time::Duration;

use flarefeed::solver::{Body, FlareSolverr, SessionPolicy, Solver, SolverError, SolverSettings};
use tokio::time::Instant;

use crate::helpers::fake_solver::{Action, FakeSolver, error_reply, ok_reply};
use crate::helpers::fixtures::{fixture, recorded_response};

const FEED_URL: &str = "https://example.test/rss.xml";

/// A request in a session that failed, then the session destroyed, recreated and asked again.
const RETRIED_IN_A_NEW_SESSION: [&str; 5] = [
    "sessions.create@flarefeed-news",
    "request.get@flarefeed-news",
    "sessions.destroy@flarefeed-news",
    "sessions.create@flarefeed-news",
    "request.get@flarefeed-news",
];

/// A fake whose next requests fail with `errors` before the feed is served, after a solve of
/// feed `news` in a session, which must succeed.
async fn solved_after_errors(errors: &[&str]) -> FakeSolver {
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, recorded_action("upstream-3.5.0/rss_nosession.json", 200));
    for error in errors {
        fake.then(error_reply(error));
    }
    let solution = client(&fake.url, SessionPolicy::Reuse)
        .solve(&flarefeed::solver::SolveRequest::new("news", FEED_URL, None))
        .await
        .unwrap();
    assert!(solution.response.is_some());
    fake
}

fn client(url: &str, session: SessionPolicy) -> FlareSolverr {
    FlareSolverr::new(SolverSettings {
        url: url.to_string(),
        session,
        max_timeout: Duration::from_secs(5),
        ..SolverSettings::default()
    })
}

fn recorded_action(path: &str, status: u16) -> Action {
    Action::Reply(status, fixture(&format!("flaresolverr/{path}")))
}

async fn solve_err(fake: &FakeSolver, action: Action) -> SolverError {
    fake.then(action);
    client(&fake.url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, None))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn success_returns_the_page_source() {
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, recorded_action("upstream-3.5.0/rss_nosession.json", 200));
    let solution = client(&fake.url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, None))
        .await
        .unwrap();
    assert_eq!(
        solution.response,
        Some(Body::Text(recorded_response("upstream-3.5.0/rss_nosession.json")))
    );
    assert_eq!(solution.status, Some(200));
    assert_eq!(fake.commands(), ["request.get"]);
    let sent = &fake.log()[0];
    assert_eq!(sent["url"], FEED_URL);
    assert_eq!(sent["maxTimeout"], 5000);
}

#[tokio::test]
async fn pypi_shapes_are_understood() {
    let fake = FakeSolver::start().await;
    fake.then(recorded_action("pypi-3.3.21/json_nosession.json", 200));
    let json = client(&fake.url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, None))
        .await
        .unwrap();
    let Some(Body::Json(text)) = json.response else {
        panic!("a JSON value, as its text: {:?}", json.response)
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["name"],
        "probe"
    );

    fake.then(recorded_action("pypi-3.3.21/rss_nosession.json", 200));
    let rss = client(&fake.url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, None))
        .await
        .unwrap();
    assert!(matches!(rss.response, Some(Body::Text(ref t)) if t.starts_with("<?xml")));
}

#[tokio::test]
async fn each_error_shape_gets_its_own_error() {
    let fake = FakeSolver::start().await;
    // (reply, the error's variant, words its fields must hold), read off its Debug form.
    let recorded = recorded_action;
    let cases: Vec<(Action, &str, &str)> = vec![
        (
            recorded("upstream-3.5.0/err_timeout_slow.json", 500),
            "ChallengeTimeout",
            "Timeout after 5.0 seconds",
        ),
        (
            recorded("upstream-3.5.0/sim_cf_challenge.json", 500),
            "ChallengeTimeout",
            "",
        ),
        (recorded("upstream-3.5.0/sim_cf_denied.json", 500), "Blocked", ""),
        (
            recorded("upstream-3.5.0/err_conn_refused.json", 500),
            "Chrome",
            "ERR_CONNECTION_REFUSED\"",
        ),
        (
            recorded("upstream-3.5.0/err_dns.json", 500),
            "Chrome",
            "ERR_NAME_NOT_RESOLVED\"",
        ),
        (recorded("pypi-3.3.21/err_conn_refused.json", 500), "Failed", ""),
        (
            recorded("pypi-3.3.21/err_timeout_slow.json", 500),
            "ChallengeTimeout",
            "",
        ),
        (
            recorded("upstream-3.5.0/err_malformed_json.json", 500),
            "Rejected",
            "Invalid JSON",
        ),
        (recorded("upstream-3.5.0/err_unknown_cmd.json", 500), "Failed", ""),
        (
            recorded("pypi-3.3.21/http404_nosession.json", 200),
            "Upstream",
            "status: 404",
        ),
        (
            recorded("upstream-3.5.0/rss_returnOnlyCookies_nosession.json", 200),
            "Unrecognised",
            "",
        ),
        (
            Action::Reply(500, "<html>Internal Server Error</html>".into()),
            "Unavailable",
            "status: 500",
        ),
        (Action::Reply(404, "Not Found".into()), "Malformed", "404"),
    ];
    for (action, variant, words) in cases {
        let error = solve_err(&fake, action.clone()).await;
        let debug = format!("{error:?}");
        let named = debug.strip_prefix(variant).is_some_and(|rest| rest.starts_with(" {"));
        assert!(named && debug.contains(words), "{action:?} gave {error:?}");
        assert!(!error.to_string().contains("Stacktrace"), "{error}");
    }
}

#[tokio::test]
async fn json_cut_off_midway_is_malformed() {
    let fake = FakeSolver::start().await;
    let body = fixture("flaresolverr/upstream-3.5.0/rss_nosession.json");
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let cut = [head.as_bytes(), &body.as_bytes()[..body.len() / 2]].concat();
    let error = solve_err(&fake, Action::Raw(cut)).await;
    assert!(
        matches!(error, SolverError::Malformed { ref detail } if detail.contains("cut off")),
        "{error:?}"
    );
}

#[tokio::test]
async fn unreachable_solver_names_its_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let error = client(&url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, None))
        .await
        .unwrap_err();
    assert!(matches!(error, SolverError::Unreachable { .. }), "{error:?}");
    assert!(error.to_string().contains(&url), "{error}");
}

#[tokio::test]
async fn a_silent_solver_is_ended_by_the_deadline() {
    let fake = FakeSolver::start().await;
    fake.then(Action::Hang);
    let started = Instant::now();
    let error = client(&fake.url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new(
            "f",
            FEED_URL,
            Some(Instant::now() + Duration::from_secs(2)),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, SolverError::Timeout { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_answer_within_the_deadline_is_taken() {
    let fake = FakeSolver::start().await;
    let page = recorded_action("upstream-3.5.0/rss_nosession.json", 200);
    fake.then(Action::Delay(Duration::from_millis(300), Box::new(page)));
    let deadline = Some(Instant::now() + Duration::from_secs(20));
    let solution = client(&fake.url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, deadline))
        .await
        .unwrap();
    assert!(solution.response.is_some());
}

#[tokio::test]
async fn a_deadline_lowers_max_timeout() {
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, recorded_action("upstream-3.5.0/rss_nosession.json", 200));
    let settings = SolverSettings {
        url: fake.url.clone(),
        session: SessionPolicy::None,
        max_timeout: Duration::from_secs(60),
        ..SolverSettings::default()
    };
    FlareSolverr::new(settings)
        .solve(&flarefeed::solver::SolveRequest::new(
            "f",
            FEED_URL,
            Some(Instant::now() + Duration::from_secs(50)),
        ))
        .await
        .unwrap();
    let sent = fake.log()[0]["maxTimeout"].as_u64().unwrap();
    assert!(
        (5_000..=20_000).contains(&sent),
        "maxTimeout {sent} should leave the startup margin inside 50 s"
    );
}

#[tokio::test]
async fn oversized_reply_is_refused() {
    let fake = FakeSolver::start().await;
    fake.then(ok_reply(FEED_URL, &"x".repeat(4096)));
    let settings = SolverSettings {
        url: fake.url.clone(),
        session: SessionPolicy::None,
        max_reply_bytes: 1024,
        ..SolverSettings::default()
    };
    let error = FlareSolverr::new(settings)
        .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, None))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SolverError::TooLarge {
            limit: 1024,
            memory_mb: None
        }
    );
    assert!(error.to_string().contains("max_reply_mb"));
}

#[tokio::test]
async fn reuse_keeps_one_named_session_per_feed() {
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, recorded_action("upstream-3.5.0/rss_nosession.json", 200));
    let solver = client(&fake.url, SessionPolicy::Reuse);
    solver
        .solve(&flarefeed::solver::SolveRequest::new("news", FEED_URL, None))
        .await
        .unwrap();
    solver
        .solve(&flarefeed::solver::SolveRequest::new("news", FEED_URL, None))
        .await
        .unwrap();
    assert_eq!(
        fake.commands(),
        [
            "sessions.create@flarefeed-news",
            "request.get@flarefeed-news",
            "sessions.create@flarefeed-news",
            "request.get@flarefeed-news"
        ]
    );
    assert_eq!(fake.log()[1]["session_ttl_minutes"], 60);
    assert_eq!(fake.sessions(), ["flarefeed-news"]);
}

/// Both of the PyPI build's words for a Chrome that died under a session, as a real solver said
/// them: the second is in no list, and is retried because nothing in it says the site failed.
#[tokio::test]
async fn a_broken_session_is_recreated_and_retried_once() {
    for message in [
        "Error: 浏览器未开启或已关闭。",
        "Error: Error solving the challenge. 'NoneType' object has no attribute 'send'",
    ] {
        let fake = solved_after_errors(&[message]).await;
        assert_eq!(fake.commands(), RETRIED_IN_A_NEW_SESSION, "{message}");
        assert_eq!(fake.sessions(), ["flarefeed-news"]);
    }
}

#[tokio::test]
async fn a_session_that_breaks_twice_falls_back_without_leaving_it_behind() {
    let fake = solved_after_errors(&["Error: invalid session id", "Error: invalid session id"]).await;
    let fallback = ["sessions.destroy@flarefeed-news", "request.get"];
    assert_eq!(fake.commands(), [&RETRIED_IN_A_NEW_SESSION[..], &fallback[..]].concat());
    assert!(fake.sessions().is_empty(), "left behind: {:?}", fake.sessions());
}

#[tokio::test]
async fn chromes_network_error_for_the_url_is_the_sites_and_not_retried() {
    let fake = FakeSolver::start().await;
    fake.then(recorded_action("upstream-3.5.0/err_conn_refused.json", 500));
    let error = client(&fake.url, SessionPolicy::Reuse)
        .solve(&flarefeed::solver::SolveRequest::new("news", FEED_URL, None))
        .await
        .unwrap_err();
    assert!(!error.may_be_session_failure(), "{error:?}");
    assert_eq!(
        fake.commands(),
        ["sessions.create@flarefeed-news", "request.get@flarefeed-news"]
    );
}

#[tokio::test]
async fn other_errors_do_not_retry() {
    let fake = FakeSolver::start().await;
    fake.then(recorded_action("upstream-3.5.0/err_timeout_slow.json", 500));
    let error = client(&fake.url, SessionPolicy::Reuse)
        .solve(&flarefeed::solver::SolveRequest::new("news", FEED_URL, None))
        .await
        .unwrap_err();
    assert!(matches!(error, SolverError::ChallengeTimeout { .. }));
    assert_eq!(
        fake.commands(),
        ["sessions.create@flarefeed-news", "request.get@flarefeed-news"]
    );
}

#[tokio::test]
async fn policy_none_never_touches_sessions() {
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, recorded_action("upstream-3.5.0/rss_nosession.json", 200));
    client(&fake.url, SessionPolicy::None)
        .solve(&flarefeed::solver::SolveRequest::new("news", FEED_URL, None))
        .await
        .unwrap();
    assert_eq!(fake.commands(), ["request.get"]);
    assert!(fake.log()[0].get("session").is_none());
}

#[tokio::test]
async fn session_commands_round_trip() {
    let fake = FakeSolver::start().await;
    let solver = client(&fake.url, SessionPolicy::Reuse);
    solver.sessions_create("s1", None).await.unwrap();
    solver.sessions_create("s1", None).await.unwrap();
    assert_eq!(fake.sessions(), ["s1"]);
    solver.sessions_destroy("s1", None).await.unwrap();
    let error = solver.sessions_destroy("s1", None).await.unwrap_err();
    assert!(error.may_be_session_failure(), "{error:?}");
    assert!(fake.sessions().is_empty());
}

#[tokio::test]
async fn a_deadline_never_raises_a_small_max_timeout() {
    let fake = FakeSolver::start().await;
    fake.page(FEED_URL, recorded_action("upstream-3.5.0/rss_nosession.json", 200));
    let settings = SolverSettings {
        url: fake.url.clone(),
        session: SessionPolicy::None,
        max_timeout: Duration::from_secs(1),
        ..SolverSettings::default()
    };
    let solver = FlareSolverr::new(settings);
    solver
        .solve(&flarefeed::solver::SolveRequest::new(
            "f",
            FEED_URL,
            Some(Instant::now() + Duration::from_secs(15)),
        ))
        .await
        .unwrap();
    solver
        .solve(&flarefeed::solver::SolveRequest::new(
            "f",
            FEED_URL,
            Some(Instant::now() + Duration::from_secs(300)),
        ))
        .await
        .unwrap();
    let sent: Vec<u64> = fake.log().iter().map(|c| c["maxTimeout"].as_u64().unwrap()).collect();
    assert_eq!(sent, [1000, 1000]);
}

#[tokio::test]
async fn a_spent_deadline_sends_nothing_and_says_to_raise_the_timeout() {
    let fake = FakeSolver::start().await;
    let error = client(&fake.url, SessionPolicy::Reuse)
        .solve(&flarefeed::solver::SolveRequest::new(
            "f",
            FEED_URL,
            Some(Instant::now() + Duration::from_millis(300)),
        ))
        .await
        .unwrap_err();
    assert!(matches!(error, SolverError::NoTimeLeft { .. }), "{error:?}");
    assert!(
        error.to_string().contains("raise the Lambda function's timeout"),
        "{error}"
    );
    assert!(fake.log().is_empty());
}

/// Finding 6: a pool hands the feed to its next solver when the first is out of service, in
/// each way a solver goes out of service, and only then: the matrix of broken first solvers,
/// each behind a healthy second, with sessions (whose `sessions.create` may be what hangs).
#[tokio::test]
async fn the_pool_fails_over_on_every_kind_of_broken_solver() {
    use flarefeed::solver::SolverPool;

    /// A port on 127.0.0.1 that accepts no connection: its backlog is full, so Linux drops the
    /// SYNs of new ones, as a stopped VM or a security group would.
    async fn black_hole() -> (String, Vec<tokio::net::TcpStream>, tokio::net::TcpListener) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut held = Vec::new();
        for _ in 0..4 {
            let connect = tokio::net::TcpStream::connect(addr);
            match tokio::time::timeout(Duration::from_millis(200), connect).await {
                Ok(Ok(stream)) => held.push(stream),
                _ => break,
            }
        }
        (format!("http://{addr}/v1"), held, listener)
    }

    let healthy = FakeSolver::start().await;
    healthy.page(FEED_URL, recorded_action("upstream-3.5.0/rss_nosession.json", 200));
    let html_502 = Action::Raw(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 44\r\nConnection: close\r\n\r\n<html><h1>502 Bad Gateway</h1> nginx</html>\n".to_vec(),
    );
    let cases: Vec<(&str, Option<(&str, Action)>)> = vec![
        ("hangs", Some(("request.get", Action::Hang))),
        ("a proxy's 502 HTML", Some(("request.get", html_502))),
        (
            "429",
            Some((
                "request.get",
                Action::Reply(429, r#"{"detail": "rate limited"}"#.into()),
            )),
        ),
        ("sessions.create hangs", Some(("sessions.create", Action::Hang))),
        ("drops packets", None),
        ("refuses connections", None),
    ];
    for (case, breakage) in cases {
        let broken = FakeSolver::start().await;
        let (first, _held, _listener) = match (case, breakage) {
            (_, Some((cmd, action))) => {
                broken.on_command(cmd, action);
                (broken.url.clone(), Vec::new(), None)
            }
            ("drops packets", None) => {
                let (url, held, listener) = black_hole().await;
                (url, held, Some(listener))
            }
            _ => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let url = format!("http://{}/v1", listener.local_addr().unwrap());
                drop(listener);
                (url, Vec::new(), None)
            }
        };
        let settings = SolverSettings {
            urls: vec![first.clone(), healthy.url.clone()],
            url: first.clone(),
            session: SessionPolicy::Reuse,
            max_timeout: Duration::from_secs(1),
            startup_margin: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            ..SolverSettings::default()
        };
        let pool = SolverPool::new(&settings);
        // A feed that tries the broken solver first.
        let feed = (0..)
            .map(|i| format!("feed-{i}"))
            .find(|feed| pool.order(feed)[0] == first)
            .unwrap();
        let started = Instant::now();
        let solved = pool
            .solve(&flarefeed::solver::SolveRequest::new(&feed, FEED_URL, None))
            .await;
        let took = started.elapsed();
        assert!(solved.is_ok(), "{case}: {solved:?}");
        assert!(took < Duration::from_secs(6), "{case}: took {took:?}");
        let answered_by = solved.unwrap().solver.unwrap();
        assert_eq!(answered_by, healthy.url, "{case}");
    }

    // A solver's own answer is final: its error is not the next solver's business.
    let refusing = FakeSolver::start().await;
    refusing.page(
        FEED_URL,
        error_reply("Error: Error solving the challenge. Cloudflare has blocked this request."),
    );
    let settings = SolverSettings {
        urls: vec![refusing.url.clone(), healthy.url.clone()],
        url: refusing.url.clone(),
        session: SessionPolicy::None,
        ..SolverSettings::default()
    };
    let pool = SolverPool::new(&settings);
    let feed = (0..)
        .map(|i| format!("feed-{i}"))
        .find(|feed| pool.order(feed)[0] == refusing.url)
        .unwrap();
    let error = pool
        .solve(&flarefeed::solver::SolveRequest::new(&feed, FEED_URL, None))
        .await
        .unwrap_err();
    assert!(matches!(error, SolverError::Blocked { .. }), "{error:?}");
}

/// Issue 18: every reply of the four solvers reads as what it is. Success publishes; the
/// solver's own errors carry their text; only a body that is not JSON is "malformed".
#[tokio::test]
async fn every_solvers_replies_read_as_what_they_are() {
    use crate::helpers::fixtures::recorded_http;
    let fake = FakeSolver::start().await;
    let solver = client(&fake.url, SessionPolicy::None);
    for (path, expect) in [
        ("flarebypasser-0.1.52/rss.json", "ok"),
        ("flarebypasser-0.1.52/atom.json", "ok"),
        ("flarebypasser-0.1.52/rss-appxml.json", "ok"),
        ("flarebypasser-0.1.52/404.json", "ok"),
        ("flarebypasser-0.1.52/slow5_2000.json", "ChallengeTimeout"),
        ("flarebypasser-0.1.52/cf-challenge.json", "ChallengeTimeout"),
        ("flarebypasser-0.1.52/bogus.json", "Rejected"),
        ("flarebypasser-0.1.52/malformed.json", "Rejected"),
        ("flarebypasser-0.1.52/request.post_postData.json", "Failed"),
        ("byparr-fake/rss.json", "ok"),
        ("byparr-fake/timeout.json", "ChallengeTimeout"),
        ("byparr-fake/unreachable.json", "Failed"),
        ("byparr-fake/bad_url.json", "Rejected"),
        ("flaresolverr-go-fake/rss.json", "ok"),
        ("flaresolverr-go-fake/http404.json", "Upstream"),
        ("flaresolverr-go-fake/timeout.json", "ChallengeTimeout"),
        ("flaresolverr-go-fake/ratelimit.json", "RateLimited"),
    ] {
        fake.then(recorded_http(path));
        let solved = solver
            .solve(&flarefeed::solver::SolveRequest::new("f", FEED_URL, None))
            .await;
        match (solved, expect) {
            (Ok(solution), "ok") => assert!(solution.response.is_some(), "{path}"),
            (Err(error), _) => {
                let debug = format!("{error:?}");
                assert!(debug.starts_with(&format!("{expect} ")), "{path}: {debug}");
                let text = error.to_string();
                assert!(!text.contains('\n'), "{path}: {text:?}");
                assert!(!text.contains("malformed"), "{path}: JSON is never malformed: {text}");
            }
            (Ok(_), _) => panic!("{path} should fail as {expect}"),
        }
    }
    let limited = solve_err(&fake, recorded_http("flaresolverr-go-fake/ratelimit.json")).await;
    assert!(
        limited.to_string().contains("retry after 60 s"),
        "the wait is named: {limited}"
    );
    let detail = solve_err(&fake, recorded_http("flarebypasser-0.1.52/bogus.json")).await;
    assert!(detail.to_string().contains("body.url: Field required"), "{detail}");
    let unknown = solve_err(&fake, Action::Reply(200, r#"{"result": "fine"}"#.into())).await;
    assert!(
        matches!(unknown, SolverError::Unrecognised { .. }) && !unknown.to_string().contains("[solver] url"),
        "JSON of an unknown shape does not blame the url: {unknown}"
    );
}

/// Issue 18: with the default `session = "reuse"`, a solver that refuses `sessions.create`
/// (FlareBypasser's 422, an unknown command, Byparr's GET of nothing, a 404 or 405) is asked
/// without sessions from then on, after one `sessions.create` in all; a solver with sessions
/// (flaresolverr-go) keeps them.
#[tokio::test]
async fn a_solver_without_sessions_is_found_out_once() {
    use crate::helpers::fixtures::recorded_http;
    for (case, refusal) in [
        (
            "FlareBypasser 422",
            recorded_http("flarebypasser-0.1.52/sessions.create.json"),
        ),
        (
            "FlareBypasser unknown command",
            recorded_http("flarebypasser-0.1.52/sessions.create_with_url.json"),
        ),
        ("Byparr", recorded_http("byparr-fake/sessions.create.json")),
        ("Byparr answering a GET", recorded_http("byparr-fake/rss.json")),
        ("404", Action::Reply(404, r#"{"detail": "Not Found"}"#.into())),
        ("405", Action::Reply(405, "Method Not Allowed".into())),
    ] {
        let fake = FakeSolver::start().await;
        fake.on_command("sessions.create", refusal);
        fake.page(FEED_URL, recorded_http("flarebypasser-0.1.52/rss.json"));
        let solver = client(&fake.url, SessionPolicy::Reuse);
        for feed in ["a", "b", "c"] {
            let solved = solver
                .solve(&flarefeed::solver::SolveRequest::new(feed, FEED_URL, None))
                .await;
            assert!(solved.is_ok(), "{case}: {solved:?}");
        }
        assert!(solver.sessionless(), "{case}");
        let commands = fake.commands();
        let sessions = commands.iter().filter(|c| c.starts_with("sessions.")).count();
        assert_eq!(sessions, 1, "{case}: {commands:?}");
        assert_eq!(
            commands.iter().filter(|c| *c == "request.get").count(),
            3,
            "{case}: {commands:?}"
        );
    }

    let go = FakeSolver::start().await;
    go.on_command(
        "sessions.create",
        recorded_http("flaresolverr-go-fake/sessions.create.json"),
    );
    go.page(FEED_URL, recorded_http("flaresolverr-go-fake/rss.json"));
    let solver = client(&go.url, SessionPolicy::Reuse);
    solver
        .solve(&flarefeed::solver::SolveRequest::new("a", FEED_URL, None))
        .await
        .unwrap();
    assert!(!solver.sessionless());
    assert_eq!(
        go.commands(),
        ["sessions.create@flarefeed-a", "request.get@flarefeed-a"]
    );
}

/// Issue 18's pool: a 429 solver, a proxy answering 502 HTML, a solver that takes the
/// connection and never answers, and a healthy one. Every feed is solved, by the healthy one,
/// and none waits longer than maxTimeout and the margin for any broken solver before it.
#[tokio::test]
async fn a_pool_with_every_kind_of_broken_solver_still_serves_every_feed() {
    use crate::helpers::fixtures::recorded_http;
    use flarefeed::solver::SolverPool;
    let limited = FakeSolver::start().await;
    limited.on_command("request.get", recorded_http("flaresolverr-go-fake/ratelimit.json"));
    limited.on_command("sessions.create", recorded_http("flaresolverr-go-fake/ratelimit.json"));
    let proxy = FakeSolver::start().await;
    let bad_gateway = Action::Raw(
        b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: 24\r\nConnection: close\r\n\r\n<h1>502 Bad Gateway</h1>".to_vec(),
    );
    proxy.on_command("request.get", bad_gateway.clone());
    proxy.on_command("sessions.create", bad_gateway);
    let hung = FakeSolver::start().await;
    hung.on_command("request.get", Action::Hang);
    hung.on_command("sessions.create", Action::Hang);
    let healthy = FakeSolver::start().await;
    healthy.page(FEED_URL, recorded_http("flarebypasser-0.1.52/rss.json"));
    healthy.on_command(
        "sessions.create",
        recorded_http("flarebypasser-0.1.52/sessions.create.json"),
    );
    let urls = vec![
        limited.url.clone(),
        proxy.url.clone(),
        hung.url.clone(),
        healthy.url.clone(),
    ];
    let margin = Duration::from_secs(1);
    let max_timeout = Duration::from_secs(1);
    let settings = SolverSettings {
        url: urls[0].clone(),
        urls: urls.clone(),
        session: SessionPolicy::Reuse,
        max_timeout,
        startup_margin: margin,
        connect_timeout: Duration::from_secs(1),
        ..SolverSettings::default()
    };
    let pool = SolverPool::new(&settings);
    for i in 0..12 {
        let feed = format!("feed-{i}");
        let before_healthy = pool.order(&feed).iter().take_while(|url| **url != healthy.url).count() as u32;
        let started = Instant::now();
        let solution = pool
            .solve(&flarefeed::solver::SolveRequest::new(&feed, FEED_URL, None))
            .await
            .unwrap_or_else(|e| panic!("{feed}: {e}"));
        assert_eq!(solution.solver.as_deref(), Some(healthy.url.as_str()), "{feed}");
        let most = (max_timeout + margin) * before_healthy.max(1) + Duration::from_secs(2);
        assert!(started.elapsed() < most, "{feed} waited {:?}", started.elapsed());
    }
}
