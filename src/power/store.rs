//! The run directory on disk: the manifest (`run.json`), the streamed
//! per-replicate records (`replicates.csv`), the summary, and the lock.
//!
//! Crash safety rests on three rules:
//! * `replicates.csv` is only ever appended to (one `write` per batch). A
//!   file that is not a clean prefix of the run (a torn last line after
//!   kill -9, a garbage or duplicated line) is repaired by writing a new
//!   file beside it and renaming it over the old one, so at every instant
//!   the path holds either the old or the repaired file.
//! * Every other file (`run.json`, `summary.json`, merged outputs) is
//!   written whole to a temporary name, synced, and renamed.
//! * A run holds an exclusive lock on its directory (`.lock`, which records
//!   the holder's PID); the operating system releases it when the process
//!   ends, however it ends.

use super::Record;
use crate::analysis::Analysis;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// The header of `replicates.csv`.
pub const HEADER: &str =
    "rep,scenario,analysis,estimate,se,df,p,ci_lo,ci_hi,singular,converged,failed";

fn fmt_f(x: f64) -> String {
    if x.is_nan() {
        "NA".into()
    } else {
        format!("{x}")
    }
}

/// One CSV line per record (without the newline).
pub fn record_line(r: &Record) -> String {
    let o = &r.outcome;
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{}",
        r.rep,
        if r.scenario == 0 { "effect" } else { "null" },
        r.analysis.name(),
        fmt_f(o.estimate),
        fmt_f(o.se),
        fmt_f(o.df),
        fmt_f(o.p),
        fmt_f(o.lo),
        fmt_f(o.hi),
        u8::from(o.singular),
        u8::from(o.converged),
        u8::from(o.failed)
    )
}

/// Parse one line of `replicates.csv` (None if it is not a record).
pub fn parse_line(line: &str, methods: &[Analysis]) -> Option<Record> {
    let f: Vec<&str> = line.split(',').collect();
    if f.len() != 12 {
        return None;
    }
    let num = |s: &str| -> Option<f64> {
        match s {
            "NA" => Some(f64::NAN),
            "inf" => Some(f64::INFINITY),
            "-inf" => Some(f64::NEG_INFINITY),
            _ => s.parse().ok(),
        }
    };
    let flag = |s: &str| -> Option<bool> {
        match s {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        }
    };
    Some(Record {
        rep: f[0].parse().ok()?,
        scenario: match f[1] {
            "effect" => 0,
            "null" => 1,
            _ => return None,
        },
        analysis: *methods.iter().find(|m| m.name() == f[2])?,
        outcome: super::Outcome {
            estimate: num(f[3])?,
            se: num(f[4])?,
            df: num(f[5])?,
            p: num(f[6])?,
            lo: num(f[7])?,
            hi: num(f[8])?,
            singular: flag(f[9])?,
            converged: flag(f[10])?,
            failed: flag(f[11])?,
        },
    })
}

/// Write `bytes` to `path` atomically: a temporary file in the same
/// directory, synced, then renamed over `path` (and the directory synced).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// As [`atomic_write`], with the content produced by `fill`.
pub fn atomic_write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let run = || -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path);
        Ok(())
    };
    run().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Sync the directory holding `path` (so a rename survives a power cut);
/// best effort where the platform does not allow it.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// An exclusive lock on a run directory, held until dropped (or until the
/// process ends, however it ends).
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Lock `dir` (which must exist), or say which process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(".lock");
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = f.read_to_string(&mut who);
                let who = who.trim();
                let holder = if who.is_empty() {
                    "another crtsim process".to_string()
                } else {
                    format!("crtsim process {who}")
                };
                return Err(Error::Usage(format!(
                    "{} is in use by {holder} (lock {}): wait for it to finish, or choose another --out",
                    dir.display(),
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // Record the holder (the file itself is never the lock's truth).
        let pid = std::process::id().to_string();
        let _ = f.set_len(0).and_then(|_| {
            use std::io::Seek;
            f.seek(std::io::SeekFrom::Start(0))?;
            f.write_all(pid.as_bytes())
        });
        // Holding the lock, any temporary file here is an interrupted
        // atomic write of a process that has ended: remove it.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.contains(".tmp-") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(DirLock { _file: f })
    }
}

/// Where a run's replicates sit: shard `(i, n)` holds replicates
/// `i - 1, i - 1 + n, …`; each replicate has `methods × scenarios` records.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub methods: usize,
    pub scenarios: u8,
    pub shard: (u64, u64),
}

