//! This process and others, as Linux shows them in `/proc`, and the limits
//! that bound how many sockets a process may hold. Shared by the lab, the
//! load generators, `check` (which watches a student's server) and the
//! servers that raise their own open-file limit.
//!
//! Besides one process's status: which ports have a listening socket (from
//! `/proc/net`, without connecting), which processes form a process group,
//! and what a group uses (CPU, threads and how many of them are running,
//! open files). The parsers are pure (a line in, a value out) and tested
//! with literal lines; the readers return `None` or an empty list rather
//! than failing where `/proc` lacks what is asked (a process that just
//! ended).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use serde::Serialize;

use crate::net::Transport;

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

/// `utime + stime` from a `/proc/PID/stat` line, in milliseconds: ticks of
/// `USER_HZ`, which Linux fixes at 100 for user space.
fn cpu_ms(stat: &str) -> Option<u64> {
    const MS_PER_TICK: u64 = 10;
    Some(parse_stat(stat)?.ticks * MS_PER_TICK)
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

/// The kernel's state number of a listening TCP socket (`TCP_LISTEN`).
const TCP_LISTEN: u8 = 0x0A;
/// The state of a UDP socket that is bound and not connected (`TCP_CLOSE`,
/// which UDP reuses).
const UDP_UNCONNECTED: u8 = 0x07;

/// One socket from `/proc/net/{tcp,tcp6,udp,udp6}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketEntry {
    /// TCP or UDP.
    pub transport: Transport,
    /// The local address and port.
    pub local: SocketAddr,
    /// The kernel's state number (`0A` is listening for TCP).
    pub state: u8,
    /// The socket's inode, which `/proc/PID/fd` links name as `socket:[INODE]`.
    pub inode: u64,
}

impl SocketEntry {
    /// Whether this socket waits for clients: a TCP listener, or a UDP socket
    /// bound and not connected to one peer.
    pub fn is_server(&self) -> bool {
        match self.transport {
            Transport::Tcp => self.state == TCP_LISTEN,
            Transport::Udp => self.state == UDP_UNCONNECTED,
        }
    }

    /// Whether a client connecting to `ip` would reach this socket: the same
    /// address, or a wildcard of the same family (or `::`, which also takes
    /// IPv4 unless the program asked otherwise).
    pub fn serves(&self, ip: IpAddr) -> bool {
        let local = self.local.ip();
        local == ip
            || local.is_unspecified() && (local.is_ipv6() || ip.is_ipv4())
            || matches!((local, ip), (IpAddr::V6(v6), IpAddr::V4(v4)) if v6.to_ipv4_mapped() == Some(v4))
    }
}

/// Parses one line of `/proc/net/tcp` (or `tcp6`, `udp`, `udp6`); `None` for
/// the header and anything malformed.
///
/// ```
/// use socketeer::process::parse_socket_line;
/// use socketeer::net::Transport;
/// let line = "   0: 0100007F:1B5F 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000  0 4242 1";
/// let entry = parse_socket_line(Transport::Tcp, line).unwrap();
/// assert_eq!(entry.local, "127.0.0.1:7007".parse().unwrap());
/// assert!(entry.is_server());
/// assert_eq!(entry.inode, 4242);
/// ```
pub fn parse_socket_line(transport: Transport, line: &str) -> Option<SocketEntry> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 || !fields[0].ends_with(':') {
        return None;
    }
    let (ip, port) = fields[1].split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = parse_hex_ip(ip)?;
    let state = u8::from_str_radix(fields[3], 16).ok()?;
    let inode = fields[9].parse().ok()?;
    Some(SocketEntry { transport, local: SocketAddr::new(ip, port), state, inode })
}

/// The kernel prints addresses as 32-bit words in host byte order (little
/// endian on the machines this runs on), in hex.
fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| Some(u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?.to_le_bytes());
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut octets = [0u8; 16];
            for (i, chunk) in octets.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

/// Every socket of `transport` on this machine (IPv4 and IPv6).
pub fn sockets(transport: Transport) -> Vec<SocketEntry> {
    sockets_where(transport, |_| true)
}

/// The sockets of `transport` whose local port is `port`. Only lines that
/// mention the port are parsed: a busy machine has thousands of sockets,
/// and the check's programs are looked for every few milliseconds.
pub fn sockets_on_port(transport: Transport, port: u16) -> Vec<SocketEntry> {
    let mention = format!(":{port:04X} ");
    let mut found = sockets_where(transport, |line| line.contains(&mention));
    found.retain(|s| s.local.port() == port);
    found
}

