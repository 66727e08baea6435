//! `template.yaml`: the configuration it builds must be one flarefeed accepts.

use flarefeed::config::{Bucket, Config, StoreLocation};

/// The TOML block of `FLAREFEED_CONFIG` (the one-feed configuration, when ConfigInBucket is
/// false), with `${…}` filled in as `sam deploy` would.
fn template_config(values: &[(&str, &str)]) -> String {
    let template = template_text();
    let start = template
        .find("FLAREFEED_CONFIG: !If")
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
        ("Interval", "15m"),
    ]);
    let config = Config::parse(&toml, "template.yaml", &|_| None).unwrap();
    assert_eq!(config.feeds[0].name, "feed");
    assert_eq!(config.feeds[0].interval, std::time::Duration::from_secs(900));
    assert_eq!(config.feeds[0].key, "feed.xml");
    assert!(
        matches!(config.store.location, StoreLocation::Bucket(Bucket { ref bucket, endpoint: None, path_style: false }) if bucket == "my-stack-feedsbucket-1a2b3c")
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
        ("Interval", "1h"),
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

/// The YAML text of one parameter's or resource's block: its `  <name>:` line and every more
/// indented line after it.
fn block(template: &str, name: &str) -> String {
    let head = format!("  {name}:");
    let mut lines = template.lines().skip_while(|l| *l != head);
    let first = lines.next().unwrap_or_else(|| panic!("{name} in template.yaml"));
    let body: Vec<&str> = lines.take_while(|l| l.is_empty() || l.starts_with("   ")).collect();
    format!("{first}\n{}\n", body.join("\n"))
}

#[test]
fn failed_ticks_are_not_retried_and_land_in_a_queue() {
    let template = template_text();
    let function = block(&template, "FlarefeedFunction");
    assert!(
        function.contains("EventInvokeConfig:\n        MaximumRetryAttempts: 0\n"),
        "{function}"
    );
    assert!(function.contains("MaximumEventAgeInSeconds: 600"));
    assert!(
        function.contains("OnFailure:\n            Type: SQS\n            Destination: !GetAtt FailedInvocations.Arn")
    );
    let role = block(&template, "FunctionRole");
    assert!(role.contains("Action: sqs:SendMessage\n                  Resource: !GetAtt FailedInvocations.Arn"));
    assert!(block(&template, "FailedInvocations").contains("Type: AWS::SQS::Queue"));
}

#[test]
fn list_bucket_is_granted_without_a_prefix_condition_and_objects_are_scoped() {
    let template = template_text();
    let function = block(&template, "FunctionRole");
    let list = &function[function.find("Sid: TellMissingFromForbidden").unwrap()..];
    let list = &list[..list.find("- Sid:").unwrap()];
    assert!(list.contains("Action: s3:ListBucket"));
    assert!(!list.contains("Condition"), "{list}");
    let objects = &function[function.find("Sid: ReadAndWriteFeedsAndStatusRecords").unwrap()..];
    let objects = &objects[..objects.find("- Sid:").unwrap()];
    assert!(objects.contains("${Prefix}${FeedName}.xml") && objects.contains("${Prefix}status/*"));
    // The whole prefix only when the configuration in the bucket names the feeds, and never a
    // write of that configuration.
    let whole = objects
        .find("${Prefix}*")
        .expect("the prefix for a configuration in the bucket");
    assert!(objects[..whole].contains("- UseBucketConfig"), "{objects}");
    let deny = &function[function.find("Sid: ConfigurationIsReadOnly").unwrap()..];
    assert!(
        deny.contains("Effect: Deny")
            && deny.contains("Action: s3:PutObject")
            && deny.contains("${Prefix}flarefeed.toml")
    );
}

#[test]
fn logs_are_kept_for_a_set_time() {
    let template = template_text();
    assert!(block(&template, "LogRetentionDays").contains("Default: 30"));
    assert!(block(&template, "FunctionLogGroup").contains("RetentionInDays: !Ref LogRetentionDays"));
    assert!(block(&template, "FlarefeedFunction").contains("LoggingConfig:\n        LogGroup: !Ref FunctionLogGroup"));
}

/// Every parameter interpolated into the TOML refuses what would break out of a TOML string.
#[test]
fn interpolated_parameters_cannot_break_the_toml() {
    let template = template_text();
    let pattern = |name: &str| {
        let block = block(&template, name);
        let line = block
            .lines()
            .find_map(|l| l.trim().strip_prefix("AllowedPattern: "))
            .unwrap_or_else(|| panic!("{name} has no AllowedPattern"));
        // YAML single- or double-quoted scalar to the regex it holds.
        if let Some(single) = line.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) {
            single.replace("''", "'")
        } else {
            serde_json::from_str::<String>(line).unwrap()
        }
    };
    let check = |name: &str, good: &[&str], bad: &[&str]| {
        let regex = pattern(name);
        let script = "import json, re, sys\nr, good, bad = json.load(sys.stdin)\nprint(json.dumps([[v for v in good if not re.fullmatch(r, v)], [v for v in bad if re.fullmatch(r, v)]]))";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(&(regex.clone(), good, bad)).unwrap().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let (refused, passed): (Vec<String>, Vec<String>) = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            refused.is_empty() && passed.is_empty(),
            "{name} {regex}: good refused {refused:?}, bad passed {passed:?}"
        );
    };
    let breakers = ["x\"y", "x\\y", "x\ny", "x\" injected = \"1"];
    for url_param in ["SolverUrl", "FeedUrl"] {
        let bad: Vec<String> = breakers.iter().map(|b| format!("https://h/{b}")).collect();
        let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
        check(
            url_param,
            &[
                "https://solver.example.com/v1",
                "http://user:p%40ss@10.0.0.1:8191/v1?x=1",
            ],
            &bad,
        );
    }
    check("CacheControl", &["public, max-age=300", "no-cache"], &breakers);
    check("ExistingBucketName", &["", "my-feeds.example"], &breakers);
    check("Prefix", &["", "feeds/", "a/b/"], &breakers);
    check("FeedName", &["feed", "news-1"], &breakers);
    check(
        "FeedInterval",
        &["", "15m", "90s", "2h", "1d"],
        &[&breakers[..], &["15", "1.5h", "15 m"]].concat(),
    );
    // What a deployment from before the fleet passed: only rate() in units the template can
    // turn into an interval.
    check(
        "ScheduleExpression",
        &["rate(15 minutes)", "rate(1 minute)", "rate(2 hours)", "rate(1 day)"],
        &[
            &breakers[..],
            &["cron(0 * * * ? *)", "rate(15 weeks)", "rate(-1 minutes)"],
        ]
        .concat(),
    );
}

