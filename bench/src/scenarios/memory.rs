//! Peak resident memory (`VmHWM`) of this process, which hosts the directory and the
//! clients, and of the nats-server it started.

use std::path::Path;

/// `VmHWM` of process `pid` (`None`: this process) in MiB, if `/proc` tells.
pub fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// The pid of the nats-server whose command line names `store_dir` (the fixture passes it
/// as `-sd`, and the temp dir's name is unique).
pub fn nats_server_pid(store_dir: &Path) -> Option<u32> {
    let needle = store_dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_server = args.first().is_some_and(|a| a.ends_with("nats-server"));
            (is_server && args.contains(&needle)).then_some(pid)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_peak() {
        assert!(peak_rss_mib(None).is_some_and(|mib| mib > 0.0));
    }
}
