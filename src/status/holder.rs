//! Who holds a claim: a process, named so that another process can tell whether it still runs.

use serde::{Deserialize, Serialize};

/// The process that holds a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    /// Linux's `/proc/sys/kernel/random/boot_id`: a pid names the same process only within
    /// one boot of one host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    pub pid: u32,
    /// The PID namespace the pid is in (`/proc/self/ns/pid`, `pid:[4026531836]`): containers
    /// that share a hostname on one kernel see each other's pids as absent, which says nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<String>,
    /// The process's start time, in clock ticks after boot (`/proc/<pid>/stat`'s 22nd field):
    /// a reused pid is another process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

impl Holder {
    /// This process.
    pub fn this_process() -> &'static Holder {
        static THIS: std::sync::OnceLock<Holder> = std::sync::OnceLock::new();
        THIS.get_or_init(|| {
            let read = |path: &str| {
                std::fs::read_to_string(path)
                    .ok()
                    .map(|text| text.trim().to_string())
                    .filter(|text| !text.is_empty())
            };
            Holder {
                host: read("/proc/sys/kernel/hostname")
                    .or_else(|| std::env::var("HOSTNAME").ok())
                    .unwrap_or_else(|| "unknown".into()),
                boot_id: read("/proc/sys/kernel/random/boot_id"),
                pid: std::process::id(),
                pid_ns: std::fs::read_link("/proc/self/ns/pid")
                    .ok()
                    .map(|link| link.to_string_lossy().into_owned()),
                started: start_time("self"),
            }
        })
    }

    /// Whether this is a process of this host, in this boot and this PID namespace, that no
    /// longer runs: its pid is absent, or now another process's (another start time). Only
    /// Linux can tell (`/proc/<pid>`). Whatever this process cannot see for sure (another
    /// namespace, or a holder that did not say which, another host) is unknown, not gone: the
    /// claim is left to expire.
    pub fn is_gone(&self) -> bool {
        let this = Self::this_process();
        let same_boot = this.boot_id.is_some() && this.boot_id == self.boot_id && this.host == self.host;
        let same_namespace = this.pid_ns.is_some() && this.pid_ns == self.pid_ns;
        if !(same_boot && same_namespace && cfg!(target_os = "linux")) {
            return false;
        }
        match (start_time(&self.pid.to_string()), self.started) {
            (None, _) => !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
            (Some(now), Some(then)) => now != then,
            (Some(_), None) => false,
        }
    }
}

/// The start time of process `pid` (`self` for this one), in clock ticks after boot: the 22nd
/// field of `/proc/<pid>/stat`, counted after the command name, which may hold spaces.
fn start_time(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3 onwards follow the name: the 22nd is the 20th of these.
    after_name.split_whitespace().nth(19)?.parse().ok()
}