/// The fleet's shape: a tick a minute, a FIFO queue to the function with partial batch
/// responses and a concurrency cap, dead letters, and the staleness alarm; no per-feed schedule.
#[test]
fn the_fleet_is_a_tick_a_fifo_queue_and_an_alarm() {
    let template = template_text();
    let function = block(&template, "FlarefeedFunction");
    let tick = &function[function
        .find("Tick:\n          Type: ScheduleV2")
        .expect("the tick schedule")..];
    assert!(tick.contains("ScheduleExpression: rate(1 minute)"));
    assert!(tick.contains(r#"Input: '{"tick": "<aws.scheduler.scheduled-time>", "every": "1m"}'"#));
    assert_eq!(
        function.matches("Type: ScheduleV2").count(),
        1,
        "per-feed schedules are gone"
    );
    let worker = &function[function
        .find("Refreshes:\n          Type: SQS")
        .expect("the queue's event source mapping")..];
    for line in [
        "Queue: !GetAtt RefreshQueue.Arn",
        "BatchSize: 1",
        "FunctionResponseTypes: [ReportBatchItemFailures]",
        "MaximumConcurrency: !Ref SolverSlots",
    ] {
        assert!(worker.contains(line), "{line}");
    }
    assert!(function.contains("FLAREFEED_QUEUE_URL: !Ref RefreshQueue"));

    let queue = block(&template, "RefreshQueue");
    assert!(queue.contains("FifoQueue: true") && queue.contains("ContentBasedDeduplication: false"));
    assert!(queue.contains("QueueName: !Sub ${AWS::StackName}-refresh.fifo"));
    let timeout: u64 = function
        .lines()
        .find_map(|l| l.trim().strip_prefix("Timeout: "))
        .unwrap()
        .parse()
        .unwrap();
    let visibility: u64 = queue
        .lines()
        .find_map(|l| l.trim().strip_prefix("VisibilityTimeout: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} s < 6 x the function's {timeout} s"
    );
    assert!(
        queue.contains("deadLetterTargetArn: !GetAtt RefreshDeadLetters.Arn") && queue.contains("maxReceiveCount: 5")
    );
    assert!(block(&template, "RefreshDeadLetters").contains("FifoQueue: true"));
    assert!(block(&template, "SolverSlots").contains("MinValue: 2"));

    let alarm = block(&template, "StaleFeedsAlarm");
    for line in [
        "MetricName: StaleSeconds",
        "Namespace: flarefeed",
        "Stat: Maximum",
        "Threshold: !Ref StaleAfterMinutes",
        "AlarmActions: [!Ref AlertTopic]",
    ] {
        assert!(alarm.contains(line), "{line}");
    }
    assert!(block(&template, "StaleAfterMinutes").contains("Default: 360"));
    assert!(block(&template, "AlertEmailSubscription").contains("Condition: HasAlertEmail"));
}

/// ScheduleExpression, the parameter of a single feed before the fleet, still sets its interval:
/// the template's Split/Select chain, replayed, turns each accepted rate() into an interval
/// flarefeed parses to the same duration.
#[test]
fn a_schedule_expression_from_before_the_fleet_becomes_the_interval() {
    let template = template_text();
    let function = block(&template, "FlarefeedFunction");
    assert!(function.contains("!If [RateInHours, h, !If [RateInDays, d, m]]"));
    assert!(template.contains("HasFeedInterval: !Not [!Equals [!Ref FeedInterval, \"\"]]"));
    for (expression, seconds) in [
        ("rate(15 minutes)", 900),
        ("rate(1 minute)", 60),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86_400),
    ] {
        // !Select [1, !Split ["(", …]], then !Select [0, !Split [")", …]], then split on " ".
        let inner = expression.split('(').nth(1).unwrap().split(')').next().unwrap();
        let (number, unit) = inner.split_once(' ').unwrap();
        let suffix = match unit {
            "hour" | "hours" => "h",
            "day" | "days" => "d",
            _ => "m",
        };
        let interval = flarefeed::config::parse_duration(&format!("{number}{suffix}"));
        assert_eq!(interval, Some(std::time::Duration::from_secs(seconds)), "{expression}");
    }
}

/// Finding 12: the function has a role of its own whose SQS permissions name the refresh queue
/// only; SolverSlots stays below the reserved concurrency for every value it may take; a
/// message gets 5 receives; the dead-letter queue, failed invocations and stopped ticks alarm;
/// and StaleSeconds' missing data suits feeds of any interval.
#[test]
fn the_template_keeps_least_privilege_and_its_limits() {
    let template = template_text();
    let function = block(&template, "FlarefeedFunction");
    assert!(function.contains("Role: !GetAtt FunctionRole.Arn"), "{function}");
    assert!(
        !function.contains("Policies:"),
        "SAM would add its SQS policy to a role it makes"
    );
    let role = block(&template, "FunctionRole");
    for wildcard in ["Resource: \"*\"", "Resource: '*'", "Resource: *"] {
        assert!(!role.contains(wildcard), "{wildcard} in {role}");
    }
    let sqs = &role[role.find("sqs:ReceiveMessage").expect("the worker's receive")..];
    let resource = sqs.lines().nth(1).unwrap().trim();
    assert_eq!(resource, "Resource: !GetAtt RefreshQueue.Arn");
    assert!(!role.contains("AWSLambdaSQSQueueExecutionRole") && !role.contains("ManagedPolicyArns"));

    // Every SolverSlots the parameter allows has a reserved concurrency above it.
    let slots = block(&template, "SolverSlots");
    let bound = |key: &str| -> u32 {
        slots
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} on SolverSlots"))
            .trim()
            .parse()
            .unwrap()
    };
    let mapping = block(&template, "Concurrency");
    for n in bound("MinValue:")..=bound("MaxValue:") {
        let row = mapping
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("\"{n}\": {{Reserved: ")))
            .unwrap_or_else(|| panic!("no reserved concurrency for SolverSlots {n}"));
        let reserved: u32 = row.trim_end_matches('}').parse().unwrap();
        assert!(reserved >= n + 2, "SolverSlots {n}: reserved {reserved}");
    }
    assert!(function.contains("ReservedConcurrentExecutions: !FindInMap [Concurrency, !Ref SolverSlots, Reserved]"));
    assert!(function.contains("MaximumConcurrency: !Ref SolverSlots"));

    let receives: u32 = block(&template, "RefreshQueue")
        .lines()
        .find_map(|l| l.trim().strip_prefix("maxReceiveCount: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(receives >= 5, "maxReceiveCount {receives}");

    for (alarm, watches) in [
        ("DeadLettersAlarm", "Value: !GetAtt RefreshDeadLetters.QueueName"),
        ("FailedInvocationsAlarm", "Value: !GetAtt FailedInvocations.QueueName"),
        ("TicksStoppedAlarm", "MetricName: Queued"),
    ] {
        let alarm = block(&template, alarm);
        assert!(
            alarm.contains(watches) && alarm.contains("AlarmActions: [!Ref AlertTopic]"),
            "{alarm}"
        );
    }
    let stale = block(&template, "StaleFeedsAlarm");
    assert!(stale.contains("TreatMissingData: ignore"), "{stale}");

    // The tick says how often it fires, and says it truly.
    let tick = &function[function.find("Tick:\n").unwrap()..];
    assert!(tick.contains("ScheduleExpression: rate(1 minute)"));
    assert!(tick.contains("\"every\": \"1m\""), "{tick}");
}

/// Issue 19: the dashboard's body is JSON once CloudFormation fills it in, and every metric it
/// draws is one the function's EMF lines declare.
#[test]
fn the_dashboard_draws_metrics_the_function_emits() {
    use flarefeed::outcome::{Outcome, Report};
    use flarefeed::status::StatusRecord;
    let template = template_text();
    let start = template.find("DashboardBody: !Sub |\n").expect("a dashboard") + "DashboardBody: !Sub |\n".len();
    let end = start + template[start..].find("\n\n").unwrap();
    let body: String = template[start..end]
        .lines()
        .map(|l| l.get(8..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("${AWS::Region}", "eu-west-1")
        .replace("${StaleAfterMinutes}", "360");
    assert!(!body.contains("${"), "an unfilled parameter: {body}");
    let dashboard: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut drawn = std::collections::BTreeSet::new();
    for widget in dashboard["widgets"].as_array().unwrap() {
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            if metric[0] == "flarefeed" {
                drawn.insert(metric[1].as_str().unwrap().to_string());
            } else if let Some(expression) = metric[0]["expression"].as_str()
                && let Some(at) = expression.find("MetricName=\"")
            {
                let name = &expression[at + 12..];
                drawn.insert(name[..name.find('"').unwrap()].to_string());
            }
        }
    }
    let feed = flarefeed::config::FeedConfig::new("news", "https://site.test/feed");
    let mut record = StatusRecord::never(&feed);
    record.last_success = Some(time::OffsetDateTime::now_utc());
    let report = Report {
        feed: "news".into(),
        outcome: Outcome::Updated,
        location: "x".into(),
        kind: None,
        items: Some(1),
        bytes: Some(1),
        solver_ms: Some(1),
        total_ms: 1,
        final_url: None,
        solver: None,
        route: Some(flarefeed::fetch::Route::Solver),
        page: None,
    };
    let document = flarefeed::metrics::emf(&report, Some(&record), time::OffsetDateTime::now_utc());
    let mut declared: std::collections::BTreeSet<String> = document["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_string())
        .collect();
    declared.insert("Direct".into()); // declared on a direct refresh, as Solver is here
    for name in &drawn {
        assert!(
            declared.contains(name),
            "the dashboard draws {name}, which no EMF line declares: {declared:?}"
        );
    }
    assert!(drawn.len() >= 6, "{drawn:?}");
}

/// Issue 27, finding 13: in an existing (shared) bucket the function's `${Prefix}*` grant would
/// be every key of the bucket with an empty prefix; a rule refuses that deployment.
#[test]
fn a_shared_bucket_needs_a_prefix() {
    let template = template_text();
    let rule = block(&template, "SharedBucketNeedsPrefix");
    assert!(
        rule.contains("RuleCondition: !Not [!Equals [!Ref ExistingBucketName, \"\"]]"),
        "{rule}"
    );
    assert!(rule.contains("Assert: !Not [!Equals [!Ref Prefix, \"\"]]"), "{rule}");
}

/// Issue 27, finding 13 (CDN): the page's JSON link works through CloudFront. The summary is
/// `index.json` beside `index.html`, which the function may write and CloudFront may serve,
/// while the status records (`status/*.json`) stay private.
#[test]
fn the_sites_json_is_served_and_the_records_are_not() {
    let template = template_text();
    let role = block(&template, "FunctionRole");
    assert!(role.contains("${Prefix}index.json"), "{role}");
    let policy = block(&template, "FeedsBucketPolicy");
    let deny = &policy[policy.find("Sid: StatusRecordsStayPrivate").unwrap()..];
    let deny = &deny[..deny.find("- Sid:").unwrap_or(deny.len())];
    assert!(
        deny.contains("Effect: Deny") && deny.contains("${Prefix}status/*.json"),
        "{deny}"
    );
    assert_eq!(flarefeed::config::SITE_INDEX, "index.json");
    assert!(
        flarefeed::site::render_page(&flarefeed::site::Index {
            title: "t".into(),
            generated: time::OffsetDateTime::UNIX_EPOCH,
            feeds: vec![],
        })
        .contains("<a href=\"index.json\">JSON</a>")
    );
}
