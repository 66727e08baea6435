//! The configuration: parsing, validation, overrides and names, with the environment passed in.

use std::time::Duration;

use super::*;
use crate::feed::DEFAULT_MAX_BYTES;
use crate::solver::{SessionPolicy, SolverSettings};
use std::path::Path;

#[test]
fn urls_lose_their_secrets_in_configuration_errors() {
    let error = Config::parse("[solver]\nurl = \"ftp://user:pa55@h/v1\"\n", "test", &|_: &str| None)
        .unwrap_err()
        .to_string();
    assert!(!error.contains("pa55"), "{error}");
}

#[test]
fn session_prefixes_differ_per_deployment() {
    let parse = |store: &str, solver: &str| {
        let toml = format!(
            "[solver]\n{solver}\n[store]\n{store}\n[[feeds]]\nname = \"feed\"\nurl = \"https://example.com/f\"\n"
        );
        Config::parse(&toml, "test", &|_: &str| None).map(|c| c.solver.session_prefix)
    };
    let a = parse("bucket = \"team-a\"", "").unwrap();
    let b = parse("bucket = \"team-b\"", "").unwrap();
    let a_prefixed = parse("bucket = \"team-a\"\nprefix = \"x/\"", "").unwrap();
    let local = parse("dir = \"public\"", "").unwrap();
    assert!(a.starts_with("flarefeed-") && a.len() == "flarefeed-".len() + 8, "{a}");
    assert_eq!(a, parse("bucket = \"team-a\"", "").unwrap(), "stable across starts");
    assert!(a != b && a != a_prefixed && a != local);
    assert_eq!(parse("dir = \"public\"", "session_prefix = \"mine\"").unwrap(), "mine");
    assert!(parse("dir = \"public\"", "session_prefix = \"a b\"").is_err());
}