impl Layout {
    pub fn per_rep(&self) -> usize {
        self.methods * self.scenarios as usize
    }
    /// The replicate at position `pos` of this shard.
    pub fn rep(&self, pos: u64) -> Option<u64> {
        pos.checked_mul(self.shard.1)?.checked_add(self.shard.0 - 1)
    }
    /// The position of replicate `rep` in this shard (None if not its own).
    pub fn pos(&self, rep: u64) -> Option<u64> {
        (rep % self.shard.1 == self.shard.0 - 1).then(|| rep / self.shard.1)
    }
    /// Replicates of this shard below `reps`.
    pub fn count_below(&self, reps: u64) -> u64 {
        let (i, n) = self.shard;
        if reps < i {
            0
        } else {
            (reps - i) / n + 1
        }
    }
    /// The index of a record within its replicate.
    fn slot(&self, r: &Record, methods: &[Analysis]) -> Option<usize> {
        let a = methods.iter().position(|&m| m == r.analysis)?;
        Some(r.scenario as usize * self.methods + a)
    }

    /// The order of a record in a file: (replicate, scenario, position of
    /// its analysis among `methods`; records of others sort last).
    fn key(&self, r: &Record, methods: &[Analysis]) -> (u64, u8, usize) {
        let a = methods.iter().position(|&m| m == r.analysis);
        (r.rep, r.scenario, a.unwrap_or(usize::MAX))
    }

    /// Whether `r`, read from the line `text`, is the next record of a clean
    /// file: replicate `rep`, slot `slot`, and the line exactly as crtsim
    /// writes it.
    fn is_next(
        &self,
        r: &Record,
        text: Option<&str>,
        rep: Option<u64>,
        slot: usize,
        methods: &[Analysis],
    ) -> bool {
        Some(r.rep) == rep
            && self.slot(r, methods) == Some(slot)
            && text == Some(record_line(r).as_str())
    }
}

/// What a scan of `replicates.csv` found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Whether the file exists.
    pub exists: bool,
    /// Complete replicates at the start of the file, in order, each line
    /// exactly as crtsim writes it.
    pub prefix_reps: u64,
    /// Bytes (from the start, header included) those lines take.
    pub prefix_bytes: u64,
    /// The file is exactly that prefix (nothing torn, garbled or extra).
    pub clean: bool,
    /// Lines after the prefix that were not records of this run.
    pub bad_lines: u64,
    /// Valid records after the prefix (first occurrence of each key), in
    /// file order: (replicate, scenario, position of the analysis).
    pub tail: BTreeMap<(u64, u8, usize), Record>,
}

/// Read `path` once, handing each record of the clean prefix to `on_prefix`
/// in order, and collect what follows it.
pub fn scan(
    path: &Path,
    methods: &[Analysis],
    layout: Layout,
    mut on_prefix: impl FnMut(&Record),
) -> Result<Scan> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Scan {
                clean: true,
                ..Scan::default()
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut rd = std::io::BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut s = Scan {
        exists: true,
        ..Scan::default()
    };
    let n = rd
        .read_until(b'\n', &mut buf)
        .map_err(|e| Error::io(path, e))?;
    if n == 0 {
        // Empty file (created, then killed before the header was written).
        s.clean = false;
        return Ok(s);
    }
    let header_ok = buf.strip_suffix(b"\n") == Some(HEADER.as_bytes());
    if !header_ok {
        return Err(Error::Usage(format!(
            "{}: the first line is not crtsim's replicates header; this is not a crtsim replicates file: move it away (or delete it) to start the run afresh, or choose another --out",
            path.display()
        )));
    }
    s.prefix_bytes = n as u64;
    let per = layout.per_rep();
    let mut pending: Vec<Record> = Vec::with_capacity(per);
    let mut pending_bytes = 0u64;
    let mut in_prefix = true;
    loop {
        buf.clear();
        let n = rd
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        let whole = buf.last() == Some(&b'\n');
        let text = std::str::from_utf8(if whole { &buf[..n - 1] } else { &buf[..] }).ok();
        let rec = text
            .and_then(|t| parse_line(t, methods))
            .filter(|r| r.scenario < layout.scenarios && layout.pos(r.rep).is_some());
        if in_prefix {
            let expected_rep = layout.rep(s.prefix_reps);
            let canonical = whole
                && rec
                    .as_ref()
                    .is_some_and(|r| layout.is_next(r, text, expected_rep, pending.len(), methods));
            if canonical {
                pending.push(rec.expect("canonical"));
                pending_bytes += n as u64;
                if pending.len() == per {
                    for r in &pending {
                        on_prefix(r);
                    }
                    pending.clear();
                    s.prefix_reps += 1;
                    s.prefix_bytes += pending_bytes;
                    pending_bytes = 0;
                }
                continue;
            }
            in_prefix = false;
            for r in pending.drain(..) {
                s.tail.entry(layout.key(&r, methods)).or_insert(r);
            }
        }
        match rec {
            Some(r) if layout.pos(r.rep).is_some_and(|p| p >= s.prefix_reps) => {
                s.tail.entry(layout.key(&r, methods)).or_insert(r);
            }
            Some(_) => {} // a duplicate of a prefix record
            None => s.bad_lines += 1,
        }
    }
    s.clean = in_prefix && pending.is_empty();
    if !pending.is_empty() {
        for r in pending.drain(..) {
            s.tail.entry(layout.key(&r, methods)).or_insert(r);
        }
    }
    Ok(s)
}

