//! This process and others, as Linux shows them in `/proc`, and the limits
//! that bound how many sockets a process may hold. Shared by the lab, the
//! load generators, `check` (which watches a student's server) and the
//! servers that raise their own open-file limit.

use std::io;

use serde::Serialize;

/// A process's memory, threads and open files, from `/proc/PID`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProcStatus {
    /// Resident memory (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Virtual memory (`VmSize`), KiB.
    pub vm_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors (a server's connections among them).
    pub open_files: u64,
    /// CPU time used so far, all threads, user and system, in milliseconds
    /// (the kernel counts it in 10 ms ticks).
    pub cpu_ms: u64,
}

impl ProcStatus {
    /// Reads the status of process `pid`.
    ///
    /// # Errors
    /// When the files cannot be read or lack the fields (not Linux, or the process is gone).
    pub fn of(pid: u32) -> io::Result<ProcStatus> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let status = ProcStatus::parse(&text)
            .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status lacks VmRSS")))?;
        let open_files = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let cpu_ms =
            cpu_ms(&stat).ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat is malformed")))?;
        Ok(ProcStatus { open_files, cpu_ms, ..status })
    }

    fn parse(text: &str) -> Option<ProcStatus> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        Some(ProcStatus {
            rss_kib: field("VmRSS:")?,
            vm_kib: field("VmSize:")?,
            threads: field("Threads:")?,
            open_files: 0,
            cpu_ms: 0,
        })
    }

    /// The larger of each field: the peaks of two samples.
    pub fn peak(self, other: ProcStatus) -> ProcStatus {
        ProcStatus {
            rss_kib: self.rss_kib.max(other.rss_kib),
            vm_kib: self.vm_kib.max(other.vm_kib),
            threads: self.threads.max(other.threads),
            open_files: self.open_files.max(other.open_files),
            cpu_ms: self.cpu_ms.max(other.cpu_ms),
        }
    }
}

/// `utime + stime` from a `/proc/PID/stat` line, in milliseconds. Both are in
/// clock ticks of `USER_HZ`, which Linux fixes at 100 for user space.
fn cpu_ms(stat: &str) -> Option<u64> {
    const MS_PER_TICK: u64 = 10;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the name come state (field 3) ... utime (14) and stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * MS_PER_TICK)
}

/// Raises the soft open-file limit as far as the hard limit allows and
/// returns it (1024, the usual default, if it cannot be read).
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::Resource::NOFILE.get().map(|(soft, _)| soft))
        .unwrap_or(1024)
}

/// Lets the process hold `connections` sockets (one file each) if the hard
/// limit allows, and warns when it cannot: a server over its limit refuses
/// connections, each with a log line of its own.
pub fn raise_fd_limit_for(connections: usize) {
    /// Files a process holds besides its connections: listeners, logs, stdio.
    const SPARE: u64 = 64;
    let limit = raise_fd_limit();
    if limit < connections as u64 + SPARE {
        tracing::warn!(
            limit,
            connections,
            "the open-file limit is below the connection cap; raise it (ulimit -n) to serve that many"
        );
    }
}

/// The calling thread's kernel thread id (what `ps -L` and `top -H` show), read
/// from `/proc/thread-self`; `None` where that does not exist.
pub fn os_thread_id() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let text = "Name:\tsocketeer\nVmSize:\t  123456 kB\nVmRSS:\t    7890 kB\nThreads:\t5\n";
        assert_eq!(
            ProcStatus::parse(text),
            Some(ProcStatus { rss_kib: 7890, vm_kib: 123_456, threads: 5, open_files: 0, cpu_ms: 0 })
        );
        assert_eq!(ProcStatus::parse("Name:\tx\n"), None);
        let own = ProcStatus::of(std::process::id()).unwrap();
        assert!(own.rss_kib > 0 && own.threads >= 1 && own.open_files >= 3, "{own:?}");
    }

    #[test]
    fn reads_cpu_time_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194304 100 0 0 0 25 7 0 0 20 0 1 0 100 1000 50";
        assert_eq!(cpu_ms(stat), Some(320));
        assert_eq!(cpu_ms("42 (x) S 1"), None);
    }

    #[test]
    fn knows_its_own_thread_id() {
        let main = os_thread_id();
        let other = std::thread::spawn(os_thread_id).join().unwrap();
        assert!(main.is_some());
        assert_ne!(main, other);
    }
}