#[test]
fn reply_cap_follows_lambda_memory() {
    let inline = "[solver]\nurl = \"http://127.0.0.1:8191/v1\"\n[store]\ndir = \"public\"\n[[feeds]]\nname = \"a\"\nurl = \"https://example.com/feed\"\n";
    let with = |memory: Option<&str>, toml: &str| {
        let memory = memory.map(str::to_string);
        let env = move |key: &str| {
            (key == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .then(|| memory.clone())
                .flatten()
        };
        Config::parse(toml, "test", &env).unwrap().solver
    };
    assert_eq!(with(None, inline).max_reply_bytes, DEFAULT_MAX_BYTES);
    let lambda = with(Some("128"), inline);
    assert_eq!(lambda.max_reply_bytes, 29 * 1024 * 1024);
    assert_eq!(lambda.function_memory_mb, Some(128));
    assert_eq!(with(Some("1024"), inline).max_reply_bytes, 328 * 1024 * 1024);
    let configured = inline.replace("[store]", "max_reply_mb = 5\n[store]");
    assert_eq!(with(None, &configured).max_reply_bytes, 5 * 1024 * 1024);
    assert_eq!(with(Some("1024"), &configured).max_reply_bytes, 5 * 1024 * 1024);
    let too_big = inline.replace("[store]", "max_reply_mb = 500\n[store]");
    assert_eq!(with(Some("128"), &too_big).max_reply_bytes, 29 * 1024 * 1024);
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test", &no_env)
}

#[test]
fn defaults_fill_everything_in() {
    let config = parse("[[feeds]]\nname = \"nodeseek\"\nurl = \"https://www.nodeseek.com/rss.xml\"\n").unwrap();
    let solver = SolverSettings {
        session_prefix: default_session_prefix(&StoreConfig::default()),
        ..SolverSettings::default()
    };
    assert_eq!(config.solver, solver);
    assert_eq!(config.store, StoreConfig::default());
    assert_eq!(
        config.feeds,
        [FeedConfig::new("nodeseek", "https://www.nodeseek.com/rss.xml")]
    );
}

#[test]
fn every_documented_key_is_read() {
    let config = parse(
        r#"
            [solver]
            url = "http://solver:8191/v1"
            max_timeout_ms = 30000
            session = "none"
            session_ttl_minutes = 5
            [store]
            bucket = "my-feeds"
            prefix = "feeds"
            endpoint = "http://127.0.0.1:9000"
            path_style = true
            cache_control = "public, max-age=60"
            [[feeds]]
            name = "a"
            url = "https://a.test/rss"
            key = "x/a.rss"
            min_items = 3
            min_interval_s = 10
            "#,
    )
    .unwrap();
    assert_eq!(config.solver.max_timeout, Duration::from_secs(30));
    assert_eq!(config.solver.session, SessionPolicy::None);
    assert_eq!(config.store.prefix, "feeds/");
    assert_eq!(
        config.store.location,
        StoreLocation::Bucket(Bucket {
            bucket: "my-feeds".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            path_style: true
        })
    );
    assert_eq!(config.feeds[0].key, "x/a.rss");
    assert_eq!(config.feeds[0].min_items, 3);
    assert_eq!(config.feeds[0].min_interval, Duration::from_secs(10));
}

#[test]
fn several_solvers_instead_of_one() {
    let feeds = "[[feeds]]\nname = \"a\"\nurl = \"https://a.test/f\"\n";
    let config = Config::parse(feeds, "test", &|_| None).unwrap();
    assert_eq!(config.solver.urls, ["http://localhost:8191/v1"]);
    let pool = format!("[solver]\nurls = [\"http://10.0.0.1:8191/v1\", \"http://10.0.0.2:8191/v1\"]\n{feeds}");
    let config = Config::parse(&pool, "test", &|_| None).unwrap();
    assert_eq!(config.solver.urls.len(), 2);
    assert_eq!(config.solver.url, "http://10.0.0.1:8191/v1");
    let env = |key: &str| (key == "FLAREFEED_SOLVER_URL").then(|| "http://10.0.0.9:8191/v1".to_string());
    assert_eq!(
        Config::parse(&pool, "test", &env).unwrap().solver.urls,
        ["http://10.0.0.9:8191/v1"]
    );
    for (bad, words) in [
        (
            format!("[solver]\nurl = \"http://x:1/v1\"\nurls = [\"http://y:1/v1\"]\n{feeds}"),
            "either url or urls",
        ),
        (format!("[solver]\nurls = []\n{feeds}"), "lists no solver"),
        (
            format!("[solver]\nurls = [\"http://y:1/v1\", \"http://y:1/v1\"]\n{feeds}"),
            "listed twice",
        ),
        (format!("[solver]\nurls = [\"ftp://y\"]\n{feeds}"), "solver.urls[0]"),
    ] {
        let error = Config::parse(&bad, "test", &|_| None).unwrap_err().to_string();
        assert!(error.contains(words), "{error:?} should say {words:?}");
    }
}

#[test]
fn durations_intervals_and_the_fleet_section() {
    for (text, seconds) in [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86_400), (" 1m ", 60)] {
        assert_eq!(parse_duration(text), Some(Duration::from_secs(seconds)), "{text}");
    }
    for text in ["", "15", "m", "1.5h", "-1m", "15 m", "1w", "15min"] {
        assert_eq!(parse_duration(text), None, "{text}");
    }
    let feeds = "[[feeds]]\nname = \"a\"\nurl = \"https://a.test/f\"\n";
    let config = Config::parse(feeds, "test", &|_| None).unwrap();
    assert_eq!(config.feeds[0].interval, DEFAULT_INTERVAL);
    assert_eq!(config.fleet, FleetConfig::default());

    let text = format!(
        "[fleet]\nqueue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q.fifo\"\ntick = \"30s\"\nmax_backoff = \"6h\"\n{feeds}interval = \"2h\"\n"
    );
    let config = Config::parse(&text, "test", &|_| None).unwrap();
    assert_eq!(config.feeds[0].interval, Duration::from_secs(7200));
    assert_eq!(config.fleet.tick, Duration::from_secs(30));
    assert_eq!(config.fleet.max_backoff, Duration::from_secs(6 * 3600));
    let env = |key: &str| (key == "FLAREFEED_QUEUE_URL").then(|| "http://127.0.0.1:5000/1/other.fifo".to_string());
    let config = Config::parse(&text, "test", &env).unwrap();
    assert_eq!(
        config.fleet.queue_url.as_deref(),
        Some("http://127.0.0.1:5000/1/other.fifo")
    );

    for (bad, words) in [
        (format!("{feeds}interval = \"30s\""), "shorter than the minimum, 60s"),
        (format!("{feeds}interval = \"soon\""), "not a duration"),
        (format!("[fleet]\ntick = \"1x\"\n{feeds}"), "fleet.tick"),
        // Finding 10: absurd durations are refused, with the bound.
        (
            format!("{feeds}interval = \"9999999d\""),
            "longer than the maximum, 30d",
        ),
        (
            format!("[fleet]\nmax_backoff = \"9999999d\"\n{feeds}"),
            "fleet.max_backoff",
        ),
        (
            format!("[fleet]\ntick = \"2h\"\n{feeds}"),
            "longer than the maximum, 1h",
        ),
        (format!("{feeds}min_interval_s = 99999999999"), "min_interval_s"),
        (format!("[fetch]\ntimeout = \"1d\"\n{feeds}"), "maximum, 15m"),
        (
            format!("[fleet]\nqueue_url = \"not a url\"\n{feeds}"),
            "fleet.queue_url",
        ),
    ] {
        let error = Config::parse(&bad, "test", &|_| None).unwrap_err().to_string();
        assert!(error.contains(words), "{error:?} should say {words:?}");
    }
}