/// Replicates of the tail that are complete, by position.
pub fn complete_tail(scan: &Scan, layout: Layout) -> BTreeMap<u64, Vec<Record>> {
    let mut by_rep: BTreeMap<u64, Vec<Record>> = BTreeMap::new();
    for r in scan.tail.values() {
        if let Some(p) = layout.pos(r.rep) {
            by_rep.entry(p).or_default().push(*r);
        }
    }
    by_rep.retain(|_, v| v.len() == layout.per_rep());
    by_rep
}

/// Copy the first `bytes` of `path` into `w`.
pub fn copy_prefix(path: &Path, bytes: u64, w: &mut dyn Write) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    let mut r = std::io::BufReader::with_capacity(1 << 16, f).take(bytes);
    let copied = std::io::copy(&mut r, w)?;
    if copied != bytes {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the file shrank while it was being repaired",
        ));
    }
    Ok(())
}

/// Reads a clean replicates file replicate by replicate (for merging).
pub struct RepReader {
    path: PathBuf,
    rd: Option<std::io::BufReader<std::fs::File>>,
    methods: Vec<Analysis>,
    layout: Layout,
    next_pos: u64,
    line: u64,
    buf: Vec<u8>,
}

impl RepReader {
    pub fn open(path: &Path, methods: &[Analysis], layout: Layout) -> Result<RepReader> {
        let rd = match std::fs::File::open(path) {
            Ok(f) => Some(std::io::BufReader::with_capacity(1 << 16, f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut r = RepReader {
            path: path.to_path_buf(),
            rd,
            methods: methods.to_vec(),
            layout,
            next_pos: 0,
            line: 0,
            buf: Vec::new(),
        };
        if let Some(first) = r.next_line()? {
            if first != HEADER.as_bytes() {
                return Err(Error::Usage(format!(
                    "{}: not a crtsim replicates file (the first line is not its header)",
                    path.display()
                )));
            }
        }
        Ok(r)
    }

    /// The next whole line (without its newline); None at the end or at a
    /// torn last line.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(rd) = self.rd.as_mut() else {
            return Ok(None);
        };
        self.buf.clear();
        let n = rd
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(&self.path, e))?;
        self.line += 1;
        if n == 0 || self.buf.last() != Some(&b'\n') {
            return Ok(None);
        }
        self.buf.pop();
        Ok(Some(self.buf.clone()))
    }

