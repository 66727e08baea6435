//! The real `flarefeed` binary, as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common::{fixture, fixture_path};

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
    for args in [&["--help"][..], &["format", "--help"], &["check", "--help"]] {
        let out = flarefeed().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: flarefeed"), "{args:?}");
    }
    let missing = flarefeed().args(["check", "/nonexistent/feed.xml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("/nonexistent/feed.xml"));
}