fn sockets_where(transport: Transport, maybe: impl Fn(&str) -> bool) -> Vec<SocketEntry> {
    let files: [&str; 2] = match transport {
        Transport::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        Transport::Udp => ["/proc/net/udp", "/proc/net/udp6"],
    };
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| {
            text.lines()
                .filter(|l| maybe(l))
                .filter_map(|l| parse_socket_line(transport, l))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether something on this machine waits for `transport` clients at `addr`.
pub fn is_listening(transport: Transport, addr: SocketAddr) -> bool {
    sockets_on_port(transport, addr.port()).iter().any(|s| s.is_server() && s.serves(addr.ip()))
}

/// The server sockets (listening TCP, bound UDP) that the processes `pids`
/// hold open: where a program listens when it is not where it was told to.
pub fn server_sockets_of(pids: &[u32]) -> Vec<SocketEntry> {
    let inodes: Vec<u64> = pids
        .iter()
        .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).ok())
        .flat_map(|dir| dir.filter_map(Result::ok).collect::<Vec<_>>())
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| socket_inode(&link))
        .collect();
    [Transport::Tcp, Transport::Udp]
        .into_iter()
        .flat_map(sockets)
        .filter(|s| s.is_server() && inodes.contains(&s.inode))
        .collect()
}

/// The inode in an fd link such as `socket:[4242]`.
fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The fields of `/proc/PID/stat` (or `/proc/PID/task/TID/stat`) that say
/// what a process or thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `R` running or ready to run, `S` sleeping, `D` waiting for the disk,
    /// `Z` a zombie, ...
    pub state: char,
    /// The process group.
    pub pgrp: i32,
    /// CPU time used, user and system, in clock ticks (`USER_HZ`, 100 a
    /// second on Linux).
    pub ticks: u64,
}

/// Parses a `stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
///
/// ```
/// use socketeer::process::parse_stat;
/// let stat = parse_stat("42 (python3 (x)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0").unwrap();
/// assert_eq!((stat.state, stat.pgrp, stat.ticks), ('S', 42, 10));
/// ```
pub fn parse_stat(line: &str) -> Option<Stat> {
    let fields: Vec<&str> = line.get(line.rfind(')')? + 1..)?.split_whitespace().collect();
    // After the name: state (field 3), ppid, pgrp (5), ... utime (14), stime (15).
    let state = fields.first()?.chars().next()?;
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Stat { state, pgrp, ticks: utime + stime })
}

fn read_stat(path: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(path).ok()?)
}

/// The processes of process group `pgid` (a program and everything it
/// started, unless they moved to a group of their own).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // A zombie has ended; it only waits for its parent to notice.
            read_stat(&format!("/proc/{pid}/stat"))
                .is_some_and(|s| i64::from(s.pgrp) == i64::from(pgid) && !matches!(s.state, 'Z' | 'X'))
        })
        .collect()
}

/// A process group at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupSample {
    /// CPU ticks used so far by every process of the group.
    pub ticks: u64,
    /// Threads of the group, all processes together.
    pub threads: usize,
    /// Threads that are running or ready to run (`R`).
    pub running: usize,
    /// Open file descriptors, all processes together.
    pub open_files: usize,
}

/// Samples process group `pgid`.
pub fn sample_group(pgid: u32) -> GroupSample {
    let mut sample = GroupSample::default();
    for pid in group_members(pgid) {
        if let Some(stat) = read_stat(&format!("/proc/{pid}/stat")) {
            sample.ticks += stat.ticks;
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            sample.open_files += fds.count();
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { continue };
        for task in tasks.filter_map(Result::ok) {
            let path = task.path().join("stat");
            if let Some(stat) = path.to_str().and_then(read_stat) {
                sample.threads += 1;
                sample.running += usize::from(stat.state == 'R');
            }
        }
    }
    sample
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

    #[test]
    fn parses_ipv6_and_wildcards() {
        let line = "  0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 99 1";
        let entry = parse_socket_line(Transport::Tcp, line).unwrap();
        assert_eq!(entry.local, "[::1]:8080".parse().unwrap());
        let any = "  1: 00000000:3039 00000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 7 2";
        let any = parse_socket_line(Transport::Udp, any).unwrap();
        assert!(any.is_server());
        assert!(any.serves("127.0.0.1".parse().unwrap()));
        assert!(!any.serves("::1".parse().unwrap()));
        assert!(parse_socket_line(Transport::Tcp, "  sl  local_address rem_address   st").is_none());
    }

    #[test]
    fn an_established_socket_is_no_server() {
        let line = "   1: 0100007F:96E4 0100007F:91D9 06 00000000:00000000 03:00000370 00000000 0 0 0 3";
        assert!(!parse_socket_line(Transport::Tcp, line).unwrap().is_server());
    }

    #[test]
    fn fd_links_name_socket_inodes() {
        assert_eq!(socket_inode(Path::new("socket:[4242]")), Some(4242));
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    #[test]
    fn this_process_is_found_and_sampled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(is_listening(Transport::Tcp, addr));
        let me = std::process::id();
        let mine = server_sockets_of(&[me]);
        assert!(mine.iter().any(|s| s.local == addr), "{mine:?}");
        let pgrp = read_stat(&format!("/proc/{me}/stat")).unwrap().pgrp;
        let sample = sample_group(pgrp as u32);
        assert!(sample.threads >= 1 && sample.open_files >= 1, "{sample:?}");
        drop(listener);
        assert!(!is_listening(Transport::Tcp, addr));
    }
}