    /// The next replicate's records, in order; None when the file ends (a
    /// torn or incomplete last replicate counts as not there). A file that
    /// is not a clean prefix of its shard is an error that says how to
    /// repair it.
    pub fn next_rep(&mut self) -> Result<Option<Vec<Record>>> {
        let per = self.layout.per_rep();
        let mut recs = Vec::with_capacity(per);
        let rep = self.layout.rep(self.next_pos);
        while recs.len() < per {
            let Some(line) = self.next_line()? else {
                return Ok(None);
            };
            let text = std::str::from_utf8(&line).ok();
            let rec = text.and_then(|t| parse_line(t, &self.methods));
            match rec {
                Some(r) if self.layout.is_next(&r, text, rep, recs.len(), &self.methods) => {
                    recs.push(r)
                }
                _ => {
                    return Err(Error::Usage(format!(
                        "{}: line {} is not the next record of this shard (damaged, duplicated or out of order); repair it first with `crtsim power CONFIG --resume --out {} --shard {}/{} --reps R` (same config, seed and R as the run)",
                        self.path.display(),
                        self.line,
                        self.path.parent().unwrap_or(Path::new(".")).display(),
                        self.layout.shard.0,
                        self.layout.shard.1
                    )))
                }
            }
        }
        self.next_pos += 1;
        Ok(Some(recs))
    }
}

/// FNV-1a hash of a resolved config's TOML (identifies a run across shards).
pub fn hash_text(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The manifest of a run directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub seed: u64,
    pub config_hash: String,
    pub null: bool,
    pub shard: (u64, u64),
    pub methods: Vec<Analysis>,
    /// The replicates the run was (last) asked for (None in manifests
    /// written before crtsim recorded it).
    pub reps: Option<u64>,
}

impl Manifest {
    /// The same run (everything but the replicate count agrees).
    pub fn same_run(&self, other: &Manifest) -> bool {
        self.seed == other.seed
            && self.config_hash == other.config_hash
            && self.null == other.null
            && self.shard == other.shard
            && self.methods == other.methods
    }

    /// The same run as a manifest from before the canonical run identity,
    /// whose `config_hash` is the TOML text's ([`super::legacy_config_hash`]).
    pub fn same_run_legacy(&self, other: &Manifest, legacy_hash: &str) -> bool {
        self.config_hash == legacy_hash
            && Manifest {
                config_hash: other.config_hash.clone(),
                ..self.clone()
            }
            .same_run(other)
    }

    pub fn layout(&self) -> Layout {
        Layout {
            methods: self.methods.len(),
            scenarios: if self.null { 2 } else { 1 },
            shard: self.shard,
        }
    }

    fn to_json(&self, config_toml: &str) -> Value {
        json!({
            "crtsim_version": env!("CARGO_PKG_VERSION"),
            "seed": self.seed,
            "config_hash": self.config_hash,
            "null": self.null,
            "shard": format!("{}/{}", self.shard.0, self.shard.1),
            "reps": self.reps,
            "methods": self.methods,
            "config": config_toml,
        })
    }

    /// Write `dir/run.json` atomically.
    pub fn write(&self, dir: &Path, config_toml: &str) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.to_json(config_toml))
            .map_err(|e| Error::Usage(format!("cannot write run.json: {e}")))?;
        atomic_write(&dir.join("run.json"), (text + "\n").as_bytes())
    }
}

/// Read a run directory's manifest and the config text it records.
pub fn read_manifest(dir: &Path) -> Result<(Manifest, String)> {
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{}: not a crtsim run manifest: {e}",
            path.display()
        ))
    })?;
    let bad = || Error::Usage(format!("{}: incomplete run manifest", path.display()));
    let shard = v["shard"].as_str().ok_or_else(bad)?;
    let (i, n) = super::parse_shard(shard)?;
    Ok((
        Manifest {
            seed: v["seed"].as_u64().ok_or_else(bad)?,
            config_hash: v["config_hash"].as_str().ok_or_else(bad)?.to_string(),
            null: v["null"].as_bool().ok_or_else(bad)?,
            shard: (i, n),
            methods: v["methods"]
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|m| m.as_str().and_then(Analysis::from_name).ok_or_else(bad))
                .collect::<Result<_>>()?,
            reps: v["reps"].as_u64(),
        },
        v["config"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Whether a directory is absent or holds nothing (a leftover lock file, or
/// a temporary file of an interrupted atomic write, counts as nothing).
pub fn is_empty_dir(dir: &Path) -> Result<bool> {
    let ours = |name: &str| name == ".lock" || (name.starts_with('.') && name.contains(".tmp-"));
    match std::fs::read_dir(dir) {
        Ok(mut it) => Ok(it.all(|e| e.is_ok_and(|e| ours(&e.file_name().to_string_lossy())))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(dir, e)),
    }
}