#[test]
fn errors_name_the_key() {
    let cases = [
        ("[solver]\nurl = \"ftp://x\"", "solver.url"),
        ("[solver]\nmax_timeout_ms = 5", "solver.max_timeout_ms"),
        ("[store]\nbucket = \"b-b\"\ndir = \"x\"", "store"),
        ("[store]\nbucket = \"Bad_Bucket\"", "store.bucket"),
        ("[store]\nendpoint = \"http://x\"", "store.endpoint"),
        (
            "[[feeds]]\nname = \"Bad Name\"\nurl = \"https://a.test\"",
            "feeds[0].name",
        ),
        ("[[feeds]]\nname = \"a\"\nurl = \"not a url\"", "feeds[0].url"),
        (
            "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\nkey = \"../x\"",
            "feeds[0].key",
        ),
        (
            "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\nkey = \"status/a.json\"",
            "feeds[0].key",
        ),
        (
            "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\nkey = \"status\"",
            "feeds[0].key",
        ),
        (
            "[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\n[[feeds]]\nname = \"a\"\nurl = \"https://b.test\"",
            "feeds[1].name",
        ),
    ];
    for (text, key) in cases {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains(&format!("`{key}`")), "{text:?} gave {error}");
    }
    let unknown = parse("[solver]\nurll = \"x\"").unwrap_err().to_string();
    assert!(unknown.contains("urll"), "{unknown}");
    let wrong_type = parse("[solver]\nmax_timeout_ms = \"60s\"").unwrap_err().to_string();
    assert!(wrong_type.contains("max_timeout_ms"), "{wrong_type}");
    let policy = parse("[solver]\nsession = \"sometimes\"").unwrap_err().to_string();
    assert!(policy.contains("sometimes") && policy.contains("reuse"), "{policy}");
}

#[test]
fn environment_overrides_single_settings() {
    let env = |key: &str| match key {
        "FLAREFEED_SOLVER_URL" => Some("http://10.0.0.1:8191/v1".to_string()),
        "FLAREFEED_BUCKET" => Some("env-bucket".to_string()),
        _ => None,
    };
    let config = Config::parse("[store]\ndir = \"out\"", "test", &env).unwrap();
    assert_eq!(config.solver.url, "http://10.0.0.1:8191/v1");
    assert!(
        matches!(config.store.location, StoreLocation::Bucket(Bucket { ref bucket, .. }) if bucket == "env-bucket")
    );
}

