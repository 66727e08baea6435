//! The tools the tests run besides flarefeed, provisioned by the tests themselves: on first use
//! a venv under `target/tmp/` gets `tests/fixtures/tools/requirements.txt` (moto's server, lxml)
//! from PyPI, once per set of requirements, so that `cargo test` on a machine with only Rust and
//! python3 needs nothing installed by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The venv's python: it has moto's server and lxml. Panics with one clear message when the venv
/// cannot be made (no python3, or PyPI out of reach).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(provision) {
        Ok(python) => python.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn requirements() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tools/requirements.txt")
}

/// Makes the venv unless it is there. Several test processes may race (nextest runs one per
/// test): each builds in a folder of its own and renames it into place; the first rename wins
/// and the others use it.
fn provision() -> Result<PathBuf, String> {
    use sha2::Digest;
    let wanted = std::fs::read(requirements()).map_err(|e| format!("reading the tools' requirements: {e}"))?;
    let key = hex::encode(&sha2::Sha256::digest(&wanted)[..6]);
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-tools");
    let venv = root.join(format!("venv-{key}"));
    let python = venv.join("bin/python");
    if venv.join("ready").exists() {
        return Ok(python);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let building = root.join(format!("building-{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    eprintln!(
        "test tools: making {} with {} (once; needs PyPI)",
        venv.display(),
        requirements().display()
    );
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&building),
        "python3 -m venv",
    )?;
    run(
        Command::new(building.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(requirements()),
        "pip install -r tests/fixtures/tools/requirements.txt",
    )?;
    std::fs::write(building.join("ready"), &wanted).map_err(|e| e.to_string())?;
    // A venv's scripts name its folder, so it is used from where it was built: the rename only
    // publishes the path; the interpreter in `bin/python` is found through `pyvenv.cfg`.
    match std::fs::rename(&building, &venv) {
        Ok(()) => {}
        Err(_) if venv.join("ready").exists() => {
            let _ = std::fs::remove_dir_all(&building);
        }
        Err(e) => return Err(format!("moving the test tools into {}: {e}", venv.display())),
    }
    Ok(python)
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command.output().map_err(|e| {
        format!("the tests provision their tools with python3, which did not run ({e}): install python3")
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "the tests could not provision their tools: `{what}` failed. They fetch moto[server] and lxml from PyPI once, into target/tmp/test-tools/: check that PyPI is reachable (proxy, PIP_INDEX_URL).\n{}",
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}
