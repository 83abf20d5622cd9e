//! `lab anatomy`: a process seen from the inside.
//!
//! - Its memory, from `/proc/self/maps`: the program's code, read-only data,
//!   data and bss, the heap, the main thread's stack, shared libraries, and
//!   anonymous mappings (other threads' stacks, allocator arenas).
//! - Where a function, a constant, an initialised static, a zeroed static, a
//!   heap value and a local variable live, by address.
//! - Two threads: each has its own stack, and both read the one heap value
//!   the main thread made (one address space).
//! - What the kernel keeps about the process (its process control block, as
//!   `/proc/self/status` shows it).
//! - The two kinds of work: a thread that mostly waits (I/O-bound) and one
//!   that computes (CPU-bound), told apart by their CPU time and context
//!   switches.

use std::fmt;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sock::thread_cpu;
use super::table::Table;
use super::{LabError, Lesson, Took, join, spawn};
use crate::stats::as_millis;

/// A static with a value: lives in the data segment.
static INITIALISED: AtomicU64 = AtomicU64::new(0x5eed);
/// A static of zeroes: lives in bss, which takes no room in the file.
static ZEROED: AtomicU64 = AtomicU64::new(0);
/// A constant string: read-only data.
const GREETING: &str = "hello from the read-only data";

/// What a mapping of `/proc/self/maps` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    /// The program's machine code (text).
    Code,
    /// The program's constants.
    ReadOnlyData,
    /// The program's initialised statics (data), and the bss right after it.
    Data,
    /// Zeroed statics past the end of the file's data.
    Bss,
    /// The heap the allocator grows with `brk`.
    Heap,
    /// The main thread's stack.
    Stack,
    /// A shared library (libc, ...).
    Library,
    /// Memory mapped with no file: other threads' stacks, allocator arenas.
    Anonymous,
    /// The kernel's pages for fast system calls (vdso, vvar, vsyscall).
    Kernel,
    /// Any other file.
    File,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned));
        f.pad(name.as_deref().unwrap_or("?"))
    }
}

/// One line of `/proc/self/maps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// First address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// `r-xp` and the like.
    pub perms: String,
    /// The file, `[heap]`, `[stack]`, or empty.
    pub path: String,
    /// What it holds.
    pub region: Region,
}

/// One region's total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionTotal {
    /// The region.
    pub region: Region,
    /// Mappings of it.
    pub mappings: usize,
    /// Their size, in KiB.
    pub kib: u64,
}

/// Where one value lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placed {
    /// What it is.
    pub what: String,
    /// Its address.
    pub addr: u64,
    /// The region of the mapping it is in (`None`: in none, which would be a surprise).
    pub region: Option<Region>,
}

/// One thread of the experiment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThreadView {
    /// Its name.
    pub name: String,
    /// A local variable of it.
    pub local: Placed,
    /// A value it put on the heap.
    pub own_heap: Placed,
    /// The address of the main thread's heap value, as this thread sees it.
    pub shared_heap_addr: u64,
    /// The value it read there.
    pub shared_heap_value: u64,
}

/// A thread's work and what it cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkKind {
    /// `waits` or `computes`.
    pub kind: String,
    /// Wall time.
    #[serde(rename = "wall_ms", serialize_with = "as_millis")]
    pub wall: Duration,
    /// CPU time.
    #[serde(rename = "cpu_ms", serialize_with = "as_millis")]
    pub cpu: Duration,
    /// Times it gave up the CPU itself (to wait).
    pub voluntary_switches: u64,
    /// Times the scheduler took the CPU away.
    pub involuntary_switches: u64,
}

/// What `lab anatomy` found.
#[derive(Clone, Debug, Serialize)]
pub struct AnatomyReport {
    /// This program's file.
    pub executable: String,
    /// Every mapping.
    pub mappings: Vec<Mapping>,
    /// Totals per region.
    pub regions: Vec<RegionTotal>,
    /// Where the main thread's values live.
    pub placed: Vec<Placed>,
    /// Two threads' views.
    pub threads: Vec<ThreadView>,
    /// `/proc/self/status` fields: the kernel's record of the process.
    pub pcb: Vec<(String, String)>,
    /// An I/O-bound and a CPU-bound thread.
    pub work: Vec<WorkKind>,
}

