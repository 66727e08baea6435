//! Links the `flarefeed` binary as a plain (non-PIE) executable on x86_64 Linux with glibc.
//!
//! Why: a PIE binary of this size (the AWS SDK) carries about 42,000 relative relocations, which
//! the loader applies at every start: 1 MB of relocation table read and 0.7 MB of pointers
//! written, about 1.6 MB of the process's 7.7 MB baseline, before `main` runs. Issue 20 bounds
//! `flarefeed format`'s peak RSS to 1.8 times its input, which is the input plus the baseline;
//! measured on the 10 MB bench feed, 1.83× as PIE and 1.70× without. The cost: the executable's
//! own image loads at a fixed address (libraries, heap and stack are still randomised). The code
//! is still compiled position-independent; only the final link differs.
//!
//! Left alone: other targets (the Lambda is built for arm64 by cargo-lambda's own linker, which
//! sets `CARGO_TARGET_<TRIPLE>_LINKER`), and any build with `FLAREFEED_PIE=1`.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=FLAREFEED_PIE");
    println!("cargo::rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let native_gnu = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let own_linker = std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    if native_gnu && !own_linker && var("FLAREFEED_PIE") != "1" {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}
