//! Links the `flarefeed` binary as a PIE with packed relative relocations (`DT_RELR`) on x86_64
//! Linux with glibc 2.36 or later.
//!
//! Why: a PIE binary of this size (the AWS SDK) carries about 42,000 relative relocations, which
//! the loader applies at every start. As plain `RELA` entries they are 1 MB of table read and
//! 0.7 MB of pointers written, 2 MB of the process's baseline; packed, the table is 11 KB, and
//! the baseline is within 0.5 MB of a non-PIE link's. A non-PIE link saved that too, but loaded
//! the executable's own image, TLS and its C code (aws-lc) included, at a fixed address in
//! `flarefeed run`, a long-lived process that parses what hostile sites send (issue 27): the
//! image stays randomised. Measured with `/usr/bin/time` on the 10 MB bench feed, `flarefeed
//! format`'s peak: non-PIE 17,084 KiB, PIE 19,556 KiB, PIE with `DT_RELR` 17,236 KiB.
//!
//! Left alone: other targets, builds with a linker of their own (the Lambda is built for arm64
//! by cargo-lambda's zig, which sets `CARGO_TARGET_<TRIPLE>_LINKER`), and a glibc older than
//! 2.36, whose loader does not read `DT_RELR` (such a build is a plain PIE).
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native_gnu = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let own_linker = std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    if native_gnu && !own_linker && glibc_reads_relr() {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this host's glibc is 2.36 or later (`getconf GNU_LIBC_VERSION`: `glibc 2.36`): the
/// first whose loader applies `DT_RELR`, and whose libc names the version a linker requires for
/// it.
fn glibc_reads_relr() -> bool {
    let Ok(out) = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