#[test]
fn sources_are_taken_in_order() {
    let inline = "[[feeds]]\nname = \"inline\"\nurl = \"https://a.test\"";
    let env = |key: &str| (key == "FLAREFEED_CONFIG").then(|| inline.to_string());
    assert_eq!(Config::load(None, &env).unwrap().feeds[0].name, "inline");
    assert!(matches!(Config::load(None, &no_env), Err(ConfigError::Missing)));
    let missing = Config::load(Some(Path::new("/nonexistent/flarefeed.toml")), &env).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/flarefeed.toml"));
    let empty = |key: &str| (key == "FLAREFEED_CONFIG").then(|| "[solver]".to_string());
    assert!(Config::load(None, &empty).unwrap_err().to_string().contains("`feeds`"));
}

#[test]
fn url_mode_needs_no_configuration() {
    let config = Config::for_url("https://www.nodeseek.com/rss.xml", None, None, &no_env).unwrap();
    assert_eq!(
        config.feeds,
        [FeedConfig::new(
            "www-nodeseek-com-rss-xml",
            "https://www.nodeseek.com/rss.xml"
        )]
    );
    assert_eq!(config.store.location, StoreLocation::Dir("public".into()));
    assert_eq!(config.solver.url, "http://localhost:8191/v1");
    let named = Config::for_url("https://a.test/x", Some("mine"), None, &no_env).unwrap();
    assert_eq!(named.feeds[0].key, "mine.xml");
    assert!(Config::for_url("file:///etc/passwd", None, None, &no_env).is_err());
}

#[test]
fn unknown_feed_lists_the_names() {
    let config =
        parse("[[feeds]]\nname = \"a\"\nurl = \"https://a.test\"\n[[feeds]]\nname = \"b\"\nurl = \"https://b.test\"")
            .unwrap();
    assert!(config.feed("c").unwrap_err().to_string().contains("configured: a, b"));
}

#[test]
fn fetch_settings_and_request_options_are_read_and_checked() {
    let feeds = "[[feeds]]\nname = \"a\"\nurl = \"https://a.test/f\"\n";
    let config = parse(feeds).unwrap();
    assert_eq!(
        (config.fetch.mode, config.feeds[0].fetch),
        (FetchMode::Auto, FetchMode::Auto)
    );
    assert!(
        config
            .fetch
            .user_agent
            .starts_with(concat!("flarefeed/", env!("CARGO_PKG_VERSION")))
    );
    let text = format!(
        "[fetch]\nmode = \"solver\"\nreprobe_after = \"6h\"\ntimeout = \"5s\"\n{feeds}\
             fetch = \"direct\"\nuser_agent = \"r/1\"\nproxy = \"socks5://u:p@127.0.0.1:1080\"\nmax_timeout_ms = 9000\n\
             [feeds.headers]\nX-Api-Key = \"k3y\"\n[[feeds]]\nname = \"b\"\nurl = \"https://b.test/f\"\n"
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.fetch.reprobe_after, Duration::from_secs(6 * 3600));
    assert_eq!(config.fetch.timeout, Duration::from_secs(5));
    let (a, b) = (&config.feeds[0], &config.feeds[1]);
    assert_eq!((a.fetch, b.fetch), (FetchMode::Direct, FetchMode::Solver));
    assert_eq!(a.request.headers[0].1.expose(), "k3y");
    assert_eq!(a.request.max_timeout, Some(Duration::from_millis(9000)));
    assert!(
        !format!("{a:?}").contains("k3y") && !format!("{a:?}").contains("u:p"),
        "{a:?}"
    );
    let env = |key: &str| (key == "FLAREFEED_FETCH").then(|| "direct".to_string());
    assert_eq!(
        Config::parse(feeds, "test", &env).unwrap().feeds[0].fetch,
        FetchMode::Direct
    );
    for (bad, key) in [
        (
            format!("{feeds}[feeds.headers]\n\"Bad Name\" = \"x\"\n"),
            "feeds[0].headers.Bad Name",
        ),
        (
            format!("{feeds}[feeds.headers]\nX-A = \"a\\r\\nInjected: 1\"\n"),
            "feeds[0].headers.X-A",
        ),
        (format!("{feeds}proxy = \"ftp://p:1\"\n"), "feeds[0].proxy"),
        (format!("{feeds}max_timeout_ms = 10\n"), "feeds[0].max_timeout_ms"),
        (format!("{feeds}fetch = \"sometimes\"\n"), "sometimes"),
        (format!("[fetch]\ntimeout = \"0s\"\n{feeds}"), "fetch.timeout"),
    ] {
        let error = parse(&bad).unwrap_err().to_string();
        assert!(error.contains(key), "{bad:?} gave {error}");
        assert!(!error.contains("Injected: 1"), "a header value is repeated: {error}");
    }
}

