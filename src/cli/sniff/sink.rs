//! Where `sniff`'s kept packets go: printed, written to a pcap file, counted.

use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use socketeer::sniff::capture::Consumer;
use socketeer::sniff::filter::{Filter, compile};
use socketeer::sniff::pcap::{self, Precision};
use socketeer::sniff::{Counts, Frame, LinkType, Matcher, Verdict};

use super::format::{Extras, PacketLine};
use super::names::InterfaceNames;
use super::present::{Presenter, TimeFormat};
use crate::cli::args::UsageError;
use crate::cli::output::Output;

/// The closing line: what was seen, kept and lost.
#[derive(Debug, Serialize)]
pub(super) struct Summary {
    pub(super) source: String,
    #[serde(flatten)]
    pub(super) counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) kernel_filter: Option<bool>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Counts { received, matched, dropped } = self.counts;
        let packets = if received == 1 { "packet" } else { "packets" };
        match self.kernel_filter {
            Some(in_kernel) => write!(
                f,
                "{received} {packets} received on {}, {matched} matched{}, {dropped} dropped by the kernel",
                self.source,
                if in_kernel { " (filtered in the kernel)" } else { "" }
            ),
            None => write!(f, "{received} {packets} read from {}, {matched} matched", self.source),
        }
    }
}

/// A pcap file (or stdout) being written.
type PcapOut = pcap::Writer<BufWriter<Box<dyn Write + Send>>>;

/// Where kept packets go.
pub(super) struct Sink {
    pub(super) out: Output,
    pub(super) print: bool,
    pub(super) extras: Extras,
    pub(super) presenter: Presenter,
    pub(super) writer: Option<PcapOut>,
    pub(super) matcher: Matcher,
    pub(super) limit: Option<u64>,
    pub(super) failed: Option<anyhow::Error>,
    /// A running count on a terminal while packets go only to a file.
    pub(super) progress: Option<ProgressBar>,
    /// For the lines of `-i any` frames.
    pub(super) interfaces: InterfaceNames,
}

impl Sink {
    pub(super) fn offer(&mut self, link: LinkType, frame: Frame<'_>) -> ControlFlow<()> {
        let Verdict::Accepted(summary) = self.matcher.offer(link, frame) else {
            return ControlFlow::Continue(());
        };
        if let Err(e) = self.keep(link, frame, summary.as_deref()) {
            self.failed = Some(e);
            return ControlFlow::Break(());
        }
        let matched = self.matcher.counts().matched;
        if let Some(bar) = &self.progress {
            bar.set_position(matched);
        }
        match self.limit {
            Some(limit) if matched >= limit => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }

    fn keep(
        &mut self,
        link: LinkType,
        frame: Frame<'_>,
        summary: Option<&socketeer::sniff::decode::Summary>,
    ) -> anyhow::Result<()> {
        if let Some(writer) = &mut self.writer {
            writer.write(frame).context("writing the pcap file")?;
        }
        if let (true, Some(summary)) = (self.print, summary) {
            // Scripts get absolute numbers; people get tcpdump's relative ones.
            let relative = if self.out.is_json() { None } else { self.presenter.relative(summary) };
            let stamp = self.presenter.stamp(frame.time);
            let origin = socketeer::sniff::decode::origin(link, frame.data)
                .map(|o| (self.interfaces.name(o.ifindex).to_owned(), o.direction));
            let line = PacketLine::new(link, frame, relative.as_ref().unwrap_or(summary), self.extras, stamp)
                .with_origin(origin);
            self.out.emit("packet", &line)?;
        }
        Ok(())
    }

    pub(super) fn finish(mut self, summary: Summary, to_stdout: bool) -> anyhow::Result<()> {
        if let Some(bar) = self.progress.take() {
            bar.finish_and_clear();
        }
        if let Some(writer) = self.writer.take() {
            writer.into_inner().context("writing the pcap file")?;
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let stats = self.matcher.stats();
        if to_stdout {
            if self.out.is_json() {
                self.out.emit("summary", &summary)?;
            } else {
                writeln!(io::stderr(), "{summary}")?;
            }
            if let Some(stats) = &stats {
                self.out.emit("stats", stats)?;
            }
        } else {
            writeln!(io::stderr(), "{summary}")?;
            if let Some(stats) = &stats {
                writeln!(io::stderr(), "{stats}")?;
            }
        }
        Ok(())
    }
}

/// A live capture's frames going to a [`Sink`], whose pcap output is
/// flushed whenever the capture is about to wait and at least every
/// [`FLUSH_EVERY`] under load: `sniff -w - | tcpdump -r -` shows packets as
/// they come, and a killed capture loses at most its last moments.
pub(super) struct Live<'a> {
    pub(super) sink: &'a mut Sink,
    pub(super) link: LinkType,
    pub(super) flushed: Instant,
}

const FLUSH_EVERY: Duration = Duration::from_millis(100);

impl Consumer for Live<'_> {
    fn frame(&mut self, frame: Frame<'_>) -> ControlFlow<()> {
        self.sink.offer(self.link, frame)
    }