/// The `/proc/self/status` fields shown, and what each says.
const PCB_FIELDS: [&str; 12] = [
    "Name", "State", "Pid", "PPid", "Uid", "Threads", "VmSize", "VmRSS", "VmData", "VmStk", "VmExe", "VmLib",
];

/// Looks at this process.
///
/// # Errors
/// When `/proc/self` cannot be read (not Linux) or a thread fails.
pub fn run(work: Duration) -> Result<AnatomyReport, LabError> {
    let executable = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(LabError::io("finding this program's file"))?
        .to_string_lossy()
        .into_owned();
    // Keep the values alive (and their addresses taken) until the maps are read.
    let heap = Arc::new(Box::new(black_box(0x00c0_ffee_u64)));
    let local = black_box(42u64);
    INITIALISED.fetch_add(1, Ordering::Relaxed);
    ZEROED.fetch_add(1, Ordering::Relaxed);
    let addr = |r: &u64| r as *const u64 as u64;
    let mut placed = vec![
        (
            "a function (run)".to_owned(),
            run as fn(Duration) -> Result<AnatomyReport, LabError> as usize as u64,
        ),
        ("a constant string".to_owned(), GREETING.as_ptr() as u64),
        ("an initialised static".to_owned(), INITIALISED.as_ptr() as u64),
        ("a zeroed static".to_owned(), ZEROED.as_ptr() as u64),
        ("a heap value (Box)".to_owned(), addr(&heap)),
        ("a local variable".to_owned(), addr(&local)),
    ];
    // The threads report what they see, then wait until the maps are read,
    // so that their stacks and boxes still exist when the maps are.
    let maps_read = Arc::new(Barrier::new(3));
    let (report, views) = std::sync::mpsc::channel();
    let handles = (1..=2)
        .map(|i| {
            let (shared, maps_read, report) = (Arc::clone(&heap), Arc::clone(&maps_read), report.clone());
            let name = format!("thread-{i}");
            let thread_name = name.clone();
            spawn(&name, move || {
                let own = Box::new(black_box(i as u64));
                let local = black_box(i as u64);
                let _ = report.send((thread_name, addr(&local), addr(&own), addr(&shared), **shared));
                maps_read.wait();
                black_box((&own, &local));
            })
            .map(|h| (name, h))
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(report);
    let views: Vec<_> = views.iter().take(handles.len()).collect();
    let maps = std::fs::read_to_string("/proc/self/maps");
    if handles.len() == 2 {
        maps_read.wait();
    }
    for (name, handle) in handles {
        join(&name, handle)?;
    }
    let maps = maps.map_err(LabError::io("reading /proc/self/maps"))?;
    let mappings = parse_maps(&maps, &executable);
    let place = |what: String, addr: u64| Placed { region: region_of(&mappings, addr), what, addr };
    let placed: Vec<Placed> = placed.drain(..).map(|(what, a)| place(what, a)).collect();
    let threads = views
        .into_iter()
        .map(|(name, local, own, shared_addr, value)| ThreadView {
            local: place(format!("{name}'s local"), local),
            own_heap: place(format!("{name}'s Box"), own),
            name,
            shared_heap_addr: shared_addr,
            shared_heap_value: value,
        })
        .collect();
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(LabError::io("reading /proc/self/status"))?;
    let pcb = PCB_FIELDS
        .iter()
        .filter_map(|field| {
            let value = status.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
            Some(((*field).to_owned(), value.split_whitespace().collect::<Vec<_>>().join(" ")))
        })
        .collect();
    let work = vec![work_kind("waits", work)?, work_kind("computes", work)?];
    Ok(AnatomyReport { regions: totals(&mappings), executable, mappings, placed, threads, pcb, work })
}

/// Runs a thread that waits (20 naps) or computes for about `duration`,
/// and measures it from inside.
fn work_kind(kind: &str, duration: Duration) -> Result<WorkKind, LabError> {
    let waits = kind == "waits";
    let name = format!("{kind}-thread");
    let kind = kind.to_owned();
    let handle = spawn(&name, move || {
        let before = switches();
        let (started, cpu) = (Instant::now(), thread_cpu());
        if waits {
            for _ in 0..20 {
                std::thread::sleep(duration / 20);
            }
        } else {
            let mut x = 0u64;
            while started.elapsed() < duration {
                x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        let after = switches();
        WorkKind {
            kind,
            wall: started.elapsed(),
            cpu: thread_cpu().saturating_sub(cpu),
            voluntary_switches: after.0.saturating_sub(before.0),
            involuntary_switches: after.1.saturating_sub(before.1),
        }
    })?;
    join(&name, handle)
}

/// This thread's voluntary and involuntary context switches so far.
fn switches() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    (field("voluntary_ctxt_switches:"), field("nonvoluntary_ctxt_switches:"))
}

fn parse_maps(text: &str, executable: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else { continue };
        let path = fields.nth(3).map(str::to_owned).unwrap_or_default();
        let Some((start, end)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) else {
            continue;
        };
        let follows_program = out.last().is_some_and(|m| m.path == executable && m.end == start);
        let region = match path.as_str() {
            p if p == executable && perms.contains('x') => Region::Code,
            p if p == executable && perms.starts_with("rw") => Region::Data,
            p if p == executable => Region::ReadOnlyData,
            "" if follows_program && perms.starts_with("rw") => Region::Bss,
            "" => Region::Anonymous,
            "[heap]" => Region::Heap,
            "[stack]" => Region::Stack,
            "[vdso]" | "[vvar]" | "[vsyscall]" | "[vvar_vclock]" => Region::Kernel,
            p if p.contains(".so") => Region::Library,
            _ => Region::File,
        };
        out.push(Mapping { start, end, perms: perms.to_owned(), path, region });
    }
    out
}

fn region_of(mappings: &[Mapping], addr: u64) -> Option<Region> {
    mappings.iter().find(|m| (m.start..m.end).contains(&addr)).map(|m| m.region)
}

fn totals(mappings: &[Mapping]) -> Vec<RegionTotal> {
    let mut totals: Vec<RegionTotal> = Vec::new();
    for m in mappings {
        let kib = (m.end - m.start) / 1024;
        match totals.iter_mut().find(|t| t.region == m.region) {
            Some(t) => {
                t.mappings += 1;
                t.kib += kib;
            }
            None => totals.push(RegionTotal { region: m.region, mappings: 1, kib }),
        }
    }
    totals
}

fn region_name(region: Option<Region>) -> String {
    region.map_or_else(|| "(no mapping!)".to_owned(), |r| r.to_string())
}

impl fmt::Display for AnatomyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "memory of {} (pid {}), from /proc/self/maps:", self.executable, std::process::id())?;
        let mut table = Table::new(&["region", "mappings", "size"]);
        for t in &self.regions {
            table.row([t.region.to_string(), t.mappings.to_string(), format!("{} KiB", t.kib)]);
        }
        writeln!(f, "{table}")?;
        let mut table = Table::new(&["value", "address", "region"]);
        let thread_rows = self.threads.iter().flat_map(|t| [&t.local, &t.own_heap]);
        for p in self.placed.iter().chain(thread_rows) {
            table.row([p.what.clone(), format!("{:#014x}", p.addr), region_name(p.region)]);
        }
        writeln!(f, "{table}")?;
        for t in &self.threads {
            writeln!(
                f,
                "{} reads the main thread's heap value at {:#014x}: {:#x}",
                t.name, t.shared_heap_addr, t.shared_heap_value
            )?;
        }
        writeln!(f, "the kernel's record of this process (/proc/self/status):")?;
        for (field, value) in &self.pcb {
            writeln!(f, "  {field:<8} {value}")?;
        }
        let mut table = Table::new(&["thread", "wall", "CPU", "voluntary switches", "involuntary switches"]);
        for w in &self.work {
            table.row([
                format!("{} thread", w.kind),
                Took(w.wall).to_string(),
                Took(w.cpu).to_string(),
                w.voluntary_switches.to_string(),
                w.involuntary_switches.to_string(),
            ]);
        }
        write!(f, "{table}")
    }
}

