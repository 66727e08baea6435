//! `template.yaml`: the configuration it builds must be one flarefeed accepts.

use flarefeed::config::{Config, StoreLocation};

/// The TOML block of `FLAREFEED_CONFIG: !Sub`, with `${…}` filled in as `sam deploy` would.
fn template_config(values: &[(&str, &str)]) -> String {
    let template = template_text();
    let start = template
        .find("FLAREFEED_CONFIG: !Sub")
        .expect("FLAREFEED_CONFIG in template.yaml");
    let block = &template[start..];
    let body = &block[block.find("- |\n").unwrap() + 4..block.find("- BucketName:").unwrap()];
    let indent = body.lines().find(|l| !l.trim().is_empty()).unwrap().len()
        - body.lines().find(|l| !l.trim().is_empty()).unwrap().trim_start().len();
    let mut toml: String = body
        .lines()
        .map(|l| l.get(indent..).unwrap_or("").to_string() + "\n")
        .collect();
    for (name, value) in values {
        toml = toml.replace(&format!("${{{name}}}"), value);
    }
    assert!(!toml.contains("${"), "unfilled parameter in\n{toml}");
    toml
}

#[test]
fn the_template_config_is_valid_with_its_defaults() {
    let toml = template_config(&[
        ("SolverUrl", "https://solver.example.test/v1"),
        ("MaxTimeoutMs", "60000"),
        ("SessionPolicy", "reuse"),
        ("BucketName", "my-stack-feedsbucket-1a2b3c"),
        ("Prefix", ""),
        ("CacheControl", "public, max-age=300"),
        ("FeedName", "feed"),
        ("FeedUrl", "https://www.nodeseek.com/rss.xml"),
    ]);
    let config = Config::parse(&toml, "template.yaml", &|_| None).unwrap();
    assert_eq!(config.feeds[0].name, "feed");
    assert_eq!(config.feeds[0].key, "feed.xml");
    assert!(
        matches!(config.store.location, StoreLocation::Bucket { ref bucket, endpoint: None, path_style: false } if bucket == "my-stack-feedsbucket-1a2b3c")
    );
    let with_prefix = template_config(&[
        ("SolverUrl", "http://10.0.0.5:8191/v1"),
        ("MaxTimeoutMs", "80000"),
        ("SessionPolicy", "none"),
        ("BucketName", "existing"),
        ("Prefix", "feeds/"),
        ("CacheControl", "public, max-age=60"),
        ("FeedName", "news"),
        ("FeedUrl", "https://news.example.test/rss"),
    ]);
    assert_eq!(
        Config::parse(&with_prefix, "template.yaml", &|_| None)
            .unwrap()
            .store
            .prefix,
        "feeds/"
    );
}

#[test]
fn the_function_timeout_covers_the_solver_budget() {
    let template = template_text();
    let timeout: u64 = template
        .lines()
        .find_map(|l| l.trim().strip_prefix("Timeout: "))
        .unwrap()
        .parse()
        .unwrap();
    let max: u64 = template
        .lines()
        .skip_while(|l| !l.contains("MaxTimeoutMs:"))
        .find_map(|l| l.trim().strip_prefix("MaxValue: "))
        .unwrap()
        .parse()
        .unwrap();
    let budget = max / 1000 + flarefeed::solver::STARTUP_MARGIN.as_secs() + flarefeed::handler::SAFETY_MARGIN.as_secs();
    assert!(
        timeout >= budget,
        "Timeout {timeout} s < maxTimeout {max} ms + margins ({budget} s)"
    );
}

#[test]
fn the_default_memory_takes_a_5_mb_feed_in_chromes_viewer_with_a_margin() {
    let template = template_text();
    let memory: u64 = template
        .lines()
        .skip_while(|l| l.trim() != "MemorySize:")
        .find_map(|l| l.trim().strip_prefix("Default: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(template.contains("MemorySize: !Ref MemorySize"));
    // Chrome's XML-viewer page of a 5 MB feed is about 15 MB, an 18.6 MB reply (bench/memory.py).
    let cap = flarefeed::config::reply_cap_for_memory(memory);
    assert!(
        cap >= 2 * 19 * 1024 * 1024,
        "a {memory} MB function caps replies at {cap} bytes"
    );
}

/// `template.yaml` as committed.
fn template_text() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap()
}