#[test]
fn a_page_source_is_checked_and_every_error_names_its_key() {
    let feed = |tables: &str| {
        parse(&format!(
            "[[feeds]]\nname = \"board\"\nurl = \"https://forum.example/b\"\n{tables}"
        ))
    };
    let html = "[feeds.html]\nitem = \"li.post\"\ntitle = \"a.title\"\nlink = \"a.title@href\"\n";
    let config = feed(&format!(
        "{html}date = \"time@datetime\"\ndate_format = \"%d/%m/%Y %H:%M\"\ntimezone = \"+08:00\"\nid = \"@data-id\"\n"
    ))
    .unwrap();
    let Some(crate::scrape::Rules::Html(rules)) = &config.feeds[0].scrape else {
        panic!("html rules: {:?}", config.feeds[0].scrape)
    };
    assert_eq!(rules.id.as_ref().unwrap().attribute.as_deref(), Some("data-id"));
    assert_eq!(rules.dates.offset.local_minus_utc(), 8 * 3600);
    let message = |tables: &str| feed(tables).unwrap_err().to_string();
    let bad_item = message("[feeds.html]\nitem = \"li..post\"\ntitle = \"a\"\nlink = \"a@href\"\n");
    assert!(
        bad_item.contains("`feeds[0].html.item`") && bad_item.contains("\"li..post\" is not a CSS selector"),
        "{bad_item}"
    );
    let bad_link = message("[feeds.html]\nitem = \"li\"\ntitle = \"a\"\nlink = \"a[href@href\"\n");
    assert!(bad_link.contains("`feeds[0].html.link`"), "{bad_link}");
    let unknown = message(&format!("{html}titel = \"h2\"\n"));
    assert!(unknown.contains("unknown field `titel`"), "{unknown}");
    let both = message(&format!(
        "{html}[feeds.json]\nitems = \".\"\ntitle = \"t\"\nlink = \"u\"\n"
    ));
    assert!(
        both.contains("`feeds[0]`") && both.contains("both [feeds.html] and [feeds.json]"),
        "{both}"
    );
    let zone = message(&format!("{html}timezone = \"Asia/Shanghai\"\n"));
    assert!(zone.contains("`feeds[0].html.timezone`"), "{zone}");
    let no_link = message("[feeds.json]\nitems = \"data.posts\"\ntitle = \"title\"\n");
    assert!(
        no_link.contains("`feeds[0].json.link`") && no_link.contains("is required"),
        "{no_link}"
    );
    let template = message("[feeds.json]\nitems = \".\"\ntitle = \"t\"\nlink_template = \"https://x/{id\"\n");
    assert!(template.contains("`feeds[0].json.link_template`"), "{template}");
    let path = message("[feeds.json]\nitems = \"data..posts\"\ntitle = \"t\"\nlink = \"u\"\n");
    assert!(path.contains("`feeds[0].json.items`"), "{path}");
}