impl Lesson for AnatomyReport {
    fn lesson(&self) -> String {
        let at =
            |what: &str| self.placed.iter().find(|p| p.what.starts_with(what)).map(|p| region_name(p.region));
        let mut text = format!(
            "A process is its program's code (the function is in {}), its data (the initialised static in {}, \
             the zeroed one in {}, the Box in {}, the local in {}) and what the kernel keeps to run it: ids, \
             state, memory and open files, its process control block. ",
            at("a function").unwrap_or_default(),
            at("an initialised").unwrap_or_default(),
            at("a zeroed").unwrap_or_default(),
            at("a heap").unwrap_or_default(),
            at("a local").unwrap_or_default(),
        );
        let on_own_stacks = self.threads.iter().all(|t| t.local.region == Some(Region::Anonymous));
        let distinct = self.threads.windows(2).all(|w| w[0].local.addr != w[1].local.addr);
        let shared = self.threads.iter().all(|t| {
            self.placed.iter().any(|p| p.what.starts_with("a heap") && p.addr == t.shared_heap_addr)
                && t.shared_heap_value == 0x00c0_ffee
        });
        text.push_str(&format!(
            "Each thread's local sat on a stack of its own{}{}, yet {} read the main thread's heap value at the \
             same address: threads share one address space. ",
            if on_own_stacks { ", memory mapped for it (not [stack], which is the main thread's)" } else { "" },
            if distinct { ", at different addresses" } else { "" },
            if shared { "both" } else { "not both" }
        ));
        if let (Some(w), Some(c)) = (self.work.first(), self.work.get(1)) {
            text.push_str(&format!(
                "The two kinds of processes (and threads): the I/O-bound one used {} of CPU in {} and gave the CPU \
                 up {} times to wait; the CPU-bound one used {} in {}, and the scheduler took the CPU from it {} \
                 times.",
                Took(w.cpu),
                Took(w.wall),
                w.voluntary_switches,
                Took(c.cpu),
                Took(c.wall),
                c.involuntary_switches
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_live_where_the_maps_say() {
        let report = run(Duration::from_millis(20)).unwrap();
        let region = |what: &str| report.placed.iter().find(|p| p.what.starts_with(what)).unwrap().region;
        assert_eq!(region("a function"), Some(Region::Code));
        // Tests run on spawned threads: their locals are on anonymous stacks (the binary's test checks [stack]).
        assert!(matches!(region("a local"), Some(Region::Stack | Region::Anonymous)), "{report:#?}");
        assert!(matches!(region("an initialised"), Some(Region::Data)), "{report:#?}");
        assert!(matches!(region("a zeroed"), Some(Region::Data | Region::Bss)), "{report:#?}");
        for t in &report.threads {
            assert_eq!(t.shared_heap_value, 0x00c0_ffee);
            assert_eq!(t.local.region, Some(Region::Anonymous), "a spawned thread's stack: {t:?}");
        }
    }

    #[test]
    fn reads_a_maps_file() {
        let maps = "55d0-55e0 r--p 00000000 08:01 1 /bin/x\n55e0-55f0 r-xp 0 08:01 1 /bin/x\n\
                    55f0-5600 rw-p 0 08:01 1 /bin/x\n5600-5610 rw-p 0 00:00 0 \n5700-5800 rw-p 0 00:00 0 [heap]\n";
        let regions: Vec<Region> = parse_maps(maps, "/bin/x").iter().map(|m| m.region).collect();
        assert_eq!(regions, [Region::ReadOnlyData, Region::Code, Region::Data, Region::Bss, Region::Heap]);
    }
}