    fn batch(&mut self, drained: bool) -> ControlFlow<()> {
        if !drained && self.flushed.elapsed() < FLUSH_EVERY {
            return ControlFlow::Continue(());
        }
        self.flushed = Instant::now();
        match self.sink.writer.as_mut().map(pcap::Writer::flush) {
            Some(Err(e)) => {
                self.sink.failed = Some(anyhow::Error::new(e).context("writing the pcap file"));
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Everything needed to make the [`Sink`] once the link type is known.
pub(super) struct Plan {
    /// Where `-w` goes, opened but not yet written.
    pub(super) output: Option<Box<dyn Write + Send>>,
    pub(super) json: bool,
    pub(super) print: bool,
    pub(super) extras: Extras,
    /// tcpdump's -t count and -S.
    pub(super) time: TimeFormat,
    pub(super) absolute: bool,
    pub(super) filter: Option<Filter>,
    pub(super) stats: bool,
    pub(super) limit: Option<u64>,
    pub(super) progress: bool,
    pub(super) write: Option<PathBuf>,
    pub(super) snaplen: u32,
    pub(super) precision: Precision,
}

impl Plan {
    /// A sink for frames of `link` type; `kernel_filtered` when the kernel
    /// ran the filter first (most frames then need no decoding to be written).
    pub(super) fn sink(&mut self, link: LinkType, kernel_filtered: bool) -> anyhow::Result<Sink> {
        let program = match &self.filter {
            Some(filter) => {
                Some(compile(filter, link, u32::MAX).map_err(|e| UsageError(format!("bad filter: {e}")))?)
            }
            None => None,
        };
        Ok(Sink {
            out: Output::new(self.json),
            print: self.print,
            extras: self.extras,
            presenter: Presenter::new(self.time, self.absolute),
            writer: self.open_writer(link)?,
            matcher: Matcher::new(program, self.print, self.stats).kernel_filtered(kernel_filtered),
            limit: self.limit,
            failed: None,
            progress: self.progress.then(|| {
                let style = ProgressStyle::with_template("{spinner} {pos} packets written to {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let file = self.write.as_deref().unwrap_or(Path::new("-")).display().to_string();
                let bar = ProgressBar::new_spinner().with_style(style).with_message(file);
                bar.enable_steady_tick(Duration::from_millis(200));
                bar
            }),
            interfaces: InterfaceNames::default(),
        })
    }

    fn open_writer(&mut self, link: LinkType) -> anyhow::Result<Option<PcapOut>> {
        let (Some(out), Some(path)) = (self.output.take(), &self.write) else { return Ok(None) };
        let writer =
            pcap::Writer::new(BufWriter::with_capacity(1 << 20, out), link, self.snaplen, self.precision)
                .with_context(|| format!("writing {}", path.display()))?;
        Ok(Some(writer))
    }
}
